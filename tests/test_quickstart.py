"""The smoke preset of the main job runs top to bottom: bench, both models, evaluation, results.md and GIFs."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_smoke(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--preset", "smoke", "--out", str(tmp_path)]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = tmp_path / "smoke"
    md = (out / "results.md").read_text()
    for method in ("TrajLoom", "WHN-style", "constant velocity", "static"):
        assert f"| FVMD | {method} |" in md
    assert (out / "gifs" / "test_00.gif").stat().st_size > 0
    assert (out / "trajloom" / "pipeline" / "model_index.json").exists()
    # model cards: HF metadata with the measured values, one per trained artefact
    import json

    import yaml

    results = json.loads((out / "results" / "results.json").read_text())["results"]
    for name, folder in (("autoencoder_traj", "trajloom/vae"), ("trajloom_pipeline", "trajloom/pipeline"),
                         ("visibility_predictor", "trajloom/vis/visibility_predictor"), ("whn_style_baseline", "whn/pipeline")):
        text = (out / "model_cards" / f"{name}.md").read_text()
        assert text == (out / folder / "README.md").read_text()
        meta = yaml.safe_load(text.split("---")[1])
        assert meta["library_name"] == "trajloom-hf" and meta["license"] == "apache-2.0"
        assert "python examples/quickstart.py --preset smoke" in text and "trajloom convert-official" in text
        assert f'.from_pretrained("quickstart_out/smoke/{folder}")' in text  # pasteable from the repository root
        assert meta["model-index"][0]["results"][0]["metrics"]  # every card carries measured values
    meta = yaml.safe_load((out / "model_cards" / "trajloom_pipeline.md").read_text().split("---")[1])
    values = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert values["fvmd"] == results["TrajLoom"]["fvmd"] and values["fvmd_long"] == results["TrajLoom"]["fvmd_long"]
    meta = yaml.safe_load((out / "model_cards" / "visibility_predictor.md").read_text().split("---")[1])
    values = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert values == {"accuracy": results["TrajLoom"]["vis_accuracy"], "f1": results["TrajLoom"]["occlusion_f1"]}
    meta = yaml.safe_load((out / "model_cards" / "whn_style_baseline.md").read_text().split("---")[1])
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == results["WHN-style"]["fvmd"]
    # re-running skips every finished stage
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 0 and again.stdout.count("[skip]") >= 8
