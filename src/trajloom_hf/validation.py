"""Argument checks shared by every public entry point.

Each check raises a ``ValueError``/``TypeError`` that names the argument, what was expected and what was
received, so bad input is never silently reshaped, cast or guessed.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import sys

import numpy as np

ArrayLike = Union[np.ndarray, "torch.Tensor"]  # noqa: F821


def _is_tensor(x) -> bool:
    """``isinstance(x, torch.Tensor)`` without importing torch (numpy-only users, e.g. the metrics, never load it;
    if torch was never imported, ``x`` cannot be a tensor)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _shape(x: ArrayLike) -> Tuple[int, ...]:
    return tuple(int(s) for s in x.shape)


def check_array(x, name: str) -> None:
    """Require a numpy array or torch tensor."""
    if not (isinstance(x, np.ndarray) or _is_tensor(x)):
        raise TypeError(f"`{name}` must be a numpy array or torch tensor, got {type(x).__name__}")


def check_tracks(
    tracks,
    name: str = "tracks",
    *,
    num_frames: Optional[int] = None,
    num_points: Optional[int] = None,
    min_ndim: int = 3,
    max_ndim: Optional[int] = None,
    allow_nonfinite: bool = False,
) -> None:
    """Check point tracks ``[..., T, N, 2]`` (pixels or normalised; only shape and finiteness are checked).

    Args:
        tracks: array/tensor with trailing dims ``[T, N, 2]``.
        name: argument name used in error messages.
        num_frames / num_points: required T / N when given.
        min_ndim / max_ndim: allowed number of dimensions (3 = one clip, 4 = a batch).
        allow_nonfinite: accept NaN/inf (e.g. metrics that mask them); otherwise a ValueError.
    """
    check_array(tracks, name)
    shape = _shape(tracks)
    too_many = max_ndim is not None and len(shape) > max_ndim
    if len(shape) < min_ndim or too_many or shape[-1] != 2:
        lead = "" if min_ndim <= 3 and max_ndim == 3 else "[B, ]"
        raise ValueError(f"`{name}` must have shape {lead}[T, N, 2] (x, y), got {list(shape)}")
    if num_frames is not None and shape[-3] != num_frames:
        raise ValueError(f"`{name}` must have T={num_frames} frames (dim -3), got {shape[-3]} (shape {list(shape)})")
    if num_points is not None and shape[-2] != num_points:
        raise ValueError(f"`{name}` must have N={num_points} points (dim -2), got {shape[-2]} (shape {list(shape)})")
    if not allow_nonfinite:
        finite = tracks.isfinite().all().item() if _is_tensor(tracks) else np.isfinite(tracks).all()
        if not finite:
            raise ValueError(f"`{name}` contains NaN or inf coordinates; mark such points invisible and give finite values")


def check_visibility(visibility, tracks_shape: Sequence[int], name: str = "visibility") -> None:
    """Check a visibility mask ``[..., T, N]`` against tracks of shape ``[..., T, N, 2]``.

    Bool or {0, 1} numbers are accepted; probabilities are not (threshold them first).
    """
    check_array(visibility, name)
    expected = list(tracks_shape[:-1])
    if list(_shape(visibility)) != expected:
        raise ValueError(f"`{name}` must have shape {expected} (tracks shape without the last dim), got {list(_shape(visibility))}")
    is_bool = str(visibility.dtype) == "torch.bool" if _is_tensor(visibility) else visibility.dtype == np.bool_
    if not is_bool:
        vals = visibility if isinstance(visibility, np.ndarray) else visibility.detach().float().cpu().numpy()
        if vals.size and not np.isin(vals, (0, 1)).all():
            raise ValueError(f"`{name}` must be bool or 0/1, got values in [{vals.min()}, {vals.max()}]")


def check_frame_size(height: int, width: int, stride: int, name: str = "height/width") -> Tuple[int, int]:
    """Return the grid shape ``(H_g, W_g)``; H and W must be positive multiples of ``stride``."""
    for arg, value in (("height", height), ("width", width), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"`{arg}` must be a positive integer, got {value!r}")
    if height % stride or width % stride:
        raise ValueError(
            f"`{name}` = {height}x{width} must be divisible by the grid stride {stride} "
            f"(remainders {height % stride}, {width % stride})"
        )
    return height // stride, width // stride


def check_video(video, name: str = "video", *, height: Optional[int] = None, width: Optional[int] = None) -> None:
    """Check RGB frames ``[T, H, W, 3]`` (uint8, or float in [0, 255])."""
    check_array(video, name)
    shape = _shape(video)
    if len(shape) != 4 or shape[-1] != 3:
        raise ValueError(f"`{name}` must have shape [T, H, W, 3] (RGB), got {list(shape)}")
    if shape[0] == 0:
        raise ValueError(f"`{name}` has no frames (shape {list(shape)})")
    if height is not None and width is not None and (shape[1], shape[2]) != (height, width):
        raise ValueError(f"`{name}` frames must be {height}x{width} (H x W), got {shape[1]}x{shape[2]}")


def check_uint8_video(video, name: str = "video") -> None:
    """Require RGB frames ``[..., T, H, W, 3]`` as uint8 (numpy or torch).

    Float frames are refused rather than guessed: ``[0, 1]`` and ``[0, 255]`` conventions both exist and a wrong
    guess silently shifts the conditioning; NaN cannot occur in uint8.
    """
    check_array(video, name)
    is_u8 = str(video.dtype) == "torch.uint8" if _is_tensor(video) else video.dtype == np.uint8
    if not is_u8:
        hint = ""
        if (video.is_floating_point() if _is_tensor(video) else np.issubdtype(video.dtype, np.floating)):
            vals = video.detach().float().cpu().numpy() if _is_tensor(video) else np.asarray(video, np.float64)
            if not np.isfinite(vals).all():
                raise ValueError(f"`{name}` contains NaN or inf pixel values")
            hint = (f" (values in [{vals.min():.3g}, {vals.max():.3g}]: give (frames * 255).round().astype(np.uint8) for "
                    "[0, 1] floats, frames.round().astype(np.uint8) for [0, 255] floats)")
        raise TypeError(f"`{name}` must be uint8 RGB frames (0-255), got dtype {video.dtype}{hint}")


def check_probability(value, name: str, *, allow_none: bool = False) -> None:
    """Require a number in ``[0, 1]`` (a threshold on probabilities); NaN and booleans are refused."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not np.isfinite(value) \
            or not 0.0 <= float(value) <= 1.0:
        raise ValueError(f"`{name}` must be a number in [0, 1], got {value!r}")


def check_finite_parameters(module, name: str) -> None:
    """Raise ``ValueError`` naming the first parameter/buffer of ``module`` holding NaN or inf (a corrupt file)."""
    for key, tensor in list(module.named_parameters()) + list(module.named_buffers()):
        if tensor.is_floating_point() and not tensor.isfinite().all():
            raise ValueError(f"`{name}` weight {key!r} contains NaN or inf: the weights file is corrupt (or the "
                             "training diverged); reload or re-download it")


def as_bool_mask(mask, name: str = "visibility") -> np.ndarray:
    """A visibility mask as a numpy bool array: bool, or numbers that are exactly 0/1.

    Probabilities (0.3) are refused rather than cast (``astype(bool)`` makes every non-zero value True): threshold
    them first, e.g. ``prob > 0.5``.
    """
    a = mask.detach().cpu().numpy() if _is_tensor(mask) else np.asarray(mask)
    if a.dtype == np.bool_:
        return a
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == object):
        raise TypeError(f"`{name}` must be boolean (or 0/1 numbers), got dtype {a.dtype}")
    try:
        vals = a.astype(np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be boolean (or 0/1 numbers), got dtype {a.dtype}") from None
    if vals.size and not np.isin(vals, (0.0, 1.0)).all():
        bad = vals[~np.isin(vals, (0.0, 1.0))]
        raise ValueError(f"`{name}` must be boolean or 0/1, got values like {bad.flat[0]!r} (in [{np.nanmin(vals)}, "
                         f"{np.nanmax(vals)}]); threshold probabilities first (e.g. prob > 0.5)")
    return vals.astype(bool)


def check_grid_stride(grid_stride, name: str = "grid_stride") -> float:
    """A positive finite grid spacing in px."""
    if isinstance(grid_stride, bool) or not isinstance(grid_stride, (int, float, np.integer, np.floating)) \
            or not np.isfinite(grid_stride) or grid_stride <= 0:
        raise ValueError(f"`{name}` must be a positive finite number (px), got {grid_stride!r}")
    return float(grid_stride)
