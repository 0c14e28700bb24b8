"""Mean acceleration magnitude of tracks: a reference-free diagnostic of temporal jitter.

``a(t) = x(t + 1) - 2 x(t) + x(t - 1)`` (px / frame^2) at every frame whose two neighbours exist; the mean of
``||a||_2`` over the (frame, point) triplets visible at ``t - 1``, ``t`` and ``t + 1`` with finite coordinates. Physical
motion (gravity, bounces, a smoothly moving camera) has a small mean; a decoder's frame-to-frame jitter adds to it
regardless of how close the positions are (paper App. B.2: equal per-frame error, alternating bias). FVMD histograms
velocities and accelerations, so it sees this jitter; ADE does not. Compare a forecast's value with the ground
truth's: it is not an error score (lower is not better below the ground truth's value).
"""

from __future__ import annotations

import numpy as np

from ..validation import as_bool_mask


def mean_acceleration(tracks, visibility=None) -> float:
    """Mean ``||x(t+1) - 2 x(t) + x(t-1)||_2`` in px / frame^2.

    Args:
        tracks: ``[..., T, N, 2]`` pixels (``T >= 3``); leading dims (videos, samples) are pooled.
        visibility: ``[..., T, N]`` bool, or None (all visible). A triplet counts when all three frames are visible
            and finite.
    Returns:
        the mean over all valid triplets (NaN if there is none).
    """
    x = np.asarray(tracks, dtype=np.float64)
    if x.ndim < 3 or x.shape[-1] != 2:
        raise ValueError(f"`tracks` must have shape [..., T, N, 2], got {list(x.shape)}")
    if x.shape[-3] < 3:
        raise ValueError(f"`tracks` needs at least 3 frames (dim -3) for an acceleration, got {x.shape[-3]}")
    vis = np.ones(x.shape[:-1], bool) if visibility is None else as_bool_mask(visibility, "visibility")
    if vis.shape != x.shape[:-1]:
        raise ValueError(f"`visibility` must have shape {list(x.shape[:-1])}, got {list(vis.shape)}")
    vis = vis & np.isfinite(x).all(-1)
    acc = x[..., 2:, :, :] - 2.0 * x[..., 1:-1, :, :] + x[..., :-2, :, :]
    valid = vis[..., 2:, :] & vis[..., 1:-1, :] & vis[..., :-2, :]
    if not valid.any():
        return float("nan")
    return float(np.linalg.norm(np.where(valid[..., None], acc, 0.0), axis=-1)[valid].mean())
