"""TrajLoom-VAE training losses (paper §3.2, eqs. 1-5; App. A.1, B.2), on the track grid.

Shapes: ``pred``/``target`` ``[B, T, H_g, W_g, 2]`` or ``[B, T, N, 2]`` (normalised coordinates), ``visibility``
``[B, T, H_g, W_g]`` / ``[B, T, N]``. The official loss is computed on a dense field in which every track is
repeated over its ``s x s`` cell, so every track has the same weight; on the grid each track appears once, which
gives the same normalised means. Differences of positions equal differences of Grid-Anchor offsets up to a
constant that cancels in ``x_hat - x``, so the consistency terms can be computed on either.

Every term is normalised by its own count of valid entries (clamped to >= 1), so an all-invisible clip gives a
finite zero loss instead of NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

import torch
import torch.nn.functional as F


@dataclass
class VAELossOutput:
    """``loss = rec + lambda_t temporal + lambda_s spatial + beta kl`` and its parts (scalars)."""

    loss: torch.Tensor
    reconstruction: torch.Tensor
    temporal: torch.Tensor
    spatial: torch.Tensor
    kl: torch.Tensor


def _grid(x: torch.Tensor, grid_hw: Optional[Tuple[int, int]], coords: bool) -> torch.Tensor:
    """Bring ``[B, T, N(, 2)]`` to ``[B, T, H_g, W_g(, 2)]``."""
    if grid_hw is None:
        return x
    if x.ndim != (4 if coords else 3) or x.shape[2] != grid_hw[0] * grid_hw[1]:
        raise ValueError(
            f"`grid_hw` {tuple(grid_hw)} needs inputs [B, T, N={grid_hw[0] * grid_hw[1]}{', 2' if coords else ''}], "
            f"got {list(x.shape)}"
        )
    lead = x.shape[:2]
    return x.reshape(*lead, grid_hw[0], grid_hw[1], *(x.shape[3:] if coords else ()))


def masked_huber_loss(pred: torch.Tensor, target: torch.Tensor, visibility: Optional[torch.Tensor], delta: float = 1.0):
    """Eq. 4: Huber(x_hat - x) averaged over visible (t, p) and the 2 coordinates. Shapes ``[..., 2]`` and ``[...]``."""
    err = F.huber_loss(pred.float(), target.float(), delta=delta, reduction="none").mean(-1)
    if visibility is None:
        return err.mean()
    m = visibility.float()
    return (err * m).sum() / m.sum().clamp_min(1.0)


def temporal_velocity_loss(pred: torch.Tensor, target: torch.Tensor, visibility: Optional[torch.Tensor]):
    """Eq. 1: ``|| d_t x_hat - d_t x ||_1`` over pairs visible at t and t-1, normalised by their count.

    Time is dim 1: ``pred``/``target`` ``[B, T, ..., 2]``, ``visibility`` ``[B, T, ...]``.
    """
    dp = pred[:, 1:].float() - pred[:, :-1].float()
    dt = target[:, 1:].float() - target[:, :-1].float()
    err = (dp - dt).abs().sum(-1)  # L1 norm of the 2-vector
    if visibility is None:
        return err.mean()
    m = (visibility[:, 1:] & visibility[:, :-1]).float()
    return (err * m).sum() / m.sum().clamp_min(1.0)


def spatial_neighbour_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    visibility: Optional[torch.Tensor],
    hops: Sequence[int] = (1, 2, 4),
    weights: Optional[Sequence[float]] = None,
):
    """Eq. 2: multiscale neighbour relations ``|| D_d x_hat - D_d x ||_1`` for horizontal and vertical hops ``d``.

    ``pred``/``target`` ``[B, T, H_g, W_g, 2]``, ``visibility`` ``[B, T, H_g, W_g]``. Each hop's term is normalised
    by its count of both-visible pairs, weighted by ``alpha_d = 1/d`` (App. A.1) and the weighted sum divided by
    ``sum alpha_d``. Hops that do not fit the grid are skipped.
    """
    if pred.ndim != 5 or pred.shape[-1] != 2:
        raise ValueError(f"`pred`/`target` must be on the grid [B, T, H_g, W_g, 2], got {list(pred.shape)}")
    weights = list(weights) if weights is not None else [1.0 / d for d in hops]
    if len(weights) != len(hops):
        raise ValueError(f"`weights` must have one entry per hop ({len(hops)}), got {len(weights)}")
    p, t = pred.float(), target.float()
    total = p.new_zeros(())
    norm = 0.0
    for d, a in zip(hops, weights):
        for axis in (2, 3):  # vertical (rows), horizontal (columns)
            size = p.shape[axis]
            if d >= size:
                continue
            sl_hi = [slice(None)] * p.ndim
            sl_lo = [slice(None)] * p.ndim
            sl_hi[axis], sl_lo[axis] = slice(d, None), slice(None, size - d)
            err = ((p[tuple(sl_hi)] - p[tuple(sl_lo)]) - (t[tuple(sl_hi)] - t[tuple(sl_lo)])).abs().sum(-1)
            if visibility is None:
                term = err.mean()
            else:
                m = (visibility[tuple(sl_hi[:-1])] & visibility[tuple(sl_lo[:-1])]).float()
                if not m.any():  # no both-visible pair at this hop: it has no say (and no weight)
                    continue
                term = (err * m).sum() / m.sum()
            total = total + a * term
            norm += a
    return total / norm if norm > 0 else total


def vae_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    visibility: Optional[torch.Tensor],
    kl: Optional[torch.Tensor],
    *,
    grid_hw: Optional[Tuple[int, int]] = None,
    beta: float = 5e-5,
    lambda_temporal: float = 0.1,
    lambda_spatial: float = 0.2,
    huber_delta: float = 1.0,
    hops: Sequence[int] = (1, 2, 4),
) -> VAELossOutput:
    """Eq. 5: ``L_rec + lambda_t L_temporal + lambda_s L_spatial + beta KL`` (paper values as defaults).

    Args:
        pred, target: ``[B, T, N, 2]`` normalised coordinates (or already ``[B, T, H_g, W_g, 2]`` with grid_hw None).
        visibility: ``[B, T, N]`` bool or None (all visible).
        kl: per-sample KL ``[B]`` from ``latent_dist.kl()``, or None (deterministic autoencoder).
        grid_hw: ``(H_g, W_g)`` to fold N into the grid for the spatial term.
    """
    if pred.shape != target.shape:
        raise ValueError(f"`pred` {list(pred.shape)} and `target` {list(target.shape)} must have the same shape")
    if visibility is not None:
        if tuple(visibility.shape) != tuple(target.shape[:-1]):
            raise ValueError(f"`visibility` must have shape {list(target.shape[:-1])}, got {list(visibility.shape)}")
        visibility = visibility.bool()
    rec = masked_huber_loss(pred, target, visibility, huber_delta)
    tmp = temporal_velocity_loss(pred, target, visibility) if lambda_temporal else rec.new_zeros(())
    if lambda_spatial:
        if grid_hw is None and pred.ndim != 5:
            raise ValueError(f"the spatial term needs the grid: pass `grid_hw` for inputs {list(pred.shape)} (or [B, T, H_g, W_g, 2])")
        vis_g = None if visibility is None else _grid(visibility, grid_hw, coords=False)
        spa = spatial_neighbour_loss(_grid(pred, grid_hw, True), _grid(target, grid_hw, True), vis_g, hops)
    else:
        spa = rec.new_zeros(())
    kl_mean = kl.float().mean() if kl is not None else rec.new_zeros(())
    loss = rec + lambda_temporal * tmp + lambda_spatial * spa + beta * kl_mean
    return VAELossOutput(loss=loss, reconstruction=rec, temporal=tmp, spatial=spa, kl=kl_mean)
