"""MVD, the motion-vector histogram distance of "Forecasting Motion in the Wild" (Thakkar et al. 2026,
google-deepmind/motion-forecasting, ``metrics/mvd.py``), written from its definition. Per example (lower is better):

1. both track sets are mapped into a ``[0, 256]^2`` box by the per-axis min/max of every coordinate, prediction and
   reference, at a (frame, point) visible in either set (a degenerate axis keeps range 1);
2. each point gets a spatial cell of ``8 x 8`` (of the ``32 x 32`` grid) from its position at the first frame, clipped
   to the grid; time is cut into cubes of 8 consecutive motion vectors (the trailing remainder is dropped; fewer
   than 8 vectors give an all-zero histogram);
3. velocity ``x_{t+1} - x_t`` (visible at both frames) and acceleration ``v_{t+1} - v_t`` (visible at all three)
   vectors get an angle bin ``floor((atan2(dx, dy) + pi) / (2 pi / 8))`` (8 bins; ``atan2`` of x over y, as theirs)
   and a weight ``ceil(log2(min(|m|, 255) + 1)) / 8`` in [0, 1];
4. per (cube, cell) the weights are summed per angle bin and divided by the number of visible vectors there;
5. MVD is the L2 distance of the concatenated velocity and acceleration histograms of prediction and reference.

Each set is masked with its own visibility (the peer: the predicted visibility for the forecast, the GT's for the
reference). The peer scores the whole window including the conditioning frames copied from the GT; ``trajloom
evaluate`` passes the last history frame followed by the forecast window, so cells come from the observed anchor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GRID_SIZE, CELL_SIZE, CUBE_FRAMES, ANGLE_BINS, MAGNITUDE_BINS = 256, 8, 8, 8, 256


@dataclass
class MotionVectorDistance:
    """``value``: MVD averaged over videos and samples; ``per_video`` ``[V]`` (mean over samples)."""

    value: float
    per_video: np.ndarray
    num_samples: int


def motion_vector_histogram(tracks: np.ndarray, visibility: np.ndarray, motion: str = "velocity") -> np.ndarray:
    """Flat histogram ``[cubes * 32 * 32 * 8]`` (``[32 * 32 * 8]`` zeros when there are < 8 vectors) of tracks
    ``[T, N, 2]`` already in the ``[0, 256]`` box and ``visibility [T, N]`` bool (steps 2-4 of the module docstring)."""
    if motion not in ("velocity", "acceleration"):
        raise ValueError(f"`motion` must be 'velocity' or 'acceleration', got {motion!r}")
    tracks = np.asarray(tracks, np.float64)
    vis = np.asarray(visibility, bool)
    cells = GRID_SIZE // CELL_SIZE
    vel = tracks[1:] - tracks[:-1]
    if motion == "velocity":
        vec, ok = vel, vis[1:] & vis[:-1]
    else:
        vec, ok = vel[1:] - vel[:-1], vis[2:] & vis[1:-1] & vis[:-2]
    cubes = vec.shape[0] // CUBE_FRAMES
    if cubes == 0:
        return np.zeros(cells * cells * ANGLE_BINS)
    used = cubes * CUBE_FRAMES
    vec, ok = vec[:used], ok[:used]
    cx = np.clip(np.floor(tracks[0, :, 0] / CELL_SIZE), 0, cells - 1).astype(np.int64)
    cy = np.clip(np.floor(tracks[0, :, 1] / CELL_SIZE), 0, cells - 1).astype(np.int64)
    angle = np.arctan2(vec[..., 0], vec[..., 1])
    abin = np.clip(np.floor((angle + np.pi) / (2 * np.pi / ANGLE_BINS)), 0, ANGLE_BINS - 1).astype(np.int64)
    mag = np.clip(np.linalg.norm(vec, axis=-1), 0, MAGNITUDE_BINS - 1)
    weight = np.ceil(np.clip(np.log2(mag + 1), 0, np.log2(MAGNITUDE_BINS))) / np.log2(MAGNITUDE_BINS)
    cell = (np.arange(used) // CUBE_FRAMES)[:, None] * cells * cells + (cy * cells + cx)[None]  # [used, N]
    size = cubes * cells * cells
    counts = np.bincount(cell[ok], minlength=size)
    hist = np.bincount((cell * ANGLE_BINS + abin)[ok], weights=weight[ok], minlength=size * ANGLE_BINS)
    hist = hist.reshape(size, ANGLE_BINS)
    hist[counts > 0] /= counts[counts > 0, None]
    return hist.reshape(-1)


def _to_box(pred, ref, pred_vis, ref_vis):
    """Both sets mapped into ``[0, 256]^2`` by the joint per-axis min/max at (t, n) visible in either (step 1)."""
    both = pred_vis | ref_vis
    pts = np.concatenate([ref[both], pred[both]])
    low, high = pts.min(0), pts.max(0)
    span = np.where(high - low < 1e-8, 1.0, high - low)
    return (pred - low) / span * GRID_SIZE, (ref - low) / span * GRID_SIZE


def motion_vector_distance(predictions, references, prediction_visibility=None,
                           reference_visibility=None) -> MotionVectorDistance:
    """MVD (module docstring) per video and sample, averaged.

    Args:
        predictions: ``[V, K, T, N, 2]`` px or ``[V, T, N, 2]`` (K = 1); references ``[V, T, N, 2]`` px. T >= 3.
        prediction_visibility: ``[V, K, T, N]`` or ``[V, T, N]`` (shared by all samples); None = all visible.
        reference_visibility: ``[V, T, N]``; None = all visible.

    Coordinates must be finite; a video whose sets have no visible point is a ValueError.
    """
    pred, ref = np.asarray(predictions, np.float64), np.asarray(references, np.float64)
    if pred.ndim == ref.ndim:
        pred = pred[:, None]
    if pred.ndim != 5 or ref.ndim != 4 or ref.shape[-1] != 2 or pred.shape[:1] + pred.shape[2:] != ref.shape:
        raise ValueError(f"`predictions` must be [V, K, T, N, 2] matching `references` [V, T, N, 2], got "
                         f"{list(pred.shape)} and {list(ref.shape)}")
    if ref.shape[1] < 3:
        raise ValueError(f"MVD needs at least 3 frames (acceleration), got T = {ref.shape[1]}")
    v, k = pred.shape[:2]
    rvis = np.ones(ref.shape[:-1], bool) if reference_visibility is None else np.asarray(reference_visibility).astype(bool)
    if rvis.shape != ref.shape[:-1]:
        raise ValueError(f"`reference_visibility` must have shape {list(ref.shape[:-1])}, got {list(rvis.shape)}")
    if prediction_visibility is None:
        pvis = np.ones(pred.shape[:-1], bool)
    else:
        pvis = np.asarray(prediction_visibility).astype(bool)
    if pvis.ndim == 3:
        pvis = pvis[:, None]
    if pvis.shape[2:] != ref.shape[1:-1] or pvis.shape[0] != v or pvis.shape[1] not in (1, k):
        raise ValueError(f"`prediction_visibility` must have shape {list(pred.shape[:-1])} or {list(ref.shape[:-1])}, "
                         f"got {list(np.shape(prediction_visibility))}")
    pvis = np.broadcast_to(pvis, pred.shape[:-1])
    if not (np.isfinite(pred).all() and np.isfinite(ref).all()):
        raise ValueError("MVD needs finite coordinates in `predictions` and `references`")
    out = np.zeros((v, k))
    for i in range(v):
        for j in range(k):
            if not (pvis[i, j] | rvis[i]).any():
                raise ValueError(f"video {i} (sample {j}) has no visible point: MVD is undefined")
            p, r = _to_box(pred[i, j], ref[i], pvis[i, j], rvis[i])
            fp = np.concatenate([motion_vector_histogram(p, pvis[i, j], m) for m in ("velocity", "acceleration")])
            fr = np.concatenate([motion_vector_histogram(r, rvis[i], m) for m in ("velocity", "acceleration")])
            out[i, j] = np.linalg.norm(fp - fr)
    per_video = out.mean(1)
    return MotionVectorDistance(float(per_video.mean()), per_video, int(k))
