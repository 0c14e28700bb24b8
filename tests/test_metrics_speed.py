"""The vectorised metrics against the official per-video / per-window / per-frame loops
(benchmarks/official_metrics.py, written from trajloom-official-code.md §5 and fvmd-official.md §5, §7) on the same
small inputs, and the span (Gram / Cholesky) form of the Fréchet square-root trace against scipy's sqrtm."""

import numpy as np
import pytest
from scipy.linalg import sqrtm

from tests.script_loading import load_script
from trajloom_hf.metrics import div_curl_energy, flow_tv, frechet_distance, fvmd, vepe
from trajloom_hf.metrics.fvmd import _reduced_gram, _scaled_centred, _trace_sqrt_from_gram

official = load_script("benchmarks/official_metrics.py")

GRID = (7, 11)  # rectangular, trimmed to 5 x 10 by FVMD


def tracks(rng, v=3, t=34, stride=16.0, step=1.5):
    """Grid-anchored random walks [V, T, N, 2] float32 px with exact integer steps in some frames (bin edges)."""
    ys, xs = np.meshgrid(np.arange(GRID[0]) * stride, np.arange(GRID[1]) * stride, indexing="ij")
    q = np.stack([xs.ravel(), ys.ravel()], -1)
    steps = rng.normal(0, step, (v, t, q.shape[0], 2))
    steps[:, 3::7] = np.round(steps[:, 3::7])
    return (q + 20 + steps.cumsum(1)).astype(np.float32)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    gt = tracks(rng)
    pred = (gt + rng.normal(0, 2.0, gt.shape)).astype(np.float32)
    vis = rng.random(gt.shape[:-1]) > 0.1
    vis[1, 5:9] = False  # whole frames hidden: skipped frames and zeroed window starts
    return pred, gt, vis


@pytest.mark.parametrize("clip_len, clip_stride", [(16, 15), (16, 1), (8, 3), (0, 1)])
def test_fvmd_equals_the_official_per_window_loop(data, clip_len, clip_stride):
    pred, gt, vis = data
    ours = fvmd(pred, gt, prediction_visibility=vis, reference_visibility=vis, grid_shape=GRID,
                clip_len=clip_len, clip_stride=clip_stride)
    ref = official.official_fvmd(pred, gt, vis, GRID, clip_len, clip_stride)
    # features are bit-identical; the Fréchet forms differ by float64 rounding of values ~1e2-1e3
    np.testing.assert_allclose([ours.velocity, ours.acceleration, ours.combined], ref, rtol=1e-9)


def test_flow_field_metrics_equal_the_official_per_frame_loops(data):
    pred, _, vis = data
    nan = pred.copy()
    nan[0, 4, 6] = np.nan  # a NaN point is invalid with or without a visibility
    for tr, v in [(pred, vis), (pred, None), (nan, None), (nan, vis)]:
        got = flow_tv(tr, v, grid_shape=GRID, grid_stride=16).value
        # float32 differences of float32 coordinates vs the official float64: relative rounding ~1e-7
        assert got == pytest.approx(official.official_flow_tv(tr, v, GRID, 16.0), rel=1e-6)
        got = div_curl_energy(tr, v, grid_shape=GRID, grid_stride=16).value
        assert got == pytest.approx(official.official_div_curl(tr, v, GRID, 16.0), rel=1e-6)
    # float64 tracks are computed in float64: equal to rounding
    p64 = pred.astype(np.float64) + 1e-3
    assert flow_tv(p64, vis, grid_shape=GRID, grid_stride=16).value == pytest.approx(
        official.official_flow_tv(p64, vis, GRID, 16.0), rel=1e-12)


def test_vepe_equals_the_official_loop_across_chunks(data, monkeypatch):
    import trajloom_hf.metrics.endpoint as endpoint

    pred, gt, vis = data
    monkeypatch.setattr(endpoint, "VEPE_CHUNK", 1000)  # several chunks, the last one partial
    assert vepe(pred, gt, vis) == pytest.approx(official.official_vepe(pred, gt, vis), rel=1e-6)
    bad = pred.copy()
    bad[0, 0, :3, 0] = [np.nan, np.inf, -np.inf]  # non-finite predictions are not counted, visible or not
    bad[2, 7, 5] = np.nan
    assert vepe(bad, gt, vis) == pytest.approx(official.official_vepe(bad, gt, vis), rel=1e-6)
    p64, g64 = pred.astype(np.float64) + 1e-4, gt.astype(np.float64)
    assert vepe(p64, g64, vis) == pytest.approx(official.official_vepe(p64, g64, vis), rel=1e-12)


def test_vepe_hand_case_in_one_chunk_and_many(monkeypatch):
    import trajloom_hf.metrics.endpoint as endpoint

    ref = np.zeros((1, 3, 1, 2), np.float32)
    pred = np.array([[[[3, 4]], [[6, 8]], [[0, 1]]]], np.float32)  # errors 5, 10, 1
    vis = np.array([[[True], [False], [True]]])
    for chunk in (1, 2, 1 << 15):
        monkeypatch.setattr(endpoint, "VEPE_CHUNK", chunk)
        assert vepe(pred, ref, vis) == 3.0 and vepe(pred, ref) == pytest.approx(16 / 3)


def dense_trace_sqrt(f1, f2, eps):
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    d = s1.shape[0]
    return float(np.trace(sqrtm((s1 + eps * np.eye(d)) @ (s2 + eps * np.eye(d)))).real)


@pytest.mark.parametrize("n1, n2, d, rank", [(6, 5, 30, None), (20, 9, 64, None), (12, 12, 40, 3)])
def test_span_form_of_the_square_root_trace_equals_sqrtm(n1, n2, d, rank):
    rng = np.random.default_rng(n1 + d)
    if rank is None:  # full rank within the span
        f1, f2 = rng.normal(size=(n1, d)) ** 2 * 5, rng.normal(size=(n2, d)) * 3 + 1
    else:  # low-rank data: both sets in one 3-dim subspace (the Gram matrix is singular: the QR fallback)
        basis = rng.normal(size=(rank, d))
        f1, f2 = rng.normal(size=(n1, rank)) @ basis, rng.normal(size=(n2, rank)) @ basis + 2
    x1, x2 = _scaled_centred(f1), _scaled_centred(f2)
    got = _trace_sqrt_from_gram(_reduced_gram(x1, x2), n1, d, 1e-5)
    if rank is None or got is not None:  # singular Gram: usually None (not positive definite), then the QR form
        assert got == pytest.approx(dense_trace_sqrt(f1, f2, 1e-5), rel=1e-9)
    assert frechet_distance(f1, f2) == pytest.approx(
        ((f1.mean(0) - f2.mean(0)) ** 2).sum() + np.trace(np.cov(f1, rowvar=False)) + np.trace(np.cov(f2, rowvar=False))
        - 2 * dense_trace_sqrt(f1, f2, 1e-5), rel=1e-7)


def test_span_form_with_repeated_clips_and_identical_sets():
    rng = np.random.default_rng(3)
    f = rng.normal(size=(8, 50))
    f1 = np.concatenate([f, f[:3]])  # repeated clips
    assert frechet_distance(f1, f1) == pytest.approx(-2 * 50 * 1e-5, abs=1e-9)
    f2 = rng.normal(size=(7, 50)) + 0.5
    ref = (((f1.mean(0) - f2.mean(0)) ** 2).sum() + np.trace(np.cov(f1, rowvar=False))
           + np.trace(np.cov(f2, rowvar=False)) - 2 * dense_trace_sqrt(f1, f2, 1e-5))
    assert frechet_distance(f1, f2) == pytest.approx(ref, rel=1e-8)


def test_qr_fallback_equals_the_span_form(monkeypatch):
    import sys

    fvmd_module = sys.modules["trajloom_hf.metrics.fvmd"]  # the package attribute `fvmd` is the function
    rng = np.random.default_rng(5)
    f1, f2 = rng.normal(size=(9, 40)) ** 2, rng.normal(size=(6, 40)) + 1
    span = frechet_distance(f1, f2)
    monkeypatch.setattr(fvmd_module, "_trace_sqrt_from_gram", lambda *a: None)
    assert frechet_distance(f1, f2) == pytest.approx(span, rel=1e-10)


def test_single_column_grid_uses_y_pairs_only_and_has_no_cells():
    k = 0.1
    y = np.arange(5) * 4.0
    p0 = np.stack([np.zeros(5), y], -1)
    tracks = np.stack([p0 + t * k * p0 for t in range(3)])[None].astype(np.float32)  # v = k y: |d_y v| = k
    assert flow_tv(tracks, grid_shape=(5, 1), grid_stride=4.0).value == pytest.approx(k, rel=1e-6)
    assert np.isnan(div_curl_energy(tracks, grid_shape=(5, 1), grid_stride=4.0).value)
    vis = np.ones(tracks.shape[:-1], bool)
    vis[0, 1, 2] = False  # point 2 hidden at frame 1: both flows lose its two y pairs, 2 of 4 remain
    assert flow_tv(tracks, vis, grid_shape=(5, 1), grid_stride=4.0).value == pytest.approx(k, rel=1e-6)
