"""The smoke preset of the main job runs top to bottom: bench, TrajLoom with and without video, the WHN-style image
baseline, evaluation (test split; validation split with shuffled frames), results.md, GIFs and model cards; a second
seed and the spread over seeds; a training stage gives the same weights alone and next to another."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from tests.script_loading import load_script

ROOT = Path(__file__).resolve().parents[1]


def load_quickstart():
    return load_script("examples/quickstart.py", "quickstart_under_test")


def test_quickstart_smoke(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--preset", "smoke", "--out", str(tmp_path), "--threads", "2"]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    out = tmp_path / "smoke"
    md = (out / "results.md").read_text()
    for method in ("TrajLoom", "TrajLoom (no video)", "WHN-style", "constant velocity", "static",
                   "TrajLoom (other clip's frames)", "WHN-style (other clip's frames)"):
        assert f"| FVMD | {method} |" in md
    shuffled = json.loads((out / "results_shuffled_frames" / "results.json").read_text())
    assert shuffled["settings"]["split"] == "validation" and shuffled["settings"]["shuffle_frames"]
    for folder, has_frames in (("trajloom", True), ("trajloom_novideo", False), ("whn", True)):
        assert (out / folder / "pipeline" / "frame_encoder").is_dir() == has_frames
    assert json.loads((out / "whn" / "pipeline" / "model_index.json").read_text())["history_mode"] == "last_frame"
    assert (out / "gifs" / "test_00.gif").stat().st_size > 0
    assert (out / "trajloom" / "pipeline" / "model_index.json").exists()
    # each generator's boundary continuity is chosen on the validation split and saved in its pipeline's config; the
    # pipeline before the choice is kept (tau 0), the test table records the taus it ran with
    chosen = {}
    for folder in ("trajloom", "trajloom_novideo", "whn"):
        choice = json.loads((out / folder / "continuity" / "continuity.json").read_text())
        assert choice["settings"]["split"] == "validation" and list(choice["scores"]) == ["0", "5", "10", "20", "40", "inf"]
        assert choice["tau"] == min(choice["scores"], key=lambda t: choice["scores"][t]["min_ade"])
        chosen[folder] = float(choice["tau"])
        assert json.loads((out / folder / "pipeline" / "model_index.json").read_text())["boundary_continuity"] == chosen[folder]
        assert json.loads((out / folder / "pipeline_unjoined" / "model_index.json").read_text())["boundary_continuity"] == 0
        # the same forecast scores the head against hold-last; the pipelines keep hold-last (the head lost on test)
        sc = choice["visibility_scores"]
        assert ("head" in sc) == (folder != "whn")  # the WHN-style baseline has no head
        assert choice["saved_visibility_mode"] == "hold_last"
        assert json.loads((out / folder / "pipeline" / "model_index.json").read_text())["visibility_mode"] == "hold_last"
    assert "## Boundary continuity, chosen on the validation split, and the visibility readings there" in md
    assert "visibility reading | accuracy | occlusion F1" in md
    settings = json.loads((out / "results" / "results.json").read_text())["settings"]
    if any(chosen.values()):
        names = {"trajloom": "TrajLoom", "trajloom_novideo": "TrajLoom (no video)", "whn": "WHN-style"}
        assert settings["boundary_continuity"] == {names[f]: t for f, t in chosen.items()}
    else:
        assert "boundary_continuity" not in settings
    # both VAEs anneal their learning rate to zero (a constant LR left the decoder jittering: oracle FVMD above
    # constant velocity's), and the test table has each VAE's reconstruction of the GT future as its ceiling
    import csv

    for folder in ("trajloom", "whn"):
        with open(out / folder / "vae" / "logs" / "train_autoencoder_traj" / "metrics.csv") as f:
            lrs = [float(row["lr"]) for row in csv.DictReader(f) if row["lr"]]
        assert max(lrs) == 2e-3 and lrs[-1] == 0.0 and lrs.index(max(lrs)) < len(lrs) // 2
    rows = json.loads((out / "results" / "results.json").read_text())["results"]
    assert {"VAE reconstruction (oracle, TrajLoom)", "VAE reconstruction (oracle, WHN-style)"} <= set(rows)
    # model cards: HF metadata with the measured values, one per trained artefact
    import yaml

    results = json.loads((out / "results" / "results.json").read_text())["results"]
    for name, folder in (("autoencoder_traj", "trajloom/vae"), ("trajloom_pipeline", "trajloom/pipeline"),
                         ("visibility_predictor", "trajloom/vis/visibility_predictor"), ("whn_style_baseline", "whn/pipeline"),
                         ("trajloom_novideo_pipeline", "trajloom_novideo/pipeline")):
        text = (out / "model_cards" / f"{name}.md").read_text()
        assert text == (out / folder / "README.md").read_text()
        meta = yaml.safe_load(text.split("---")[1])
        assert meta["library_name"] == "trajloom-hf" and meta["license"] == "apache-2.0"
        assert "python examples/quickstart.py --preset smoke" in text and "trajloom convert-official" in text
        if name.endswith("pipeline") or name == "whn_style_baseline":  # the generators say how they read visibility
            assert "Its future visibility: " in text and "visibility_mode=" in text
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
    # every stage records its wall and CPU time and its (fixed) thread count, in its reproduce command too
    stages = json.loads((out / "stages.json").read_text())
    vae = stages["2/7 TrajLoom: AutoencoderTraj"]
    assert vae["threads"] == 1 and stages["3/7 TrajLoom (video): on-policy K-step stage"]["threads"] == 1  # --threads 2
    assert stages["3/7 TrajLoom (no video): on-policy K-step stage"]["threads"] == 1  # next to the choice of tau
    assert vae["command"].startswith("OMP_NUM_THREADS=1 python examples/train_autoencoder_traj.py")
    assert 0 < vae["cpu_seconds"] and 0 < vae["seconds"]
    # a second seed: re-running skips every finished stage of seed 0, trains seed 1, then the spread over both
    again = subprocess.run(cmd + ["--seeds", "0", "1"], capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.count("[skip]") >= 8
    assert "[skip] 7/7 GIFs and results.md" in again.stdout  # seed 0's report is newer than its results
    seed1 = json.loads((tmp_path / "smoke-seed1" / "results" / "results.json").read_text())
    assert seed1["settings"]["seed"] == 1
    assert seed1["results"]["TrajLoom"]["fvmd"] != results["TrajLoom"]["fvmd"]  # another seed, other weights
    assert seed1["results"]["static"] == results["static"]  # the same benchmark for every seed
    assert "--seed 1" in (tmp_path / "smoke-seed1" / "model_cards" / "trajloom_pipeline.md").read_text()
    spread = json.loads((out / "seed_spread.json").read_text())
    assert spread["seeds"] == [0, 1]
    fvmd = spread["spread"]["TrajLoom"]["fvmd"]
    assert fvmd["values"] == [results["TrajLoom"]["fvmd"], seed1["results"]["TrajLoom"]["fvmd"]] and fvmd["std"] > 0
    text = (out / "seed_spread.md").read_text()
    assert "Mean ± std over 2 seeds (0, 1)." in text and "| TrajLoom | " in text and "FVMD, WHN-style:" in text
    # the ablations of Tables 3-5 for both seeds: the main stages are reused, each variant trains once
    abl = subprocess.run(cmd + ["--seeds", "0", "1", "--ablations", "0", "1"], capture_output=True, text=True, env=env,
                         timeout=900)
    assert abl.returncode == 0, abl.stdout[-3000:] + abl.stderr[-3000:]
    rows = json.loads((out / "ablations" / "ablations.json").read_text())["results"]
    ablations = ("w/o offsets", "w/o regulariser", "w/o anchoring", "w/o fusion", "w/o on-policy")
    assert set(ablations) <= set(rows)
    # the ablation table scores every row without the join (the paper's components); with tau 0 chosen for TrajLoom
    # that is the main table's pipeline, re-evaluated: the same numbers
    ab_settings = json.loads((out / "ablations" / "results" / "results.json").read_text())["settings"]
    assert "boundary_continuity" not in ab_settings
    if chosen["trajloom"] == 0:
        assert rows["TrajLoom"] == results["TrajLoom"]
    else:
        assert rows["TrajLoom"]["min_ade"] != results["TrajLoom"]["min_ade"]
    assert set(rows["w/o regulariser"]) == {"vae_vepe"} and rows["w/o regulariser"]["vae_vepe"] > 0
    for name in ("w/o offsets", "w/o anchoring", "w/o fusion", "w/o on-policy"):
        assert rows[name]["fvmd"] != rows["TrajLoom"]["fvmd"], name
    ab = out / "ablations"
    cfg = lambda path: json.loads(path.read_text())  # noqa: E731
    assert cfg(ab / "no_anchor" / "pipeline" / "scheduler" / "scheduler_config.json")["anchor_first"] is False
    assert cfg(out / "trajloom" / "pipeline" / "scheduler" / "scheduler_config.json")["anchor_first"] is True
    assert cfg(ab / "no_fusion" / "pipeline" / "transformer" / "config.json")["use_history_fusion"] is False
    assert cfg(ab / "no_offsets" / "pipeline" / "vae" / "config.json")["use_offsets"] is False
    vae_cfg = cfg(ab / "no_regulariser" / "vae" / "config.json")
    assert vae_cfg["lambda_temporal"] == 0 and vae_cfg["lambda_spatial"] == 0
    assert "| FVMD | w/o anchoring |" in (ab / "ablations.md").read_text()
    spread = json.loads((out / "ablation_spread.json").read_text())
    assert spread["seeds"] == [0, 1] and set(spread["spread"]) == {"TrajLoom", *ablations}
    assert json.loads((out / "seed_spread.json").read_text())["seeds"] == [0, 1]


def _vae_stage(qs, tmp_path, name):
    """A small AutoencoderTraj training stage on procedural clips (the smoke model, 6 steps)."""
    return qs.Stage(name, tmp_path / name / "config.json", "vae", [
        sys.executable, ROOT / "examples" / "train_autoencoder_traj.py", "--output_dir", tmp_path / name,
        "--preset", "tiny", "--height", 64, "--width", 96, "--stride", 16, "--num_frames", 9, "--num_train_clips", 4,
        "--num_val_clips", 2, "--train_batch_size", 2, "--max_train_steps", 6, "--lr_warmup_steps", 2,
        "--learning_rate", 2e-3, "--validation_steps", 6, "--checkpointing_steps", 6, "--report_to", "csv"],
        steps=6, folder=tmp_path / name, log=tmp_path / "stages.json")


def test_training_stage_gives_identical_weights_alone_and_next_to_another(tmp_path, monkeypatch):
    """The thread count of a stage is fixed by the plan, never by timing or the caller's environment: a stage of a
    two-chain phase gets the same weights whether the other chain is training at the same time or already done."""
    qs = load_quickstart()
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # what a stage would inherit if its count were left open
    runner = qs.StageRunner(threads=2, priors={}, poll_s=0.2, progress=False)
    (tmp_path / "finished.marker").touch()
    finished = qs.Stage("finished", tmp_path / "finished.marker", "vae", ["false"])  # skipped: its output exists
    runner.execute([qs.Phase([[_vae_stage(qs, tmp_path, "together")], [_vae_stage(qs, tmp_path, "other")]]),
                    qs.Phase([[_vae_stage(qs, tmp_path, "alone")], [finished]])])
    assert runner.ran == ["together", "other", "alone"] or runner.ran == ["other", "together", "alone"]
    digest = {n: hashlib.sha256((tmp_path / n / "diffusion_pytorch_model.safetensors").read_bytes()).hexdigest()
              for n in ("together", "other", "alone")}
    assert digest["together"] == digest["other"] == digest["alone"]
    stages = json.loads((tmp_path / "stages.json").read_text())
    assert {stages[n]["threads"] for n in ("together", "other", "alone")} == {1}
    assert stages["alone"]["command"].startswith("OMP_NUM_THREADS=1 python ")
    assert all(stages[n]["cpu_seconds"] > 0 for n in digest)


def test_a_resumed_phase_keeps_the_wall_time_of_the_stages_done_earlier(tmp_path):
    """A phase whose stages were partly done by an earlier invocation records the slowest chain's sum of the stage
    times (each from the run that did it), not the seconds of the resuming run (a resume reported 1.5 min for a
    14-min seed)."""
    qs = load_quickstart()
    log = tmp_path / "stages.json"

    def sleeper(name, seconds):
        code = f"import pathlib, time; time.sleep({seconds}); pathlib.Path({str(tmp_path / name)!r}).touch()"
        return qs.Stage(name, tmp_path / name, "vae", [sys.executable, "-c", code], log=log)

    def phase():
        return qs.Phase([[sleeper("slow", 1.0)], [sleeper("fast", 0.1)]], title="both chains (wall time)", log=log)

    qs.StageRunner(threads=2, priors={}, poll_s=0.2, progress=False).execute([phase()])
    first = json.loads(log.read_text())
    assert first["both chains (wall time)"]["seconds"] >= 1.0 and not first["both chains (wall time)"]["resumed"]
    (tmp_path / "fast").unlink()  # the fast chain is redone, the slow one is found done
    runner = qs.StageRunner(threads=2, priors={}, poll_s=0.2, progress=False)
    runner.execute([phase()])
    assert runner.ran == ["fast"]
    again = json.loads(log.read_text())
    assert again["both chains (wall time)"]["resumed"]
    assert again["both chains (wall time)"]["seconds"] == max(again["slow"]["seconds"], again["fast"]["seconds"])
    assert again["slow"] == first["slow"] and again["both chains (wall time)"]["seconds"] >= 1.0


def test_ablation_table_keeps_earlier_variants_and_reruns_when_one_is_added(tmp_path):
    """A second `--ablation-variants` invocation adds its rows to the seed's ablation table: the evaluation scores
    the variants trained now and those trained before, and is redone when a variant's pipeline is newer than it
    (it used to be skipped, its done marker knowing nothing of the variants it scored)."""
    qs = load_quickstart()
    p = qs.PRESETS["smoke"]
    out = qs.run_dir(tmp_path, "smoke", 1)
    ab = out / "ablations"
    for k in ("no_anchor", "no_on_policy"):  # trained by an earlier invocation
        (ab / k / "pipeline").mkdir(parents=True)
        (ab / k / "pipeline" / "model_index.json").write_text("{}")
    (ab / "no_regulariser" / "vae").mkdir(parents=True)
    (ab / "no_regulariser" / "vae" / "config.json").write_text("{}")
    (out / "trajloom" / "pipeline").mkdir(parents=True)
    (out / "trajloom" / "pipeline" / "model_index.json").write_text("{}")
    (ab / "results").mkdir()
    (ab / "results" / "results.json").write_text("{}")  # the earlier table, newer than every pipeline so far
    phases = qs.seed_phases(tmp_path, "smoke", 1, p, tmp_path / "bench", with_bench=False, ablations=["no_fusion"])
    stages = {st.title: st for ph in phases for chain in ph.chains for st in chain}
    ev = stages["ablations: trajloom evaluate (test split)"]
    cmd = [str(c) for c in ev.cmd]
    named = [cmd[i + 1].split("=")[0] for i, c in enumerate(cmd) if c == "--baseline"]
    assert named == ["w/o on-policy", "w/o anchoring", "w/o fusion"]
    assert "ablation w/o anchoring: TrajFlowTransformer" not in " ".join(stages)  # not retrained
    assert "3/7 ablation w/o fusion: TrajFlowTransformer" in stages
    # before the new variant is saved its pipeline is missing: not done; once saved (newer): still not done
    assert not ev.is_done()
    (ab / "no_fusion" / "pipeline").mkdir(parents=True)
    fusion = ab / "no_fusion" / "pipeline" / "model_index.json"
    fusion.write_text("{}")
    os.utime(ab / "results" / "results.json", (1, 1))
    assert not ev.is_done()
    for f in (*ab.glob("*/pipeline/model_index.json"), out / "trajloom" / "pipeline" / "model_index.json"):
        os.utime(f, (0, 0))  # every pipeline older than the table: done
    assert ev.is_done()
    md = stages["ablations: VAE VEPE (test split) and ablations.md"]
    assert ab / "no_regulariser" / "vae" / "config.json" in md.inputs  # its VEPE row is kept too


def test_parse_args_derives_the_run_seeds_once(capsys):
    qs = load_quickstart()
    assert qs.parse_args(["--seed", "3"]).run_seeds == [3]
    assert qs.parse_args(["--seeds", "0", "2", "--ablations", "2"]).run_seeds == [0, 2]
    import pytest

    with pytest.raises(SystemExit):
        qs.parse_args(["--seed", "1", "--ablations", "0"])
    assert "--ablations seeds must be seeds of this run ([1]), got [0]" in capsys.readouterr().err
