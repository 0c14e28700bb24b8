"""Every metric loads through `evaluate.load` (offline, from the local folder) and equals the core function."""

import numpy as np
import pytest

from trajloom_hf import metrics as core
from trajloom_hf.metrics import evaluate_modules
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


def test_metric_path_is_absolute_and_every_module_has_a_card():
    for name in METRIC_NAMES:
        path = metric_path(name)
        assert path.startswith("/") and path.endswith(f"metrics/{name}")
        card = (metrics_dir() / name / "README.md").read_text()
        for section in ("## What it measures", "## Inputs", "## Outputs", "## Limitations", "## Citation",
                        "upload_folder", "2603.22606"):
            assert section in card, (name, section)
        assert card.startswith("---\n") and '."\n' in card.split("---")[1]  # front-matter description not cut short
    assert "x 10²" in (metrics_dir() / "flow_tv" / "README.md").read_text()
    assert "x 10³" in (metrics_dir() / "div_curl_energy" / "README.md").read_text()
    assert "x 10⁻³" in (metrics_dir() / "fvmd_long" / "README.md").read_text()


def test_metric_path_errors(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="`name`"):
        metric_path("fid")
    monkeypatch.setattr(evaluate_modules, "metrics_dir", lambda: tmp_path / "metrics")
    with pytest.raises(FileNotFoundError, match="source"):
        metric_path("fvmd")


def test_fvmd_and_long(data):
    pred, gt, vis = data
    metric = load("fvmd")
    out = metric.compute(predictions=pred, references=gt, grid_shape=(5, 6), reference_visibility=vis,
                         prediction_visibility=vis)
    ref = core.fvmd(pred, gt, grid_shape=(5, 6), reference_visibility=vis, prediction_visibility=vis)
    assert out["fvmd"] == pytest.approx(ref.combined, rel=1e-9) and out["num_clips"] == ref.num_clips
    assert out["fvmd_velocity"] == pytest.approx(ref.velocity, rel=1e-9)
    assert out["fvmd_acceleration"] == pytest.approx(ref.acceleration, rel=1e-9)
    assert "predictions" in metric.features and "references" in metric.features
    # official mode on a square 5 x 5 grid with 16-frame clips
    sq_gt = np.concatenate([gt, gt + 1], 1)[:, :, :25]
    sq_pred = np.concatenate([pred, pred * 1.1], 1)[:, :, :25]
    out = metric.compute(predictions=sq_pred, references=sq_gt, mode="official")
    assert out["fvmd"] == pytest.approx(core.fvmd(sq_pred, sq_gt, mode="official").combined, rel=1e-9)
    assert out["feature_dim"] == 4 * 1 * 1 * 8
    long = load("fvmd_long").compute(predictions=pred, references=gt, grid_shape=(5, 6))
    assert long["fvmd_long"] == pytest.approx(core.fvmd_long(pred, gt, grid_shape=(5, 6)).combined, rel=1e-9)
    assert long["num_clips"] == 3


def test_flow_field_modules(data):
    pred, _, vis = data
    tv = load("flow_tv").compute(predictions=pred, visibility=vis, grid_shape=(5, 6), grid_stride=16)
    assert tv["flow_tv"] == pytest.approx(core.flow_tv(pred, vis, grid_shape=(5, 6), grid_stride=16).value, rel=1e-9)
    dc = load("div_curl_energy").compute(predictions=pred, grid_shape=(5, 6), grid_stride=16)
    assert dc["div_curl_energy"] == pytest.approx(
        core.div_curl_energy(pred, grid_shape=(5, 6), grid_stride=16).value, rel=1e-9)
    assert len(dc["div_curl_energy_per_video"]) == 3


def test_vepe_and_min_ade(data):
    pred, gt, vis = data
    assert load("vepe").compute(predictions=pred, references=gt, visibility=vis)["vepe_px"] == pytest.approx(
        core.vepe(pred, gt, vis), rel=1e-9)
    samples = np.stack([pred, gt + 3.0], 1)
    out = load("min_ade").compute(predictions=samples, references=gt, visibility=vis)
    d = core.displacement_errors(samples, gt, vis)
    assert out["min_ade"] == pytest.approx(d.min_ade) and out["ade"] == pytest.approx(d.ade)
    assert out["min_fde"] == pytest.approx(d.min_fde) and out["num_samples"] == 2


def test_bare_name_resolves_inside_metrics_folder(monkeypatch, data):
    """`evaluate.load("<name>")` finds ./<name>/<name>.py in the working directory before the Hub (offline too)."""
    import evaluate

    pred, gt, _ = data
    monkeypatch.chdir(metrics_dir())
    assert evaluate.load("vepe").compute(predictions=pred, references=gt)["vepe_px"] == pytest.approx(core.vepe(pred, gt))
    monkeypatch.chdir(metrics_dir().parent)
    out = evaluate.load("metrics/flow_tv").compute(predictions=pred, grid_shape=(5, 6), grid_stride=16)
    assert out["flow_tv"] == pytest.approx(core.flow_tv(pred, grid_shape=(5, 6), grid_stride=16).value)


def test_errors_reach_the_caller(data):
    pred, gt, _ = data
    with pytest.raises(ValueError, match="grid_shape"):
        load("flow_tv").compute(predictions=np.zeros((2, 3, 4, 2), np.float32))
    with pytest.raises(ValueError, match="square grid"):
        load("fvmd").compute(predictions=pred, references=gt, mode="official")


def test_direct_compute_skips_the_arrow_round_trip_and_batches_still_accumulate(data, monkeypatch):
    pred, gt, vis = data
    metric = load("vepe")
    calls = []
    monkeypatch.setattr(type(metric), "add_batch", lambda self, **kw: calls.append(kw) or None, raising=False)
    direct = metric.compute(predictions=pred, references=gt, visibility=vis)["vepe_px"]
    assert not calls  # arrays reach the library function as they are: no Features encoding, no cache file
    monkeypatch.undo()
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    batched = load("vepe")
    batched.add_batch(predictions=pred[:2], references=gt[:2])
    batched.add_batch(predictions=pred[2:], references=gt[2:])
    assert batched.compute(visibility=vis)["vepe_px"] == pytest.approx(direct, rel=1e-6) == pytest.approx(
        core.vepe(pred, gt, vis), rel=1e-9)
    with pytest.raises(ValueError, match="inputs are missing.*references"):
        load("vepe").compute(predictions=pred)
    lists = load("flow_tv").compute(predictions=pred.tolist(), grid_shape=(5, 6), grid_stride=8)["flow_tv"]
    assert lists == pytest.approx(core.flow_tv(pred, grid_shape=(5, 6), grid_stride=8).value, rel=1e-9)


def test_metric_info_builds_the_track_features_and_names_a_bad_kind():
    import datasets
    import pytest

    from trajloom_hf.metrics.evaluate_modules import metric_info

    info = metric_info("d", "c", "k", predictions="samples", references="tracks", reference_urls=["u"])
    depth = {}
    for name, feature in info.features.items():
        n = 0
        while isinstance(feature, datasets.Sequence):
            feature, n = feature.feature, n + 1
        depth[name] = (n, feature.dtype)
    assert depth == {"predictions": (4, "float32"), "references": (3, "float32")} and info.reference_urls == ["u"]
    with pytest.raises(ValueError, match=r"input 'references' must be one of \['samples', 'tracks'\], got 'videos'"):
        metric_info("d", "c", "k", references="videos")
