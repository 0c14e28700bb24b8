"""Every metric loads through `evaluate.load` (offline, from the local folder) and equals the core function."""

import numpy as np
import pytest

from trajloom_hf import metrics as core
from trajloom_hf.metrics.evaluate_modules import METRIC_NAMES, metric_path, metrics_dir


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(3, 12, 30, 2)).cumsum(1).astype(np.float32) + 50
    pred = gt + rng.normal(size=gt.shape).astype(np.float32)
    vis = rng.random(gt.shape[:-1]) > 0.1
    return pred, gt, vis


def load(name):
    import evaluate

    return evaluate.load(metric_path(name))


def test_every_module_has_a_card():
    for name in METRIC_NAMES:
        card = (metrics_dir() / name / "README.md").read_text()
        assert "## Inputs" in card and "## Limitations" in card and "## Citation" in card


def test_fvmd_and_long(data):
    pred, gt, vis = data
    out = load("fvmd").compute(predictions=pred, references=gt, grid_shape=(5, 6), reference_visibility=vis,
                               prediction_visibility=vis)
    ref = core.fvmd(pred, gt, grid_shape=(5, 6), reference_visibility=vis, prediction_visibility=vis)
    assert out["fvmd"] == pytest.approx(ref.combined) and out["num_clips"] == ref.num_clips
    long = load("fvmd_long").compute(predictions=pred, references=gt, grid_shape=(5, 6))
    assert long["fvmd_long"] == pytest.approx(core.fvmd_long(pred, gt, grid_shape=(5, 6)).combined)


def test_flow_field_modules(data):
    pred, _, vis = data
    tv = load("flow_tv").compute(predictions=pred, visibility=vis, grid_shape=(5, 6), grid_stride=16)
    assert tv["flow_tv"] == pytest.approx(core.flow_tv(pred, vis, grid_shape=(5, 6), grid_stride=16).value)
    dc = load("div_curl_energy").compute(predictions=pred, grid_shape=(5, 6), grid_stride=16)
    assert dc["div_curl_energy"] == pytest.approx(core.div_curl_energy(pred, grid_shape=(5, 6), grid_stride=16).value)
    assert len(dc["div_curl_energy_per_video"]) == 3


def test_vepe_and_min_ade(data):
    pred, gt, vis = data
    assert load("vepe").compute(predictions=pred, references=gt, visibility=vis)["vepe_px"] == pytest.approx(
        core.vepe(pred, gt, vis))
    samples = np.stack([pred, gt + 3.0], 1)
    out = load("min_ade").compute(predictions=samples, references=gt, visibility=vis)
    d = core.displacement_errors(samples, gt, vis)
    assert out["min_ade"] == pytest.approx(d.min_ade) and out["ade"] == pytest.approx(d.ade)


def test_bare_name_resolves_inside_metrics_folder(monkeypatch, data):
    import evaluate

    pred, gt, vis = data
    monkeypatch.chdir(metrics_dir())
    assert evaluate.load("vepe").compute(predictions=pred, references=gt)["vepe_px"] == pytest.approx(core.vepe(pred, gt))


def test_errors():
    with pytest.raises(ValueError, match="`name`"):
        metric_path("fid")
    with pytest.raises(ValueError, match="grid_shape"):
        load("flow_tv").compute(predictions=np.zeros((2, 3, 4, 2), np.float32))
