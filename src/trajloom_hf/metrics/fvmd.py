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

Overlapping windows are not materialised: a clip's fields equal the whole video's except its first frame (velocity)
or first two frames (acceleration), which the per-clip computation zeroes. Vectors are therefore binned once per
video into per-frame, per-cell histograms, and each window's cube sums come from a cumulative sum over time (exact:
all weights are multiples of 1/8), giving features identical to the per-clip computation at 1/clip_len of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..validation import as_bool_mask

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


def _fields(tracks: np.ndarray, vis: np.ndarray | None, mode: str):
    """Velocity and acceleration ``[B, S, N, 2]`` float32 of tracks ``[B, S, N, 2]`` (fvmd §4; masks: §10.4)."""
    y = np.asarray(tracks, np.float32)
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
        # masked vectors become (+-0, +-0): weight 0, so their (sign-dependent) bin never counts
        np.multiply(vel, mv[..., None], out=vel)
        np.multiply(acc, ma[..., None], out=acc)
    return vel, acc


def _angle_bins_formula(dx: np.ndarray, dy: np.ndarray, mode: str) -> np.ndarray:
    """The package's angle bins, element by element in float32 (fvmd §5.3; TrajLoom's ``floor(a / b)``: §10)."""
    theta = np.arctan2(dx, dy)  # atan2(dx, dy): angle from +y (image down) towards +x
    if mode == "official":
        bins = np.floor_divide(theta + np.float32(np.pi), np.float32(2 * np.pi / ANGLE_BINS))
    else:  # TrajLoom's floor(a / b): differs from `//` on bin edges (fvmd §5 table)
        bins = np.floor((theta + np.float32(np.pi)) / np.float32(np.pi / 4))
    return np.clip(bins, 0, ANGLE_BINS - 1).astype(np.intp)


# A vector further than this (relative) from the axes and diagonals is binned by comparisons: its float32 angle is off
# by a few 1e-7 rad at most, far from any 45-degree edge. Closer vectors (rare; exact zeros, integer steps) take the
# formula itself, so the bins are the formula's bit for bit.
_EDGE_MARGIN = np.float32(1e-4)


def _angle_bins(dx: np.ndarray, dy: np.ndarray, mode: str) -> np.ndarray:
    """``clip(floor((atan2(dx, dy) + pi) / (pi / 4)), 0, 7)`` of float32 vectors, equal to :func:`_angle_bins_formula`.

    Bins 0-7 run over the octants ``(-pi, -3pi/4), ...``: octant ``4 [dx > 0] + (|dx| > |dy| if dx, dy have the same
    sign else 2 + [|dx| < |dy|])``; no arctan2 except near an edge.
    """
    ax, ay = np.abs(dx), np.abs(dy)
    right = dx > 0
    bins = np.where(right == (dy > 0), ax > ay, 2 + (ax < ay)).astype(np.intp)
    bins += 4 * right
    big = np.maximum(ax, ay) * _EDGE_MARGIN
    near = np.flatnonzero((np.minimum(ax, ay) <= big) | (np.abs(ax - ay) <= big))
    if near.size:
        bins.flat[near] = _angle_bins_formula(dx.flat[near], dy.flat[near], mode)
    return bins


def _weight_levels(mag: np.ndarray) -> np.ndarray:
    """``ceil(clip(log2(mag + 1), 0, 8))`` (the weight times 8) of float32 magnitudes in [0, 255] (fvmd §5.4).

    ``mag + 1`` is computed in float32 as the package does; ``frexp`` gives ``ceil(log2(x)) = e`` for ``x`` in
    ``(2^(e-1), 2^e)``. At or just above a power of two float32 ``log2`` may round to the integer, so those (rare;
    every exact zero is one) take ``log2`` itself.
    """
    x = mag + np.float32(1)
    mant, level = np.frexp(x)
    near = np.flatnonzero(mant < np.float32(0.5 + 2.0**-16))
    if near.size:
        level.flat[near] = np.ceil(np.clip(np.log2(x.flat[near]), 0, 8))
    return level


_LEVEL_WEIGHTS = np.arange(9, dtype=np.float64) / 8  # k / 8: exact in float64


def _frame_cell_histograms(vectors: np.ndarray, grid_shape: tuple[int, int], mode: str) -> np.ndarray:
    """Per-frame, per-cell weighted angle histograms ``[B, S, MH, MW, 8]`` float64 of ``[B, S, N, 2]`` vectors.

    Rows/columns that do not fill a 5 x 5 cell are dropped. Bins and weights equal the package's element-wise float32
    ops bit for bit (fvmd §5.3-5.4; :func:`_angle_bins`, :func:`_weight_levels`); sums of multiples of 1/8 are exact
    in float64, so any later summation (cubes, windows) is exact too.
    """
    b, s, n, _ = vectors.shape
    gh, gw = grid_shape
    if gh * gw != n:
        raise ValueError(f"`grid_shape` {tuple(grid_shape)} does not hold N={n} points")
    mh, mw = gh // CELL, gw // CELL
    if mh == 0 or mw == 0:
        raise ValueError(f"a {gh}x{gw} grid holds no {CELL}x{CELL} cell")
    v = np.asarray(vectors, np.float32).reshape(b, s, gh, gw, 2)[:, :, : mh * CELL, : mw * CELL]
    dx, dy = np.ascontiguousarray(v[..., 0]), np.ascontiguousarray(v[..., 1])  # contiguous: ~2x faster ufuncs
    bins = _angle_bins(dx, dy, mode)
    mag = np.sqrt(dx * dx + dy * dy)  # = np.linalg.norm(v, axis=-1) in float32 (sqrt of the 2-term sum)
    levels = _weight_levels(np.minimum(mag, np.float32(255)))
    cell = (np.arange(mh * CELL)[:, None] // CELL) * mw + np.arange(mw * CELL)[None, :] // CELL  # [H', W']
    frame = np.arange(b * s, dtype=np.intp).reshape(b, s, 1, 1) * (mh * mw)
    index = (frame + cell) * ANGLE_BINS + bins
    hist = np.bincount(index.ravel(), weights=_LEVEL_WEIGHTS[levels.ravel()], minlength=b * s * mh * mw * ANGLE_BINS)
    return hist.reshape(b, s, mh, mw, ANGLE_BINS)


def motion_histograms(vectors: np.ndarray, grid_shape: tuple[int, int], mode: str = "trajectory") -> np.ndarray:
    """Magnitude-weighted 8-bin angle histograms per 4-frame x 5 x 5-point cube, flattened per clip (fvmd §5).

    Args:
        vectors: ``[C, S, N, 2]`` velocity or acceleration (px/frame) of C clips, N row-major over ``grid_shape``;
            trailing frames, rows and columns that do not fill a cube are dropped.
    Returns:
        ``[C, MS * MH * MW * 8]`` float64 (unnormalised), index ``((ms * MH + mh) * MW + mw) * 8 + bin``.
    """
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}")
    c, s = vectors.shape[:2]
    ms = s // CUBE_FRAMES
    if ms == 0:
        raise ValueError(f"clips of {s} frames hold no {CUBE_FRAMES}-frame cube")
    h = _frame_cell_histograms(vectors[:, : ms * CUBE_FRAMES], grid_shape, mode)
    return h.reshape(c, ms, CUBE_FRAMES, *h.shape[2:]).sum(2).reshape(c, -1)


def _window_features(hist: np.ndarray, starts: np.ndarray, ms: int, zeroed: int) -> np.ndarray:
    """Clip features ``[V * W, MS * MH * MW * 8]`` (video-major) from per-frame histograms ``[V, T, MH, MW, 8]`` of
    whole-video fields.

    A clip starting at ``s`` has the whole video's vectors except its first ``zeroed`` frames, which the per-clip
    computation sets to 0 (weight 0): 1 for the velocity, 2 for the acceleration (fvmd §4). Cube sums come from a
    cumulative sum over time, exact for multiples of 1/8, so every overlapping window costs O(1) per bin.
    """
    v, t = hist.shape[:2]
    csum = np.zeros((v, t + 1) + hist.shape[2:], np.float64)
    np.cumsum(hist, axis=1, out=csum[:, 1:])
    first = starts[:, None] + CUBE_FRAMES * np.arange(ms)[None]  # [W, MS] first frame of every cube
    feats = csum[:, first + CUBE_FRAMES] - csum[:, first]  # [V, W, MS, MH, MW, 8]
    for k in range(zeroed):
        feats[:, :, 0] -= hist[:, starts + k]
    return feats.reshape(v * len(starts), -1)


def _trace_sqrt_product(a: np.ndarray, b: np.ndarray) -> float:
    """``tr sqrt(A B)`` for symmetric PSD ``A``, ``B``: ``tr sqrt(R^T B R)`` for any ``R`` with ``A = R R^T``
    (``A B = R R^T B`` is similar to the PSD ``R^T B R``), i.e. the eigenvalues of ``A^1/2 B A^1/2``.
    Cholesky ``R`` when ``A`` is positive definite (eps > 0), else the symmetric root; negative eigenvalues clipped."""
    try:
        r = np.linalg.cholesky(a)
    except np.linalg.LinAlgError:
        wa, va = np.linalg.eigh(a)
        r = (va * np.sqrt(np.clip(wa, 0, None))) @ va.T
    m = r.T @ b @ r
    return float(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum())


def _frechet_from_moments(mu1, s1, mu2, s2, eps: float) -> float:
    """``|mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt((S1 + eps I)(S2 + eps I))`` (fvmd §7; eps only in the root)."""
    d = s1.shape[0]
    covmean = _trace_sqrt_product(s1 + eps * np.eye(d), s2 + eps * np.eye(d))
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * covmean)


def _check_features(f1, f2):
    f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"features must be [n, D] with equal D, got {list(f1.shape)} and {list(f2.shape)}")
    if f1.shape[0] < 2 or f2.shape[0] < 2:
        raise ValueError(f"FVMD needs at least 2 clips per set (covariance), got {f1.shape[0]} and {f2.shape[0]}")
    return f1, f2


def _moments(f: np.ndarray):
    """Mean and unbiased covariance (``np.cov(rowvar=False)``) of ``[n, D]`` float64 features."""
    mu = f.mean(0)
    x = f - mu
    return mu, x.T @ x / (f.shape[0] - 1)


def frechet_distance(features_1: np.ndarray, features_2: np.ndarray, eps: float = 1e-5) -> float:
    """Fréchet distance of Gaussians fitted to ``[n1, D]`` and ``[n2, D]`` features (fvmd §7), float64."""
    f1, f2 = _check_features(features_1, features_2)
    n1, n2, d = f1.shape[0], f2.shape[0], f1.shape[1]
    if n1 + n2 >= d:
        return _frechet_from_moments(*_moments(f1), *_moments(f2), eps)
    # Fewer clips than dimensions: both covariances live in the span U (rank r <= n1 + n2) of the centred features.
    # In the basis [U, U_perp], (S1 + eps I)(S2 + eps I) is block diagonal with eps^2 I on the complement, so
    # tr sqrt(A B) = tr sqrt(A_r B_r) + (d - r) eps exactly, with r x r blocks instead of d x d.
    mu1, mu2 = f1.mean(0), f2.mean(0)
    x1, x2 = f1 - mu1, f2 - mu2
    # With [x1; x2]^T = Q R (Q: [d, r] orthonormal), the coordinates [x1; x2] Q are R^T: Q is never formed.
    y = np.linalg.qr(np.concatenate([x1, x2]).T, mode="r").T  # [n1 + n2, r]
    y1, y2, r = y[:n1], y[n1:], y.shape[1]
    a = y1.T @ y1 / (n1 - 1) + eps * np.eye(r)
    b = y2.T @ y2 / (n2 - 1) + eps * np.eye(r)
    tr1 = float((x1**2).sum() / (n1 - 1))  # tr S1, tr S2 without forming them
    tr2 = float((x2**2).sum() / (n2 - 1))
    covmean = _trace_sqrt_product(a, b) + (d - r) * eps
    return float(((mu1 - mu2) ** 2).sum() + tr1 + tr2 - 2 * covmean)


def _velocity_acceleration_combined(pv, pa, rv, ra, eps: float):
    """The three FVMD numbers; with enough clips, one covariance of ``[vel, acc]`` per set gives all three (its
    diagonal blocks are the velocity and acceleration covariances)."""
    f1, f2 = _check_features(np.concatenate([pv, pa], 1), np.concatenate([rv, ra], 1))
    d = pv.shape[1]
    if f1.shape[0] + f2.shape[0] < 2 * d:
        return frechet_distance(pv, rv, eps), frechet_distance(pa, ra, eps), frechet_distance(f1, f2, eps)
    (mu1, s1), (mu2, s2) = _moments(f1), _moments(f2)
    v, a = slice(0, d), slice(d, 2 * d)
    return (_frechet_from_moments(mu1[v], s1[v, v], mu2[v], s2[v, v], eps),
            _frechet_from_moments(mu1[a], s1[a, a], mu2[a], s2[a, a], eps),
            _frechet_from_moments(mu1, s1, mu2, s2, eps))


def _prepare(tracks, visibility, name):
    tr = np.asarray(tracks, dtype=np.float32)  # the package casts to float32 first (fvmd §8)
    if tr.ndim == 3:
        tr = tr[None]
        visibility = None if visibility is None else np.asarray(visibility)[None]
    if tr.ndim != 4 or tr.shape[-1] != 2:
        raise ValueError(f"`{name}` must have shape [V, T, N, 2] (px), got {list(tr.shape)}")
    vis = None
    if visibility is not None:
        vis = as_bool_mask(visibility, f"visibility of `{name}`")
        if vis.shape != tr.shape[:-1]:
            raise ValueError(f"visibility of `{name}` must have shape {list(tr.shape[:-1])}, got {list(vis.shape)}")
        if not vis.any():  # every histogram would be empty: a "perfect" score from no data
            raise ValueError(f"no point of `{name}` is visible: FVMD is undefined (check the visibility)")
    if np.isfinite(tr.sum(dtype=np.float64)):  # one pass: NaN/inf anywhere makes the sum non-finite
        return tr, vis
    finite = np.isfinite(tr).all(-1)
    if not finite.all():
        if vis is None:
            raise ValueError(f"`{name}` contains NaN/inf: pass a visibility so they can be masked")
        vis = vis & finite  # NaN coordinates count as invisible
        tr = np.where(finite[..., None], tr, np.float32(0))
    return tr, vis


def motion_features(tracks, visibility=None, *, grid_shape=None, mode: str = "trajectory", clip_len: int = 16,
                    clip_stride: int = 1, chunk_points: int = 1 << 23):
    """Per-clip velocity and acceleration histograms ``([C, D], [C, D])`` float64 of videos ``[V, T, N, 2]`` px.

    Clips are the windows ``[s, s + clip_len)``, ``s = 0, clip_stride, ...`` of every video (video-major,
    C = V * windows); ``clip_len <= 0`` or ``>= T`` gives one whole-video clip. Each window's features equal the
    per-clip computation (velocity/acceleration recomputed inside the clip, then ``motion_histograms``) exactly, but
    vectors are binned once per video (``chunk_points`` bounds the vectors binned at a time, i.e. the memory).
    """
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}, got {mode!r}")
    if mode == "official" and visibility is not None:
        raise ValueError("official FVMD has no visibility masking (the package counts occluded motion): pass "
                         "`visibility=None` or use mode='trajectory'")
    tr, vis = _prepare(tracks, visibility, "tracks")
    v, t, n = tr.shape[:3]
    if mode == "official":
        side = round(np.sqrt(n))
        if side * side != n:
            raise ValueError(f"official FVMD needs a square grid (N = k^2, 400 in the package), got N={n}")
        if grid_shape is not None and tuple(grid_shape) != (side, side):
            raise ValueError(f"official FVMD uses the square {side}x{side} grid, got `grid_shape` {tuple(grid_shape)}")
        if t < clip_len:
            raise ValueError(f"official FVMD needs videos of at least {clip_len} frames, got T={t}")
        grid_shape = (side, side)
    elif grid_shape is None:
        raise ValueError("`grid_shape` (H_g, W_g) is required in trajectory mode")
    grid_shape = (int(grid_shape[0]), int(grid_shape[1]))
    if grid_shape[0] * grid_shape[1] != n:
        raise ValueError(f"`grid_shape` {grid_shape} does not hold N={n} points")
    if clip_stride < 1:
        raise ValueError(f"`clip_stride` must be >= 1, got {clip_stride}")
    length = t if clip_len <= 0 or clip_len >= t else clip_len
    ms = length // CUBE_FRAMES
    if ms == 0:
        raise ValueError(f"clips of {length} frames hold no {CUBE_FRAMES}-frame cube")
    starts = np.arange(0, t - length + 1, clip_stride)
    per = max(1, chunk_points // (t * n))
    vel_feats, acc_feats = [], []
    for i in range(0, v, per):
        vel, acc = _fields(tr[i : i + per], None if vis is None else vis[i : i + per], mode)
        vel_feats.append(_window_features(_frame_cell_histograms(vel, grid_shape, mode), starts, ms, 1))
        acc_feats.append(_window_features(_frame_cell_histograms(acc, grid_shape, mode), starts, ms, 2))
    return np.concatenate(vel_feats), np.concatenate(acc_feats)


def fvmd(
    predictions,
    references,
    *,
    prediction_visibility=None,
    reference_visibility=None,
    mode: str = "trajectory",
    grid_shape: tuple[int, int] | None = None,
    clip_len: int = 16,
    clip_stride: int = 1,
    eps: float = 1e-5,
) -> FVMDResult:
    """FVMD between predicted and reference tracks (distribution level: the two sets are not paired).

    Args:
        predictions, references: ``[V, T, N, 2]`` px (V and T may differ between the sets, N may not). NaN/inf
            coordinates are allowed only with a visibility, where they count as invisible; otherwise ValueError.
        prediction_visibility / reference_visibility: ``[V, T, N]`` masks (trajectory mode only). TrajLoom's script
            masks both sets with the *reference* visibility: pass the GT visibility for both to reproduce it.
        mode: ``"official"`` or ``"trajectory"`` (see the module docstring).
        grid_shape: ``(H_g, W_g)`` of the row-major grid (trajectory mode).
        clip_len, clip_stride: windows (16 / 1 as in the paper; ``clip_len >= T`` or ``<= 0``: the whole video).
    """
    if mode == "official" and (clip_len, clip_stride) != (16, 1):
        raise ValueError(f"official FVMD uses 16-frame clips at stride 1, got clip_len={clip_len}, clip_stride={clip_stride}")
    if mode == "official" and (prediction_visibility is not None or reference_visibility is not None):
        raise ValueError("official FVMD has no visibility masking (the package counts occluded motion): pass no "
                         "`prediction_visibility`/`reference_visibility`, or use mode='trajectory'")
    pred, pred_vis = _prepare(predictions, prediction_visibility, "predictions")
    ref, ref_vis = _prepare(references, reference_visibility, "references")
    if pred.shape[2] != ref.shape[2]:
        raise ValueError(f"`predictions` {list(pred.shape)} and `references` {list(ref.shape)} ([V, T, N, 2]) must "
                         "track the same N grid points")
    pv, pa = motion_features(pred, pred_vis, grid_shape=grid_shape, mode=mode, clip_len=clip_len, clip_stride=clip_stride)
    rv, ra = motion_features(ref, ref_vis, grid_shape=grid_shape, mode=mode, clip_len=clip_len, clip_stride=clip_stride)
    if pv.shape[1] != rv.shape[1]:
        raise ValueError(f"clips of `predictions` (T={pred.shape[1]}) and `references` (T={ref.shape[1]}) give "
                         f"different feature sizes {pv.shape[1]} and {rv.shape[1]}: use one `clip_len` <= both T")
    velocity, acceleration, combined = _velocity_acceleration_combined(pv, pa, rv, ra, eps)
    return FVMDResult(velocity, acceleration, combined, num_clips=int(pv.shape[0]), feature_dim=int(pv.shape[1]))


def fvmd_long(predictions, references, *, prediction_visibility=None, reference_visibility=None, grid_shape, eps=1e-5):
    """FVMD-Long (paper §4.1.6): trajectory-mode FVMD with the whole future window as one clip per video.
    The paper's tables show FVMD-Long x 10^-3."""
    return fvmd(predictions, references, prediction_visibility=prediction_visibility,
                reference_visibility=reference_visibility, mode="trajectory", grid_shape=grid_shape, clip_len=0, eps=eps)
