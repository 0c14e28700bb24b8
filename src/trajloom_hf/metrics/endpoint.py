"""Point-accuracy metrics: VEPE (paper eq. 17, reference §5.4), ADE/FDE and best-of-K minADE/minFDE.

Tracks are pixels. Validity = reference visibility AND both positions finite (NaN coordinates never count).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


def _arrays(pred, ref, visibility, pred_name="predictions", ref_name="references"):
    pred = np.asarray(pred, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if ref.ndim < 3 or ref.shape[-1] != 2:
        raise ValueError(f"`{ref_name}` must have shape [..., T, N, 2], got {list(ref.shape)}")
    if pred.shape != ref.shape:
        raise ValueError(f"`{pred_name}` {list(pred.shape)} does not match `{ref_name}` {list(ref.shape)}")
    vis = np.ones(ref.shape[:-1], bool) if visibility is None else np.asarray(visibility).astype(bool)
    if vis.shape != ref.shape[:-1]:
        raise ValueError(f"`visibility` must have shape {list(ref.shape[:-1])}, got {list(vis.shape)}")
    return pred, ref, vis & np.isfinite(ref).all(-1)


def vepe(predictions, references, visibility=None) -> float:
    """Visibility-masked endpoint error in px (eq. 17): the mean of ``||p_hat - p||_2`` pooled over all valid
    ``(video, t, n)`` (point-weighted, as the official script; not a mean of per-video means).

    Args:
        predictions, references: ``[V, T, N, 2]`` (or ``[T, N, 2]``) pixels.
        visibility: reference visibility ``[V, T, N]``; None = all visible.
    """
    pred, ref, vis = _arrays(predictions, references, visibility)
    valid = vis & np.isfinite(pred).all(-1)
    if not valid.any():
        raise ValueError("no valid (visible, finite) point to evaluate: `visibility` is all False")
    err = np.linalg.norm(np.where(valid[..., None], pred - ref, 0.0), axis=-1)
    return float(err[valid].mean())


@dataclass
class DisplacementErrors:
    """ADE/FDE averaged over samples, and best-of-K minADE/minFDE (px)."""

    ade: float
    fde: float
    min_ade: float
    min_fde: float
    num_samples: int


def displacement_errors(predictions, references, visibility=None) -> DisplacementErrors:
    """Multi-sample accuracy over visible points.

    Args:
        predictions: ``[V, K, T, N, 2]`` px (K samples per video) or ``[V, T, N, 2]`` (K = 1).
        references: ``[V, T, N, 2]`` px; visibility ``[V, T, N]``.

    Per video and sample, ADE is the mean error over visible ``(t, n)``; FDE the mean error at each point's last
    visible frame. minADE/minFDE take the best sample per video (best-of-K); all are then averaged over videos.
    """
    pred = np.asarray(predictions, dtype=np.float64)
    ref = np.asarray(references, dtype=np.float64)
    if pred.ndim == ref.ndim:
        pred = pred[:, None]
    if pred.ndim != 5 or ref.ndim != 4 or pred.shape[:1] + pred.shape[2:] != ref.shape:
        raise ValueError(f"`predictions` must be [V, K, T, N, 2] matching `references` [V, T, N, 2], got "
                         f"{list(pred.shape)} and {list(ref.shape)}")
    _, _, vis = _arrays(ref, ref, visibility)
    err = np.linalg.norm(pred - ref[:, None], axis=-1)  # [V, K, T, N]
    err = np.where(np.isfinite(err), err, np.inf)
    w = vis[:, None].astype(np.float64)  # [V, 1, T, N]
    count = w.sum((2, 3))
    if (count == 0).any():
        raise ValueError("a video has no visible point: ADE is undefined (drop it or fix `visibility`)")
    ade = np.where(w > 0, err, 0.0).sum((2, 3)) / count  # [V, K]
    # last visible frame of each point
    t = vis.shape[1]
    last = t - 1 - np.argmax(vis[:, ::-1], axis=1)  # [V, N]
    has = vis.any(1)  # [V, N]
    idx = np.broadcast_to(last[:, None, None, :], (err.shape[0], err.shape[1], 1, err.shape[3]))
    final = np.take_along_axis(err, idx, axis=2)[:, :, 0]  # [V, K, N]
    fde = np.where(has[:, None], final, 0.0).sum(-1) / np.maximum(has.sum(-1), 1)[:, None]
    return DisplacementErrors(float(ade.mean()), float(fde.mean()), float(ade.min(1).mean()), float(fde.min(1).mean()),
                              int(pred.shape[1]))
