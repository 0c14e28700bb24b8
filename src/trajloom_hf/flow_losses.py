"""Training objectives of TrajLoom-Flow and its visibility head (paper §3.3.2–3.3.3, eqs. 8–14, App. A.2–A.3, E.3).

All losses are computed in float32 whatever the model dtype. Latents are ``[B, K, N, C]`` (K latent steps,
N grid tokens, C channels) in the generator's normalised latent space; token weights are ``[B, K, N]``.

The training-time samplers of the flow (flow time ``t``, source ``z_0``, state ``z_t``) live with the scheduler
(:mod:`trajloom_hf.schedulers.scheduling_flow_match_traj`) so that training and inference share one source
distribution; they are re-exported here for the training scripts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from .schedulers.scheduling_flow_match_traj import flow_time_grid, interpolate_flow, sample_flow_time, sample_source

__all__ = [
    "OnPolicyLosses",
    "flow_matching_loss",
    "interpolate_flow",
    "on_policy_losses",
    "sample_flow_time",
    "sample_source",
    "token_weights",
    "visibility_bce_loss",
    "weighted_token_sq_error",
]

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def token_weights(
    token_visibility: Optional[torch.Tensor],
    *,
    invisible_weight: float = 0.01,
    shape: Optional[tuple] = None,
    device=None,
) -> torch.Tensor:
    """Normalised token weights ``w_Λ`` ``[B, K, N]`` float32 of eq. 9, each sample summing to 1.

    ``m_tok = invisible_weight + (1 - invisible_weight) * visibility`` (1 for visible tokens, 0.01 for invisible ones,
    App. A.2), then ``w = m_tok / Σ m_tok``. ``token_visibility`` is the future visibility pooled to the token grid
    (``encoding.latent_visibility``), bool or in [0, 1]. ``None`` gives uniform weights for ``shape = (B, K, N)``.
    """
    if not 0.0 <= invisible_weight <= 1.0:
        raise ValueError(f"`invisible_weight` must be in [0, 1], got {invisible_weight}")
    if token_visibility is None:
        if shape is None or len(shape) != 3:
            raise ValueError(f"`shape` must be (B, K, N) when `token_visibility` is None, got {shape!r}")
        b, k, n = shape
        return torch.full((b, k, n), 1.0 / (k * n), dtype=torch.float32, device=device)
    if token_visibility.ndim != 3:
        raise ValueError(f"`token_visibility` must have shape [B, K, N], got {list(token_visibility.shape)}")
    m = token_visibility.to(torch.float32)
    if m.numel() and (m.min() < 0 or m.max() > 1):
        raise ValueError(f"`token_visibility` must be bool or in [0, 1], got values in [{m.min():.3g}, {m.max():.3g}]")
    m = invisible_weight + (1.0 - invisible_weight) * m
    total = m.sum(dim=(1, 2), keepdim=True)
    if (total <= 0).any():
        raise ValueError("all token weights of a sample are 0 (no visible token and invisible_weight=0)")
    return m / total


def weighted_token_sq_error(diff: torch.Tensor, weights: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``||f||²_{w_Λ} = (1/C) Σ_{k,n} w(k, n) ||f(k, n)||²`` per sample ``[B]`` (eqs. 9, 12); ``diff`` is ``[B, K, N, C]``.

    ``weights=None`` is the unmasked norm (uniform ``1/(K N)``), i.e. the mean over (K, N, C).
    """
    if diff.ndim != 4:
        raise ValueError(f"`diff` must have shape [B, K, N, C], got {list(diff.shape)}")
    sq = diff.to(torch.float32).pow(2).mean(dim=-1)  # (1/C) ||.||² per token
    if weights is None:
        return sq.mean(dim=(1, 2))
    if weights.shape != sq.shape:
        raise ValueError(f"`weights` must have shape {list(sq.shape)} ([B, K, N]), got {list(weights.shape)}")
    return (sq * weights.to(torch.float32)).sum(dim=(1, 2))


def flow_matching_loss(
    velocity_pred: torch.Tensor, velocity_target: torch.Tensor, weights: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Visibility-weighted rectified-flow loss ``L_fm`` (eq. 9), averaged over the batch; scalar float32.

    Args:
        velocity_pred: model output ``v_θ(z_t, t, c)`` ``[B, K, N, C]``.
        velocity_target: ``u = z_1 - z_0`` ``[B, K, N, C]``.
        weights: ``[B, K, N]`` from :func:`token_weights` (``None``: plain mean).
    """
    if velocity_pred.shape != velocity_target.shape:
        raise ValueError(
            f"`velocity_pred` {list(velocity_pred.shape)} and `velocity_target` {list(velocity_target.shape)} differ"
        )
    return weighted_token_sq_error(velocity_pred.float() - velocity_target.float(), weights).mean()


@dataclass
class OnPolicyLosses:
    """Result of :func:`on_policy_losses`.

    Attributes:
        k_step: ``L_k-step`` (eq. 12), scalar.
        consistency: ``L_cons`` (eq. 13), scalar (0 when K = 1).
        total: ``L_k-step + γ L_cons`` — multiply by ``λ_k-step`` and add to ``L_fm`` (eq. 14).
        time_grid: the rollout grid ``[K + 1]`` (float64).
        final_state: the detached rollout end ``z̃_K`` ``[B, K, N, C]``.
    """

    k_step: torch.Tensor
    consistency: torch.Tensor
    total: torch.Tensor
    time_grid: torch.Tensor
    final_state: torch.Tensor


def on_policy_losses(
    velocity_fn: VelocityFn,
    source: torch.Tensor,
    target: torch.Tensor,
    weights: Optional[torch.Tensor] = None,
    *,
    num_steps: int = 8,
    spacing: str = "logit",
    t_eps: float = 1e-5,
    denom_eps: float = 1e-3,
    w1: float = 1.0,
    w0: float = 0.5,
    gamma: float = 0.1,
    consistency_weighted: bool = False,
    source_term_start: int = 1,
) -> OnPolicyLosses:
    """On-policy K-step rollout and endpoint-consistency losses (eqs. 10–13, App. A.3).

    A detached Euler rollout ``z̃_{i+1} = z̃_i + (t_{i+1} - t_i) sg[v_i]`` from ``z̃_0 = z_0`` over the grid
    ``t_eps = t_0 < ... < t_K = 1 - t_eps`` (logit-spaced by default), with ``v_i = velocity_fn(z̃_i, t_i)`` keeping
    its graph. Targets ``v^(1)_i = (z_1 - z̃_i) / max(1 - t_i, denom_eps)`` and ``v^(0)_i = (z̃_i - z_0) / max(t_i,
    denom_eps)``; ``L_k-step = (1/K) Σ_i w1 ||v_i - v^(1)_i||²_w + w0 ||v_i - v^(0)_i||²_w`` and
    ``L_cons = 1/(K-1) Σ_{i≥1} ||ẑ^(1)_i - sg ẑ^(1)_{i-1}||² + ||ẑ^(0)_i - sg ẑ^(0)_{i-1}||²`` with
    ``ẑ^(1)_i = z̃_i + (1 - t_i) v_i``, ``ẑ^(0)_i = z̃_i - t_i v_i``; the consistency term is unmasked (App. A.3)
    unless ``consistency_weighted``.

    The source term and ``i = 0``: the rollout starts at ``z̃_0 = z_0``, so ``v^(0)_0 = 0`` identically and the
    literal eq. 12 pulls ``v_0`` towards 0, i.e. the exact straight-line field ``v = z_1 - z_0`` has loss
    ``w0 / K ||z_1 - z_0||²`` and a non-zero gradient. ``source_term_start=1`` (default) sums the source term over
    ``i = 1 .. K-1`` only and averages it over those ``K - 1`` steps, so that field has zero loss (up to the
    ``t_eps`` offset of the grid); ``source_term_start=0`` is the literal eq. 12 (``(1/K) Σ_{i=0}^{K-1}`` of both).

    Args:
        velocity_fn: ``(z [B, K, N, C] float32, t [B] float32) -> v [B, K, N, C]`` (e.g. the transformer with a
            context computed once by ``prepare_context``).
        source / target: ``z_0`` and ``z_1`` ``[B, K, N, C]`` (apply to a sub-batch to bound the cost: K model
            evaluations with gradients).
        weights: token weights ``[B, K, N]`` (:func:`token_weights`); ``None`` for uniform.
        source_term_start: first rollout step of the ``w0`` source term: 1 (default) or 0 (literal eq. 12).
    """
    if source_term_start not in (0, 1) or isinstance(source_term_start, bool):
        raise ValueError(f"`source_term_start` must be 0 (literal eq. 12) or 1, got {source_term_start!r}")
    if source_term_start == 1 and num_steps < 2:
        raise ValueError(f"`source_term_start=1` needs `num_steps` >= 2 (the source term starts at i = 1), got {num_steps}")
    if source.shape != target.shape or source.ndim != 4:
        raise ValueError(f"`source` {list(source.shape)} and `target` {list(target.shape)} must both be [B, K, N, C]")
    grid = flow_time_grid(num_steps, spacing, t_eps)
    z0, z1 = source.detach().to(torch.float32), target.detach().to(torch.float32)
    b = z0.shape[0]
    z = z0
    k1_terms, k0_terms, cons_terms = [], [], []
    prev_x1 = prev_x0 = None
    cons_w = weights if consistency_weighted else None
    for i in range(num_steps):
        t_i, t_next = float(grid[i]), float(grid[i + 1])
        t_vec = torch.full((b,), t_i, dtype=torch.float32, device=z.device)
        v = velocity_fn(z, t_vec).to(torch.float32)
        if v.shape != z.shape:
            raise ValueError(f"`velocity_fn` returned shape {list(v.shape)}, expected {list(z.shape)}")
        target_1 = (z1 - z) / max(1.0 - t_i, denom_eps)
        k1_terms.append(weighted_token_sq_error(v - target_1, weights))
        if i >= source_term_start:
            target_0 = (z - z0) / max(t_i, denom_eps)
            k0_terms.append(weighted_token_sq_error(v - target_0, weights))
        x1_hat = z + (1.0 - t_i) * v
        x0_hat = z - t_i * v
        if i > 0:
            cons_terms.append(
                weighted_token_sq_error(x1_hat - prev_x1, cons_w) + weighted_token_sq_error(x0_hat - prev_x0, cons_w)
            )
        prev_x1, prev_x0 = x1_hat.detach(), x0_hat.detach()
        z = z + (t_next - t_i) * v.detach()
    k_step = (w1 * torch.stack(k1_terms).mean(dim=0) + w0 * torch.stack(k0_terms).mean(dim=0)).mean()
    if cons_terms:
        consistency = torch.stack(cons_terms).mean(dim=0).mean()
    else:
        consistency = torch.zeros((), dtype=torch.float32, device=z.device)
    return OnPolicyLosses(
        k_step=k_step, consistency=consistency, total=k_step + gamma * consistency, time_grid=grid, final_state=z
    )


def visibility_bce_loss(
    logits: torch.Tensor, targets: torch.Tensor, *, pos_weight: Optional[float] = None
) -> torch.Tensor:
    """Binary cross-entropy with logits of the visibility head (App. E.3); scalar float32.

    Args:
        logits: ``[B, K, N]`` per-token logits.
        targets: ``[B, K, N]`` token visibility (bool / 0-1), the future visibility max-pooled to the token grid.
        pos_weight: optional weight of the visible class (the official config's 0 means "off").
    """
    if logits.shape != targets.shape:
        raise ValueError(f"`logits` {list(logits.shape)} and `targets` {list(targets.shape)} must have the same shape")
    pw = None
    if pos_weight:
        pw = torch.tensor(float(pos_weight), dtype=torch.float32, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits.float(), targets.float(), pos_weight=pw)
