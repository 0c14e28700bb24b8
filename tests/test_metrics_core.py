"""Known-answer tests of the metric core (trajloom_hf.metrics) against independent, loop-based references written
from the specs (fvmd-official.md §4, §5, §7, §8, §10; trajloom-official-code.md §5; paper eqs. 15-17)."""

import numpy as np
import pytest

from trajloom_hf.metrics import (
    displacement_errors,
    div_curl_energy,
    flow_tv,
    frechet_distance,
    fvmd,
    fvmd_long,
    motion_features,
    motion_histograms,
    vepe,
)
from trajloom_hf.metrics.fvmd import _fields

# ----------------------------------------------------------------------------------------------------------------
# independent FVMD reference (per clip, per cube; float32 ops in the package's order)


def ref_fields(clip, mode, vis=None):
    y = clip.astype(np.float32)
    vel = np.zeros_like(y)
    vel[1:] = y[1:] - y[:-1]
    acc = np.zeros_like(y)
    acc[2:] = (y[2:] - y[1:-1]) if mode == "official" else (vel[2:] - vel[1:-1])
    if vis is not None:
        for t in range(len(y)):
            if t == 0 or not (vis[t] & vis[t - 1]).all():
                vel[t][~(vis[t] & (vis[t - 1] if t else False))] = 0
            if t < 2:
                acc[t] = 0
            else:
                acc[t][~(vis[t] & vis[t - 1] & vis[t - 2])] = 0
    return vel, acc


def ref_hist(field, gh, gw, mode):
    s = field.shape[0]
    ms, mh, mw = s // 4, gh // 5, gw // 5
    grid = field.reshape(s, gh, gw, 2)
    out = np.zeros((ms, mh, mw, 8), np.float64)
    for a in range(ms):
        for b in range(mh):
            for c in range(mw):
                cube = grid[4 * a : 4 * a + 4, 5 * b : 5 * b + 5, 5 * c : 5 * c + 5].reshape(-1, 2)
                theta = np.arctan2(cube[:, 0], cube[:, 1])
                if mode == "official":
                    bins = (theta + np.pi) // (2 * np.pi / 8)  # python floats stay float32 under NEP 50
                else:
                    bins = np.floor((theta + np.pi) / (2 * np.pi / 8))
                bins = np.clip(bins, 0, 7).astype(int)
                m = np.clip(np.linalg.norm(cube, axis=-1), 0, 255)
                w = np.ceil(np.clip(np.log2(m + 1), 0, 8)) / 8
                assert w.dtype == np.float32
                for k, wk in zip(bins, w):
                    out[a, b, c, k] += wk
    return out.reshape(-1)


def ref_features(videos, gh, gw, mode, clip_len, stride, vis=None):
    vel_f, acc_f = [], []
    for i, video in enumerate(videos):
        t = video.shape[0]
        length = t if clip_len <= 0 or clip_len >= t else clip_len
        for s in range(0, t - length + 1, stride):
            vel, acc = ref_fields(video[s : s + length], mode, None if vis is None else vis[i, s : s + length])
            vel_f.append(ref_hist(vel, gh, gw, mode))
            acc_f.append(ref_hist(acc, gh, gw, mode))
    return np.stack(vel_f), np.stack(acc_f)


def ref_fd(f1, f2, eps=1e-5):
    """Dense Fréchet distance as in the package (fvmd §7), with scipy's sqrtm."""
    from scipy.linalg import sqrtm

    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    d = s1.shape[0]
    covmean = sqrtm((s1 + eps * np.eye(d)) @ (s2 + eps * np.eye(d)))
    return float(((f1.mean(0) - f2.mean(0)) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def walks(rng, v, t, n, scale=1.0):
    """Random walks with a mix of static, sub-pixel, integer and large steps (bin edges and every weight level)."""
    steps = rng.normal(size=(v, t, n, 2)) * rng.choice([0.0, 0.4, 3.0, 60.0], size=(v, t, 1, 1)) * scale
    steps[:, 1::5] = np.round(steps[:, 1::5])  # exact integers: axis-aligned and diagonal bin edges
    return (100 + steps.cumsum(1)).astype(np.float32)


# ----------------------------------------------------------------------------------------------------------------
# FVMD


def test_official_features_and_fvmd_match_the_reference_recipe_bit_exactly():
    rng = np.random.default_rng(0)
    x, y = walks(rng, 2, 19, 100), walks(rng, 3, 18, 100, scale=2.0)
    xv, xa = motion_features(x, grid_shape=(10, 10), mode="official")
    rv, ra = ref_features(x, 10, 10, "official", 16, 1)
    assert xv.shape == (2 * 4, 4 * 2 * 2 * 8)
    np.testing.assert_array_equal(xv, rv)
    np.testing.assert_array_equal(xa, ra)
    r = fvmd(x, y, mode="official")
    yv, ya = ref_features(y, 10, 10, "official", 16, 1)
    assert r.velocity == pytest.approx(ref_fd(rv, yv), rel=1e-7)
    assert r.acceleration == pytest.approx(ref_fd(ra, ya), rel=1e-7)
    assert r.combined == pytest.approx(ref_fd(np.hstack([rv, ra]), np.hstack([yv, ya])), rel=1e-7)
    assert (r.num_clips, r.feature_dim) == (8, 128)


def test_fvmd_with_more_clips_than_dimensions_matches_the_dense_reference():
    rng = np.random.default_rng(6)
    x, y = walks(rng, 2, 40, 25), walks(rng, 2, 38, 25, scale=1.5)  # 50 + 46 clips >= 2 x 32 dims: dense path
    vis = rng.random(x.shape[:-1]) > 0.1
    r = fvmd(x, y, prediction_visibility=vis, grid_shape=(5, 5))
    xv, xa = ref_features(x, 5, 5, "trajectory", 16, 1, vis)
    yv, ya = ref_features(y, 5, 5, "trajectory", 16, 1)
    assert r.velocity == pytest.approx(ref_fd(xv, yv), rel=1e-7)
    assert r.acceleration == pytest.approx(ref_fd(xa, ya), rel=1e-7)
    assert r.combined == pytest.approx(ref_fd(np.hstack([xv, xa]), np.hstack([yv, ya])), rel=1e-7)
    assert (r.num_clips, r.feature_dim) == (50, 32)


def test_trajectory_features_match_the_reference_with_visibility_windows_and_trimming():
    rng = np.random.default_rng(1)
    x = walks(rng, 2, 23, 7 * 12)  # 7 x 12 grid -> one 5 x 10 band of cells (2 rows, 2 columns trimmed)
    vis = rng.random(x.shape[:-1]) > 0.15
    for clip_len, stride in [(16, 1), (10, 3), (0, 1)]:
        fv, fa = motion_features(x, vis, grid_shape=(7, 12), clip_len=clip_len, clip_stride=stride, chunk_points=500)
        rv, ra = ref_features(x, 7, 12, "trajectory", clip_len, stride, vis)
        np.testing.assert_array_equal(fv, rv)
        np.testing.assert_array_equal(fa, ra)
    assert fv.shape == (2, (23 // 4) * 1 * 2 * 8)  # clip_len 0: one whole-video clip, 5 cubes in time


@pytest.mark.parametrize(
    "mode, table",
    [
        ("official", {(1, 0): 5, (-1, 1): 2, (0, 1): 4, (0, -1): 7, (-1, 0): 2, (1, 1): 5, (1, -1): 7, (-1, -1): 1}),
        # TrajLoom's float32 floor(a / b) (fvmd §5 table, last column)
        ("trajectory", {(1, 0): 6, (-1, 1): 3, (0, 1): 4, (0, -1): 7, (-1, 0): 2, (1, 1): 5, (1, -1): 7, (-1, -1): 1}),
    ],
)
def test_bin_edge_table(mode, table):
    for (dx, dy), expected in table.items():
        v = np.zeros((1, 4, 25, 2), np.float32)
        v[0, 0, 0] = (dx, dy)  # one vector; |v| in {1, sqrt 2} -> weight 1/8 or 2/8
        h = motion_histograms(v, (5, 5), mode)[0]
        assert np.flatnonzero(h).tolist() == [expected], (dx, dy)
    v = np.zeros((1, 4, 25, 2), np.float32)
    v[0, 0, 0] = (-0.0, -1.0)  # theta = -pi: bin 0 with a negative-zero dx (fvmd §5 table)
    assert np.flatnonzero(motion_histograms(v, (5, 5), "official")[0]).tolist() == [0]


def test_magnitude_weights_follow_the_log2_thresholds():
    mags = [0.0, 0.5, 1.0, 1.001, 3.0, 3.01, 127.0, 128.0, 1e4]
    weights = [0, 1, 1, 2, 2, 3, 7, 8, 8]
    for m, k in zip(mags, weights):
        v = np.zeros((1, 4, 25, 2), np.float32)
        v[0, 0, 0] = (0.0, m)  # +y: bin 4
        assert motion_histograms(v, (5, 5), "official")[0, 4] == k / 8, m


def test_hand_computed_histogram_and_feature_index():
    v = np.zeros((2, 9, 5 * 11, 2), np.float32)  # 9 frames -> MS = 2 (frame 8 dropped); 5 x 11 -> MH 1, MW 2
    v[1, 5, 2 * 11 + 7] = (0.0, 2.0)  # cube (ms 1, mh 0, mw 1), bin 4, weight ceil(log2 3) / 8 = 2/8
    v[1, 6, 3 * 11 + 9] = (-5.0, 0.0)  # same cube, bin 2 (atan2(-5, 0) = -pi/2), weight ceil(log2 6) / 8 = 3/8
    v[1, 8, 0] = (9.0, 9.0)  # trailing frame: dropped
    v[1, 0, 10] = (9.0, 9.0)  # column 10: trimmed
    h = motion_histograms(v, (5, 11), "trajectory")
    assert h.shape == (2, 2 * 1 * 2 * 8) and not h[0].any()
    expected = np.zeros(32)
    expected[((1 * 1 + 0) * 2 + 1) * 8 + 4] = 2 / 8
    expected[((1 * 1 + 0) * 2 + 1) * 8 + 2] = 3 / 8
    np.testing.assert_array_equal(h[1], expected)


def test_official_acceleration_is_velocity_with_frame_one_zeroed():
    rng = np.random.default_rng(2)
    y = walks(rng, 3, 16, 25)
    vel, acc = _fields(y, None, "official")
    expected = vel.copy()
    expected[:, 1] = 0
    np.testing.assert_array_equal(acc, expected)
    _, acc_t = _fields(y, None, "trajectory")
    np.testing.assert_array_equal(acc_t[:, 2:], vel[:, 2:] - vel[:, 1:-1])
    # so official acceleration features equal velocity features outside the first temporal cube
    fv, fa = motion_features(y, grid_shape=(5, 5), mode="official")
    np.testing.assert_array_equal(fv[:, 8:], fa[:, 8:])


def test_self_distance_symmetry_and_clip_counts():
    rng = np.random.default_rng(3)
    x, y = walks(rng, 3, 20, 10 * 15), walks(rng, 2, 20, 10 * 15, scale=3.0)
    same = fvmd(x, x, grid_shape=(10, 15), clip_stride=2)
    d = same.feature_dim
    assert d == 4 * 2 * 3 * 8 and same.num_clips == 3 * 3
    assert same.velocity == pytest.approx(-2 * d * 1e-5, rel=1e-6)
    assert same.acceleration == pytest.approx(-2 * d * 1e-5, rel=1e-6)
    assert same.combined == pytest.approx(-2 * 2 * d * 1e-5, rel=1e-6)
    a, b = fvmd(x, y, grid_shape=(10, 15)), fvmd(y, x, grid_shape=(10, 15))
    assert a.combined > 1 and a.combined == pytest.approx(b.combined, rel=1e-9)
    assert a.num_clips == 3 * 5 and b.num_clips == 2 * 5
    long = fvmd_long(x, y, grid_shape=(10, 15))
    assert long.num_clips == 3 and long.feature_dim == 5 * 2 * 3 * 8


def test_frechet_distance_matches_scipy_sqrtm_dense_and_low_rank():
    rng = np.random.default_rng(4)
    for n1, n2, d in [(40, 50, 12), (6, 5, 30)]:  # dense path, then the exact low-rank path (n1 + n2 < D)
        f1, f2 = rng.normal(size=(n1, d)) ** 2, rng.normal(size=(n2, d)) * 1.5 + 0.3
        assert frechet_distance(f1, f2) == pytest.approx(ref_fd(f1, f2), rel=1e-7)
    with pytest.raises(ValueError, match="at least 2 clips"):
        frechet_distance(f1[:1], f2)


def test_nan_coordinates_are_invisible_with_visibility_and_an_error_without():
    rng = np.random.default_rng(5)
    x, y = walks(rng, 2, 17, 25), walks(rng, 2, 17, 25, scale=2.0)
    vis = np.ones(x.shape[:-1], bool)
    nan = x.copy()
    nan[0, 4, 3] = np.nan
    hidden = vis.copy()
    hidden[0, 4, 3] = False
    got = fvmd(nan, y, prediction_visibility=vis, reference_visibility=vis, grid_shape=(5, 5))
    want = fvmd(x, y, prediction_visibility=hidden, reference_visibility=vis, grid_shape=(5, 5))
    assert got == want
    with pytest.raises(ValueError, match="`predictions` contains NaN"):
        fvmd(nan, y, grid_shape=(5, 5))
    with pytest.raises(ValueError, match="`references` contains NaN"):
        fvmd(y, nan, grid_shape=(5, 5))
    with pytest.raises(ValueError, match="`predictions` contains NaN"):
        fvmd(nan, y, mode="official")
    with pytest.raises(ValueError, match="no visibility masking"):
        fvmd(x, y, mode="official", reference_visibility=vis)


def test_fvmd_bad_inputs():
    x = np.zeros((2, 20, 30, 2), np.float32)
    with pytest.raises(ValueError, match="square grid"):
        fvmd(x, x, mode="official")
    with pytest.raises(ValueError, match="16-frame clips"):
        fvmd(x, x, mode="official", clip_len=24)
    with pytest.raises(ValueError, match="at least 16 frames"):
        fvmd(x[:, :12, :25], x[:, :12, :25], mode="official")
    with pytest.raises(ValueError, match="at least 2 clips"):
        fvmd(x[:1], x[:1], grid_shape=(5, 6), clip_len=0)
    with pytest.raises(ValueError, match="same N grid points"):
        fvmd(x, x[:, :, :25], grid_shape=(5, 6))
    with pytest.raises(ValueError, match="different feature sizes"):
        fvmd_long(x, x[:, :12], grid_shape=(5, 6))
    assert fvmd(x, x[:, :18], grid_shape=(5, 6)).num_clips == 2 * 5  # T may differ with equal clip lengths
    with pytest.raises(ValueError, match="`grid_shape`"):
        fvmd(x, x, grid_shape=(5, 5))
    with pytest.raises(ValueError, match="`grid_shape`"):
        fvmd(x, x)
    with pytest.raises(ValueError, match="`mode`"):
        fvmd(x, x, grid_shape=(5, 6), mode="paper")
    with pytest.raises(ValueError, match=r"\[V, T, N, 2\]"):
        fvmd(x[..., :1], x[..., :1], grid_shape=(5, 6))
    with pytest.raises(ValueError, match="visibility"):
        fvmd(x, x, grid_shape=(5, 6), prediction_visibility=np.ones((2, 20, 29), bool))


# ----------------------------------------------------------------------------------------------------------------
# FlowTV (eq. 15) and DivCurlE (eq. 16) on linear flow fields, where forward differences are exact

GH, GW, STRIDE = 4, 6, 8.0
_YS, _XS = np.meshgrid(np.arange(GH) * STRIDE, np.arange(GW) * STRIDE, indexing="ij")
GRID = np.stack([_XS.ravel(), _YS.ravel()], -1)  # [N, 2] px, row-major


def linear_flow_tracks(matrices, offset=(0.0, 0.0)):
    """Tracks [1, T, N, 2] whose flow at frame t is F_t(p0) = M_t @ p0 + offset (px/frame) on the query grid."""
    pos = [GRID.copy()]
    for m in matrices:
        pos.append(pos[-1] + GRID @ np.asarray(m, float).T + offset)
    return np.stack(pos)[None]


def fields(tracks, vis=None):
    return (flow_tv(tracks, vis, grid_shape=(GH, GW), grid_stride=STRIDE),
            div_curl_energy(tracks, vis, grid_shape=(GH, GW), grid_stride=STRIDE))


def test_translation_scores_zero():
    tv, dc = fields(linear_flow_tracks([np.zeros((2, 2))] * 4, offset=(3.0, -2.0)))
    assert tv.value == 0 and dc.value == 0


def test_rotation_and_expansion_known_values():
    w, k = 0.03, -0.02
    rotation = [[0, -w], [w, 0]]  # u = -w y, v = w x: d_x v = w, d_y u = -w -> curl 2w, div 0
    tv, dc = fields(linear_flow_tracks([rotation] * 3))
    assert dc.value == pytest.approx(4 * w * w, rel=1e-9) and tv.value == pytest.approx(2 * w, rel=1e-9)
    expansion = [[k, 0], [0, k]]  # u = k x, v = k y: div 2k, curl 0; |d_x u| + |d_x v| = |k|, same along y
    tv, dc = fields(linear_flow_tracks([expansion] * 3))
    assert dc.value == pytest.approx(4 * k * k, rel=1e-9) and tv.value == pytest.approx(2 * abs(k), rel=1e-9)
    # per-frame values are averaged over time: frames with w, 2w and 0 -> DivCurlE = 4 (w^2 + 4 w^2 + 0) / 3
    rot = lambda a: [[0, -a], [a, 0]]
    tv, dc = fields(linear_flow_tracks([rot(w), rot(2 * w), rot(0)]))
    assert dc.value == pytest.approx(4 * 5 * w * w / 3, rel=1e-9) and tv.value == pytest.approx(2 * 3 * w / 3)


def test_visibility_validity_rules():
    w = 0.05
    tracks = linear_flow_tracks([[[0, -w], [w, 0]]] * 3)
    tracks[0, 2, 7] += 40.0  # a torn point at frame 2 (flows 1 and 2 use it)
    vis = np.ones(tracks.shape[:-1], bool)
    tv, dc = fields(tracks)
    assert tv.value > 2 * w and dc.value > 4 * w * w
    vis[0, 2, 7] = False  # hiding it invalidates its flows, pairs and cells only
    tv, dc = fields(tracks, vis)
    assert tv.value == pytest.approx(2 * w) and dc.value == pytest.approx(4 * w * w)
    vis[0, 1] = False  # frame 1 hidden: flows 0 and 1 have no valid pair and are skipped (nanmean over time)
    tv, dc = fields(tracks, vis)
    assert tv.value == pytest.approx(2 * w) and dc.value == pytest.approx(4 * w * w)
    # NaN coordinates are invalid even without a visibility
    nan = tracks.copy()
    nan[0, 2, 7] = np.nan
    assert fields(nan)[1].value == pytest.approx(4 * w * w)


def test_single_row_grid_uses_x_pairs_only_and_empty_videos_are_dropped():
    k = 0.1
    x = np.arange(5) * 4.0
    p0 = np.stack([x, np.zeros(5)], -1)
    tracks = np.stack([p0 + t * k * p0 for t in range(3)])[None]  # u = k x: |d_x u| = k, no y pairs
    assert flow_tv(tracks, grid_shape=(1, 5), grid_stride=4.0).value == pytest.approx(k)
    assert np.isnan(div_curl_energy(tracks, grid_shape=(1, 5), grid_stride=4.0).value)  # no interior cell
    both = np.concatenate([tracks, tracks * 0 + 7.0])  # video 2 static
    vis = np.ones(both.shape[:-1], bool)
    vis[1] = False  # ... and invisible: NaN for that video, dropped from the dataset mean
    out = flow_tv(both, vis, grid_shape=(1, 5), grid_stride=4.0)
    assert out.value == pytest.approx(k) and np.isnan(out.per_video[1])


def test_flow_field_bad_inputs():
    tracks = linear_flow_tracks([np.zeros((2, 2))])
    with pytest.raises(ValueError, match="`grid_shape`"):
        flow_tv(tracks, grid_shape=(GW, GH + 1), grid_stride=STRIDE)
    with pytest.raises(ValueError, match="`grid_stride`"):
        div_curl_energy(tracks, grid_shape=(GH, GW), grid_stride=0)
    with pytest.raises(ValueError, match="`visibility`"):
        flow_tv(tracks, np.ones((1, 2, 3), bool), grid_shape=(GH, GW), grid_stride=STRIDE)
    with pytest.raises(ValueError, match="at least 2 frames"):
        flow_tv(tracks[:, :1], grid_shape=(GH, GW), grid_stride=STRIDE)


# ----------------------------------------------------------------------------------------------------------------
# VEPE (eq. 17) and ADE / FDE / best-of-K


def test_vepe_pools_points_over_videos():
    ref = np.zeros((2, 2, 2, 2))
    pred = ref.copy()
    vis = np.zeros((2, 2, 2), bool)
    pred[0, 0, 0], vis[0, 0, 0] = (6, 8), True  # video 0: one visible point, error 10
    pred[1, :, :] = (0, 2)
    vis[1] = [[True, True], [True, False]]  # video 1: three visible points, error 2 each
    assert vepe(pred, ref, vis) == pytest.approx((10 + 3 * 2) / 4)  # pooled, not (10 + 2) / 2
    ref_nan = ref.copy()
    ref_nan[1, 0, 0] = np.nan  # a non-finite reference point is not counted
    assert vepe(pred, ref_nan, vis) == pytest.approx((10 + 2 * 2) / 3)
    with pytest.raises(ValueError, match="does not match"):
        vepe(pred[:, :1], ref)
    with pytest.raises(ValueError, match="no valid"):
        vepe(pred, ref, np.zeros_like(vis))


def test_error_by_frame_hand_case():
    """Per-frame error of the best-of-K sample (minADE's pick) and over samples, pooled over visible points."""
    from trajloom_hf.metrics import error_by_frame

    ref = np.zeros((2, 3, 2, 2))
    vis = np.ones((2, 3, 2), bool)
    vis[1, 2] = False  # no point of video 1 at t = 2
    drift = ref + np.arange(3)[None, :, None, None] * np.array([0.0, 1.0])  # error t at frame t
    offset = ref + np.array([0.0, 1.5])  # error 1.5 at every frame
    samples = np.stack([drift, offset], 1)  # [V, K=2, T, N, 2]; ADE: drift 1 (v 0) / 0.5 (v 1), offset 1.5
    e = error_by_frame(samples, ref, vis)
    np.testing.assert_allclose(e.best_of_k, [0.0, 1.0, 2.0])  # drift is the best sample of both videos
    np.testing.assert_allclose(e.mean_over_samples, [0.75, 1.25, 1.75])  # t = 2: video 0's two points only
    assert e.num_samples == 2
    e = error_by_frame(drift, ref)  # [V, T, N, 2]: one sample, all visible
    np.testing.assert_allclose(e.best_of_k, [0.0, 1.0, 2.0]) and np.testing.assert_allclose(e.mean_over_samples, e.best_of_k)
    with pytest.raises(ValueError, match=r"\[V, K, T, N, 2\]"):
        error_by_frame(samples[:, :, :2], ref, vis)


def test_ade_fde_and_best_of_k_hand_case():
    ref = np.zeros((2, 3, 2, 2))  # [V, T, N, 2]
    vis = np.ones((2, 3, 2), bool)
    vis[0, 2, 1] = False  # point 1 of video 0: last visible frame is 1
    good = ref + np.array([0.0, 1.0])  # error 1 everywhere
    bad = ref + np.array([3.0, 4.0])  # error 5 everywhere
    bad[0, 1, 1] = (0.0, 0.0)  # ... except point 1 of video 0 at its last visible frame (t = 1)
    samples = np.stack([np.stack([good[0], bad[0]]), np.stack([bad[1], good[1]])])  # [V=2, K=2, T, N, 2]
    d = displacement_errors(samples, ref, vis)
    ade0 = [1.0, (5 * 4 + 0) / 5]  # video 0: 5 visible points
    assert d.ade == pytest.approx((sum(ade0) + 1 + 5) / 4)
    assert d.min_ade == pytest.approx((1 + 1) / 2)
    fde0 = [1.0, (5 + 0) / 2]  # FDE at each point's last visible frame
    assert d.fde == pytest.approx((sum(fde0) + 5 + 1) / 4) and d.min_fde == pytest.approx(1.0)
    assert d.num_samples == 2
    for k in range(2):  # best-of-K is never worse than any single sample
        single = displacement_errors(samples[:, k], ref, vis)
        assert d.min_ade <= single.ade + 1e-12 and d.min_fde <= single.fde + 1e-12
    nan = samples.copy()
    nan[0, 1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="`predictions` has 1 NaN"):
        displacement_errors(nan, ref, vis)
    nan[0, 1, 0, 0], nan[0, 1, 2, 1] = 0.0, np.nan  # at an invisible point: ignored
    assert np.isfinite(displacement_errors(nan, ref, vis).ade)
    with pytest.raises(ValueError, match=r"\[V, K, T, N, 2\]"):
        displacement_errors(samples[:, :, :2], ref, vis)


def test_visibility_scores_hand_case():
    from trajloom_hf.metrics import visibility_scores

    ref = np.array([[[1, 1, 0, 0], [1, 1, 1, 0]]], bool)  # [V=1, T=2, N=4]: 3 occluded of 8
    pred = np.array([[[1, 0, 0, 1], [1, 1, 1, 0]]], bool)  # occluded predicted at 3 places, 2 of them right
    s = visibility_scores(pred, ref)
    assert s.accuracy == pytest.approx(6 / 8)
    assert s.occlusion_precision == pytest.approx(2 / 3) and s.occlusion_recall == pytest.approx(2 / 3)
    assert s.occlusion_f1 == pytest.approx(2 / 3)
    # two samples [V, K, T, N]: a perfect one and an all-visible one pool their counts
    both = visibility_scores(np.stack([ref, np.ones_like(ref)], 1), ref)
    assert both.accuracy == pytest.approx(13 / 16) and both.occlusion_precision == 1.0
    assert both.occlusion_recall == pytest.approx(0.5)
    # "always visible" is accurate but finds no occlusion
    assert visibility_scores(np.ones_like(ref), ref).occlusion_f1 == 0.0
    with pytest.raises(ValueError, match="only 0/1"):
        visibility_scores(ref * 2, ref)
    with pytest.raises(ValueError, match=r"matching `references` \[V, T, N\]"):
        visibility_scores(pred[:, :1], ref)
    with pytest.raises(TypeError, match="`predictions` must be boolean"):
        visibility_scores(np.array([["a"]]), ref)


@pytest.mark.parametrize("mode", ["official", "trajectory"])
def test_fast_bins_and_weight_levels_equal_the_float32_formula_bit_for_bit(mode):
    from trajloom_hf.metrics.fvmd import _angle_bins, _angle_bins_formula, _weight_levels

    rng = np.random.default_rng(0)
    r = rng.normal(size=(20000, 2)).astype(np.float32) * rng.choice([1e-7, 1e-3, 1.0, 50.0], size=(20000, 1))
    edges = np.array([[a, b] for a in (0.0, -0.0, 1.0, -1.0, 3.0) for b in (0.0, -0.0, 1.0, -1.0, 3.0)], np.float32)
    diag = rng.uniform(0.1, 100, size=(3000, 1)).astype(np.float32) * rng.choice([-1, 1], size=(3000, 2)).astype(np.float32)
    near = diag.copy()  # one, two and a few ulps off the diagonals and axes
    near[:1000, 0] = np.nextafter(near[:1000, 0], np.float32(np.inf))
    near[1000:2000, 1] = np.nextafter(np.nextafter(near[1000:2000, 1], np.float32(0)), np.float32(0))
    near[2000:, 0] *= np.float32(1e-5)
    v = np.concatenate([r, edges, diag, near])
    np.testing.assert_array_equal(_angle_bins(v[:, 0], v[:, 1], mode), _angle_bins_formula(v[:, 0], v[:, 1], mode))
    thresholds = np.float32(2.0) ** np.arange(9, dtype=np.float32) - np.float32(1)  # 0, 1, 3, ..., 255
    around = np.concatenate([thresholds, *[np.nextafter(thresholds, np.float32(d)) for d in (np.inf, -np.inf)]])
    for _ in range(3):
        around = np.concatenate([around, np.nextafter(around, np.float32(np.inf))])
    mag = np.clip(np.concatenate([around, np.abs(r[:, 0]) * 5, [6e-8, 5.9e-8, 1e-30]]).astype(np.float32), 0, 255)
    expected = np.ceil(np.clip(np.log2(mag + np.float32(1)), 0, 8))
    np.testing.assert_array_equal(_weight_levels(mag), expected)
