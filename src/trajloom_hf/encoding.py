"""Track data model and Grid-Anchor Offset Encoding (paper §3.1, App. B.1; reference §1.3–1.7).

Conventions used everywhere in the package:

* tracks ``[..., T, N, 2]`` float32 **pixels** ``(x, y)``, x along the width; visibility ``[..., T, N]`` bool;
* the same on the grid as ``[..., T, H_g, W_g, 2]`` with row-major order ``n = i * W_g + j``;
* query grid for stride ``s``: origin ``"topleft"`` (official) puts point ``(i, j)`` at pixel ``(s*j, s*i)``,
  origin ``"center"`` at ``(s*j + s//2, s*i + s//2)``;
* normalised coordinates ``x_n = 2 x / W - 1`` (W, not W - 1, as the official code), inverse ``x = (x_n + 1) W / 2``;
* the pixel-centre anchor of pixel ``(x, y)`` is the normalised ``(x + 0.5, y + 0.5)``; offsets are
  ``normalised - anchor`` of the point's query pixel.

Every function accepts numpy arrays or torch tensors and returns the same kind. Coordinates are computed in
float64 internally where precision matters and returned in float32 (float64 input stays float64), whatever
the model dtype: half precision loses up to 0.5 px at 832 px (reference §8.4).
"""

from __future__ import annotations

import math
from typing import Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from .validation import check_array, check_frame_size

ArrayLike = Union[np.ndarray, torch.Tensor]

GRID_ORIGINS = ("topleft", "center")


# ----------------------------------------------------------------------------------------------------------------
# small array-kind helpers (numpy and torch share the code below)


def _is_torch(x) -> bool:
    return isinstance(x, torch.Tensor)


def _coord_dtype(x: ArrayLike):
    """float64 stays float64; every other dtype (ints, half, bf16, fp32) becomes float32."""
    if _is_torch(x):
        return torch.float64 if x.dtype == torch.float64 else torch.float32
    return np.float64 if x.dtype == np.float64 else np.float32


def _to64(x: ArrayLike) -> ArrayLike:
    return x.to(torch.float64) if _is_torch(x) else np.asarray(x, dtype=np.float64)


def _like(values: np.ndarray, ref: ArrayLike) -> ArrayLike:
    """Return numpy ``values`` as the same array kind (and device) as ``ref``."""
    if _is_torch(ref):
        return torch.as_tensor(values, device=ref.device)
    return values


def _check_origin(origin: str) -> None:
    if origin not in GRID_ORIGINS:
        raise ValueError(f"`origin` must be one of {GRID_ORIGINS}, got {origin!r}")


# ----------------------------------------------------------------------------------------------------------------
# query grid and anchors


def grid_shape(height: int, width: int, stride: int) -> Tuple[int, int]:
    """Grid ``(H_g, W_g) = (H / s, W / s)``; ``H`` and ``W`` must be multiples of ``s``."""
    return check_frame_size(height, width, stride)


def patch_query_offset(stride: int, origin: str = "topleft") -> int:
    """Offset in pixels of the query point inside its ``s x s`` cell (0 for top-left, ``s // 2`` for centre)."""
    _check_origin(origin)
    return 0 if origin == "topleft" else stride // 2


def make_query_grid(height: int, width: int, stride: int, origin: str = "topleft") -> np.ndarray:
    """Query points ``[N, 2]`` float32 pixels ``(x, y)``, row-major over the ``H_g x W_g`` grid (reference §1.3)."""
    gh, gw = grid_shape(height, width, stride)
    off = patch_query_offset(stride, origin)
    ys, xs = np.meshgrid(np.arange(gh) * stride + off, np.arange(gw) * stride + off, indexing="ij")
    return np.stack([xs.reshape(-1), ys.reshape(-1)], axis=-1).astype(np.float32)


def grid_anchors(height: int, width: int, stride: int, origin: str = "topleft") -> np.ndarray:
    """Normalised pixel-centre anchors of the query pixels, ``[N, 2]`` float64 in [-1, 1] (paper §3.1, G(p))."""
    q = make_query_grid(height, width, stride, origin).astype(np.float64)
    return np.stack([2.0 * (q[:, 0] + 0.5) / width - 1.0, 2.0 * (q[:, 1] + 0.5) / height - 1.0], axis=-1)


def dense_anchor_field(height: int, width: int) -> np.ndarray:
    """Normalised pixel-centre anchor of every pixel, ``[H, W, 2]`` float64 (reference §1.6 ``offset_anchor_grid``)."""
    for arg, value in (("height", height), ("width", width)):
        if not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"`{arg}` must be a positive integer, got {value!r}")
    ys, xs = np.meshgrid(np.arange(height, dtype=np.float64), np.arange(width, dtype=np.float64), indexing="ij")
    return np.stack([2.0 * (xs + 0.5) / width - 1.0, 2.0 * (ys + 0.5) / height - 1.0], axis=-1)


# ----------------------------------------------------------------------------------------------------------------
# normalisation and offsets


def _check_coords(x, name: str) -> None:
    check_array(x, name)
    if x.ndim < 1 or x.shape[-1] != 2:
        raise ValueError(f"`{name}` must end with a coordinate dim of size 2 (x, y), got shape {list(x.shape)}")


def normalize_tracks(tracks: ArrayLike, height: int, width: int) -> ArrayLike:
    """Pixels ``[..., 2]`` -> normalised ``[..., 2]`` in [-1, 1]: ``2 x / W - 1``, ``2 y / H - 1``."""
    _check_coords(tracks, "tracks")
    out_dtype = _coord_dtype(tracks)
    t = _to64(tracks)
    scale = _like(np.array([2.0 / width, 2.0 / height]), t)
    out = t * scale - 1.0
    return out.to(out_dtype) if _is_torch(out) else out.astype(out_dtype)


def denormalize_tracks(normalized: ArrayLike, height: int, width: int) -> ArrayLike:
    """Normalised ``[..., 2]`` -> pixels: ``(x_n + 1) W / 2``, ``(y_n + 1) H / 2`` (exact inverse of normalize)."""
    _check_coords(normalized, "normalized")
    out_dtype = _coord_dtype(normalized)
    t = _to64(normalized)
    scale = _like(np.array([width / 2.0, height / 2.0]), t)
    out = (t + 1.0) * scale
    return out.to(out_dtype) if _is_torch(out) else out.astype(out_dtype)


def _check_num_points(tracks: ArrayLike, n: int, name: str) -> None:
    if tracks.ndim < 2 or tracks.shape[-2] != n:
        raise ValueError(f"`{name}` must have N={n} grid points in dim -2 (shape [..., N, 2]), got shape {list(tracks.shape)}")


def tracks_to_offsets(tracks: ArrayLike, height: int, width: int, stride: int, origin: str = "topleft") -> ArrayLike:
    """Grid-Anchor Offset Encoding (paper §3.1): pixels ``[..., N, 2]`` -> ``normalised - anchor`` ``[..., N, 2]``.

    ``N`` must equal ``H_g * W_g``; each point's anchor is the pixel centre of its own query pixel.
    """
    _check_coords(tracks, "tracks")
    anchors = grid_anchors(height, width, stride, origin)
    _check_num_points(tracks, anchors.shape[0], "tracks")
    out_dtype = _coord_dtype(tracks)
    t = _to64(tracks)
    scale = _like(np.array([2.0 / width, 2.0 / height]), t)
    out = t * scale - 1.0 - _like(anchors, t)
    return out.to(out_dtype) if _is_torch(out) else out.astype(out_dtype)


def offsets_to_tracks(offsets: ArrayLike, height: int, width: int, stride: int, origin: str = "topleft") -> ArrayLike:
    """Exact inverse of :func:`tracks_to_offsets`: offsets ``[..., N, 2]`` -> pixels ``[..., N, 2]``."""
    _check_coords(offsets, "offsets")
    anchors = grid_anchors(height, width, stride, origin)
    _check_num_points(offsets, anchors.shape[0], "offsets")
    out_dtype = _coord_dtype(offsets)
    o = _to64(offsets)
    scale = _like(np.array([width / 2.0, height / 2.0]), o)
    out = (o + _like(anchors, o) + 1.0) * scale
    return out.to(out_dtype) if _is_torch(out) else out.astype(out_dtype)


def in_frame(tracks: ArrayLike, height: int, width: int) -> ArrayLike:
    """``[..., N]`` bool: finite and inside ``[0, W-1] x [0, H-1]`` (reference §1.7 in-bounds test)."""
    _check_coords(tracks, "tracks")
    x, y = tracks[..., 0], tracks[..., 1]
    if _is_torch(tracks):
        return torch.isfinite(x) & torch.isfinite(y) & (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    return np.isfinite(x) & np.isfinite(y) & (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)


def clip_to_frame(tracks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``tracks`` ``[..., 2]`` px clamped to ``[0, W-1-1e-3] x [0, H-1-1e-3]``, as the official sampling script clips
    its output (after the in-frame test: :func:`in_frame` of the unclipped tracks is the visibility cue)."""
    _check_coords(tracks, "tracks")
    return torch.stack([tracks[..., 0].clamp(0, width - 1 - 1e-3), tracks[..., 1].clamp(0, height - 1 - 1e-3)], -1)


# ----------------------------------------------------------------------------------------------------------------
# grid reshapes and dense rasterisation


def to_grid(x: ArrayLike, grid_hw: Tuple[int, int], point_dim: int = -2) -> ArrayLike:
    """``[..., N, C]`` -> ``[..., H_g, W_g, C]`` (``point_dim=-2``) or ``[..., N]`` -> ``[..., H_g, W_g]`` (``-1``)."""
    gh, gw = grid_hw
    axis = point_dim % x.ndim
    if x.shape[axis] != gh * gw:
        raise ValueError(f"point dim {point_dim} must have N={gh}*{gw}={gh * gw} points, got shape {list(x.shape)}")
    new_shape = tuple(x.shape[:axis]) + (gh, gw) + tuple(x.shape[axis + 1 :])
    return x.reshape(new_shape)


def from_grid(x: ArrayLike, point_dims: int = 2, trailing: int = 1) -> ArrayLike:
    """``[..., H_g, W_g, C]`` -> ``[..., N, C]`` (``trailing=1``) or ``[..., H_g, W_g]`` -> ``[..., N]`` (``trailing=0``)."""
    axis = x.ndim - trailing - point_dims
    new_shape = tuple(x.shape[:axis]) + (x.shape[axis] * x.shape[axis + 1],) + tuple(x.shape[axis + 2 :])
    return x.reshape(new_shape)


def _repeat_cells(x: ArrayLike, stride: int, h_axis: int) -> ArrayLike:
    if _is_torch(x):
        return x.repeat_interleave(stride, dim=h_axis).repeat_interleave(stride, dim=h_axis + 1)
    return np.repeat(np.repeat(x, stride, axis=h_axis), stride, axis=h_axis + 1)


def rasterize_tracks(tracks_grid: ArrayLike, stride: int) -> ArrayLike:
    """Dense field ``D`` (paper §3.1): ``[..., H_g, W_g, 2]`` -> ``[..., H, W, 2]``, each ``s x s`` cell carrying its track.

    Only needed for parity checks with the official dense formulation: the models work on the grid.
    """
    _check_coords(tracks_grid, "tracks_grid")
    if tracks_grid.ndim < 3:
        raise ValueError(f"`tracks_grid` must have shape [..., H_g, W_g, 2], got {list(tracks_grid.shape)}")
    return _repeat_cells(tracks_grid, stride, tracks_grid.ndim - 3)


def rasterize_visibility(visibility_grid: ArrayLike, stride: int) -> ArrayLike:
    """Dense mask ``M`` (paper §3.1): ``[..., H_g, W_g]`` -> ``[..., H, W]``."""
    check_array(visibility_grid, "visibility_grid")
    if visibility_grid.ndim < 2:
        raise ValueError(f"`visibility_grid` must have shape [..., H_g, W_g], got {list(visibility_grid.shape)}")
    return _repeat_cells(visibility_grid, stride, visibility_grid.ndim - 2)


def sample_dense_at_queries(dense: ArrayLike, stride: int, origin: str = "topleft") -> ArrayLike:
    """Read a dense field ``[..., H, W, C]`` at the query pixels -> ``[..., H_g, W_g, C]`` (reference §6.1 step 6)."""
    off = patch_query_offset(stride, origin)
    return dense[..., off::stride, off::stride, :]


# ----------------------------------------------------------------------------------------------------------------
# exact coarse-grid patch embedding (reference §1.6)


def dense_patch_embed(
    tracks_norm_grid: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, use_offsets: bool = True
) -> torch.Tensor:
    """Reference dense formulation: ``Conv2d(k=s=stride)(D - G)`` on the rasterised field.

    Args:
        tracks_norm_grid: ``[B, H_g, W_g, 2]`` normalised coordinates (one frame per batch element).
        weight: ``[D, 2, s, s]`` patch-embedding kernel; bias ``[D]``.
        use_offsets: subtract the dense pixel-centre anchor field first (paper §3.1).
    Returns:
        ``[B, H_g, W_g, D]`` token embeddings. Memory grows with H·W: for tests and parity checks only.
    """
    s = weight.shape[-1]
    dense = rasterize_tracks(tracks_norm_grid, s)  # [B, H, W, 2]
    if use_offsets:
        h, w = dense.shape[-3], dense.shape[-2]
        dense = dense - torch.as_tensor(dense_anchor_field(h, w), dtype=dense.dtype, device=dense.device)
    out = F.conv2d(dense.permute(0, 3, 1, 2), weight.to(dense.dtype), bias.to(dense.dtype), stride=s)
    return out.permute(0, 2, 3, 1)


def anchor_patch_projection(weight: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-token constant ``A_n = sum(W ⊙ anchor_patch_n)``, ``[H_g, W_g, D]`` (reference §1.6).

    Computed in float64 from the dense anchor field once; cache it (it depends only on the kernel and frame size).
    """
    s = weight.shape[-1]
    grid_shape(height, width, s)
    anchor = torch.as_tensor(dense_anchor_field(height, width), dtype=torch.float64, device=weight.device)
    out = F.conv2d(anchor.permute(2, 0, 1)[None], weight.to(torch.float64), stride=s)
    return out[0].permute(1, 2, 0)


def coarse_patch_embed(
    tracks_norm_grid: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    anchor_projection: torch.Tensor = None,
) -> torch.Tensor:
    """Exact grid equivalent of :func:`dense_patch_embed`: ``e_n = S v_n - A_n + b`` with ``S = sum_{r,q} W[:, :, r, q]``.

    Args:
        tracks_norm_grid: ``[..., H_g, W_g, 2]`` normalised coordinates.
        weight / bias: patch kernel ``[D, 2, s, s]`` and ``[D]``.
        anchor_projection: ``[H_g, W_g, D]`` from :func:`anchor_patch_projection`, or None for absolute coordinates.
    Returns:
        ``[..., H_g, W_g, D]`` in the dtype of ``tracks_norm_grid``; memory grows with T·N, not T·H·W.
    """
    summed = weight.sum(dim=(2, 3)).to(tracks_norm_grid.dtype)  # [D, 2]
    out = tracks_norm_grid @ summed.t() + bias.to(tracks_norm_grid.dtype)
    if anchor_projection is not None:
        out = out - anchor_projection.to(out.dtype)
    return out


# ----------------------------------------------------------------------------------------------------------------
# latent time grid


def num_latent_frames(num_frames: int, temporal_stride: int = 4) -> int:
    """Latent steps for ``num_frames`` raw frames: ``ceil(T / stride)`` (81 -> 21; reference §2.1)."""
    if num_frames <= 0 or temporal_stride <= 0:
        raise ValueError(f"`num_frames` and `temporal_stride` must be positive, got {num_frames}, {temporal_stride}")
    return math.ceil(num_frames / temporal_stride)


def latent_visibility(visibility: ArrayLike, temporal_stride: int = 4) -> ArrayLike:
    """Latent-token visibility (reference §1.7): ``[..., T, N]`` -> ``[..., ceil(T/s), N]`` bool.

    Token ``k`` is visible if the point is visible in any frame of ``[s k, min(s k + s, T))`` (the last block of
    an 81-frame window holds only frame 80).
    """
    check_array(visibility, "visibility")
    if visibility.ndim < 2:
        raise ValueError(f"`visibility` must have shape [..., T, N], got {list(visibility.shape)}")
    t = visibility.shape[-2]
    k = num_latent_frames(t, temporal_stride)
    pad = k * temporal_stride - t
    lead = tuple(visibility.shape[:-2])
    n = visibility.shape[-1]
    if _is_torch(visibility):
        v = visibility.bool()
        if pad:
            v = torch.cat([v, torch.zeros(lead + (pad, n), dtype=torch.bool, device=v.device)], dim=-2)
        return v.reshape(lead + (k, temporal_stride, n)).any(dim=-2)
    v = np.asarray(visibility).astype(bool)
    if pad:
        v = np.concatenate([v, np.zeros(lead + (pad, n), dtype=bool)], axis=-2)
    return v.reshape(lead + (k, temporal_stride, n)).any(axis=-2)


def upsample_latent_time(x: ArrayLike, num_frames: int, temporal_stride: int = 4) -> ArrayLike:
    """Inverse time map of :func:`latent_visibility`: ``[..., K, N]`` -> ``[..., num_frames, N]``, latent ``k`` covering
    frames ``[s k, s k + s)`` (repeat then crop; reference §4 step 2)."""
    check_array(x, "x")
    k = x.shape[-2]
    if k * temporal_stride < num_frames:
        raise ValueError(f"{k} latent steps x stride {temporal_stride} cannot cover num_frames={num_frames}")
    if _is_torch(x):
        return x.repeat_interleave(temporal_stride, dim=-2)[..., :num_frames, :]
    return np.repeat(x, temporal_stride, axis=-2)[..., :num_frames, :]


def first_frame_history(tracks: ArrayLike, visibility: ArrayLike):
    """Replace a history by its first frame held still: ``[..., T, N, 2]`` / ``[..., T, N]`` with every frame equal to
    frame 0. This is the conditioning of image-only forecasters (WHN-style: the first frame, no motion history)."""
    t = tracks.shape[-3]
    if _is_torch(tracks):
        return tracks[..., :1, :, :].expand_as(tracks).clone(), visibility[..., :1, :].expand_as(visibility).clone()
    return np.repeat(tracks[..., :1, :, :], t, axis=-3), np.repeat(visibility[..., :1, :], t, axis=-2)


def last_frame_history(tracks: ArrayLike, visibility: ArrayLike):
    """Replace a history by its last frame held still: ``[..., T, N, 2]`` / ``[..., T, N]`` with every frame equal to
    frame ``T - 1``. The conditioning of the WHN-style baseline: the points' positions and visibility at the
    forecast start, no motion (on tracked clips frame 0 is the query grid itself, the same for every clip)."""
    t = tracks.shape[-3]
    if _is_torch(tracks):
        return tracks[..., -1:, :, :].expand_as(tracks).clone(), visibility[..., -1:, :].expand_as(visibility).clone()
    return np.repeat(tracks[..., -1:, :, :], t, axis=-3), np.repeat(visibility[..., -1:, :], t, axis=-2)
