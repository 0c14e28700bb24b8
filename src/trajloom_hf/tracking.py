"""Tracker front end: dense grid tracks + visibility from a video, for users who have frames but no tracks.

The embedded default needs no weights: dense optical flow (OpenCV DIS, or Farneback) between consecutive frames,
sampled bilinearly at each point's current position and chained from frame 0. Occlusion comes from a
forward-backward consistency check: a point is visible at ``t + 1`` when following the forward flow and then the
backward flow brings it back within ``abs_tol + rel_tol * |flow|^2`` px (the usual test of Sundaram et al., 2010)
it stays inside the frame and its (blurred) colour stays within ``color_tol`` of its surface colour. A point that fails is moved with the median flow of its nearest consistent points
(not with the flow at its own position, which belongs to the occluder) and stays invisible until its propagated
position passes the check again at ``reacquire`` consecutive frames.

Learned trackers (CoTracker3, AllTracker) are used through adapters when the user has them installed:
:func:`get_tracker` ``("auto")`` picks one if available and falls back to optical flow.
"""

from __future__ import annotations

import importlib.util
from typing import List, Optional, Protocol, Tuple

import cv2
import numpy as np

from .validation import check_video

TRACKER_NAMES = ("auto", "optical_flow", "cotracker")


class PointTracker(Protocol):
    """Anything that tracks query points queried at frame 0.

    ``track(frames [T, H, W, 3] uint8, query_xy [N, 2] px) -> (tracks [T, N, 2] float32 px, visibility [T, N] bool)``
    """

    name: str

    def track(self, frames: np.ndarray, query_xy: np.ndarray) -> Tuple[np.ndarray, np.ndarray]: ...


def _check_inputs(frames, query_xy) -> Tuple[np.ndarray, np.ndarray]:
    frames = np.asarray(frames)
    check_video(frames, "frames")
    if frames.dtype != np.uint8:
        raise ValueError(f"`frames` must be uint8 RGB, got {frames.dtype}")
    q = np.asarray(query_xy, dtype=np.float64)
    if q.ndim != 2 or q.shape[1] != 2 or not np.isfinite(q).all():
        raise ValueError(f"`query_xy` must be finite [N, 2] pixels (x, y), got shape {list(q.shape)}")
    h, w = frames.shape[1:3]
    if (q[:, 0] < 0).any() or (q[:, 0] > w - 1).any() or (q[:, 1] < 0).any() or (q[:, 1] > h - 1).any():
        raise ValueError(f"`query_xy` must lie inside the {h}x{w} frame")
    return frames, q


def _bilinear(field: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Sample ``field [H, W, 2]`` at ``pts [N, 2]`` (x, y) bilinearly, clamping to the border."""
    h, w = field.shape[:2]
    x = np.clip(pts[:, 0], 0, w - 1)
    y = np.clip(pts[:, 1], 0, h - 1)
    x0 = np.clip(np.floor(x).astype(int), 0, w - 2)
    y0 = np.clip(np.floor(y).astype(int), 0, h - 2)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    f00, f01 = field[y0, x0], field[y0, x0 + 1]
    f10, f11 = field[y0 + 1, x0], field[y0 + 1, x0 + 1]
    return (f00 * (1 - fx) + f01 * fx) * (1 - fy) + (f10 * (1 - fx) + f11 * fx) * fy


def _stretch_contrast(gray: list) -> list:
    """One affine grey-level map for the whole clip to mean 128, std 48 (brightness constancy is kept).

    Farneback's polynomial expansion is not contrast-invariant: on low-contrast footage (grey std ~ 18) it
    underestimates a 4.8 px/frame pan as 0.7 px/frame; after the stretch it recovers 4.6 px. DIS normalises its
    patches itself and gets the raw frames.
    """
    stack = np.stack(gray).astype(np.float32)
    mean, std = float(stack.mean()), float(stack.std())
    stack = (stack - mean) * (48.0 / max(std, 1.0)) + 128.0
    return list(np.clip(stack, 0, 255).round().astype(np.uint8))


class OpticalFlowTracker:
    """Chained dense optical flow with a forward-backward occlusion check (no weights needed).

    Args:
        method: ``"dis"`` (OpenCV DIS, default) or ``"farneback"``.
        abs_tol, rel_tol: forward-backward tolerance ``abs_tol + rel_tol |flow|^2`` in px.
        reacquire: consecutive consistent frames needed before a lost point counts as visible again.
        neighbours: a lost point moves with the median flow of this many nearest visible points.
        color_tol: mean absolute RGB change (0-255, on frames blurred with sigma 1.5) beyond which a point is taken
            to be covered by another surface.
    """

    name = "optical_flow"

    def __init__(self, method: str = "dis", abs_tol: float = 0.75, rel_tol: float = 0.02, reacquire: int = 3,
                 neighbours: int = 8, color_tol: float = 30.0):
        if method not in ("dis", "farneback"):
            raise ValueError(f"`method` must be 'dis' or 'farneback', got {method!r}")
        self.method, self.abs_tol, self.rel_tol, self.reacquire = method, abs_tol, rel_tol, reacquire
        self.neighbours, self.color_tol = neighbours, color_tol
        self._dis = None

    def _flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self.method == "dis":
            if self._dis is None:
                self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
            return self._dis.calc(a, b, None)
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 21, 5, 7, 1.5, 0)

    def track(self, frames, query_xy) -> Tuple[np.ndarray, np.ndarray]:
        frames, q = _check_inputs(frames, query_xy)
        t, h, w = frames.shape[:3]
        gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
        if self.method == "farneback":
            gray = _stretch_contrast(gray)
        smooth = [cv2.GaussianBlur(f, (0, 0), 1.5).astype(np.float32) for f in frames]
        tracks = np.empty((t, len(q), 2), np.float64)
        vis = np.zeros((t, len(q)), bool)
        tracks[0], vis[0] = q, True
        appearance = _bilinear(smooth[0], q)  # [N, 3] reference colour of each point's surface
        streak = np.full(len(q), self.reacquire)  # consecutive consistent steps
        for i in range(t - 1):
            fwd = self._flow(gray[i], gray[i + 1])
            bwd = self._flow(gray[i + 1], gray[i])
            p = tracks[i]
            f = _bilinear(fwd, p)
            nxt = p + f
            back = _bilinear(bwd, nxt)
            err = np.linalg.norm(f + back, axis=1)
            # consistent flow AND the same surface colour: a point dragged along by an occluder's flow changes colour
            same = np.abs(_bilinear(smooth[i + 1], nxt) - appearance).mean(1) <= self.color_tol
            ok = (err <= self.abs_tol + self.rel_tol * (f**2).sum(1)) & same
            streak = np.where(ok, streak + 1, 0)
            # An occluded point must not ride on its occluder's flow: move it with the median motion of its nearest
            # points that are visible and consistent (the surface it lies on most likely moves like them).
            lost = ~(vis[i] & ok)
            anchor = vis[i] & ok
            if lost.any() and anchor.sum() >= 3:
                k = min(self.neighbours, int(anchor.sum()))
                d = np.linalg.norm(p[lost][:, None] - p[anchor][None], axis=-1)
                nearest = np.argpartition(d, k - 1, axis=1)[:, :k]
                nxt[lost] = p[lost] + np.median(f[anchor][nearest], axis=1)
                disp = nxt[lost] - p[lost]
                consistent = np.linalg.norm(disp + _bilinear(bwd, nxt[lost]), axis=1) <= self.abs_tol + self.rel_tol * (disp**2).sum(1)
                consistent &= np.abs(_bilinear(smooth[i + 1], nxt[lost]) - appearance[lost]).mean(1) <= self.color_tol
                streak[lost] = np.where(consistent, streak[lost], 0)
                ok[lost] = consistent
            inside = (nxt[:, 0] >= 0) & (nxt[:, 0] <= w - 1) & (nxt[:, 1] >= 0) & (nxt[:, 1] <= h - 1)
            tracks[i + 1] = nxt
            # visible if consistent now and either visible before or consistent long enough to re-acquire
            vis[i + 1] = inside & ok & (vis[i] | (streak >= self.reacquire))
            # follow slow appearance changes (lighting) of visible points
            seen = vis[i + 1]
            appearance[seen] = 0.9 * appearance[seen] + 0.1 * _bilinear(smooth[i + 1], nxt[seen])
        return tracks.astype(np.float32), vis


class CoTrackerAdapter:
    """CoTracker3 (``pip install cotracker``: facebookresearch/co-tracker) through its offline predictor.

    The predictor takes ``video [B, T, 3, H, W]`` float in [0, 255] and ``queries [B, N, 3]`` as ``(t, x, y)`` and
    returns ``tracks [B, T, N, 2]`` and ``visibility [B, T, N]``. ``predictor`` may be given directly (e.g. a model
    loaded from a local checkpoint); otherwise ``CoTrackerPredictor(checkpoint=...)`` is built.
    """

    name = "cotracker"

    def __init__(self, predictor=None, checkpoint: Optional[str] = None, device: str = "cpu"):
        if predictor is None:
            if importlib.util.find_spec("cotracker") is None:
                raise ImportError("CoTracker is not installed: `pip install git+https://github.com/facebookresearch/co-tracker` "
                                  "and pass `checkpoint=` (a local scaled_offline.pth), or use the optical-flow tracker")
            from cotracker.predictor import CoTrackerPredictor

            predictor = CoTrackerPredictor(checkpoint=checkpoint)
        self.predictor = predictor.to(device) if hasattr(predictor, "to") else predictor
        self.device = device

    def track(self, frames, query_xy) -> Tuple[np.ndarray, np.ndarray]:
        import torch

        frames, q = _check_inputs(frames, query_xy)
        video = torch.from_numpy(frames).permute(0, 3, 1, 2)[None].float().to(self.device)
        queries = torch.cat([torch.zeros(len(q), 1), torch.from_numpy(q).float()], 1)[None].to(self.device)
        with torch.no_grad():
            tracks, vis = self.predictor(video, queries=queries)
        tracks = tracks[0].detach().cpu().numpy().astype(np.float32)
        vis = vis[0].detach().cpu().numpy()
        vis = vis > 0.5 if vis.dtype != bool else vis
        if tracks.shape != (frames.shape[0], len(q), 2) or vis.shape != tracks.shape[:2]:
            raise ValueError(f"the CoTracker predictor returned tracks {list(tracks.shape)} / visibility {list(vis.shape)}, "
                             f"expected [{frames.shape[0]}, {len(q)}, 2]")
        return tracks, vis


def sudden_track_loss(visibility, min_fraction: float = 0.5, min_points: int = 4,
                      min_share: float = 0.25) -> List[Tuple[int, float]]:
    """Frames at which a tracker lost most of its points at once: what a scene cut (or a flash, or a jump in the
    video) does to tracks, which a forecast from them cannot survive.

    Args:
        visibility: ``[T, N]`` bool (the history's tracker visibility).
        min_fraction: report frame ``t`` when at least this fraction of the points visible at ``t - 1`` is not
            visible at ``t``.
        min_points, min_share: and at least ``max(min_points, min_share N)`` points were visible at ``t - 1`` (a
            tracker that has already lost most points by drift, losing a few more, is not a cut).
    Returns:
        ``[(t, fraction lost), ...]`` in frame order (``t`` counted from the first frame of ``visibility``).
    """
    vis = np.asarray(visibility)
    if vis.ndim != 2 or vis.dtype != bool:
        raise ValueError(f"`visibility` must be bool [T, N], got {vis.dtype} {list(vis.shape)}")
    if not 0.0 < min_fraction <= 1.0:
        raise ValueError(f"`min_fraction` must be in (0, 1], got {min_fraction}")
    before = vis[:-1].sum(1)
    lost = (vis[:-1] & ~vis[1:]).sum(1)
    frac = lost / np.maximum(before, 1)
    hits = np.flatnonzero((before >= max(1, min_points, min_share * vis.shape[1])) & (frac >= min_fraction))
    return [(int(t) + 1, float(frac[t])) for t in hits]


def scene_cuts(frames, threshold: float = 0.25, bins: int = 8) -> List[Tuple[int, float]]:
    """Frames that start a new shot: the colour histogram (``bins``^3 RGB bins) changes by at least ``threshold`` in
    total variation (0 = same colours, 1 = none in common) from the frame before. Motion within a shot moves few
    pixels between bins (median about 0.02-0.03 on real footage); a cut replaces the picture (0.4-0.8).

    Args:
        frames: ``[T, H, W, 3]`` uint8.
    Returns:
        ``[(t, change), ...]``: frame ``t`` (from the first of ``frames``) differs from ``t - 1`` by ``change``.
    """
    frames = np.asarray(frames)
    check_video(frames, "frames")
    if frames.dtype != np.uint8:
        raise ValueError(f"`frames` must be uint8 RGB, got {frames.dtype}")
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"`threshold` must be in (0, 1], got {threshold}")
    hists = []
    for f in frames:
        hist = cv2.calcHist([np.ascontiguousarray(f)], [0, 1, 2], None, [bins] * 3, [0, 256] * 3).ravel()
        hists.append(hist / max(hist.sum(), 1.0))
    change = 0.5 * np.abs(np.diff(np.asarray(hists), axis=0)).sum(1)
    return [(int(t) + 1, float(change[t])) for t in np.flatnonzero(change >= threshold)]


def get_tracker(name: str = "auto", **kwargs) -> PointTracker:
    """A tracker by name. ``"auto"``: CoTracker when importable and a ``checkpoint`` is given, else optical flow."""
    if name not in TRACKER_NAMES:
        raise ValueError(f"`name` must be one of {TRACKER_NAMES}, got {name!r}")
    if name == "cotracker":
        return CoTrackerAdapter(**kwargs)
    if name == "auto" and importlib.util.find_spec("cotracker") is not None and kwargs.get("checkpoint"):
        return CoTrackerAdapter(**kwargs)
    kwargs.pop("checkpoint", None)
    kwargs.pop("device", None)
    return OpticalFlowTracker(**kwargs)
