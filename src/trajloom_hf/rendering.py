"""Pictures people look at: tracks drawn over frames, forecasts, montages.

Each point keeps one colour, chosen from its query position (frame-0 location), so the spatial order of the grid
stays readable over time (paper Fig. 1). Trails fade and thin with age; occluded points are hidden or drawn as
hollow circles. All functions return uint8 RGB frames ``[T, H, W, 3]``; write them with
:mod:`trajloom_hf.video_io` (mp4/GIF/PNG).
"""

from __future__ import annotations

from typing import Optional, Sequence

import cv2
import numpy as np

from .validation import check_tracks, check_video, check_visibility

COLOR_MODES = ("xy", "x", "y")
OCCLUDED_MODES = ("hollow", "hide")
BACKGROUNDS = ("video", "lightened", "white")
_TRAIL_LAYERS = 8  # opacity levels a fading trail is quantised to (see draw_tracks_on)


def point_colors(query_xy: np.ndarray, height: int, width: int, color_by: str = "xy") -> np.ndarray:
    """One RGB colour per point, ``[N, 3]`` uint8, from its query position ``[N, 2]`` px.

    ``"xy"``: hue from x, brightness from y (the official renderer's scheme); ``"x"``/``"y"``: the turbo colour map
    along one axis.
    """
    if color_by not in COLOR_MODES:
        raise ValueError(f"`color_by` must be one of {COLOR_MODES}, got {color_by!r}")
    q = np.asarray(query_xy, dtype=np.float64)
    u = np.clip(q[:, 0] / max(width - 1, 1), 0, 1)
    v = np.clip(q[:, 1] / max(height - 1, 1), 0, 1)
    if color_by == "xy":
        hsv = np.stack([u * 170, np.full_like(u, 230), 128 + 127 * v], -1).astype(np.uint8)[None]
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]
    import matplotlib

    cmap = matplotlib.colormaps["turbo"]
    vals = u if color_by == "x" else v
    return (np.asarray(cmap(0.05 + 0.9 * vals))[:, :3] * 255).astype(np.uint8)


def _background(frames: np.ndarray, mode: str) -> np.ndarray:
    if mode not in BACKGROUNDS:
        raise ValueError(f"`background` must be one of {BACKGROUNDS}, got {mode!r}")
    if mode == "white":
        return np.full_like(frames, 255)
    if mode == "lightened":
        return (frames.astype(np.float32) * 0.6 + 255 * 0.4).astype(np.uint8)
    return frames.copy()


def _select_points(n: int, max_points: Optional[int]) -> np.ndarray:
    if max_points is None or max_points >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_points).round().astype(int))


def draw_tracks_on(
    canvas: np.ndarray,
    tracks: np.ndarray,
    visibility: np.ndarray,
    colors: np.ndarray,
    t: int,
    *,
    trail: int = 16,
    occluded: str = "hollow",
    radius: int = 2,
    start: int = 0,
) -> np.ndarray:
    """Draw the trails ``[max(start, t - trail), t]`` and heads at frame ``t`` onto ``canvas`` (returns a new image).

    Args:
        canvas: ``[H, W, 3]`` uint8. tracks ``[T, N, 2]`` px; visibility ``[T, N]`` bool; colors ``[N, 3]`` uint8.
        start: first frame a trail may reach back to (e.g. the first future frame of a forecast).
    """
    if occluded not in OCCLUDED_MODES:
        raise ValueError(f"`occluded` must be one of {OCCLUDED_MODES}, got {occluded!r}")
    out = canvas.copy()
    first = max(start, t - trail)
    scale = 4  # sub-pixel precision for cv2 (shift = 2 bits)
    pts = np.round(np.nan_to_num(tracks, nan=-1e4) * scale)
    pts = np.clip(pts, -(2**20), 2**20).astype(np.int32)
    by_point = np.ascontiguousarray(pts.transpose(1, 0, 2))  # [N, T, 2]: one contiguous polyline per point
    cols = [tuple(int(c) for c in col) for col in colors]
    # Segment s joins frames s and s+1; its age (t - s) / trail sets its opacity (0.9 newest -> 0.2 oldest) and width.
    # Segments are grouped into at most _TRAIL_LAYERS age bins, oldest first so newer ones land on top: each bin is
    # drawn opaque on one layer (one polyline per point, not one line per segment) and blended once. This keeps long
    # forecast trails (81 future frames) fast and avoids darker joints where consecutive segments overlap.
    if t > first:
        for seg in np.array_split(np.arange(first, t), min(_TRAIL_LAYERS, t - first)):
            a, b = int(seg[0]), int(seg[-1])
            age = min(1.0, (t - 0.5 * (a + b)) / max(trail, 1))
            alpha = 0.9 - 0.7 * age
            thick = max(1, int(round(radius * (1.0 - 0.6 * age))))
            layer = out.copy()
            ok = visibility[a : b + 1] & visibility[a + 1 : b + 2]  # [L, N]: both ends of the segment visible
            whole = ok.all(0)
            for n in np.flatnonzero(whole):
                cv2.polylines(layer, [by_point[n, a : b + 2]], False, cols[n], thick, cv2.LINE_AA, shift=2)
            for n in np.flatnonzero(ok.any(0) & ~whole):  # broken by occlusion: only the visible segments
                for k in np.flatnonzero(ok[:, n]):
                    p0, p1 = by_point[n, a + k], by_point[n, a + k + 1]
                    cv2.line(layer, (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1])), cols[n], thick, cv2.LINE_AA,
                             shift=2)
            out = cv2.addWeighted(layer, alpha, out, 1 - alpha, 0)
    head = by_point[:, t]
    for n in range(tracks.shape[1]):
        centre = (int(head[n, 0]), int(head[n, 1]))
        if visibility[t, n]:
            cv2.circle(out, centre, radius * scale, cols[n], -1, cv2.LINE_AA, shift=2)
        elif occluded == "hollow" and np.isfinite(tracks[t, n]).all():
            cv2.circle(out, centre, radius * scale, cols[n], 1, cv2.LINE_AA, shift=2)
    return out


def render_tracks(
    frames,
    tracks,
    visibility=None,
    *,
    trail: int = 16,
    color_by: str = "xy",
    occluded: str = "hollow",
    max_points: Optional[int] = None,
    background: str = "video",
    radius: int = 2,
    query_xy: Optional[np.ndarray] = None,
) -> np.ndarray:
    """Tracks drawn over their frames: ``frames [T, H, W, 3]``, ``tracks [T, N, 2]`` px -> ``[T, H, W, 3]`` uint8.

    Colours come from ``query_xy`` (default: the tracks at frame 0).
    """
    frames = np.asarray(frames)
    check_video(frames, "frames")
    tracks = np.asarray(tracks, dtype=np.float64)
    check_tracks(tracks, "tracks", min_ndim=3, max_ndim=3, allow_nonfinite=True)
    if tracks.shape[0] != frames.shape[0]:
        raise ValueError(f"`tracks` has {tracks.shape[0]} frames but `frames` has {frames.shape[0]}")
    vis = np.isfinite(tracks).all(-1) if visibility is None else np.asarray(visibility).astype(bool)
    check_visibility(vis, tracks.shape, "visibility")
    keep = _select_points(tracks.shape[1], max_points)
    tracks, vis = tracks[:, keep], vis[:, keep]
    h, w = frames.shape[1:3]
    q = tracks[0] if query_xy is None else np.asarray(query_xy)[keep]
    colors = point_colors(np.nan_to_num(q), h, w, color_by)
    bg = _background(frames, background)
    return np.stack([draw_tracks_on(bg[t], tracks, vis, colors, t, trail=trail, occluded=occluded, radius=radius)
                     for t in range(frames.shape[0])])


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    scale = max(0.35, img.shape[0] / 600)
    cv2.putText(out, text, (6, int(18 * scale / 0.5)), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (6, int(18 * scale / 0.5)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def render_forecast(
    history_frames,
    history_tracks,
    history_visibility,
    future_tracks,
    future_visibility=None,
    *,
    labels: Optional[Sequence[str]] = None,
    trail: int = 16,
    color_by: str = "xy",
    max_points: Optional[int] = None,
    history_stride: int = 1,
) -> np.ndarray:
    """A forecast video: the history plays with its tracks, then the last history frame holds while each predicted
    future grows on it. Several futures are laid out side by side as labelled panels.

    Args:
        history_frames: ``[T_h, H, W, 3]``; history_tracks ``[T_h, N, 2]`` px; history_visibility ``[T_h, N]``.
        future_tracks: ``[S, T_f, N, 2]`` (or ``[T_f, N, 2]``) px; future_visibility ``[S, T_f, N]`` or None.
        labels: one label per panel (default "sample k").
        history_stride: show every k-th history frame (shorter GIFs).
    Returns:
        ``[T_h / history_stride + T_f, H, S * W, 3]`` uint8.
    """
    frames = np.asarray(history_frames)
    check_video(frames, "history_frames")
    ht = np.asarray(history_tracks, dtype=np.float64)
    check_tracks(ht, "history_tracks", min_ndim=3, max_ndim=3, allow_nonfinite=True)
    if ht.shape[0] != frames.shape[0]:
        raise ValueError(f"`history_tracks` has {ht.shape[0]} frames but `history_frames` has {frames.shape[0]}")
    hv = np.ones(ht.shape[:2], bool) if history_visibility is None else np.asarray(history_visibility).astype(bool)
    check_visibility(hv, ht.shape, "history_visibility")
    ft = np.asarray(future_tracks, dtype=np.float64)
    if ft.ndim == 3:
        ft = ft[None]
        future_visibility = None if future_visibility is None else np.asarray(future_visibility)[None]
    check_tracks(ft, "future_tracks", min_ndim=4, max_ndim=4, num_points=ht.shape[1], allow_nonfinite=True)
    fv = np.isfinite(ft).all(-1) if future_visibility is None else np.asarray(future_visibility).astype(bool)
    check_visibility(fv, ft.shape, "future_visibility")
    s = ft.shape[0]
    labels = list(labels) if labels is not None else [f"sample {k + 1}" for k in range(s)]
    if len(labels) != s:
        raise ValueError(f"`labels` must have one entry per future ({s}), got {len(labels)}")

    keep = _select_points(ht.shape[1], max_points)
    ht, hv, ft, fv = ht[:, keep], hv[:, keep], ft[:, :, keep], fv[:, :, keep]
    h, w = frames.shape[1:3]
    colors = point_colors(np.nan_to_num(ht[0]), h, w, color_by)
    hist = [draw_tracks_on(frames[t], ht, hv, colors, t, trail=trail) for t in range(0, frames.shape[0], history_stride)]
    last = (frames[-1].astype(np.float32) * 0.75 + 255 * 0.25).astype(np.uint8)  # lightened hold frame
    out = []
    for img in hist:
        out.append(np.concatenate([_label(img, "history")] * s, axis=1))
    for t in range(ft.shape[1]):
        panels = []
        for k in range(s):
            # trails connect the future to the last history position
            tr = np.concatenate([ht[-1:], ft[k]], 0)
            vi = np.concatenate([hv[-1:], fv[k]], 0)
            panels.append(_label(draw_tracks_on(last, tr, vi, colors, t + 1, trail=ft.shape[1], start=0), labels[k]))
        out.append(np.concatenate(panels, axis=1))
    return np.stack(out)


def montage(video, num: int = 3, padding: int = 10, background: int = 255) -> np.ndarray:
    """``num`` evenly spaced frames of ``video [T, H, W, 3]`` side by side with ``padding`` px, ``[H, W', 3]``."""
    video = np.asarray(video)
    check_video(video, "video")
    if num < 1:
        raise ValueError(f"`num` must be >= 1, got {num}")
    idx = np.unique(np.linspace(0, video.shape[0] - 1, num).round().astype(int))
    h = video.shape[1]
    pad = np.full((h, padding, 3), background, np.uint8)
    parts = []
    for i in idx:
        parts += [video[i], pad]
    return np.concatenate(parts[:-1], axis=1)


def side_by_side(videos: Sequence[np.ndarray], labels: Optional[Sequence[str]] = None) -> np.ndarray:
    """Equal-length videos ``[T, H, W, 3]`` concatenated along the width, each optionally labelled (GT | prediction)."""
    if not videos:
        raise ValueError("`videos` must contain at least one video")
    t = min(v.shape[0] for v in videos)
    if any(v.shape[1] != videos[0].shape[1] for v in videos):
        raise ValueError(f"`videos` must share a height, got {[v.shape[1] for v in videos]}")
    labels = list(labels) if labels is not None else [None] * len(videos)
    rows = []
    for i in range(t):
        rows.append(np.concatenate([_label(v[i], lab) if lab else v[i] for v, lab in zip(videos, labels)], axis=1))
    return np.stack(rows)
