"""Tracks for motion-controlled video generators: Wan-Move (``ali-vilab/Wan-Move``), the paper's downstream use (§4.5,
App. C.2: sampled future tracks + one conditioning image -> an 81-frame video).

Layout Wan-Move's ``generate.py --image IMG --track TRACKS.npy --track_visibility VIS.npy`` reads (from its
``generate.py`` / ``wan/wan_move.py`` / ``wan/modules/trajectory.py``):

* ``TRACKS.npy``: float32 ``[1, F, N, 2]`` pixel coordinates ``(x, y)`` of the generated frame; the leading batch axis
  of 1 is what its example files hold (the generator drops it, its ``--vis_track`` drawing indexes it);
* ``VIS.npy``: bool ``[1, F, N]``; a point that is not visible, or outside ``[0, W) x [0, H)``, does not steer that
  frame (its latent-frame positions are skipped);
* ``F = 81`` frames (``--frame_num``, 4n + 1; the generator's mask is built for 81), frame 0 = the image;
* the frame ``H x W`` is not the image's own size: Wan-Move derives it from the image's aspect ratio ``a = h / w``
  and the area of ``--size`` (``480*832`` for the 480p model) as ``H = 8 round(sqrt(area a) // 8 // 2 * 2)``, ``W``
  likewise with ``area / a`` (in floating point: a 480x832 image gives 464x832). :func:`wan_move_frame_size`
  computes it; the image written here already has that size (a fixed point of the rule), so nothing is resized
  twice and the track pixels are the generator's pixels.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

WAN_MOVE_FRAMES = 81
WAN_MOVE_AREA = 480 * 832  # the 480p model's --size 480*832 (a pixel area; the aspect ratio is the image's)
_VAE_STRIDE, _PATCH = 8, 2  # Wan2.1 VAE spatial stride and DiT patch size: frames are multiples of 16 px


def wan_move_frame_size(image_hw: Tuple[int, int], area: int = WAN_MOVE_AREA) -> Tuple[int, int]:
    """The ``(H, W)`` Wan-Move generates for an image of size ``image_hw`` at ``--size`` area ``area`` (see the
    module docstring; the same floating-point rule, so 480x832 -> 464x832)."""
    h, w = (int(v) for v in image_hw)
    if h < 1 or w < 1 or area < 1:
        raise ValueError(f"`image_hw` and `area` must be positive, got {image_hw} and {area}")
    aspect = h / w
    lat_h = round(np.sqrt(area * aspect) // _VAE_STRIDE // _PATCH * _PATCH)
    lat_w = round(np.sqrt(area / aspect) // _VAE_STRIDE // _PATCH * _PATCH)
    return int(lat_h * _VAE_STRIDE), int(lat_w * _VAE_STRIDE)


def wan_move_frame_for(size_hw: Tuple[int, int] = (480, 832)) -> Tuple[int, int]:
    """The frame to export for a requested generator size ``size_hw`` (``--size H*W``): Wan-Move's frame for an image
    of that size at that area, refined until an image of exactly that size maps onto itself, so Wan-Move keeps the
    exported image as it is (480x832 -> 464x832)."""
    area = int(size_hw[0]) * int(size_hw[1])
    size = wan_move_frame_size(size_hw, area)
    for _ in range(8):
        nxt = wan_move_frame_size(size, area)
        if nxt == size:
            return size
        size = nxt
    raise ValueError(f"no stable Wan-Move frame size for --size {size_hw[0]}*{size_hw[1]}")


def wan_move_tracks(
    history_tracks,
    history_visibility,
    future_tracks,
    future_visibility,
    *,
    frame_hw: Tuple[int, int],
    num_frames: int = WAN_MOVE_FRAMES,
    start: str = "history",
) -> Tuple[np.ndarray, np.ndarray, int]:
    """History + one sampled future on one time axis, in the generator's pixels and frame count.

    Args:
        history_tracks / history_visibility: ``[T_h, N, 2]`` px of the generator frame / ``[T_h, N]`` bool.
        future_tracks / future_visibility: ``[T_f, N, 2]`` px / ``[T_f, N]`` bool (one sample).
        frame_hw: the generator's ``(H, W)`` (:func:`wan_move_frame_for`).
        num_frames: ``F`` (4n + 1; Wan-Move: 81).
        start: ``"history"``: frame 0 is the first history frame (the query grid); ``"last"``: frame 0 is the last
            observed frame, so the generator continues from the newest picture.
    Returns:
        ``(tracks [1, F, N, 2] float32 px, visibility [1, F, N] bool, real)``: ``real`` frames come from the tracks;
        when the joined axis is shorter than ``F`` the rest holds the last positions, not visible (no control).
        Points outside the target frame, or not finite, are not visible.
    """
    if start not in ("history", "last"):
        raise ValueError(f"`start` must be 'history' or 'last', got {start!r}")
    if num_frames < 1 or (num_frames - 1) % 4:
        raise ValueError(f"`num_frames` must be 4n + 1 (Wan's VAE packs 4 frames per latent), got {num_frames}")
    ht, ft = np.asarray(history_tracks, np.float64), np.asarray(future_tracks, np.float64)
    hv, fv = np.asarray(history_visibility, bool), np.asarray(future_visibility, bool)
    if ht.ndim != 3 or ht.shape[-1] != 2 or ft.ndim != 3 or ft.shape[1:] != ht.shape[1:]:
        raise ValueError(f"`history_tracks` / `future_tracks` must be [T, N, 2] with the same N, got "
                         f"{list(ht.shape)} / {list(ft.shape)}")
    if hv.shape != ht.shape[:2] or fv.shape != ft.shape[:2]:
        raise ValueError(f"visibility must be [T, N] like the tracks, got {list(hv.shape)} / {list(fv.shape)}")
    tracks = np.concatenate([ht, ft])[0 if start == "history" else len(ht) - 1 :]
    vis = np.concatenate([hv, fv])[0 if start == "history" else len(ht) - 1 :]
    th, tw = frame_hw
    real = min(len(tracks), num_frames)
    tracks, vis = tracks[:real], vis[:real]
    if real < num_frames:  # hold the last positions, uncontrolled
        tracks = np.concatenate([tracks, np.repeat(tracks[-1:], num_frames - real, 0)])
        vis = np.concatenate([vis, np.zeros((num_frames - real, vis.shape[1]), bool)])
    finite = np.isfinite(tracks).all(-1)
    inside = finite & (tracks[..., 0] >= 0) & (tracks[..., 0] < tw) & (tracks[..., 1] >= 0) & (tracks[..., 1] < th)
    tracks = np.where(finite[..., None], tracks, -1.0)
    return tracks[None].astype(np.float32), (vis & inside)[None], int(real)


def wan_move_command(image: str, tracks: str, visibility: str, size_hw: Tuple[int, int] = (480, 832),
                     num_frames: int = WAN_MOVE_FRAMES) -> str:
    """The ``generate.py`` call that consumes one exported sample (add ``--prompt`` and ``--ckpt_dir``)."""
    return (f"python generate.py --task wan-move-i2v --size {size_hw[0]}*{size_hw[1]} --frame_num {num_frames} "
            f"--image {image} --track {tracks} --track_visibility {visibility}")


def comfyui_tracks(tracks, visibility, real: int) -> list:
    """ComfyUI's "Tracks" coordinates (the ``track_coords`` JSON string of its ``WanMoveTracksFromCoords`` node): a
    list of tracks, each a list of ``{"x": px, "y": px}`` per frame. The format has no per-point visibility (the node
    takes every point as visible, unless a mask hides whole frames), so only points visible in all of the first
    ``real`` frames are kept, over those frames.

    Args:
        tracks: ``[1, F, N, 2]`` px, visibility ``[1, F, N]`` bool, real: as returned by :func:`wan_move_tracks`.
    """
    tr, vi = np.asarray(tracks)[0, :real], np.asarray(visibility)[0, :real]
    keep = np.flatnonzero(vi.all(0))
    return [[{"x": round(float(x), 3), "y": round(float(y), 3)} for x, y in tr[:, n]] for n in keep]
