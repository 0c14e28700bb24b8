"""Point-accuracy metrics: VEPE (paper eq. 17, reference §5.4), ADE/FDE and best-of-K minADE/minFDE.

FDE has two readings: ``"last_visible"`` (each point's error at its own last visible frame; ours) and
``"last_frame"`` (the error at the window's final frame over the points visible there: "Forecasting Motion in the
Wild", google-deepmind/motion-forecasting, ``compute_track_metrics_exact``).

Tracks are pixels. A reference point counts when it is visible and its coordinates are finite. ADE/FDE process
videos in chunks of about ``CHUNK_POINTS`` (video, sample, frame, point) entries, so memory stays bounded on large
sets; VEPE runs over ``VEPE_CHUNK`` points at a time (cache-sized, float32 for float32 tracks).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..validation import as_bool_mask

CHUNK_POINTS = 1 << 22


def _shapes(pred, ref, visibility, pred_name="predictions", ref_name="references"):
    """Validated arrays (as given, no copy) and the boolean visibility ``ref.shape[:-1]`` (all True if None)."""
    pred, ref = np.asarray(pred), np.asarray(ref)
    if ref.ndim < 3 or ref.shape[-1] != 2:
        raise ValueError(f"`{ref_name}` must have shape [..., T, N, 2], got {list(ref.shape)}")
    if pred.shape != ref.shape:
        raise ValueError(f"`{pred_name}` {list(pred.shape)} does not match `{ref_name}` {list(ref.shape)}")
    vis = np.ones(ref.shape[:-1], bool) if visibility is None else as_bool_mask(visibility, "visibility")
    if vis.shape != ref.shape[:-1]:
        raise ValueError(f"`visibility` must have shape {list(ref.shape[:-1])}, got {list(vis.shape)}")
    return pred, ref, vis


VEPE_CHUNK = 1 << 15  # points per chunk of the VEPE loop: its temporaries stay in the CPU cache


def vepe(predictions, references, visibility=None) -> float:
    """Visibility-masked endpoint error in px (eq. 17): the mean of ``||p_hat - p||_2`` pooled over all valid
    ``(video, t, n)`` (point-weighted, as the official script; not a mean of per-video means).

    Args:
        predictions, references: ``[V, T, N, 2]`` (or ``[T, N, 2]``) pixels.
        visibility: reference visibility ``[V, T, N]``; None = all visible. A point counts when it is visible and
            both its reference and predicted coordinates are finite (the official mask ``vis > 0.5 & finite``).

    float32 inputs are differenced in float32 (the difference of two float32 coordinates is rounded once) and each
    chunk's errors summed in float64: equal to the official float64 computation to ~1e-7 relative.
    """
    pred, ref, vis = _shapes(predictions, references, visibility)
    dtype = np.float32 if all(np.issubdtype(a.dtype, np.floating) and a.dtype.itemsize <= 4 for a in (pred, ref)) \
        else np.float64
    p, r = np.asarray(pred, dtype).reshape(-1, 2), np.asarray(ref, dtype).reshape(-1, 2)
    m = vis.reshape(-1)
    diff, err = np.empty((VEPE_CHUNK, 2), dtype), np.empty(VEPE_CHUNK, dtype)
    total, count = 0.0, 0
    for i in range(0, len(m), VEPE_CHUNK):
        k = min(VEPE_CHUNK, len(m) - i)
        d, e, valid = diff[:k], err[:k], m[i : i + k]
        np.subtract(p[i : i + k], r[i : i + k], out=d)
        np.multiply(d, d, out=d)
        np.add(d[:, 0], d[:, 1], out=e)
        np.sqrt(e, out=e)
        np.multiply(e, valid, out=e)
        part = float(e.sum(dtype=np.float64))
        if np.isfinite(part):
            count += int(np.count_nonzero(valid))
        else:  # NaN/inf in either coordinate set makes the error non-finite: not counted (masked NaN * 0 is NaN)
            valid = valid & np.isfinite(e)
            part = float(e.sum(where=valid, dtype=np.float64))
            count += int(np.count_nonzero(valid))
        total += part
    if count == 0:
        raise ValueError("no valid (visible, finite) point to evaluate: `visibility` is all False")
    return total / count


@dataclass
class DisplacementErrors:
    """ADE/FDE averaged over samples, and best-of-K minADE/minFDE (px)."""

    ade: float
    fde: float
    min_ade: float
    min_fde: float
    num_samples: int


FDE_READINGS = ("last_visible", "last_frame")


def _point_errors(pred: np.ndarray, ref: np.ndarray, vis: np.ndarray, first_video: int = 0):
    """``(err [v, K, T, N], vis [v, T, N], ADE [v, K])``: the float64 error of ``pred [v, K, T, N, 2]`` vs ``ref
    [v, T, N, 2]`` at the counted points (visible, finite reference; 0 elsewhere) and each sample's ADE."""
    pred, ref = pred.astype(np.float64), ref.astype(np.float64)
    vis = vis & np.isfinite(ref).all(-1)
    bad = ~np.isfinite(pred).all(-1) & vis[:, None]
    if bad.any():
        v, k, t, n = np.argwhere(bad)[0]
        raise ValueError(f"`predictions` has {int(bad.sum())} NaN/inf positions at visible reference points, first at "
                         f"(video {first_video + v}, sample {k}, t {t}, n {n})")
    count = vis.sum((1, 2))  # [v]
    if (count == 0).any():
        raise ValueError("a video has no visible point: ADE is undefined (drop it or fix `visibility`)")
    err = np.linalg.norm(np.where(vis[:, None, ..., None], pred - ref[:, None], 0.0), axis=-1)  # [v, K, T, N]
    return err, vis, err.sum((2, 3)) / count[:, None]


def _ade_fde(pred: np.ndarray, ref: np.ndarray, vis: np.ndarray, first_video: int = 0, fde_at: str = "last_visible"):
    """Per-video, per-sample ``(ADE [v, K], FDE [v, K])`` of ``pred [v, K, T, N, 2]`` vs ``ref [v, T, N, 2]``
    (FDE NaN for a video with no point visible at the final frame under ``fde_at="last_frame"``)."""
    err, vis, ade = _point_errors(pred, ref, vis, first_video)
    if fde_at == "last_frame":
        at_end = vis[:, -1]  # [v, N]
        with np.errstate(invalid="ignore", divide="ignore"):
            fde = np.where(at_end[:, None], err[:, :, -1], 0.0).sum(-1) / at_end.sum(-1)[:, None]
        return ade, fde
    last = vis.shape[1] - 1 - np.argmax(vis[:, ::-1], axis=1)  # [v, N] last visible frame of each point
    has = vis.any(1)  # [v, N]
    final = np.take_along_axis(err, last[:, None, None, :], axis=2)[:, :, 0]  # [v, K, N]
    fde = np.where(has[:, None], final, 0.0).sum(-1) / has.sum(-1)[:, None]
    return ade, fde


def _with_sample_axis(predictions, references):
    """``(pred [V, K, T, N, 2], ref [V, T, N, 2])`` as arrays; a ``[V, T, N, 2]`` prediction gets K = 1."""
    pred, ref = np.asarray(predictions), np.asarray(references)
    if pred.ndim == ref.ndim:
        pred = pred[:, None]
    if pred.ndim != 5 or ref.ndim != 4 or pred.shape[:1] + pred.shape[2:] != ref.shape:
        raise ValueError(f"`predictions` must be [V, K, T, N, 2] matching `references` [V, T, N, 2], got "
                         f"{list(pred.shape)} and {list(ref.shape)}")
    return pred, ref


def displacement_errors(predictions, references, visibility=None, fde_at: str = "last_visible") -> DisplacementErrors:
    """Multi-sample accuracy over visible points.

    Args:
        predictions: ``[V, K, T, N, 2]`` px (K samples per video) or ``[V, T, N, 2]`` (K = 1).
        references: ``[V, T, N, 2]`` px; visibility ``[V, T, N]`` (None = all visible).

    Per video and sample, ADE is the mean error over visible ``(t, n)``; FDE the mean error at each point's last
    visible frame (``fde_at="last_visible"``) or the mean error at the window's final frame over the points visible
    there (``fde_at="last_frame"``, the motion-forecasting peer's FDE; videos with no point visible at the final frame
    are left out of the FDE means). minADE/minFDE take the best sample per video (best-of-K); all are then averaged
    over videos. Invisible or non-finite reference points are ignored; a NaN/inf prediction at a counted point is a
    ValueError.
    """
    if fde_at not in FDE_READINGS:
        raise ValueError(f"`fde_at` must be one of {FDE_READINGS}, got {fde_at!r}")
    pred, ref = _with_sample_axis(predictions, references)
    _, _, vis = _shapes(ref, ref, visibility)
    per = max(1, CHUNK_POINTS // int(np.prod(pred.shape[1:-1])))
    parts = [_ade_fde(pred[i : i + per], ref[i : i + per], vis[i : i + per], i, fde_at)
             for i in range(0, ref.shape[0], per)]
    ade = np.concatenate([a for a, _ in parts])
    fde = np.concatenate([f for _, f in parts])
    fde = fde[np.isfinite(fde[:, 0])]  # last_frame: videos with no point visible at the final frame
    if len(fde) == 0:
        raise ValueError("no video has a point visible at the final frame: FDE (`fde_at='last_frame'`) is undefined")
    return DisplacementErrors(float(ade.mean()), float(fde.mean()), float(ade.min(1).mean()), float(fde.min(1).mean()),
                              int(pred.shape[1]))


@dataclass
class ErrorByFrame:
    """Mean error per future frame ``[T]`` (px) over the visible reference points of all videos: of each video's
    best-of-K sample (the one minADE picks) and averaged over the K samples."""

    best_of_k: np.ndarray
    mean_over_samples: np.ndarray
    num_samples: int


def error_by_frame(predictions, references, visibility=None) -> ErrorByFrame:
    """Where in the window the error is: ``predictions [V, K, T, N, 2]`` (or ``[V, T, N, 2]``) vs ``references
    [V, T, N, 2]`` px, visibility ``[V, T, N]`` (None = all visible).

    Per frame t, the error is pooled over the videos' visible points at t (a frame with none is NaN). The best sample
    of a video is the one with the lowest ADE (:func:`displacement_errors`), so the frames of ``best_of_k`` average to
    about minADE (exactly when every frame has the same visible points)."""
    pred, ref = _with_sample_axis(predictions, references)
    _, _, vis = _shapes(ref, ref, visibility)
    err, vis, ade = _point_errors(pred, ref, vis)  # [V, K, T, N], the counted points, [V, K]
    best = err[np.arange(len(err)), ade.argmin(1)]  # [V, T, N]
    count = vis.sum((0, 2)).astype(np.float64)  # [T]
    with np.errstate(invalid="ignore", divide="ignore"):
        return ErrorByFrame(best.sum((0, 2)) / count, err.sum((0, 1, 3)) / (count * pred.shape[1]), int(pred.shape[1]))
