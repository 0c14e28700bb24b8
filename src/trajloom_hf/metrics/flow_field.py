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


CHUNK_POINTS = 1 << 22  # (video, frame, point) triples per chunk: bounds the float64 temporaries (~0.2 GB)


def _grid_flows(tracks, visibility, grid_shape: tuple[int, int]):
    """Validate, then yield ``(flow [v, T-1, H_g, W_g, 2] px/frame float64, valid [v, T-1, H_g, W_g])`` per chunk
    of videos. A flow vector is valid when both endpoints are finite (and visible)."""
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
    per = max(1, CHUNK_POINTS // (t * n))
    for i in range(0, v, per):
        chunk = tr[i : i + per].astype(np.float64)
        ok = np.isfinite(chunk).all(-1)
        if vis is not None:
            ok &= vis[i : i + per]
        pos = np.where(ok[..., None], chunk, 0.0)
        flow = (pos[:, 1:] - pos[:, :-1]).reshape(len(chunk), t - 1, gh, gw, 2)
        yield flow, (ok[:, 1:] & ok[:, :-1]).reshape(len(chunk), t - 1, gh, gw)


def _reduce(per_frame: np.ndarray) -> FlowFieldScore:
    """``[V, T-1]`` with NaN for empty frames -> per-video nanmean -> mean over finite videos."""
    with warnings.catch_warnings():  # "Mean of empty slice" for videos with no valid frame: NaN by design
        warnings.simplefilter("ignore", RuntimeWarning)
        per_video = np.nanmean(per_frame, axis=1)
    finite = np.isfinite(per_video)
    value = float(per_video[finite].mean()) if finite.any() else float("nan")
    return FlowFieldScore(value, per_video)


def _masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over the last two (grid) dims where ``mask``; NaN where nothing is valid."""
    count = mask.sum((-2, -1))
    total = np.where(mask, values, 0.0).sum((-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def flow_tv(predictions, visibility=None, *, grid_shape: tuple[int, int], grid_stride: float) -> FlowFieldScore:
    """FlowTV (eq. 15) of predicted tracks ``[V, T, N, 2]`` px on a row-major ``grid_shape`` grid of spacing
    ``grid_stride`` px; ``visibility`` ``[V, T, N]`` (the official script masks with the GT visibility)."""
    check_grid_stride(grid_stride)
    per_frame = []
    for flow, valid in _grid_flows(predictions, visibility, grid_shape):
        dx = np.abs(flow[..., :, 1:, :] - flow[..., :, :-1, :]).sum(-1) / grid_stride  # [v, T-1, H, W-1]
        vx = valid[..., :, 1:] & valid[..., :, :-1]
        dy = np.abs(flow[..., 1:, :, :] - flow[..., :-1, :, :]).sum(-1) / grid_stride  # [v, T-1, H-1, W]
        vy = valid[..., 1:, :] & valid[..., :-1, :]
        tx, ty = _masked_mean(dx, vx), _masked_mean(dy, vy)
        # a direction without valid pairs is skipped; a frame with neither is NaN
        per_frame.append(np.where(np.isnan(tx) & np.isnan(ty), np.nan, np.nan_to_num(tx) + np.nan_to_num(ty)))
    return _reduce(np.concatenate(per_frame))


def div_curl_energy(predictions, visibility=None, *, grid_shape: tuple[int, int], grid_stride: float) -> FlowFieldScore:
    """DivCurlE (eq. 16): mean ``div^2 + curl^2`` over valid interior cells, 1/frame^2 (float64)."""
    check_grid_stride(grid_stride)
    s = float(grid_stride)
    per_frame = []
    for flow, valid in _grid_flows(predictions, visibility, grid_shape):
        u, v = flow[..., 0], flow[..., 1]
        dux = (u[..., :-1, 1:] - u[..., :-1, :-1]) / s
        dvx = (v[..., :-1, 1:] - v[..., :-1, :-1]) / s
        duy = (u[..., 1:, :-1] - u[..., :-1, :-1]) / s
        dvy = (v[..., 1:, :-1] - v[..., :-1, :-1]) / s
        energy = (dux + dvy) ** 2 + (dvx - duy) ** 2  # div^2 + curl^2 on the (H_g-1) x (W_g-1) cells
        cell = valid[..., :-1, :-1] & valid[..., :-1, 1:] & valid[..., 1:, :-1]  # its x-pair and y-pair are valid
        per_frame.append(_masked_mean(energy, cell))
    return _reduce(np.concatenate(per_frame))
