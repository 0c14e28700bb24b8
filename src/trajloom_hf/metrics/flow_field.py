"""Reference-free flow-field diagnostics of predicted tracks on the grid (paper eqs. 15-16; reference §5.2-5.3).

With per-frame flow ``F_t = p_{t+1} - p_t`` (px/frame) on the ``H_g x W_g`` grid and forward differences divided by
the grid spacing ``s`` (px):

* **FlowTV** (eq. 15): ``TV_t = mean_x(|d_x u| + |d_x v|) + mean_y(|d_y u| + |d_y v|)`` over valid neighbour pairs;
  units 1/frame. The paper's tables show FlowTV x 10^2.
* **DivCurlE** (eq. 16): ``mean over valid cells of div^2 + curl^2``, ``div = d_x u + d_y v``, ``curl = d_x v - d_y u``
  on the ``(H_g - 1) x (W_g - 1)`` cells; units 1/frame^2. The paper's tables show DivCurlE x 10^3.

A flow vector is valid when both of its endpoints are finite (and visible, when a visibility is given); a pair when
both its vectors are; a DivCurlE cell when its x-pair and its y-pair are. Per video: the mean over time of the
per-frame values (frames without any valid pair are skipped); per dataset: the mean over videos with a finite value.

Speed: videos are processed a few at a time (about ``CHUNK_POINTS`` points, so temporaries stay in the CPU cache) with
every frame of a chunk at once; float32 tracks are computed in float32 (a flow or neighbour difference of float32
coordinates is exact or rounded once; per-frame sums are pairwise), other inputs in float64. Values equal the
official per-video, per-frame float64 loops to ~1e-7 relative (tests/test_metrics_speed.py).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..validation import as_bool_mask, check_grid_stride


@dataclass
class FlowFieldScore:
    """``value``: dataset mean; ``per_video``: ``[V]`` (NaN where a video has nothing valid)."""

    value: float
    per_video: np.ndarray


CHUNK_POINTS = 1 << 16  # (video, frame, point) triples per chunk: cache-sized temporaries


def work_dtype(array: np.ndarray) -> type:
    """float32 for float32 (and narrower float) tracks, float64 for float64 or integer ones: the differences of the
    given coordinates are then exact or rounded once, as in the official float64 computation."""
    if np.issubdtype(array.dtype, np.floating) and array.dtype.itemsize <= 4:
        return np.float32
    return np.float64


def _grid_flows(tracks, visibility, grid_shape: tuple[int, int]):
    """Validate, then yield ``(u, v, valid)`` per chunk of videos: flow components ``[v, T-1, H_g, W_g]`` px/frame
    (contiguous planes) and ``valid`` ``[v, T-1, H_g, W_g]`` bool or None (every vector valid). A flow vector is
    valid when both endpoints are finite (and visible)."""
    tr = np.asarray(tracks)
    if tr.ndim == 3:
        tr = tr[None]
        visibility = None if visibility is None else np.asarray(visibility)[None]
    if tr.ndim != 4 or tr.shape[-1] != 2:
        raise ValueError(f"`predictions` must have shape [V, T, N, 2] (px), got {list(tr.shape)}")
    v, t, n, _ = tr.shape
    gh, gw = grid_shape
    if gh * gw != n:
        raise ValueError(f"`grid_shape` {gh}x{gw} does not hold N={n} points")
    if t < 2:
        raise ValueError(f"`predictions` needs at least 2 frames for a flow, got {t}")
    vis = None
    if visibility is not None:
        vis = as_bool_mask(visibility, "visibility")
        if vis.shape != tr.shape[:-1]:
            raise ValueError(f"`visibility` must have shape {list(tr.shape[:-1])}, got {list(vis.shape)}")
    dtype = work_dtype(tr)
    per = max(1, CHUNK_POINTS // (t * n))
    for i in range(0, v, per):
        chunk = np.asarray(tr[i : i + per], dtype)
        pos = np.moveaxis(chunk, -1, 0)  # [2, v, T, N]: x and y planes
        ok = None if vis is None else vis[i : i + per]
        if not np.isfinite(chunk.sum()):  # NaN/inf points are invalid; zeroed so that masked products stay 0
            finite = np.isfinite(pos).all(0)  # (a sum that overflowed lands here too: then nothing is masked)
            ok = finite if ok is None else ok & finite
            pos = np.where(ok, pos, 0)
        k = pos.shape[1]
        flow = (pos[:, :, 1:] - pos[:, :, :-1]).reshape(2, k, t - 1, gh, gw)  # contiguous: moveaxis copied
        valid = None if ok is None else (ok[:, 1:] & ok[:, :-1]).reshape(k, t - 1, gh, gw)
        yield flow[0], flow[1], valid


def _reduce(per_frame: np.ndarray) -> FlowFieldScore:
    """``[V, T-1]`` with NaN for empty frames -> per-video nanmean -> mean over finite videos."""
    with warnings.catch_warnings():  # "Mean of empty slice" for videos with no valid frame: NaN by design
        warnings.simplefilter("ignore", RuntimeWarning)
        per_video = np.nanmean(per_frame, axis=1)
    finite = np.isfinite(per_video)
    value = float(per_video[finite].mean()) if finite.any() else float("nan")
    return FlowFieldScore(value, per_video)


def _diff(a: np.ndarray, offset: int) -> np.ndarray:
    """``a[..., i + offset] - a[..., i]`` along the flat last axis (0 in the last ``offset`` places): a neighbour
    difference on whole frames at once; the pairs it forms across a row or frame edge are masked by the caller."""
    out = np.empty_like(a)
    np.subtract(a[..., offset:], a[..., :-offset], out=out[..., :-offset])
    out[..., -offset:] = 0
    return out


def _pairs(valid: np.ndarray, offset: int, edge: np.ndarray) -> np.ndarray:
    """``valid[i] & valid[i + offset] & edge[i % P]`` of flat ``[F * P]`` validity, as ``[F, P]``."""
    out = np.zeros_like(valid)
    np.logical_and(valid[offset:], valid[:-offset], out=out[:-offset])
    out = out.reshape(-1, edge.size)
    out &= edge
    return out


def _frame_means(values: np.ndarray, mask: np.ndarray, frames: tuple[int, int], scale: float) -> np.ndarray:
    """``scale`` x the mean of flat ``values`` ``[F * P]`` (P grid points per frame, F = v (T-1)) over ``mask``
    (``[F, P]`` bool, or ``[P]`` when it is the same in every frame), as ``[v, T-1]`` float64; NaN where nothing is
    valid. ``values`` is overwritten."""
    values = values.reshape(-1, mask.shape[-1])
    np.multiply(values, mask, out=values)
    total = values.sum(-1).astype(np.float64)  # float32: pairwise sums within one frame
    count = np.count_nonzero(mask, axis=-1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total * scale / np.maximum(count, 1), np.nan).reshape(frames)


def _edges(h: int, w: int):
    """Flat ``[H_g * W_g]`` masks of the points that have a right neighbour, a lower one, and both."""
    col, row = np.arange(h * w) % w, np.arange(h * w) // w
    right, down = col < w - 1, row < h - 1
    return right, down, right & down


def flow_tv(predictions, visibility=None, *, grid_shape: tuple[int, int], grid_stride: float) -> FlowFieldScore:
    """FlowTV (eq. 15) of predicted tracks ``[V, T, N, 2]`` px on a row-major ``grid_shape`` grid of spacing
    ``grid_stride`` px; ``visibility`` ``[V, T, N]`` (the official script masks with the GT visibility)."""
    s = check_grid_stride(grid_stride)
    gh, gw = grid_shape
    right, down, _ = _edges(gh, gw)
    per_frame = []
    for u, v, valid in _grid_flows(predictions, visibility, grid_shape):
        frames = u.shape[:2]
        uv = np.stack([u.reshape(-1), v.reshape(-1)])  # [2, F * P]
        terms = []
        for offset, edge in ((1, right), (gw, down)):  # x pairs, y pairs
            if not edge.any():  # a single column or row: no pairs in that direction
                terms.append(np.full(frames, np.nan))
                continue
            d = np.abs(_diff(uv, offset), out=None)
            total = np.add(d[0], d[1], out=d[0])  # (|d u| + |d v|) s
            mask = edge if valid is None else _pairs(valid.reshape(-1), offset, edge)
            terms.append(_frame_means(total, mask, frames, 1 / s))
        tx, ty = terms
        # a direction without valid pairs is skipped; a frame with neither is NaN
        per_frame.append(np.where(np.isnan(tx) & np.isnan(ty), np.nan, np.nan_to_num(tx) + np.nan_to_num(ty)))
    return _reduce(np.concatenate(per_frame))


def div_curl_energy(predictions, visibility=None, *, grid_shape: tuple[int, int], grid_stride: float) -> FlowFieldScore:
    """DivCurlE (eq. 16): mean ``div^2 + curl^2`` over valid interior cells, 1/frame^2."""
    s = check_grid_stride(grid_stride)
    gh, gw = grid_shape
    _, _, corner = _edges(gh, gw)
    per_frame = []
    for u, v, valid in _grid_flows(predictions, visibility, grid_shape):
        frames = u.shape[:2]
        if not corner.any():  # one row or column: no interior cell
            per_frame.append(np.full(frames, np.nan))
            continue
        uv = np.stack([u.reshape(-1), v.reshape(-1)])  # [2, F * P]
        dx, dy = _diff(uv, 1), _diff(uv, gw)  # (d_x u, d_x v) s and (d_y u, d_y v) s at each cell's top-left point
        div = np.add(dx[0], dy[1], out=dx[0])
        curl = np.subtract(dx[1], dy[0], out=dx[1])
        np.multiply(div, div, out=div)
        np.multiply(curl, curl, out=curl)
        energy = np.add(div, curl, out=div)
        if valid is None:
            mask = corner
        else:  # the cell's x pair and y pair are valid
            vf = valid.reshape(-1)
            mask = _pairs(vf, 1, corner)
            mask &= _pairs(vf, gw, corner)
        per_frame.append(_frame_means(energy, mask, frames, 1 / (s * s)))
    return _reduce(np.concatenate(per_frame))
