"""FVMD (Fréchet Video Motion Distance) computed from given tracks, in two documented modes.

``mode="official"`` reproduces the official FVMD package (DSL-Lab, v1.0.0) on given tracks exactly
(reference ``fvmd-official.md`` §4, §5, §7, §8):

* float32 tracks; velocity ``V[0] = 0, V[t] = Y[t] - Y[t-1]``; the *released* acceleration, which is a bug:
  ``A[0] = A[1] = 0, A[t] = Y[t] - Y[t-1]`` (velocity with frame 1 zeroed);
* 16-frame clips at stride 1, square grids only (20 x 20 in the package), cubes of 4 frames x 5 x 5 points;
* angle ``theta = atan2(dx, dy)`` and bin ``clip((theta + pi) // (2 pi / 8), 0, 7)`` with numpy ``floor_divide`` in
  float32; weight ``ceil(clip(log2(clip(|v|, 0, 255) + 1), 0, 8)) / 8``; unnormalised float64 histograms.

``mode="trajectory"`` is TrajLoom's trajectory FVMD (reference ``trajloom-official-code.md`` §5.1, fvmd §10): the true
second-difference acceleration, optional visibility masking (a velocity needs the point visible at t and t-1, an
acceleration at t, t-1 and t-2; masked vectors weigh 0), configurable clip length/stride (paper default: 16 / 1),
rectangular grids with the remainder trimmed, and ``floor((theta + pi) / (pi / 4))`` binning in float32.

Both use the Fréchet distance of Gaussians fitted to the per-clip features (all clips of all videos pooled):
``|mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt((S1 + eps I)(S2 + eps I))`` with unbiased covariances in float64 and
``eps = 1e-5`` only inside the square root, so ``FVMD(X, X) = -2 D eps`` (slightly negative). The square-root trace
is computed from eigendecompositions (scipy's ``sqrtm`` is deprecated), in the span of the data when there are fewer
clips than feature dimensions (exact, and much faster for FVMD-Long). Magnitude bins are in pixels, so values
depend on the frame scale; compare models only at equal clip counts (the estimate is biased by sample size).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

CELL, CUBE_FRAMES, ANGLE_BINS = 5, 4, 8
MODES = ("official", "trajectory")


@dataclass
class FVMDResult:
    """Fréchet distances of velocity, acceleration and combined (concatenated) features."""

    velocity: float
    acceleration: float
    combined: float
    num_clips: int
    feature_dim: int  # per field (velocity or acceleration)


def _clip_windows(x: np.ndarray, clip_len: int, clip_stride: int) -> np.ndarray:
    """``[V, T, ...]`` -> ``[V * W, clip_len, ...]`` windows ``[s, s + clip_len)`` for ``s = 0, stride, ..``."""
    t = x.shape[1]
    if clip_len <= 0 or clip_len >= t:
        return x
    starts = range(0, t - clip_len + 1, clip_stride)
    return np.concatenate([x[:, s : s + clip_len] for s in starts], axis=0)


def _fields(tracks: np.ndarray, vis: Optional[np.ndarray], mode: str):
    """Velocity and acceleration ``[C, S, N, 2]`` float32 of clips ``[C, S, N, 2]``."""
    y = tracks.astype(np.float32)
    vel = np.zeros_like(y)
    vel[:, 1:] = y[:, 1:] - y[:, :-1]
    acc = np.zeros_like(y)
    if mode == "official":
        acc[:, 2:] = y[:, 2:] - y[:, 1:-1]  # the released code passes tracks, not velocities (fvmd §4)
    else:
        acc[:, 2:] = vel[:, 2:] - vel[:, 1:-1]
    if vis is not None:
        mv = np.zeros(vis.shape, bool)
        mv[:, 1:] = vis[:, 1:] & vis[:, :-1]
        ma = np.zeros(vis.shape, bool)
        ma[:, 2:] = mv[:, 2:] & vis[:, :-2]
        vel = np.where(mv[..., None], vel, np.float32(0))
        acc = np.where(ma[..., None], acc, np.float32(0))
    return vel, acc


def motion_histograms(vectors: np.ndarray, grid_shape: Tuple[int, int], mode: str = "trajectory") -> np.ndarray:
    """Magnitude-weighted 8-bin angle histograms per 4-frame x 5 x 5-point cube, flattened per clip.

    Args:
        vectors: ``[C, S, N, 2]`` velocity or acceleration (px/frame), N row-major over ``grid_shape``.
    Returns:
        ``[C, MS * MH * MW * 8]`` float64, index ``((ms * MH + mh) * MW + mw) * 8 + bin``.
    """
    c, s, n, _ = vectors.shape
    gh, gw = grid_shape
    ms, mh, mw = s // CUBE_FRAMES, gh // CELL, gw // CELL
    if ms == 0 or mh == 0 or mw == 0:
        raise ValueError(f"clips of {s} frames on a {gh}x{gw} grid hold no {CUBE_FRAMES}x{CELL}x{CELL} cube")
    v = vectors.astype(np.float32).reshape(c, s, gh, gw, 2)[:, : ms * CUBE_FRAMES, : mh * CELL, : mw * CELL]
    v = v.reshape(c, ms, CUBE_FRAMES, mh, CELL, mw, CELL, 2).transpose(0, 1, 3, 5, 2, 4, 6, 7)
    v = v.reshape(c, ms, mh, mw, CUBE_FRAMES * CELL * CELL, 2)
    theta = np.arctan2(v[..., 0], v[..., 1])  # atan2(dx, dy), float32
    width = np.float32(2 * np.pi / ANGLE_BINS)
    if mode == "official":
        bins = np.floor_divide(theta + np.float32(np.pi), width)
    else:
        bins = np.floor((theta + np.float32(np.pi)) / np.float32(np.pi / 4))
    bins = np.clip(bins, 0, ANGLE_BINS - 1).astype(np.int64)
    mag = np.clip(np.linalg.norm(v, axis=-1), 0, 255)
    weight = np.ceil(np.clip(np.log2(mag + np.float32(1)), 0, 8)) / np.float32(8)
    hist = np.zeros((c, ms, mh, mw, ANGLE_BINS), np.float64)
    onehot = bins[..., None] == np.arange(ANGLE_BINS)
    hist += (onehot * weight[..., None].astype(np.float64)).sum(-2)
    return hist.reshape(c, -1)


def frechet_distance(features_1: np.ndarray, features_2: np.ndarray, eps: float = 1e-5) -> float:
    """Fréchet distance of Gaussians fitted to ``[n1, D]`` and ``[n2, D]`` features (fvmd §7), float64."""
    f1 = np.asarray(features_1, np.float64)
    f2 = np.asarray(features_2, np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"features must be [n, D] with equal D, got {list(f1.shape)} and {list(f2.shape)}")
    if f1.shape[0] < 2 or f2.shape[0] < 2:
        raise ValueError(f"FVMD needs at least 2 clips per set (covariance), got {f1.shape[0]} and {f2.shape[0]}")
    mu1, mu2 = f1.mean(0), f2.mean(0)
    x1, x2 = f1 - mu1, f2 - mu2
    n1, n2, d = f1.shape[0], f2.shape[0], f1.shape[1]
    tr1 = float((x1**2).sum() / (n1 - 1))  # tr S1, tr S2 without forming them
    tr2 = float((x2**2).sum() / (n2 - 1))
    if n1 + n2 < d:
        # Both covariances live in the span U (rank r <= n1 + n2) of the centred features. In the basis [U, U_perp]
        # (S1 + eps I)(S2 + eps I) is block diagonal with eps^2 I on the complement, so
        # tr sqrt(A B) = tr sqrt(A_r B_r) + (d - r) eps exactly, with r x r blocks instead of d x d.
        q, _ = np.linalg.qr(np.concatenate([x1, x2]).T)  # [d, r]
        y1, y2 = x1 @ q, x2 @ q
        a = y1.T @ y1 / (n1 - 1) + eps * np.eye(q.shape[1])
        b = y2.T @ y2 / (n2 - 1) + eps * np.eye(q.shape[1])
        extra = (d - q.shape[1]) * eps
    else:
        a = x1.T @ x1 / (n1 - 1) + eps * np.eye(d)
        b = x2.T @ x2 / (n2 - 1) + eps * np.eye(d)
        extra = 0.0
    # tr sqrt(A B) = tr sqrt(A^1/2 B A^1/2) (both similar to a PSD matrix)
    wa, va = np.linalg.eigh(a)
    sqrt_a = (va * np.sqrt(np.clip(wa, 0, None))) @ va.T
    m = sqrt_a @ b @ sqrt_a
    wm = np.linalg.eigvalsh((m + m.T) / 2)
    tr_covmean = np.sqrt(np.clip(wm, 0, None)).sum() + extra
    return float(((mu1 - mu2) ** 2).sum() + tr1 + tr2 - 2 * tr_covmean)


def _prepare(tracks, visibility, name):
    tr = np.asarray(tracks, dtype=np.float64)
    if tr.ndim == 3:
        tr = tr[None]
        visibility = None if visibility is None else np.asarray(visibility)[None]
    if tr.ndim != 4 or tr.shape[-1] != 2:
        raise ValueError(f"`{name}` must have shape [V, T, N, 2] (px), got {list(tr.shape)}")
    vis = None
    if visibility is not None:
        vis = np.asarray(visibility).astype(bool)
        if vis.shape != tr.shape[:-1]:
            raise ValueError(f"visibility of `{name}` must have shape {list(tr.shape[:-1])}, got {list(vis.shape)}")
    finite = np.isfinite(tr).all(-1)
    if not finite.all():
        if vis is None:
            raise ValueError(f"`{name}` contains NaN/inf: pass a visibility so they can be masked")
        vis = vis & finite  # NaN coordinates count as invisible
        tr = np.where(finite[..., None], tr, 0.0)
    return tr, vis


def motion_features(tracks, visibility=None, *, grid_shape=None, mode: str = "trajectory", clip_len: int = 16,
                    clip_stride: int = 1):
    """Per-clip velocity and acceleration histograms ``([C, D], [C, D])`` of videos ``[V, T, N, 2]`` px."""
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}")
    tr, vis = _prepare(tracks, visibility, "tracks")
    n = tr.shape[2]
    if mode == "official":
        side = int(round(np.sqrt(n)))
        if side * side != n:
            raise ValueError(f"official FVMD needs a square grid (N = k^2, 400 in the package), got N={n}")
        if grid_shape is not None and tuple(grid_shape) != (side, side):
            raise ValueError(f"official FVMD uses the square {side}x{side} grid, got `grid_shape` {tuple(grid_shape)}")
        grid_shape, vis = (side, side), None  # the package ignores visibility
    elif grid_shape is None:
        raise ValueError("`grid_shape` (H_g, W_g) is required in trajectory mode")
    if grid_shape[0] * grid_shape[1] != n:
        raise ValueError(f"`grid_shape` {tuple(grid_shape)} does not hold N={n} points")
    if clip_stride < 1:
        raise ValueError(f"`clip_stride` must be >= 1, got {clip_stride}")
    clips = _clip_windows(tr, clip_len, clip_stride)
    cvis = None if vis is None else _clip_windows(vis, clip_len, clip_stride)
    vel, acc = _fields(clips, cvis, mode)
    return motion_histograms(vel, grid_shape, mode), motion_histograms(acc, grid_shape, mode)


def fvmd(
    predictions,
    references,
    *,
    prediction_visibility=None,
    reference_visibility=None,
    mode: str = "trajectory",
    grid_shape: Optional[Tuple[int, int]] = None,
    clip_len: int = 16,
    clip_stride: int = 1,
    eps: float = 1e-5,
) -> FVMDResult:
    """FVMD between predicted and reference tracks (distribution level: the two sets are not paired).

    Args:
        predictions, references: ``[V, T, N, 2]`` px (V may differ between the sets).
        prediction_visibility / reference_visibility: ``[V, T, N]`` masks (trajectory mode). TrajLoom's script masks
            both sets with the *reference* visibility: pass ``reference_visibility`` for both to reproduce it.
        mode: ``"official"`` or ``"trajectory"`` (see the module docstring).
        grid_shape: ``(H_g, W_g)`` of the row-major grid (trajectory mode).
        clip_len, clip_stride: windows (16 / 1 as in the paper; ``clip_len >= T`` or ``<= 0``: the whole video).
    """
    if mode == "official" and (clip_len, clip_stride) != (16, 1):
        raise ValueError(f"official FVMD uses 16-frame clips at stride 1, got clip_len={clip_len}, clip_stride={clip_stride}")
    pv, pa = motion_features(predictions, prediction_visibility, grid_shape=grid_shape, mode=mode, clip_len=clip_len,
                             clip_stride=clip_stride)
    rv, ra = motion_features(references, reference_visibility, grid_shape=grid_shape, mode=mode, clip_len=clip_len,
                             clip_stride=clip_stride)
    return FVMDResult(
        velocity=frechet_distance(pv, rv, eps),
        acceleration=frechet_distance(pa, ra, eps),
        combined=frechet_distance(np.concatenate([pv, pa], 1), np.concatenate([rv, ra], 1), eps),
        num_clips=int(pv.shape[0]),
        feature_dim=int(pv.shape[1]),
    )


def fvmd_long(predictions, references, *, prediction_visibility=None, reference_visibility=None, grid_shape, eps=1e-5):
    """FVMD-Long (paper §4.1.6): trajectory-mode FVMD with the whole future window as one clip per video.
    The paper's tables show FVMD-Long x 10^-3."""
    return fvmd(predictions, references, prediction_visibility=prediction_visibility,
                reference_visibility=reference_visibility, mode="trajectory", grid_shape=grid_shape, clip_len=0, eps=eps)
