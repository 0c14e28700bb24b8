import numpy as np
import pytest
import torch

from trajloom_hf import encoding as enc
from trajloom_hf.location_bias import location_variance_explained


H, W, S = 64, 96, 16  # grid 4 x 6


def random_tracks(rng, t=9, h=H, w=W, s=S, spread=20.0):
    q = enc.make_query_grid(h, w, s)
    return (q[None] + rng.uniform(-spread, spread, size=(t,) + q.shape)).astype(np.float32)


def test_query_grid_topleft_and_center_row_major():
    q = enc.make_query_grid(480, 832, 32)
    assert q.shape == (390, 2) and q.dtype == np.float32
    assert q[0].tolist() == [0, 0] and q[1].tolist() == [32, 0] and q[25].tolist() == [800, 0]
    assert q[26].tolist() == [0, 32] and q[-1].tolist() == [800, 448]
    qc = enc.make_query_grid(480, 832, 32, origin="center")
    np.testing.assert_array_equal(qc - q, 16)


def test_normalisation_uses_w_not_w_minus_one_and_inverts():
    x = np.array([[0.0, 0.0], [832.0, 480.0], [416.0, 240.0]], dtype=np.float32)
    n = enc.normalize_tracks(x, 480, 832)
    np.testing.assert_allclose(n, [[-1, -1], [1, 1], [0, 0]])
    np.testing.assert_array_equal(enc.denormalize_tracks(n, 480, 832), x)


def test_anchors_are_pixel_centres():
    a = enc.grid_anchors(480, 832, 32)
    np.testing.assert_allclose(a[0], [2 * 0.5 / 832 - 1, 2 * 0.5 / 480 - 1])
    np.testing.assert_allclose(a[27], [2 * 32.5 / 832 - 1, 2 * 32.5 / 480 - 1])


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_offset_round_trip_below_1e5_px(kind):
    rng = np.random.default_rng(0)
    tracks = random_tracks(rng, t=20, h=480, w=832, s=32, spread=120.0)
    if kind == "torch":
        tracks = torch.from_numpy(tracks)
    off = enc.tracks_to_offsets(tracks, 480, 832, 32)
    back = enc.offsets_to_tracks(off, 480, 832, 32)
    assert back.dtype == (torch.float32 if kind == "torch" else np.float32)
    err = np.abs(np.asarray(back, dtype=np.float64) - np.asarray(tracks, dtype=np.float64)).max()
    assert err < 1e-5
    # points sitting on their query pixel have offset -(0.5 px) in normalised units
    q = enc.make_query_grid(480, 832, 32)
    o = enc.tracks_to_offsets(q, 480, 832, 32)
    np.testing.assert_allclose(o[:, 0], -1 / 832, atol=1e-7)
    np.testing.assert_allclose(o[:, 1], -1 / 480, atol=1e-7)


def test_half_precision_input_is_promoted_to_fp32():
    t = torch.full((2, 24, 2), 700.3, dtype=torch.bfloat16)
    assert enc.normalize_tracks(t, 480, 832).dtype == torch.float32
    t64 = torch.zeros(2, 24, 2, dtype=torch.float64)
    assert enc.normalize_tracks(t64, 480, 832).dtype == torch.float64


def test_grid_reshape_round_trip_row_major():
    x = np.arange(2 * 3 * 24 * 2).reshape(2, 3, 24, 2)
    g = enc.to_grid(x, (4, 6))
    assert g.shape == (2, 3, 4, 6, 2)
    assert (g[0, 0, 1, 0] == x[0, 0, 6]).all()
    np.testing.assert_array_equal(enc.from_grid(g), x)
    v = np.arange(24).reshape(1, 24)
    np.testing.assert_array_equal(enc.from_grid(enc.to_grid(v, (4, 6), point_dim=-1), trailing=0), v)


def test_rasterise_and_sample_back():
    rng = np.random.default_rng(1)
    tracks = enc.to_grid(random_tracks(rng), (4, 6))
    dense = enc.rasterize_tracks(tracks, S)
    assert dense.shape == (9, H, W, 2)
    # every pixel of cell (i, j) carries that cell's track
    np.testing.assert_array_equal(dense[:, 16:32, 32:48], np.broadcast_to(tracks[:, 1:2, 2:3], (9, 16, 16, 2)))
    np.testing.assert_array_equal(enc.sample_dense_at_queries(dense, S), tracks)
    np.testing.assert_array_equal(enc.sample_dense_at_queries(dense, S, "center"), tracks)
    vis = rng.random((9, 4, 6)) > 0.3
    dvis = enc.rasterize_visibility(torch.from_numpy(vis), S)
    assert dvis.shape == (9, H, W) and dvis.dtype == torch.bool
    assert dvis.float().mean().item() == pytest.approx(vis.mean())


def test_dense_anchor_field_matches_grid_anchors_at_queries():
    dense = enc.dense_anchor_field(H, W)
    np.testing.assert_allclose(enc.sample_dense_at_queries(dense, S).reshape(-1, 2), enc.grid_anchors(H, W, S))
    np.testing.assert_allclose(
        enc.sample_dense_at_queries(dense, S, "center").reshape(-1, 2), enc.grid_anchors(H, W, S, "center")
    )


@pytest.mark.parametrize("use_offsets", [True, False])
def test_coarse_patch_embed_equals_dense_formulation(use_offsets):
    rng = np.random.default_rng(2)
    g = torch.from_numpy(enc.normalize_tracks(random_tracks(rng, t=3).astype(np.float64), H, W))
    g = enc.to_grid(g, (4, 6))
    weight = torch.randn(8, 2, S, S, dtype=torch.float64)
    bias = torch.randn(8, dtype=torch.float64)
    dense = enc.dense_patch_embed(g, weight, bias, use_offsets=use_offsets)
    proj = enc.anchor_patch_projection(weight, H, W) if use_offsets else None
    coarse = enc.coarse_patch_embed(g, weight, bias, proj)
    assert coarse.shape == dense.shape == (3, 4, 6, 8)
    assert (coarse - dense).abs().max().item() < 1e-10


def test_latent_visibility_any_pooling_81_frames():
    vis = np.zeros((81, 5), dtype=bool)
    vis[3, 0] = True  # block 0
    vis[4, 1] = True  # block 1
    vis[80, 2] = True  # last block holds only frame 80
    lat = enc.latent_visibility(vis, 4)
    assert lat.shape == (21, 5)
    assert lat[0, 0] and not lat[1, 0]
    assert lat[1, 1] and not lat[0, 1]
    assert lat[20, 2] and lat.sum() == 3
    lat_t = enc.latent_visibility(torch.from_numpy(vis)[None], 4)
    assert lat_t.shape == (1, 21, 5) and torch.equal(lat_t[0], torch.from_numpy(lat))
    up = enc.upsample_latent_time(lat, 81)
    assert up.shape == (81, 5) and up[0:4, 0].all() and up[80, 2] and not up[79, 2]


def test_in_frame_marks_out_of_bounds_and_nonfinite():
    t = np.array([[0, 0], [95, 63], [95.5, 10], [-0.1, 5], [np.nan, 3]], dtype=np.float32)
    np.testing.assert_array_equal(enc.in_frame(t, H, W), [True, True, False, False, False])


def test_bad_input_errors_name_the_argument():
    with pytest.raises(ValueError, match="height/width.*divisible by the grid stride 32"):
        enc.make_query_grid(481, 832, 32)
    with pytest.raises(ValueError, match="`tracks`.*N=24"):
        enc.tracks_to_offsets(np.zeros((3, 10, 2), np.float32), H, W, S)
    with pytest.raises(ValueError, match="`tracks` must end with a coordinate dim of size 2"):
        enc.normalize_tracks(np.zeros((3, 10, 3)), H, W)
    with pytest.raises(ValueError, match="`origin`"):
        enc.make_query_grid(H, W, S, origin="middle")
    with pytest.raises(TypeError, match="`tracks`"):
        enc.normalize_tracks([[1.0, 2.0]], H, W)


def test_location_bias_offsets_remove_location_variance():
    # small motions around the grid: absolute coordinates are dominated by location, offsets are not
    rng = np.random.default_rng(3)
    q = enc.make_query_grid(H, W, S)
    clips = []
    for _ in range(8):
        drift = rng.normal(0, 3.0, size=(12, 1, 2)).cumsum(0)
        clips.append(q[None] + drift + rng.normal(0, 0.5, size=(12,) + q.shape))
    tracks = np.stack(clips).astype(np.float32)
    vis = rng.random(tracks.shape[:-1]) > 0.1
    res = location_variance_explained(tracks, vis, H, W, S)
    assert res.explained["absolute_x"] > 90 and res.explained["absolute_y"] > 90
    assert res.explained["offset_x"] < 20 and res.explained["offset_y"] < 20
    assert "| offset | x |" in res.table()


def test_location_bias_hand_case():
    # two locations, values {0, 2} at location 0 and {10, 12} at location 1:
    # mu = (1, 11) -> Var_n = 25; sigma2 = 1 each -> explained = 25 / 26
    from trajloom_hf.location_bias import explained_variance

    v = np.array([[0.0, 10.0], [2.0, 12.0], [100.0, 100.0]])
    w = np.array([[1, 1], [1, 1], [0, 0]])
    pct, between, within = explained_variance(v, w)
    assert between == pytest.approx(25.0) and within == pytest.approx(1.0)
    assert pct == pytest.approx(100 * 25 / 26)
