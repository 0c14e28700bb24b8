import math

import pytest
import torch

from trajloom_hf.flow_losses import (
    flow_matching_loss,
    on_policy_losses,
    token_weights,
    weighted_token_sq_error,
)


def test_token_weights_visible_vs_invisible():
    vis = torch.tensor([[[True, False], [False, False]]])  # [1, K=2, N=2]
    w = token_weights(vis)
    total = 1 + 3 * 0.01
    torch.testing.assert_close(w, torch.tensor([[[1 / total, 0.01 / total], [0.01 / total, 0.01 / total]]]))
    torch.testing.assert_close(w.sum(dim=(1, 2)), torch.ones(1))
    u = token_weights(None, shape=(2, 3, 4))
    torch.testing.assert_close(u, torch.full((2, 3, 4), 1 / 12))
    with pytest.raises(ValueError, match=r"\[B, K, N\]"):
        token_weights(torch.ones(2, 3))
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        token_weights(torch.full((1, 2, 2), 2.0))


def test_flow_matching_loss_eq9_hand_computation():
    pred = torch.zeros(1, 1, 2, 2)
    tgt = torch.tensor([[[[1.0, 1.0], [2.0, 0.0]]]])  # token 0: ||.||^2 = 2, token 1: 4
    vis = torch.tensor([[[True, False]]])
    w = token_weights(vis)  # [1/1.01, 0.01/1.01]
    expected = (1 / 1.01 * 2 + 0.01 / 1.01 * 4) / 2  # 1/C with C = 2
    assert float(flow_matching_loss(pred, tgt, w)) == pytest.approx(expected, rel=1e-5)
    assert float(flow_matching_loss(pred, tgt)) == pytest.approx((2 + 4) / 4, rel=1e-5)
    with pytest.raises(ValueError, match="differ"):
        flow_matching_loss(pred, tgt[..., :1], w)


def _logit_grid_k2(eps=1e-5):
    return [eps, 0.5, 1 - eps]


@pytest.mark.parametrize("source_term_start", [0, 1])
def test_k_step_and_consistency_hand_computation(source_term_start):
    """K = 2 rollout with a constant velocity field theta (a leaf): every term computed by hand, for the literal
    eq. 12 (source term from i = 0) and the default (source term from i = 1)."""
    eps = 1e-5
    z0 = torch.tensor([[[[1.0, -1.0]]]])  # [B=1, K=1, N=1, C=2]
    z1 = torch.tensor([[[[3.0, 2.0]]]])
    theta = torch.tensor([0.5, 4.0], requires_grad=True)
    out = on_policy_losses(
        lambda z, t: theta.view(1, 1, 1, 2).expand_as(z), z0, z1, None,
        num_steps=2, spacing="logit", t_eps=eps, denom_eps=1e-3, w1=1.0, w0=0.5, gamma=0.1,
        source_term_start=source_term_start,
    )
    t0, t1, t2 = _logit_grid_k2(eps)
    th = theta.detach()
    a, b = z0[0, 0, 0], z1[0, 0, 0]
    zt1 = a + (t1 - t0) * th
    # eq. 11 targets (denominators clamped at 1e-3)
    v1_0, v0_0 = (b - a) / (1 - t0), (a - a) / max(t0, 1e-3)
    v1_1, v0_1 = (b - zt1) / (1 - t1), (zt1 - a) / t1

    def sq(x):  # (1/C) ||x||^2
        return float((x**2).mean())

    if source_term_start == 0:
        k_step = 0.5 * ((sq(th - v1_0) + 0.5 * sq(th - v0_0)) + (sq(th - v1_1) + 0.5 * sq(th - v0_1)))
    else:  # the source term averaged over i = 1 only
        k_step = 0.5 * (sq(th - v1_0) + sq(th - v1_1)) + 0.5 * sq(th - v0_1)
    x1_0, x1_1 = a + (1 - t0) * th, zt1 + (1 - t1) * th
    x0_0, x0_1 = a - t0 * th, zt1 - t1 * th
    cons = sq(x1_1 - x1_0) + sq(x0_1 - x0_0)
    assert float(out.k_step.detach()) == pytest.approx(k_step, rel=1e-5)
    assert float(out.consistency.detach()) == pytest.approx(cons, rel=1e-5)
    assert float(out.total.detach()) == pytest.approx(k_step + 0.1 * cons, rel=1e-5)
    torch.testing.assert_close(out.final_state[0, 0, 0], zt1 + (t2 - t1) * th)
    # gradient: the rollout state and the previous endpoints are stop-gradient, so only v_i carries theta
    out.total.backward()
    if source_term_start == 0:  # d/dθ (1/C)||θ - v||² = (2/C)(θ - v) = θ - v for C = 2
        g_k = 0.5 * ((th - v1_0) + 0.5 * (th - v0_0) + (th - v1_1) + 0.5 * (th - v0_1))
    else:
        g_k = 0.5 * ((th - v1_0) + (th - v1_1)) + 0.5 * (th - v0_1)
    g_c = (x1_1 - x1_0) * 2 / 2 * (1 - t1) + (x0_1 - x0_0) * 2 / 2 * (-t1)
    torch.testing.assert_close(theta.grad, g_k + 0.1 * g_c, rtol=1e-5, atol=1e-6)


def test_exact_straight_flow_has_zero_consistency_and_analytic_k_step():
    """With the straight-line velocity u = z1 - z0 the implied endpoints are constant along the rollout
    (zero consistency loss); starting at t_0 = eps, v^(1)_i = u (1 - t_i + eps) / max(1 - t_i, 1e-3)."""
    torch.manual_seed(0)
    z0, z1 = torch.randn(2, 3, 4, 2, dtype=torch.float64), torch.randn(2, 3, 4, 2, dtype=torch.float64)
    u = z1 - z0
    w = token_weights(None, shape=(2, 3, 4))
    # the default (logit-normal quantile) grid keeps 1 - t_i >= 0.24: the eps offset is negligible
    assert float(on_policy_losses(lambda z, t: u, z0, z1, w, num_steps=8, w0=0.0).k_step) < 1e-7
    # the literal uniform-in-logit grid reaches 1 - t = 1.8e-4 < 1e-3 at i = K - 1, where the clamp matters
    out = on_policy_losses(lambda z, t: u, z0, z1, w, num_steps=8, w0=0.0, spacing="logit_uniform")
    assert float(out.consistency) < 1e-10
    grid = out.time_grid
    eps = float(grid[0])
    # the denominators are clamped at 1e-3 (App. A.3), which matters at the last logit-grid step
    rel = torch.stack([(1 - (1 - grid[i] + eps) / max(1 - float(grid[i]), 1e-3)) ** 2 for i in range(8)]).mean()
    expected = float(rel) * float(weighted_token_sq_error(u.float(), w).mean())
    assert float(out.k_step) == pytest.approx(expected, rel=1e-3)  # float32 losses
    torch.testing.assert_close(out.final_state, (z0 + (1 - 2 * eps) * u).float(), rtol=0, atol=1e-5)


def test_exact_straight_field_has_zero_loss_and_gradient_only_in_the_fixed_form():
    """At i = 0 the rollout state is z0, so eq. 12's literal source target v^(0)_0 is 0: the exact field u = z1 - z0
    pays w0 / K ||u||² and gets a gradient. Starting the source term at i = 1 (default) removes both."""
    torch.manual_seed(3)
    z0, z1 = torch.randn(2, 3, 4, 2), torch.randn(2, 3, 4, 2)
    u = z1 - z0
    w = token_weights(torch.rand(2, 3, 4) > 0.3)
    k = 8
    # (on the literal uniform-in-logit grid, t_1 and 1 - t_{K-1} fall below the 1e-3 clamp and even the exact field
    # misses the clamped targets: see the test above)
    for spacing in ("logit", "uniform"):
        theta = u.clone().requires_grad_(True)  # the exact straight-line field as a leaf
        fixed = on_policy_losses(lambda z, t: theta, z0, z1, w, num_steps=k, spacing=spacing)
        fixed.total.backward()
        scale = float(weighted_token_sq_error(u, w).mean())
        # residual from the t_0 = eps offset only
        assert float(fixed.total.detach()) < 1e-6 * scale, spacing
        assert float(theta.grad.abs().max()) < 1e-4, spacing
        theta.grad = None
        literal = on_policy_losses(lambda z, t: theta, z0, z1, w, num_steps=k, spacing=spacing, source_term_start=0)
        literal.total.backward()
        # the i = 0 source term: w0 / K * ||u - 0||²_w (averaged over the batch)
        assert float(literal.k_step.detach()) == pytest.approx(0.5 / k * scale, rel=1e-3), spacing
        # its gradient, (w0 / K) * 2 w u / C per entry, batch-averaged
        expected_grad = 0.5 / k * 2 * w[..., None] * u / 2 / 2
        torch.testing.assert_close(theta.grad, expected_grad, rtol=1e-3, atol=1e-5)
    with pytest.raises(ValueError, match="source_term_start"):
        on_policy_losses(lambda z, t: u, z0, z1, w, num_steps=k, source_term_start=2)
    with pytest.raises(ValueError, match="num_steps"):
        on_policy_losses(lambda z, t: u, z0, z1, w, num_steps=1)
    assert float(on_policy_losses(lambda z, t: u, z0, z1, w, num_steps=1, source_term_start=0).k_step) > 0


def test_consistency_is_unmasked_by_default():
    torch.manual_seed(1)
    z0, z1 = torch.randn(1, 2, 3, 2), torch.randn(1, 2, 3, 2)
    vis = torch.zeros(1, 2, 3, dtype=torch.bool)
    vis[0, 0, 0] = True
    w = token_weights(vis)

    def fn(z, t):
        return torch.sin(3 * z) * t.view(-1, 1, 1, 1)

    a = on_policy_losses(fn, z0, z1, w, num_steps=3)
    b = on_policy_losses(fn, z0, z1, None, num_steps=3)
    c = on_policy_losses(fn, z0, z1, w, num_steps=3, consistency_weighted=True)
    assert float(a.consistency) == pytest.approx(float(b.consistency), rel=1e-6)
    assert float(a.k_step) != pytest.approx(float(b.k_step), rel=1e-3)
    assert float(c.consistency) != pytest.approx(float(a.consistency), rel=1e-3)


def test_weighted_sq_error_shapes():
    d = torch.ones(2, 3, 4, 5)
    torch.testing.assert_close(weighted_token_sq_error(d), torch.ones(2))
    with pytest.raises(ValueError, match="weights"):
        weighted_token_sq_error(d, torch.ones(2, 3, 5))
    assert math.isclose(float(weighted_token_sq_error(d, token_weights(None, shape=(2, 3, 4)))[0]), 1.0, rel_tol=1e-6)
