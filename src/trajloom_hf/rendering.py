"""Pictures people look at: tracks drawn over frames, forecasts, montages.

Each point keeps one colour, chosen from its query position (frame-0 location), so the spatial order of the grid
stays readable over time (paper Fig. 1). Trails fade and thin with age; occluded points are hidden or drawn as
hollow circles; points outside the frame are not drawn. Frames narrower than :data:`DISPLAY_MIN_WIDTH` are upscaled for
display, every panel gets a header (label, time) drawn once in a plain sans font, and a key below says what filled,
hollow, trails and colours mean. All functions return uint8 RGB frames ``[T, H, W, 3]``; write them with
:mod:`trajloom_hf.video_io` (mp4/GIF/PNG).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Optional, Sequence, Tuple

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


# ---- display: upscaling, text, headers, legend ---------------------------------------------------------------------
DISPLAY_MIN_WIDTH = 320  # px: panels narrower than this are upscaled for display (issue 18: 160 px is unreadable)
EDGE_BAND = 0.01  # px: occluded points this close to the frame edge are taken as clipped out-of-frame points
_GAP = 6  # px of white between panels
_BAR = (248, 248, 248)
_INK = (20, 20, 20)


def display_scale(width: int, min_width: int = DISPLAY_MIN_WIDTH) -> int:
    """Integer upscaling factor that makes a ``width``-px panel at least ``min_width`` px wide (1 if it already is)."""
    if width < 1:
        raise ValueError(f"`width` must be >= 1, got {width}")
    return max(1, -(-int(min_width) // int(width)))


def upscale(frames: np.ndarray, k: int) -> np.ndarray:
    """Frames ``[T, H, W, 3]`` -> ``[T, k H, k W, 3]`` (bilinear), for display."""
    if k == 1:
        return np.asarray(frames).copy()
    return np.stack([cv2.resize(f, (f.shape[1] * k, f.shape[0] * k), interpolation=cv2.INTER_LINEAR) for f in frames])


def to_display(tracks: np.ndarray, k: int) -> np.ndarray:
    """Pixel coordinates of a frame -> those of the frame upscaled ``k`` times (pixel centres map to pixel centres,
    as ``cv2.resize`` samples: ``x' = (x + 0.5) k - 0.5``)."""
    return (np.asarray(tracks, np.float64) + 0.5) * k - 0.5


def hide_off_frame(tracks: np.ndarray, visibility: np.ndarray, height: int, width: int):
    """Tracks ``[..., N, 2]`` px and visibility ``[..., N]`` with every point that must not be drawn set to NaN / False:
    points outside the ``height x width`` frame, and occluded points on its edge (within :data:`EDGE_BAND`): the
    pipeline clips out-of-frame predictions to the edge, as the official script does, and marks them not visible;
    drawn, they would pile up along the border as a row of hollow circles."""
    tracks = np.array(tracks, np.float64)
    vis = np.asarray(visibility, bool)
    x, y = tracks[..., 0], tracks[..., 1]
    with np.errstate(invalid="ignore"):
        inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
        on_edge = (x < EDGE_BAND) | (x > width - 1 - EDGE_BAND) | (y < EDGE_BAND) | (y > height - 1 - EDGE_BAND)
    drop = ~inside | (~vis & on_edge)
    tracks[drop] = np.nan
    return tracks, vis & ~drop


@lru_cache(maxsize=8)
def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)  # a scalable sans font with FreeType, the bitmap font without


def text_size(text: str, size: int) -> Tuple[int, int]:
    """Width and height (px) of ``text`` in the label font of ``size`` px."""
    from PIL import Image, ImageDraw

    box = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=_font(size))
    return box[2] - box[0], box[3] - box[1]


def draw_text(img: np.ndarray, text: str, xy: Tuple[int, int], size: int = 13, color=_INK) -> np.ndarray:
    """``text`` drawn once (anti-aliased, no shadow copy), its top-left ink corner at ``xy``; returns a new image."""
    from PIL import Image, ImageDraw

    im = Image.fromarray(np.ascontiguousarray(img))
    draw = ImageDraw.Draw(im)
    font = _font(size)
    left, top = draw.textbbox((0, 0), text, font=font)[:2]
    draw.text((xy[0] - left, xy[1] - top), text, fill=tuple(int(c) for c in color), font=font)
    return np.array(im)


def _font_size(k: int) -> int:
    return 12 + 2 * min(k, 3)


def header(width: int, left: str, right: str = "", *, size: int = 13) -> np.ndarray:
    """A light bar ``[h, width, 3]`` with ``left`` (the panel's title) and ``right`` (e.g. the frame) in dark text."""
    h = size + 10
    bar = np.full((h, width, 3), _BAR, np.uint8)
    bar = draw_text(bar, left, (6, (h - text_size("Hg", size)[1]) // 2), size)
    if right:
        w_r = text_size(right, size)[0]
        if w_r + 18 + text_size(left, size)[0] < width:
            bar = draw_text(bar, right, (width - w_r - 6, (h - text_size("Hg", size)[1]) // 2), size, (90, 90, 90))
    return bar


def legend(width: int, *, height: int = 96, frame_width: int = 160, color_by: str = "xy",
           size: int = 13) -> np.ndarray:
    """The key of every picture: filled = visible, hollow = occluded, the fading trail, and the colour map (a point's
    colour is its start position in the frame). Items wrap onto more lines when ``width`` is narrow."""
    r = max(3, size // 3)
    swatch_w, swatch_h = 3 * size, size
    sw = point_colors(np.stack(np.meshgrid(np.linspace(0, frame_width - 1, swatch_w),
                                           np.linspace(0, height - 1, swatch_h)), -1).reshape(-1, 2),
                      height, frame_width, color_by).reshape(swatch_h, swatch_w, 3)
    mark = (60, 110, 200)

    def icon(kind):
        w_i = {"dot": 2 * r + 2, "ring": 2 * r + 2, "trail": 3 * size, "swatch": swatch_w}[kind]
        img = np.full((size + 2, w_i, 3), _BAR, np.uint8)
        c = (w_i // 2, (size + 2) // 2)
        if kind == "dot":
            cv2.circle(img, c, r, mark, -1, cv2.LINE_AA)
        elif kind == "ring":
            cv2.circle(img, c, r, mark, 1, cv2.LINE_AA)
        elif kind == "trail":
            for i in range(6):  # fading and thinning with age, as draw_tracks_on draws it
                a = 0.2 + 0.7 * i / 5
                seg = img.copy()
                cv2.line(seg, (int(i * w_i / 6), c[1]), (int((i + 1) * w_i / 6), c[1]), mark, 1 + i // 2, cv2.LINE_AA)
                img = cv2.addWeighted(seg, a, img, 1 - a, 0)
        else:
            img[1 : 1 + swatch_h] = sw
        return img

    items = [("dot", "visible"), ("ring", "occluded"), ("trail", "trail (older = fainter)"),
             ("swatch", "colour = start position (x: hue, y: brightness)" if color_by == "xy"
              else f"colour = start {color_by}")]
    line_h = size + 10
    rows, row, x = [], [], 8
    for kind, text in items:  # flow layout: wrap when the next item does not fit
        w_item = icon(kind).shape[1] + 5 + text_size(text, size)[0] + 16
        if row and x + w_item > width:
            rows.append(row)
            row, x = [], 8
        row.append((kind, text, x))
        x += w_item
    rows.append(row)
    bar = np.full((line_h * len(rows) + 4, width, 3), _BAR, np.uint8)
    bar[0] = 215  # a thin rule between the pictures and their key
    for j, row in enumerate(rows):
        y0 = 3 + j * line_h
        for kind, text, x in row:
            ic = icon(kind)
            yi = y0 + (line_h - ic.shape[0]) // 2
            w_ic = min(ic.shape[1], width - x)
            if w_ic > 0:
                bar[yi : yi + ic.shape[0], x : x + w_ic] = ic[:, :w_ic]
            bar = draw_text(bar, text, (x + ic.shape[1] + 5, y0 + (line_h - text_size("Hg", size)[1]) // 2), size)
    return bar


def _with_headers(panels: Sequence[np.ndarray], titles: Sequence[str], right: Sequence[str], size: int) -> np.ndarray:
    """Panels ``[H, W, 3]`` side by side (a white gap between), each under its own header bar."""
    cols = []
    for k, (img, title, r) in enumerate(zip(panels, titles, right)):
        cols.append(np.concatenate([header(img.shape[1], title, r, size=size), img], 0))
        if k + 1 < len(panels):
            cols.append(np.full((cols[-1].shape[0], _GAP, 3), 255, np.uint8))
    return np.concatenate(cols, 1)


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
    min_width: int = DISPLAY_MIN_WIDTH,
    title: Optional[str] = None,
    show_legend: bool = True,
) -> np.ndarray:
    """Tracks drawn over their frames: ``frames [T, H, W, 3]``, ``tracks [T, N, 2]`` px -> ``[T, H', W', 3]`` uint8.

    Frames narrower than ``min_width`` are upscaled by an integer factor ``k`` (:func:`display_scale`; ``radius`` is
    in source pixels and scales with them); with ``title`` a header bar (title, frame number) goes on top, with
    ``show_legend`` the key below. Points outside the frame are not drawn (:func:`hide_off_frame`). Colours come from
    ``query_xy`` (default: the tracks at frame 0).
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
    k = display_scale(w, min_width)
    tracks, vis = hide_off_frame(tracks, vis, h, w)
    shown = to_display(tracks, k)
    bg = upscale(_background(frames, background), k)
    size = _font_size(k)
    out = []
    for t in range(frames.shape[0]):
        img = draw_tracks_on(bg[t], shown, vis, colors, t, trail=trail, occluded=occluded, radius=radius * k)
        if title is not None:
            img = np.concatenate([header(img.shape[1], title, f"frame {t + 1}/{frames.shape[0]}", size=size), img], 0)
        out.append(img)
    out = np.stack(out)
    if show_legend:
        key = legend(out.shape[2], height=h, frame_width=w, color_by=color_by, size=size)
        out = np.concatenate([out, np.broadcast_to(key, (out.shape[0],) + key.shape)], 1)
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
    radius: int = 2,
    min_width: int = DISPLAY_MIN_WIDTH,
    show_legend: bool = True,
) -> np.ndarray:
    """A forecast video: the history plays with its tracks, then the last history frame holds while each predicted
    future grows on it. Several futures are laid out side by side, each panel under a header with its label and the
    time (``t = -k``: k frames before the last observed one; ``t = +k``: k frames into the future), with the key below
    (filled = visible, hollow = occluded, trail, colour map).

    Panels narrower than ``min_width`` px are upscaled by an integer factor for display (:func:`display_scale`).
    Points outside the frame, and occluded points on its edge (clipped predictions), are not drawn.

    Args:
        history_frames: ``[T_h, H, W, 3]``; history_tracks ``[T_h, N, 2]`` px; history_visibility ``[T_h, N]``.
        future_tracks: ``[S, T_f, N, 2]`` (or ``[T_f, N, 2]``) px; future_visibility ``[S, T_f, N]`` or None.
        labels: one label per panel (default "sample k").
        history_stride: show every k-th history frame (shorter GIFs).
        radius: point radius in source pixels (scaled with the panel).
    Returns:
        ``[T_h / history_stride + T_f, H', W', 3]`` uint8 with ``W' = S k W + (S - 1) 6`` and ``H' = k H`` plus the
        header and key bars.
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
    if history_stride < 1:
        raise ValueError(f"`history_stride` must be >= 1, got {history_stride}")
    s = ft.shape[0]
    labels = list(labels) if labels is not None else [f"sample {k + 1}" for k in range(s)]
    if len(labels) != s:
        raise ValueError(f"`labels` must have one entry per future ({s}), got {len(labels)}")

    keep = _select_points(ht.shape[1], max_points)
    ht, hv, ft, fv = ht[:, keep], hv[:, keep], ft[:, :, keep], fv[:, :, keep]
    t_h, h, w = frames.shape[:3]
    colors = point_colors(np.nan_to_num(ht[0]), h, w, color_by)
    k = display_scale(w, min_width)
    size = _font_size(k)
    ht, hv = hide_off_frame(ht, hv, h, w)
    ft, fv = hide_off_frame(ft, fv, h, w)
    ht_d, ft_d = to_display(ht, k), to_display(ft, k)
    big = upscale(frames, k)
    out = []
    for t in range(0, t_h, history_stride):
        img = draw_tracks_on(big[t], ht_d, hv, colors, t, trail=trail, radius=radius * k)
        out.append(_with_headers([img] * s, ["history"] * s, [f"t = {t - t_h + 1}"] * s, size))
    last = (big[-1].astype(np.float32) * 0.75 + 255 * 0.25).astype(np.uint8)  # lightened hold frame
    # trails connect the future to the last history position
    tr = np.concatenate([np.broadcast_to(ht_d[-1:], (s, 1) + ht_d.shape[1:]), ft_d], 1)
    vi = np.concatenate([np.broadcast_to(hv[-1:], (s, 1) + hv.shape[1:]), fv], 1)
    for t in range(ft.shape[1]):
        panels = [draw_tracks_on(last, tr[j], vi[j], colors, t + 1, trail=ft.shape[1], start=0, radius=radius * k)
                  for j in range(s)]
        out.append(_with_headers(panels, labels, [f"t = +{t + 1}"] * s, size))
    out = np.stack(out)
    if show_legend:
        key = legend(out.shape[2], height=h, frame_width=w, color_by=color_by, size=size)
        out = np.concatenate([out, np.broadcast_to(key, (out.shape[0],) + key.shape)], 1)
    return out


MONTAGE_MAX_WIDTH = 1400  # px: wider strips are stacked as rows instead (a README column shows ~900 px)


def forecast_keyframes(num_history_shown: int, num_future: int, num: int = 3) -> list:
    """Frame indices of a :func:`render_forecast` video worth a still: the last observed frame, then ``num - 1``
    evenly spaced future frames ending with the last one."""
    if num_history_shown < 1 or num_future < 1 or num < 1:
        raise ValueError(f"need >= 1 history frame, future frame and keyframe, got {num_history_shown}, "
                         f"{num_future}, {num}")
    future = np.linspace(0, num_future, num)[1:].round().astype(int)
    return [num_history_shown - 1] + [num_history_shown - 1 + int(f) for f in future]


def montage(video, num: int = 3, padding: int = 10, background: int = 255, *, indices: Optional[Sequence[int]] = None,
            layout: str = "auto") -> np.ndarray:
    """Frames of ``video [T, H, W, 3]`` in one picture, ``padding`` px apart: ``num`` evenly spaced ones, or the
    ``indices`` given. ``layout``: ``"row"`` side by side, ``"column"`` stacked, ``"auto"`` a row unless it would be
    wider than :data:`MONTAGE_MAX_WIDTH` (multi-panel forecasts: one row per time, so each panel stays large)."""
    video = np.asarray(video)
    check_video(video, "video")
    if layout not in ("auto", "row", "column"):
        raise ValueError(f"`layout` must be 'auto', 'row' or 'column', got {layout!r}")
    if indices is None:
        if num < 1:
            raise ValueError(f"`num` must be >= 1, got {num}")
        idx = np.unique(np.linspace(0, video.shape[0] - 1, num).round().astype(int))
    else:
        idx = [int(i) for i in indices]
        if not idx or min(idx) < -video.shape[0] or max(idx) >= video.shape[0]:
            raise ValueError(f"`indices` must be frame numbers in [0, {video.shape[0]}), got {list(indices)}")
    h, w = video.shape[1:3]
    row = layout == "row" or (layout == "auto" and len(idx) * w + (len(idx) - 1) * padding <= MONTAGE_MAX_WIDTH)
    pad = np.full((h, padding, 3) if row else (padding, w, 3), background, np.uint8)
    parts = []
    for i in idx:
        parts += [video[i], pad]
    return np.concatenate(parts[:-1], axis=1 if row else 0)


def side_by_side(videos: Sequence[np.ndarray], labels: Optional[Sequence[str]] = None, size: int = 14) -> np.ndarray:
    """Equal-length videos ``[T, H, W, 3]`` side by side (a white gap between), each under a header bar with its
    label (GT | prediction) when ``labels`` is given."""
    if not videos:
        raise ValueError("`videos` must contain at least one video")
    t = min(v.shape[0] for v in videos)
    if any(v.shape[1] != videos[0].shape[1] for v in videos):
        raise ValueError(f"`videos` must share a height, got {[v.shape[1] for v in videos]}")
    if labels is not None and len(labels) != len(videos):
        raise ValueError(f"`labels` must have one entry per video ({len(videos)}), got {len(labels)}")
    rows = []
    for i in range(t):
        if labels is None:
            gap = np.full((videos[0].shape[1], _GAP, 3), 255, np.uint8)
            parts = [p for v in videos for p in (v[i], gap)][:-1]
            rows.append(np.concatenate(parts, 1))
        else:
            rows.append(_with_headers([v[i] for v in videos], list(labels), [""] * len(videos), size))
    return np.stack(rows)
