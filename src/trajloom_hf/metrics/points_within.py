"""Points within thresholds: the fraction of visible future points whose forecast lies within 1, 2, 4, 8 and 16 px of
the ground truth, and their mean (the accuracy table of "Forecasting Motion in the Wild", Thakkar et al. 2026,
google-deepmind/motion-forecasting: ``pts_within_{1,2,4,8,16}`` and ``average_pts_within_thresh``).

Their definition, which this follows: a point counts when the reference marks it visible; it is within ``d`` when
its squared distance is strictly below ``d**2``; fractions are taken per example over its visible (frame, point)
pairs of the forecast frames, averaged over the thresholds, then over examples. Their pixels are those of a
256 x 256 frame (tracks in [0, 1] of the padded-square crop times 256): ``frame_size=(H, W)`` rescales our pixels
isotropically by ``256 / max(H, W)`` (the padded square of the frame), ``frame_size=None`` keeps native pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

THRESHOLDS = (1, 2, 4, 8, 16)
REFERENCE_SIZE = 256


@dataclass
class PointsWithin:
    """``fractions[d]``: mean fraction of visible points within ``d`` px (in [0, 1]); ``average``: their mean."""

    fractions: Dict[float, float]
    average: float
    scale: float  # the factor applied to the pixel coordinates before thresholding
    num_samples: int


def points_within(predictions, references, visibility=None, thresholds: Sequence[float] = THRESHOLDS,
                  frame_size: Optional[Tuple[int, int]] = None, reference_size: int = REFERENCE_SIZE) -> PointsWithin:
    """Fraction of points within each threshold.

    Args:
        predictions: ``[V, K, T, N, 2]`` px (K samples per video) or ``[V, T, N, 2]`` (K = 1).
        references: ``[V, T, N, 2]`` px, the forecast frames only. visibility: ``[V, T, N]`` (None = all visible).
        thresholds: distances in pixels (after rescaling), all > 0.
        frame_size: ``(H, W)`` of the frames: coordinates are scaled by ``reference_size / max(H, W)`` so thresholds
            are pixels of a ``reference_size`` square (the peer's 256); None keeps native pixels.

    Per video and sample the fraction is over its visible ``(t, n)``; it is averaged over the K samples (the peer
    draws one sample; the mean over K is its expectation, not a best-of-K) and then over videos. A video with no
    visible point is a ValueError, and so is a non-finite prediction at a visible point.
    """
    pred, ref = np.asarray(predictions), np.asarray(references)
    if pred.ndim == ref.ndim:
        pred = pred[:, None]
    if pred.ndim != 5 or ref.ndim != 4 or ref.shape[-1] != 2 or pred.shape[:1] + pred.shape[2:] != ref.shape:
        raise ValueError(f"`predictions` must be [V, K, T, N, 2] matching `references` [V, T, N, 2], got "
                         f"{list(pred.shape)} and {list(ref.shape)}")
    vis = np.ones(ref.shape[:-1], bool) if visibility is None else np.asarray(visibility).astype(bool)
    if vis.shape != ref.shape[:-1]:
        raise ValueError(f"`visibility` must have shape {list(ref.shape[:-1])}, got {list(vis.shape)}")
    thresholds = tuple(float(d) for d in thresholds)
    if not thresholds or min(thresholds) <= 0:
        raise ValueError(f"`thresholds` must be positive distances in px, got {thresholds}")
    if frame_size is None:
        scale = 1.0
    else:
        if len(frame_size) != 2 or min(frame_size) <= 0:
            raise ValueError(f"`frame_size` must be (height, width) > 0, got {frame_size}")
        scale = float(reference_size) / max(frame_size)
    vis = vis & np.isfinite(ref).all(-1)
    count = vis.sum((1, 2))  # [V]
    if (count == 0).any():
        raise ValueError(f"video {int(np.argmin(count))} has no visible point: the fractions are undefined")
    d = (pred.astype(np.float64) - ref[:, None].astype(np.float64)) * scale
    sq = np.einsum("...i,...i->...", d, d)  # [V, K, T, N]
    if not np.isfinite(sq[np.broadcast_to(vis[:, None], sq.shape)]).all():
        raise ValueError("`predictions` has NaN/inf positions at visible reference points")
    fractions = {}
    for thr in thresholds:
        hit = (sq < thr * thr) & vis[:, None]
        fractions[thr] = float((hit.sum((2, 3)) / count[:, None]).mean())
    return PointsWithin(fractions, float(np.mean(list(fractions.values()))), scale, int(pred.shape[1]))
