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
video into per-frame, per-cell histograms, and each window's cubes are shared 4-frame sums of them (exact: all
weights are multiples of 1/8), giving features identical to the per-clip computation at 1/clip_len of the cost.
Binning runs on cache-sized slabs of whole videos (x / y planes, one ``bincount`` per slab); the square-root trace
of the span form needs one ``(n1 + n2 - 2)``-dimensional eigvalsh per distance (:func:`_trace_sqrt_from_gram`).
"""

from __future__ import annotations

import functools
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


_BIN_WIDTH = np.float32(2 * np.pi / ANGLE_BINS)  # = np.float32(np.pi / 4): the same float32 in both modes
_EDGE_MARGIN = 1e-4  # official mode: quotients this close to an integer take numpy's (slow) floor_divide


def _angle_bins(dx: np.ndarray, dy: np.ndarray, mode: str, weights: np.ndarray | None = None) -> np.ndarray:
    """Angle bins (float32, integer values 0-7) of float32 vectors, equal to :func:`_angle_bins_formula` bit for bit.

    ``floor((atan2(dx, dy) + pi) / (pi / 4))`` is TrajLoom's formula itself. The package's ``floor_divide`` (~40x
    slower than a division in numpy) agrees with ``floor`` of the float32 quotient except within rounding of an
    integer, so only quotients within ``_EDGE_MARGIN`` of one (exact zeros, axis and diagonal vectors) take it;
    with ``weights``, near-edge vectors of weight 0 are skipped (their bin never counts).
    """
    q = np.arctan2(dx, dy)
    q += np.float32(np.pi)
    q /= _BIN_WIDTH
    near = None
    if mode == "official":
        r = np.rint(q)
        r -= q
        near = np.abs(r, out=r) < _EDGE_MARGIN
        if weights is not None:
            near &= weights > 0
        near = np.flatnonzero(near)
    np.floor(q, out=q)
    if near is not None and near.size:
        q.flat[near] = _angle_bins_formula(dx.flat[near], dy.flat[near], mode)
    return np.clip(q, 0, ANGLE_BINS - 1, out=q)


def _weight_levels(mag: np.ndarray) -> np.ndarray:
    """``ceil(clip(log2(clip(mag, 0, 255) + 1), 0, 8))`` (the weight times 8) in float32, as the package computes
    it (fvmd §5.4); ``mag + 1`` is rounded to float32 first, so magnitudes below ~6e-8 weigh 0."""
    x = np.clip(mag, 0, 255)
    x += np.float32(1)
    np.log2(x, out=x)
    np.clip(x, 0, 8, out=x)
    return np.ceil(x, out=x)


SLAB_VECTORS = 1 << 15  # vectors binned at a time: the float32 temporaries stay in the CPU cache


@functools.lru_cache(maxsize=16)
def _bin_base(frames: int, h: int, w: int) -> np.ndarray:
    """``(frame * MH * MW + cell) * 8`` as float32 ``[frames, h, w]`` (exact integers): a vector's bin index minus
    its angle bin, for :func:`_cell_histograms` (read-only, cached per shape)."""
    mw = w // CELL
    cell = (np.arange(h)[:, None] // CELL) * mw + np.arange(w)[None, :] // CELL
    base = (np.arange(frames)[:, None, None] * ((h // CELL) * mw) + cell) * ANGLE_BINS
    if base.size and base.max() >= 2**24:
        raise ValueError(f"a slab of {frames} frames of {h}x{w} vectors is too large for float32 bin indices")
    base = base.astype(np.float32)
    base.flags.writeable = False
    return base


def _cell_histograms(dx: np.ndarray, dy: np.ndarray, valid: np.ndarray | None, mode: str) -> np.ndarray:
    """Per-frame, per-cell weighted angle histograms ``[F, MH, MW, 8]`` float64 of float32 vector planes
    ``[F, MH * 5, MW * 5]`` (``valid``: bool of that shape, False weighs 0).

    Bins and weights are the package's element-wise float32 ops (fvmd §5.3-5.4; :func:`_angle_bins`,
    :func:`_weight_levels`); the histogram is one ``bincount`` per slab of frames. Sums of multiples of 1/8 are exact
    in float64, so any later summation (cubes, windows) is exact too.
    """
    f, h, w = dx.shape
    mh, mw = h // CELL, w // CELL
    per = max(1, SLAB_VECTORS // (h * w))
    base = _bin_base(min(per, f), h, w)
    out = np.empty((f, mh, mw, ANGLE_BINS), np.float64)
    for i in range(0, f, per):
        x, y = dx[i : i + per], dy[i : i + per]
        k = len(x)
        mag = x * x
        mag += y * y
        levels = _weight_levels(np.sqrt(mag, out=mag))  # sqrt of the 2-term sum = np.linalg.norm in float32
        if valid is not None:
            levels *= valid[i : i + per]  # masked vectors weigh 0 (fvmd §10.4)
        index = _angle_bins(x, y, mode, levels)
        index += base[:k]
        hist = np.bincount(index.astype(np.intp).ravel(), weights=levels.ravel(), minlength=k * mh * mw * ANGLE_BINS)
        out[i : i + k] = hist.reshape(k, mh, mw, ANGLE_BINS)
    out *= 1 / 8  # levels k -> weights k / 8, exact
    return out


def _planes(vectors: np.ndarray, grid_shape: tuple[int, int]):
    """x and y planes ``[..., MH * 5, MW * 5]`` float32 (contiguous) of ``[..., N, 2]`` vectors on a row-major grid;
    rows/columns that do not fill a 5 x 5 cell are dropped."""
    gh, gw = grid_shape
    n = vectors.shape[-2]
    if gh * gw != n:
        raise ValueError(f"`grid_shape` {tuple(grid_shape)} does not hold N={n} points")
    mh, mw = gh // CELL, gw // CELL
    if mh == 0 or mw == 0:
        raise ValueError(f"a {gh}x{gw} grid holds no {CELL}x{CELL} cell")
    v = np.asarray(vectors, np.float32).reshape(vectors.shape[:-2] + (gh, gw, 2))[..., : mh * CELL, : mw * CELL, :]
    return np.ascontiguousarray(v[..., 0]), np.ascontiguousarray(v[..., 1])


def _frame_cell_histograms(vectors: np.ndarray, grid_shape: tuple[int, int], mode: str) -> np.ndarray:
    """Per-frame, per-cell weighted angle histograms ``[B, S, MH, MW, 8]`` float64 of ``[B, S, N, 2]`` vectors
    (:func:`_cell_histograms`)."""
    b, s = vectors.shape[:2]
    dx, dy = _planes(vectors, grid_shape)
    h = _cell_histograms(dx.reshape((b * s,) + dx.shape[2:]), dy.reshape((b * s,) + dy.shape[2:]), None, mode)
    return h.reshape((b, s) + h.shape[1:])


def _video_histograms(tracks: np.ndarray, vis: np.ndarray | None, grid_shape: tuple[int, int], mode: str):
    """Per-frame cell histograms ``(velocity, acceleration)``, each ``[V, T, MH, MW, 8]``, of the whole videos'
    fields (:func:`_fields`, computed here on the trimmed x / y planes): velocity from frame 1, acceleration from
    frame 2 (earlier frames are 0). The official acceleration is the velocity with frame 1 zeroed (fvmd §4)."""
    v, t = tracks.shape[:2]
    x, y = _planes(tracks, grid_shape)  # [V, T, H', W']
    if vis is not None:
        m = vis.reshape(v, t, *grid_shape)[:, :, : x.shape[2], : x.shape[3]]
    flat = lambda a: a.reshape((-1,) + a.shape[2:])  # noqa: E731  [V, F, H', W'] -> [V * F, H', W']
    vx, vy = x[:, 1:] - x[:, :-1], y[:, 1:] - y[:, :-1]  # frames 1..T-1
    mv = None if vis is None else m[:, 1:] & m[:, :-1]
    hv = _cell_histograms(flat(vx), flat(vy), None if mv is None else flat(mv), mode).reshape((v, t - 1) + (-1,))
    vel = np.zeros((v, t, hv.shape[-1]), np.float64)
    vel[:, 1:] = hv
    acc = np.zeros_like(vel)
    if mode == "official":
        acc[:, 2:] = hv[:, 1:]
    elif t > 2:
        ax, ay = vx[:, 1:] - vx[:, :-1], vy[:, 1:] - vy[:, :-1]  # frames 2..T-1 (second differences)
        ma = None if mv is None else mv[:, 1:] & m[:, :-2]
        acc[:, 2:] = _cell_histograms(flat(ax), flat(ay), None if ma is None else flat(ma), mode).reshape(
            (v, t - 2, -1))
    shape = (v, t, x.shape[2] // CELL, x.shape[3] // CELL, ANGLE_BINS)
    return vel.reshape(shape), acc.reshape(shape)


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
    computation sets to 0 (weight 0): 1 for the velocity, 2 for the acceleration (fvmd §4). Every 4-frame sum is
    formed once (exact for multiples of 1/8) and shared by the overlapping windows.
    """
    v, t = hist.shape[:2]
    cubes = hist[:, : t - CUBE_FRAMES + 1].copy()  # [V, T-3, ...]: sum of frames [f, f + 4), exact for k / 8
    for k in range(1, CUBE_FRAMES):
        cubes += hist[:, k : t - CUBE_FRAMES + 1 + k]
    first = starts[:, None] + CUBE_FRAMES * np.arange(ms)[None]  # [W, MS] first frame of every cube
    feats = cubes[:, first]  # [V, W, MS, MH, MW, 8]
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


def _scaled_centred(f: np.ndarray) -> np.ndarray:
    """``(f - mean) / sqrt(n - 1)``: ``x^T x`` is the unbiased covariance, ``|x|_F^2`` its trace."""
    return (f - f.mean(0)) / np.sqrt(f.shape[0] - 1)


def _reduced_gram(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """Gram matrix of ``[x1[:-1]; x2[:-1]]`` (see :func:`_trace_sqrt_from_gram`)."""
    z = np.concatenate([x1[:-1], x2[:-1]])
    return z @ z.T


def _trace_sqrt_from_gram(g: np.ndarray, n1: int, d: int, eps: float) -> float | None:
    """``tr sqrt((S1 + eps I)(S2 + eps I))`` in ``D = d`` dims from the Gram matrix ``g`` of the reduced rows
    ``[x1[:-1]; x2[:-1]]`` of scaled centred features (``S_k = x_k^T x_k``); None when ``g`` is not numerically
    positive definite (repeated clips, or more clips than dimensions: take the QR path).

    Centred rows sum to 0, so ``x_k``'s last row is minus the sum of the others and ``S_k = x'_k^T C x'_k`` with
    ``C = I + 1 1^T``. With ``g = L L^T`` (Cholesky, ``r = n1 + n2 - 2``) the rows of ``L`` are the reduced rows in
    an orthonormal basis of their span, where ``A = S1 + eps I`` and ``B = S2 + eps I`` are ``r x r`` and the
    ``D - r`` other directions give ``eps^2`` each. ``L`` is lower triangular, so ``A`` is block diagonal
    (``[[P, 0], [0, eps I]]``, ``P`` of size ``n1 - 1``) with Cholesky factor ``R = diag(chol P, sqrt(eps) I)``, and
    the eigenvalues of ``A B`` are those of the symmetric ``R^T B R``: one ``r x r`` eigvalsh instead of ``D x D``.
    """
    try:
        low = np.linalg.cholesky(g)
    except np.linalg.LinAlgError:
        return None
    m1, r = n1 - 1, g.shape[0]
    l11 = low[:m1, :m1]
    u = l11.sum(0)
    p = l11.T @ l11 + np.outer(u, u)
    p.flat[:: m1 + 1] += eps
    try:
        r1 = np.linalg.cholesky(p)
    except np.linalg.LinAlgError:
        return None
    y2 = low[m1:]
    w = np.empty_like(y2)
    w[:, :m1] = y2[:, :m1] @ r1
    w[:, m1:] = np.sqrt(eps) * y2[:, m1:]
    s = w.sum(0)
    m = w.T @ w + np.outer(s, s)  # R^T S2 R
    m[:m1, :m1] += eps * (r1.T @ r1)  # + eps R^T R
    m.flat[m1 * (r + 1) :: r + 1] += eps * eps
    ev = np.linalg.eigvalsh(m)
    return float(np.sqrt(np.clip(ev, 0, None)).sum()) + (d - r) * eps


def _frechet_low_rank(x1: np.ndarray, x2: np.ndarray, mu_gap: float, eps: float, gram: np.ndarray | None = None):
    """Fréchet distance from scaled centred features ``x1`` ``[n1, D]``, ``x2`` ``[n2, D]`` with ``n1 + n2 < D``
    (both covariances live in the span of the ``n1 + n2`` rows): the Gram/Cholesky form, else the QR form."""
    n1, d = x1.shape
    tr1, tr2 = float((x1 * x1).sum()), float((x2 * x2).sum())  # tr S1, tr S2 without forming them
    covmean = _trace_sqrt_from_gram(_reduced_gram(x1, x2) if gram is None else gram, n1, d, eps)
    if covmean is None:
        # In the basis [U, U_perp] of the span U (rank r), (S1 + eps I)(S2 + eps I) is block diagonal with eps^2 I on
        # the complement: tr sqrt(A B) = tr sqrt(A_r B_r) + (d - r) eps. With [x1; x2]^T = Q R, the coordinates
        # [x1; x2] Q are R^T (Q is never formed); QR copes with rank-deficient data.
        y = np.linalg.qr(np.concatenate([x1, x2]).T, mode="r").T  # [n1 + n2, r]
        y1, y2, r = y[:n1], y[n1:], y.shape[1]
        a = y1.T @ y1 + eps * np.eye(r)
        b = y2.T @ y2 + eps * np.eye(r)
        covmean = _trace_sqrt_product(a, b) + (d - r) * eps
    return float(mu_gap + tr1 + tr2 - 2 * covmean)


def frechet_distance(features_1: np.ndarray, features_2: np.ndarray, eps: float = 1e-5) -> float:
    """Fréchet distance of Gaussians fitted to ``[n1, D]`` and ``[n2, D]`` features (fvmd §7), float64.

    With fewer clips than dimensions (``n1 + n2 < D``), the square-root trace is computed exactly in the span of the
    data (``(n1 + n2 - 2)``-dimensional problems, :func:`_trace_sqrt_from_gram`), else from ``D x D`` covariances."""
    f1, f2 = _check_features(features_1, features_2)
    n1, n2, d = f1.shape[0], f2.shape[0], f1.shape[1]
    if n1 + n2 >= d:
        return _frechet_from_moments(*_moments(f1), *_moments(f2), eps)
    gap = float(((f1.mean(0) - f2.mean(0)) ** 2).sum())
    return _frechet_low_rank(_scaled_centred(f1), _scaled_centred(f2), gap, eps)


def _velocity_acceleration_combined(pv, pa, rv, ra, eps: float):
    """The three FVMD numbers. With enough clips, one covariance of ``[vel, acc]`` per set gives all three (its
    diagonal blocks are the velocity and acceleration covariances); with few, the combined features' Gram matrix is
    the sum of the velocity and acceleration ones."""
    f1, f2 = _check_features(np.concatenate([pv, pa], 1), np.concatenate([rv, ra], 1))
    d = pv.shape[1]
    n = f1.shape[0] + f2.shape[0]
    if n < d:
        x1v, x2v, x1a, x2a = (_scaled_centred(np.asarray(f, np.float64)) for f in (pv, rv, pa, ra))
        gap_v = float(((pv.mean(0) - rv.mean(0)) ** 2).sum())
        gap_a = float(((pa.mean(0) - ra.mean(0)) ** 2).sum())
        gv, ga = _reduced_gram(x1v, x2v), _reduced_gram(x1a, x2a)
        return (_frechet_low_rank(x1v, x2v, gap_v, eps, gv), _frechet_low_rank(x1a, x2a, gap_a, eps, ga),
                _frechet_low_rank(np.concatenate([x1v, x1a], 1), np.concatenate([x2v, x2a], 1), gap_v + gap_a, eps,
                                  gv + ga))
    if n < 2 * d:
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
    if np.isfinite(tr.sum()):  # one pass: NaN/inf anywhere makes the sum non-finite (an overflow: checked below)
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
    t_used = int(starts[-1]) + length  # later frames are in no window
    per = max(1, min(chunk_points, SLAB_VECTORS) // (t_used * n))  # whole videos, about one slab at a time
    vel_feats, acc_feats = [], []
    for i in range(0, v, per):
        vel, acc = _video_histograms(tr[i : i + per, :t_used], None if vis is None else vis[i : i + per, :t_used],
                                     grid_shape, mode)
        vel_feats.append(_window_features(vel, starts, ms, 1))
        acc_feats.append(_window_features(acc, starts, ms, 2))
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
