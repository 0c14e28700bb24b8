"""Future-visibility scores: how well predicted per-point visibility matches the reference (tracker) visibility.

The paper trains a visibility head (App. E.3) but reports no visibility metric; these scores make the head
measurable. Occlusion is the minority class (most points stay visible), so besides the accuracy the precision,
recall and F1 of the *occluded* class are reported: a head that always says "visible" scores a high accuracy and an
occlusion F1 of 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class VisibilityScores:
    """``accuracy`` over all ``(video, sample, t, n)``; ``occlusion_*`` for the occluded class (pooled counts)."""

    accuracy: float
    occlusion_precision: float
    occlusion_recall: float
    occlusion_f1: float


def _as_bool(x, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype == bool:
        return a
    if not np.issubdtype(a.dtype, np.number):
        raise TypeError(f"`{name}` must be boolean or 0/1 numbers, got dtype {a.dtype}")
    if not np.isin(a, (0, 1)).all():
        raise ValueError(f"`{name}` must hold only 0/1 (visible = 1), got values in [{a.min()}, {a.max()}]")
    return a.astype(bool)


def visibility_scores(predictions, references) -> VisibilityScores:
    """Score predicted visibility ``[V, K, T, N]`` (K samples) or ``[V, T, N]`` against ``references [V, T, N]``.

    Both are boolean (or 0/1), visible = True. Every sample counts (pooled over samples, videos, frames and points).
    Precision / recall of an empty class are defined as 0 (no occluded prediction or no occluded reference).
    """
    pred, ref = _as_bool(predictions, "predictions"), _as_bool(references, "references")
    if pred.ndim == ref.ndim:
        pred = pred[:, None]
    if ref.ndim != 3 or pred.ndim != 4 or pred.shape[:1] + pred.shape[2:] != ref.shape:
        raise ValueError(f"`predictions` must be [V, K, T, N] or [V, T, N] matching `references` [V, T, N], got "
                         f"{list(np.shape(predictions))} and {list(ref.shape)}")
    ref = np.broadcast_to(ref[:, None], pred.shape)
    accuracy = float((pred == ref).mean())
    occ_pred, occ_ref = ~pred, ~ref
    tp = float(np.logical_and(occ_pred, occ_ref).sum())
    precision = tp / occ_pred.sum() if occ_pred.any() else 0.0
    recall = tp / occ_ref.sum() if occ_ref.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return VisibilityScores(accuracy, float(precision), float(recall), float(f1))
