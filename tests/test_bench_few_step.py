"""benchmarks/bench_few_step.py: pipelines scored at several Euler step counts on the same clips."""

import json
from pathlib import Path

import pytest

from trajloom_hf.data.trajloombench import BenchSettings, build_trajloombench
from tests.script_loading import load_script

ROOT = Path(__file__).resolve().parents[1]


def _bench_module():
    return load_script("benchmarks/bench_few_step.py")


def test_few_step_sweep_scores_every_step_count(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    from tests.test_pipeline_trajloom import tiny_pipeline

    bench = tmp_path / "bench"
    build_trajloombench("synthetic", str(bench), "synthetic", progress=False, counts={"test": 3},
                        settings=BenchSettings(height=80, width=96, history_frames=9, future_frames=9, stride=16, fps=8))
    tiny_pipeline(height=80).save_pretrained(tmp_path / "a")
    tiny_pipeline(seed=1, height=80).save_pretrained(tmp_path / "b")
    mod = _bench_module()
    out = tmp_path / "few.json"
    assert mod.main(["--bench", str(bench), "--config", "synthetic", "--num-samples", "2", "--dtype", "float32",
                     "--run", f"on-policy={tmp_path / 'a'}@1,3", "--run", f"base={tmp_path / 'b'}@3", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["method"], r["steps"]) for r in rows] == [("on-policy", 1), ("on-policy", 3), ("base", 3)]
    assert rows[0]["fvmd"] != rows[1]["fvmd"]  # the step count changes the samples
    assert all(r["num_samples"] == 2 and r["forecast_s"] > 0 for r in rows)
    table = capsys.readouterr().out
    assert "| on-policy | 1 |" in table and "| base | 3 |" in table


@pytest.mark.parametrize("bad", ["a=dir", "=dir@2", "a=dir@x", "a=dir@0,2"])
def test_run_argument_errors(bad):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="--run"):
        _bench_module().parse_run(bad)
    assert _bench_module().parse_run("on=x/y@2,4,10") == ("on", "x/y", [2, 4, 10])


def test_error_by_frame_script_prints_every_method(tmp_path, monkeypatch, capsys):
    """benchmarks/bench_error_by_frame.py: the per-frame error of pipelines and the baselines, printed and saved; a
    missing pipeline folder is refused before any work."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    from tests.test_pipeline_trajloom import tiny_pipeline

    bench = tmp_path / "bench"
    build_trajloombench("synthetic", str(bench), "synthetic", progress=False, counts={"test": 2},
                        settings=BenchSettings(height=80, width=96, history_frames=9, future_frames=9, stride=16, fps=8))
    tiny_pipeline(height=80).save_pretrained(tmp_path / "a")
    mod = load_script("benchmarks/bench_error_by_frame.py")
    out = tmp_path / "frames.json"
    assert mod.main(["--bench", str(bench), "--config", "synthetic", "--num-samples", "2", "--steps", "2", "--dtype",
                     "float32", "--run", f"tiny={tmp_path / 'a'}", "--frames", "0", "8", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "| t = 0 | t = 8 |" in table and "| tiny |" in table and "| constant velocity |" in table
    rows = json.loads(out.read_text())["rows"]
    assert set(rows) == {"tiny", "constant velocity", "static"} and len(rows["tiny"]["best_of_k"]) == 9
    with pytest.raises(SystemExit):
        mod.main(["--bench", str(bench), "--config", "synthetic", "--run", f"x={tmp_path / 'missing'}"])
