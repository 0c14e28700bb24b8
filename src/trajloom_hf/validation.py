"""Argument checks shared by every public entry point.

Each check raises a ``ValueError``/``TypeError`` that names the argument, what was expected and what was
received, so bad input is never silently reshaped, cast or guessed.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

ArrayLike = Union[np.ndarray, torch.Tensor]


def _shape(x: ArrayLike) -> Tuple[int, ...]:
    return tuple(int(s) for s in x.shape)


def check_array(x, name: str) -> None:
    """Require a numpy array or torch tensor."""
    if not isinstance(x, (np.ndarray, torch.Tensor)):
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
        finite = torch.isfinite(tracks).all().item() if isinstance(tracks, torch.Tensor) else np.isfinite(tracks).all()
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
    is_bool = visibility.dtype == torch.bool if isinstance(visibility, torch.Tensor) else visibility.dtype == np.bool_
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
