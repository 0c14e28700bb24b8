import pytest
import torch

from trajloom_hf.flow_losses import visibility_bce_loss
from trajloom_hf.models.visibility_predictor import VisibilityPredictor, visibility_from_logits, visibility_targets


def test_official_config_parameter_count_and_keys():
    m = VisibilityPredictor()
    assert sum(p.numel() for p in m.parameters()) == 38209
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {
        "in_proj.weight": (64, 16), "in_proj.bias": (64,),
        "temporal_net.0.weight": (64, 64, 3), "temporal_net.0.bias": (64,),
        "temporal_net.2.weight": (64, 64, 3), "temporal_net.2.bias": (64,),
        "temporal_net.4.weight": (64, 64, 3), "temporal_net.4.bias": (64,),
        "out.weight": (1, 64, 1), "out.bias": (1,),
    }


def test_forward_matches_manual_per_token_computation():
    torch.manual_seed(0)
    m = VisibilityPredictor(latent_channels=3, hidden_size=5, depth=2, kernel_size=3)
    z = torch.randn(2, 6, 4, 3)
    logits = m(z).logits
    assert logits.shape == (2, 6, 4) and logits.dtype == torch.float32
    b, n = 1, 2
    h = m.in_proj(z[b, :, n])  # [K, hidden]
    x = h.t()[None]
    for layer in m.temporal_net:
        x = layer(x)
    ref = m.out(x)[0, 0]
    torch.testing.assert_close(logits[b, :, n], ref)
    # tokens are independent: changing token 0 leaves token 2 unchanged
    z2 = z.clone()
    z2[:, :, 0] += 5
    torch.testing.assert_close(m(z2).logits[:, :, 2], logits[:, :, 2])
    with pytest.raises(ValueError, match="C=3"):
        m(torch.randn(1, 6, 4, 4))


def test_targets_are_max_pooled_frames():
    vis = torch.zeros(1, 9, 2, dtype=torch.bool)
    vis[0, 5, 0] = True  # frame 5 -> latent step 1
    vis[0, 8, 1] = True  # frame 8 -> latent step 2 (the short last block)
    tgt = visibility_targets(vis, 4)
    assert tgt.shape == (1, 3, 2)
    assert tgt[0].tolist() == [[False, False], [True, False], [False, True]]


def test_visibility_from_logits_threshold_upsample_and_in_frame():
    logits = torch.tensor([[[2.0, -1.0], [0.0, 3.0]]])  # [1, K=2, N=2]
    tracks = torch.full((1, 6, 2, 2), 10.0)
    tracks[0, 5, 1] = torch.tensor([100.0, 10.0])  # outside a 64x32 frame in the last frame
    vis = visibility_from_logits(logits, tracks, height=32, width=64, num_frames=6, threshold=0.5)
    assert vis.shape == (1, 6, 2) and vis.dtype == torch.bool
    # latent 0 covers frames 0-3; latent 1 covers frames 4-5; sigmoid(0) = 0.5 is not > 0.5
    assert vis[0, :, 0].tolist() == [True] * 4 + [False] * 2
    assert vis[0, :, 1].tolist() == [False] * 4 + [True, False]
    with pytest.raises(ValueError, match="tracks_px"):
        visibility_from_logits(logits, tracks[:, :5], 32, 64, 6)
    m = VisibilityPredictor(latent_channels=2, hidden_size=4, depth=1)
    out = m.predict_visibility(torch.randn(1, 2, 2, 2), tracks, 32, 64, 6)
    assert out.shape == (1, 6, 2)


def test_bce_learns_a_separable_rule():
    torch.manual_seed(0)
    m = VisibilityPredictor(latent_channels=4, hidden_size=8, depth=1)
    z = torch.randn(8, 5, 6, 4)
    target = z[..., 0] > 0
    opt = torch.optim.Adam(m.parameters(), lr=3e-2)
    first = None
    for _ in range(60):
        loss = visibility_bce_loss(m(z).logits, target)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first
    acc = ((m(z).logits > 0) == target).float().mean()
    assert float(acc) > 0.9


def test_bce_matches_formula_and_pos_weight():
    logits = torch.tensor([[[1.0, -2.0]]])
    tgt = torch.tensor([[[True, False]]])
    ref = -(torch.log(torch.sigmoid(torch.tensor(1.0))) + torch.log(1 - torch.sigmoid(torch.tensor(-2.0)))) / 2
    assert float(visibility_bce_loss(logits, tgt)) == pytest.approx(float(ref), rel=1e-5)
    ref_pw = -(3 * torch.log(torch.sigmoid(torch.tensor(1.0))) + torch.log(1 - torch.sigmoid(torch.tensor(-2.0)))) / 2
    assert float(visibility_bce_loss(logits, tgt, pos_weight=3.0)) == pytest.approx(float(ref_pw), rel=1e-5)
    with pytest.raises(ValueError, match="same shape"):
        visibility_bce_loss(logits, tgt[..., :1])


def test_save_load_roundtrip(tmp_path):
    m = VisibilityPredictor(latent_channels=4, hidden_size=8, depth=2)
    m.save_pretrained(tmp_path)
    r = VisibilityPredictor.from_pretrained(tmp_path)
    z = torch.randn(1, 3, 2, 4)
    torch.testing.assert_close(m(z).logits, r(z).logits)


def _residual_head(**kw):
    cfg = dict(latent_channels=4, hidden_size=8, depth=2, design="history_residual", grid_size=(2, 3), spatial_kernel=3)
    cfg.update(kw)
    return VisibilityPredictor(**cfg)


def _history(seed=0, b=2, k=3, n=6, c=4, t_h=9):
    g = torch.Generator().manual_seed(seed)
    hist_vis = torch.rand(b, t_h, n, generator=g) > 0.3
    return torch.randn(b, k, n, c, generator=g), torch.randn(b, 3, n, c, generator=g), hist_vis


def test_history_residual_head_starts_as_hold_last():
    """Zero-initialised correction: the untrained head's logits are +-prior_logit by each point's last history
    visibility, i.e. exactly the hold-last rule at any threshold in (sigmoid(-3), sigmoid(3))."""
    torch.manual_seed(0)
    m = _residual_head()
    z, z_hist, hist_vis = _history()
    logits = m(z, z_hist, hist_vis).logits
    expected = (3.0 * (2.0 * hist_vis[:, -1].float() - 1.0))[:, None].expand(2, 3, 6)
    torch.testing.assert_close(logits, expected, rtol=0, atol=0)
    assert m.uses_history and not VisibilityPredictor(latent_channels=4).uses_history
    # every input reaches the output once the correction is non-zero
    torch.nn.init.normal_(m.correction_out.weight, std=0.5)
    base = m(z, z_hist, hist_vis).logits
    for changed in ((z + 1, z_hist, hist_vis), (z, z_hist + 1, hist_vis), (z, z_hist, hist_vis.roll(1, dims=1))):
        assert not torch.allclose(m(*changed).logits, base)


def test_history_residual_spatial_mixing_and_independence():
    torch.manual_seed(1)
    z, z_hist, hist_vis = _history()
    for kernel, coupled in ((3, True), (0, False)):
        m = _residual_head(spatial_kernel=kernel, grid_size=(2, 3) if kernel else None)
        torch.nn.init.normal_(m.correction_out.weight, std=0.5)
        z2 = z.clone()
        z2[:, :, 0] += 3.0  # token 0 = grid cell (0, 0); token 5 = (1, 2) is within the 2-block receptive field
        with torch.no_grad():
            changed = (m(z2, z_hist, hist_vis).logits[:, :, 5] - m(z, z_hist, hist_vis).logits[:, :, 5]).abs().max()
        assert (float(changed) > 1e-4) == coupled, (kernel, float(changed))


def test_history_residual_learns_where_visibility_changes():
    """Occlusion events the hold-last rule misses (points visible at the end of the history that disappear where the
    future latent channel 0 is large): the head learns them, hold-last stays wrong."""
    torch.manual_seed(0)
    m = _residual_head(spatial_kernel=0, grid_size=None, depth=1)
    z, z_hist, hist_vis = _history(seed=3, b=16)
    held = hist_vis[:, -1][:, None].expand(16, 3, 6)
    target = held & (z[..., 0] < 0.5)
    hold_acc = float((held == target).float().mean())
    opt = torch.optim.Adam(m.parameters(), lr=3e-2)
    for _ in range(150):
        loss = visibility_bce_loss(m(z, z_hist, hist_vis).logits, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    acc = float(((m(z, z_hist, hist_vis).logits > 0) == target).float().mean())
    assert hold_acc < 0.85 and acc > 0.97, (hold_acc, acc)


def test_history_residual_input_errors_and_round_trip(tmp_path):
    m = _residual_head()
    z, z_hist, hist_vis = _history()
    with pytest.raises(ValueError, match="needs `history_latents`"):
        m(z)
    with pytest.raises(ValueError, match="`history_latents`"):
        m(z, z_hist[..., :3], hist_vis)
    with pytest.raises(ValueError, match="`history_visibility`"):
        m(z, z_hist, hist_vis[:, :, :4])
    with pytest.raises(ValueError, match="official"):
        VisibilityPredictor(latent_channels=4)(z, z_hist, hist_vis)
    with pytest.raises(ValueError, match="`grid_size`"):
        _residual_head(grid_size=None)
    with pytest.raises(ValueError, match="`design`"):
        VisibilityPredictor(design="oracle")
    with pytest.raises(ValueError, match="does not match N=6"):
        _residual_head(grid_size=(3, 3))(z, z_hist, hist_vis)
    torch.nn.init.normal_(m.correction_out.weight, std=0.5)
    m.save_pretrained(tmp_path)
    back = VisibilityPredictor.from_pretrained(tmp_path)
    assert back.config.design == "history_residual" and list(back.config.grid_size) == [2, 3]
    torch.testing.assert_close(back(z, z_hist, hist_vis).logits, m(z, z_hist, hist_vis).logits)
    out = back.predict_visibility(z, None, 32, 48, 9, history_latents=z_hist, history_visibility=hist_vis)
    assert out.shape == (2, 9, 6) and out.dtype == torch.bool
