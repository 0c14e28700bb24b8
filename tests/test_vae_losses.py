import pytest
import torch

from trajloom_hf.vae_losses import masked_huber_loss, spatial_neighbour_loss, temporal_velocity_loss, vae_loss


def test_app_b2_smooth_vs_jitter_same_huber_different_temporal():
    t = torch.arange(10.0)
    target = torch.stack([t, torch.zeros_like(t)], -1)[None, :, None]  # [1, T, 1, 2]
    b = 0.3
    smooth = target + torch.tensor([b, 0.0])
    jitter = target + torch.stack([b * (-1.0) ** t, torch.zeros_like(t)], -1)[None, :, None]
    vis = torch.ones(1, 10, 1, dtype=torch.bool)
    assert masked_huber_loss(smooth, target, vis) == pytest.approx(masked_huber_loss(jitter, target, vis).item(), rel=1e-5)
    assert temporal_velocity_loss(smooth, target, vis).item() == pytest.approx(0.0, abs=1e-6)
    # |dx_hat - dx| = 2b every step
    assert temporal_velocity_loss(jitter, target, vis).item() == pytest.approx(2 * b, rel=1e-5)


def test_huber_is_normalised_by_visible_count():
    target = torch.zeros(1, 2, 2, 2)
    pred = torch.zeros(1, 2, 2, 2)
    pred[0, 0, 0] = torch.tensor([0.4, 0.0])  # visible: huber 0.5*0.16 = 0.08 on x, 0 on y -> mean 0.04
    pred[0, 1, 1] = torch.tensor([5.0, 5.0])  # invisible: ignored
    vis = torch.tensor([[[True, False], [True, False]]])
    assert masked_huber_loss(pred, target, vis).item() == pytest.approx(0.04 / 2, rel=1e-5)


def test_temporal_needs_both_frames_visible():
    target = torch.zeros(1, 3, 1, 2)
    pred = torch.tensor([0.0, 1.0, 1.0])[None, :, None, None].expand(1, 3, 1, 2).clone()
    vis = torch.tensor([[[True], [False], [True]]])
    assert temporal_velocity_loss(pred, target, vis).item() == 0.0  # no pair visible at both t and t-1
    vis = torch.ones(1, 3, 1, dtype=torch.bool)
    assert temporal_velocity_loss(pred, target, vis).item() == pytest.approx((2.0 + 0.0) / 2, rel=1e-5)


def test_spatial_hops_and_weights_hand_case():
    # 1 x 5 grid row, one frame; prediction stretches the row: x_hat = 2 x
    x = torch.arange(5.0)
    target = torch.stack([x, torch.zeros(5)], -1).reshape(1, 1, 1, 5, 2)
    pred = target * torch.tensor([2.0, 1.0])
    # hop d along x: |2d - d| = d, each term mean d; hop 4 exists (5 columns); vertical hops skipped (1 row)
    expected = (1 * 1 + 0.5 * 2 + 0.25 * 4) / (1 + 0.5 + 0.25)
    assert spatial_neighbour_loss(pred, target, None).item() == pytest.approx(expected, rel=1e-5)
    vis = torch.ones(1, 1, 1, 5, dtype=torch.bool)
    vis[..., 0] = False  # pairs with column 0 drop out; hop 4 has no valid pair left and loses its weight
    assert spatial_neighbour_loss(pred, target, vis).item() == pytest.approx((1 * 1 + 0.5 * 2) / (1 + 0.5), rel=1e-5)


def test_all_invisible_clip_gives_finite_zero_reconstruction():
    pred = torch.randn(2, 9, 24, 2, requires_grad=True)
    target = torch.randn(2, 9, 24, 2)
    vis = torch.zeros(2, 9, 24, dtype=torch.bool)
    out = vae_loss(pred, target, vis, torch.ones(2), grid_hw=(4, 6))
    assert torch.isfinite(out.loss) and out.reconstruction.item() == 0.0
    out.loss.backward()
    assert torch.isfinite(pred.grad).all()
    assert out.loss.item() == pytest.approx(5e-5, rel=1e-5)  # only beta * KL


def test_total_is_weighted_sum_and_ablation_weights():
    pred, target = torch.randn(1, 9, 24, 2), torch.randn(1, 9, 24, 2)
    vis = torch.rand(1, 9, 24) > 0.3
    kl = torch.tensor([2.0])
    out = vae_loss(pred, target, vis, kl, grid_hw=(4, 6))
    assert out.loss.item() == pytest.approx((out.reconstruction + 0.1 * out.temporal + 0.2 * out.spatial + 5e-5 * 2).item(), rel=1e-5)
    off = vae_loss(pred, target, vis, kl, grid_hw=(4, 6), lambda_temporal=0, lambda_spatial=0)
    assert off.temporal.item() == 0 and off.spatial.item() == 0
    with pytest.raises(ValueError, match="`visibility`"):
        vae_loss(pred, target, vis[:, :5], kl)
    with pytest.raises(ValueError, match="same shape"):
        vae_loss(pred[:, :5], target, vis, kl)


def test_spatial_term_refuses_inputs_off_the_grid():
    # [B, T, N, 2] without grid_hw would take "neighbours" along the coordinate axis: refuse it
    pred, target = torch.randn(1, 9, 24, 2), torch.randn(1, 9, 24, 2)
    with pytest.raises(ValueError, match="`grid_hw`"):
        vae_loss(pred, target, None, None)
    with pytest.raises(ValueError, match=r"N=20"):
        vae_loss(pred, target, None, None, grid_hw=(4, 5))
    with pytest.raises(ValueError, match=r"\[B, T, H_g, W_g, 2\]"):
        spatial_neighbour_loss(pred, target, None)
    assert vae_loss(pred, target, None, None, lambda_spatial=0).spatial.item() == 0  # no grid needed without the term
    grid = vae_loss(pred.reshape(1, 9, 4, 6, 2), target.reshape(1, 9, 4, 6, 2), None, None)
    assert grid.loss.item() == pytest.approx(vae_loss(pred, target, None, None, grid_hw=(4, 6)).loss.item(), rel=1e-5)
