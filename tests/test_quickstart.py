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
    # re-running skips every finished stage
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 0 and again.stdout.count("[skip]") >= 8
