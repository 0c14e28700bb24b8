"""benchmarks/bench_vae_oracle.py: a trained VAE fine-tuned under given loss weights, scored by its reconstruction
of the GT future windows (the oracle) before and after."""

import json
from pathlib import Path

import numpy as np
import pytest

from trajloom_hf.data.trajloombench import BenchSettings, build_trajloombench
from tests.script_loading import load_script

ROOT = Path(__file__).resolve().parents[1]


def _bench_module():
    return load_script("benchmarks/bench_vae_oracle.py")


def test_vae_oracle_before_and_after_fine_tuning(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    from tests.test_pipeline_trajloom import tiny_pipeline
    from trajloom_hf.evaluation import load_bench_split, score, vae_reconstruct

    bench = tmp_path / "bench"
    build_trajloombench("synthetic", str(bench), "synthetic", progress=False, counts={"train": 4, "test": 3},
                        settings=BenchSettings(height=80, width=96, history_frames=9, future_frames=9, stride=16, fps=8))
    vae = tiny_pipeline(height=80).vae
    vae.save_pretrained(tmp_path / "vae")
    mod = _bench_module()
    common = ["--vae", str(tmp_path / "vae"), "--bench", str(bench), "--config", "synthetic", "--splits", "test",
              "--steps", "3", "--batch-size", "2", "--learning-rate", "1e-3"]
    assert mod.main(common + ["--lambda-temporal", "0.1", "1.0", "--out", str(tmp_path / "a.json")]) == 0
    res = json.loads((tmp_path / "a.json").read_text())
    data = load_bench_split(str(bench), "synthetic", "test")
    gt, vis = data.tracks[:, 9:18], data.visibility[:, 9:18]
    by_hand = score(vae_reconstruct(vae, gt)[:, None], gt, vis, data.grid_shape, 16.0)
    assert res["base"]["test"]["fvmd"] == pytest.approx(by_hand["fvmd"], rel=1e-5)
    assert list(res["variants"]) == ["+3 steps, lr 0.001, lambda_temporal 0.1", "+3 steps, lr 0.001, lambda_temporal 1"]
    a, b = (res["variants"][k]["test"] for k in res["variants"])
    assert a["vepe"] != res["base"]["test"]["vepe"] and a["vepe"] != b["vepe"]  # training moved it, the weight matters
    assert np.isfinite(a["mean_accel"]) and a["gt_mean_accel"] == res["base"]["test"]["gt_mean_accel"]
    # same variant, same batches and noise: the same numbers
    assert mod.main(common + ["--lambda-temporal", "0.1", "--out", str(tmp_path / "b.json")]) == 0
    again = json.loads((tmp_path / "b.json").read_text())["variants"]["+3 steps, lr 0.001, lambda_temporal 0.1"]["test"]
    assert again["fvmd"] == pytest.approx(a["fvmd"], rel=1e-6)
    assert "oracle FVMD" in capsys.readouterr().out


@pytest.mark.parametrize("bad, match", [(["--steps", "-1"], "--steps"), (["--learning-rate", "0"], "--learning-rate"),
                                        (["--lambda-temporal", "-1"], "--lambda-temporal")])
def test_argument_errors(tmp_path, bad, match, capsys):
    mod = _bench_module()
    with pytest.raises(SystemExit):
        mod.main(["--vae", str(tmp_path), "--bench", str(tmp_path), "--config", "x"] + bad)
    assert match in capsys.readouterr().err
