import numpy as np
import pytest

from trajloom_hf.metrics import displacement_errors, div_curl_energy, flow_tv, fvmd, fvmd_long, motion_histograms, vepe

GH, GW, S = 5, 6, 16.0
YS, XS = np.meshgrid(np.arange(GH) * S, np.arange(GW) * S, indexing="ij")
P0 = np.stack([XS.ravel(), YS.ravel()], -1)


def field(flow_fn, t=6):
    return np.stack([P0 + k * flow_fn(P0) for k in range(t)])[None]


def test_translation_has_zero_tv_and_divcurl():
    tr = field(lambda p: np.broadcast_to([2.0, -1.0], p.shape))
    assert flow_tv(tr, grid_shape=(GH, GW), grid_stride=S).value == pytest.approx(0)
    assert div_curl_energy(tr, grid_shape=(GH, GW), grid_stride=S).value == pytest.approx(0)


def test_rotation_and_expansion_known_values():
    w, k = 0.01, 0.02
    rot = field(lambda p: np.stack([-w * p[:, 1], w * p[:, 0]], -1))  # curl 2w, div 0
    assert div_curl_energy(rot, grid_shape=(GH, GW), grid_stride=S).value == pytest.approx(4 * w * w)
    assert flow_tv(rot, grid_shape=(GH, GW), grid_stride=S).value == pytest.approx(2 * w)
    exp = field(lambda p: k * p)  # div 2k, curl 0
    assert div_curl_energy(exp, grid_shape=(GH, GW), grid_stride=S).value == pytest.approx(4 * k * k)
    assert flow_tv(exp, grid_shape=(GH, GW), grid_stride=S).value == pytest.approx(2 * k)


def test_visibility_masks_pairs():
    tr = field(lambda p: np.broadcast_to([1.0, 0.0], p.shape)).copy()
    tr[0, :, 7] += np.arange(6)[:, None] * 50  # one wild point
    vis = np.ones(tr.shape[:-1], bool)
    assert flow_tv(tr, grid_shape=(GH, GW), grid_stride=S).value > 0
    vis[0, :, 7] = False
    assert flow_tv(tr, vis, grid_shape=(GH, GW), grid_stride=S).value == pytest.approx(0)
    vis[:] = False
    assert np.isnan(flow_tv(tr, vis, grid_shape=(GH, GW), grid_stride=S).value)


def test_fvmd_self_distance_symmetry_and_official_bins():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 30, 100, 2)).cumsum(1)  # a 10 x 10 grid keeps the test fast (the package uses 20 x 20)
    y = rng.normal(size=(4, 30, 100, 2)).cumsum(1) * 2
    r = fvmd(x, x, mode="official")
    assert r.feature_dim == 4 * 2 * 2 * 8 and r.combined == pytest.approx(-2 * 256 * 1e-5, rel=1e-3)
    a, b = fvmd(x, y, mode="official"), fvmd(y, x, mode="official")
    assert a.combined == pytest.approx(b.combined, rel=1e-6) and a.combined > 0
    table = {(1, 0): 5, (-1, 1): 2, (0, 1): 4, (0, -1): 7, (-1, 0): 2, (1, 1): 5, (1, -1): 7, (-1, -1): 1}
    for (dx, dy), expected in table.items():
        v = np.zeros((1, 4, 25, 2), np.float32)
        v[..., 0], v[..., 1] = dx, dy
        h = motion_histograms(v, (5, 5), "official")
        assert np.argmax(h[0]) == expected and h[0, expected] == pytest.approx(100 * 1 / 8 * (1 if dx * dy == 0 else 2))


def test_histogram_weights_hand_case():
    v = np.zeros((1, 4, 25, 2), np.float32)
    v[0, 0, 0] = (0, 3.0)  # |v| = 3 -> ceil(log2 4) = 2 -> 2/8, bin 4
    v[0, 1, 1] = (0, 0.5)  # -> 1/8
    h = motion_histograms(v, (5, 5), "trajectory")[0]
    # zero vectors: atan2(0, 0) = 0 -> bin 4 with weight 0
    assert h[4] == pytest.approx(3 / 8) and h.sum() == pytest.approx(3 / 8)


def test_official_acceleration_is_the_released_bug_and_trajectory_is_second_difference():
    from trajloom_hf.metrics.fvmd import _fields

    y = np.cumsum(np.arange(1, 7, dtype=np.float32))[None, :, None, None].repeat(2, -1)  # accelerating
    vel, acc_off = _fields(y, None, "official")
    _, acc_traj = _fields(y, None, "trajectory")
    np.testing.assert_array_equal(acc_off[:, 2:], vel[:, 2:])
    np.testing.assert_array_equal(acc_traj[0, 2:, 0, 0], np.ones(4))


def test_fvmd_trajectory_mode_rectangular_visibility_and_long():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 17, 10 * 17, 2)).cumsum(1)  # 10 x 17: the last 2 columns are trimmed
    vis = rng.random(x.shape[:-1]) > 0.2
    r = fvmd(x, x * 1.5, reference_visibility=vis, prediction_visibility=vis, grid_shape=(10, 17))
    assert r.feature_dim == 4 * 2 * 3 * 8 and r.num_clips == 2 * 2
    long = fvmd_long(x, x * 1.5, grid_shape=(10, 17))
    assert long.num_clips == 2 and long.feature_dim == 4 * 2 * 3 * 8


def test_vepe_and_best_of_k():
    ref = np.zeros((1, 2, 2, 2))
    pred = ref.copy()
    pred[0, 0, 0] = (3, 4)  # error 5 on a visible point
    pred[0, 1, 1] = (30, 40)  # error 50 on an invisible point
    vis = np.array([[[True, True], [True, False]]])
    assert vepe(pred, ref, vis) == pytest.approx(5 / 3)
    samples = np.stack([pred, ref + 1.0], axis=1)  # [V, K=2, T, N, 2]
    d = displacement_errors(samples, ref, vis)
    assert d.min_ade <= d.ade and d.min_ade == pytest.approx(np.sqrt(2))
    assert d.num_samples == 2


def test_bad_inputs():
    x = np.zeros((2, 20, 30, 2))
    with pytest.raises(ValueError, match="square grid"):
        fvmd(x, x, mode="official")
    with pytest.raises(ValueError, match="at least 2 clips"):
        fvmd(x[:1], x[:1], grid_shape=(5, 6), clip_len=0)
    with pytest.raises(ValueError, match="does not match"):
        vepe(x, x[:, :10])
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fvmd(bad, x, grid_shape=(5, 6))
    assert np.isfinite(fvmd(bad, x, prediction_visibility=np.ones(x.shape[:-1], bool), grid_shape=(5, 6)).combined)
    with pytest.raises(ValueError, match="`grid_shape`"):
        flow_tv(x, grid_shape=(4, 6), grid_stride=16)


def test_frechet_low_rank_path_equals_the_dense_formula():
    from trajloom_hf.metrics.fvmd import frechet_distance

    rng = np.random.default_rng(3)
    f1 = rng.normal(size=(7, 40)) ** 2
    f2 = rng.normal(size=(9, 40)) * 2
    # dense reference (pytorch-fid style with the unconditional eps of the official package)
    eps = 1e-5
    a = np.cov(f1, rowvar=False) + eps * np.eye(40)
    b = np.cov(f2, rowvar=False) + eps * np.eye(40)
    wa, va = np.linalg.eigh(a)
    sa = (va * np.sqrt(np.clip(wa, 0, None))) @ va.T
    tr = np.sqrt(np.clip(np.linalg.eigvalsh(sa @ b @ sa), 0, None)).sum()
    ref = ((f1.mean(0) - f2.mean(0)) ** 2).sum() + np.trace(a - eps * np.eye(40)) + np.trace(b - eps * np.eye(40)) - 2 * tr
    assert frechet_distance(f1, f2) == pytest.approx(ref, rel=1e-9)  # 16 clips < 40 dims: the low-rank path
    assert frechet_distance(f1, f1) == pytest.approx(-2 * 40 * eps, rel=1e-6)
