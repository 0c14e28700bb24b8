"""Camera-motion captions estimated from point tracks (paper App. E.2).

For each pair of consecutive frames a similarity motion about the image centre is fitted robustly (trimmed least
squares over the visible points, so moving objects are discarded as outliers)::

    d_n = x_n(t+1) - x_n(t) = tau + s * r_n + theta * J r_n,   r_n = x_n(t) - centre,  J r = (-r_y, r_x)

``tau`` is the global translation (px/frame), ``s`` the radial (zoom) rate and ``theta`` the tangential (roll)
rate in rad/frame. Whatever high-frequency translation remains after a moving average is the handheld/shake
score. The statistics are mapped to a small vocabulary with speed buckets.

Sign conventions (image coordinates, y down):

* camera **pans right** => scene content moves **left** (tau_x < 0); camera **tilts up** => content moves down;
* camera **zooms in** => content expands about the centre (s > 0);
* ``theta > 0`` rotates content clockwise on screen (y down), which is what a camera **rolling counterclockwise**
  produces; a camera rolling clockwise makes content turn counterclockwise (theta < 0).

The speed thresholds live here, once: the synthetic generator draws its camera speeds from :data:`SPEED_RATES` so
that generated captions and estimated captions agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

from .validation import check_tracks, check_visibility

# Speed buckets. Translation in frame widths per frame; zoom in log-scale per frame; roll in rad per frame.
# A motion below the first edge is "static" for that primitive.
SPEED_EDGES: Dict[str, tuple] = {
    "translation": (0.0008, 0.003, 0.008),
    "zoom": (0.0008, 0.003, 0.007),
    "roll": (0.0008, 0.003, 0.007),
}
SPEED_NAMES = ("slowly", "moderately", "quickly")
# Rates the synthetic generator uses for each speed bucket (inside the bucket, away from its edges).
SPEED_RATES: Dict[str, Dict[str, float]] = {
    "translation": {"slowly": 0.0017, "moderately": 0.0052, "quickly": 0.012},
    "zoom": {"slowly": 0.0017, "moderately": 0.0048, "quickly": 0.010},
    "roll": {"slowly": 0.0017, "moderately": 0.0048, "quickly": 0.010},
}
# High-frequency residual translation (frame widths per frame, RMS) above which the camera is "handheld".
SHAKE_THRESHOLD = 0.0015

CAMERA_MOTIONS = (
    "static",
    "pan_left",
    "pan_right",
    "tilt_up",
    "tilt_down",
    "zoom_in",
    "zoom_out",
    "roll_clockwise",
    "roll_counterclockwise",
    "handheld",
)
_PHRASES = {
    "pan_left": "camera pans left",
    "pan_right": "camera pans right",
    "tilt_up": "camera tilts up",
    "tilt_down": "camera tilts down",
    "zoom_in": "camera zooms in",
    "zoom_out": "camera zooms out",
    "roll_clockwise": "camera rolls clockwise",
    "roll_counterclockwise": "camera rolls counterclockwise",
}


def camera_motion_phrase(motion: str, speed: Optional[str] = None) -> str:
    """Vocabulary phrase, e.g. ``("pan_right", "slowly") -> "camera pans right slowly"``."""
    if motion not in CAMERA_MOTIONS:
        raise ValueError(f"`motion` must be one of {CAMERA_MOTIONS}, got {motion!r}")
    if motion == "static":
        return "static camera"
    if motion == "handheld":
        return "handheld shaky camera"
    if speed not in SPEED_NAMES:
        raise ValueError(f"`speed` must be one of {SPEED_NAMES} for {motion!r}, got {speed!r}")
    return f"{_PHRASES[motion]} {speed}"


def append_camera_phrase(caption: str, phrase: str) -> str:
    """Append the camera phrase to a caption (App. E.2 augmentation): ``"a dog runs, camera pans left slowly"``."""
    caption = (caption or "").strip().rstrip(".")
    return phrase if not caption else f"{caption}, {phrase}"


def has_camera_phrase(caption: str) -> bool:
    """True when ``caption`` already holds a phrase of the vocabulary (e.g. the synthetic generator's captions)."""
    text = (caption or "").lower()
    return any(p in text for p in ("static camera", "handheld shaky camera", *_PHRASES.values()))


def caption_with_camera_motion(caption: str, tracks, visibility, height: int, width: int) -> str:
    """Training caption of App. E.2: ``caption`` with the camera phrase estimated from the clip's tracks appended.

    The paper appends the phrase "to the original caption during training"; pass the tracks of the whole training
    window (history + future, ``[T, N, 2]`` px, ``visibility [T, N]`` or None) so that the phrase describes the clip
    the caption describes. A caption that already holds a vocabulary phrase is returned unchanged (no duplicates).
    """
    if not isinstance(caption, str):
        raise TypeError(f"`caption` must be a str, got {type(caption).__name__}")
    if has_camera_phrase(caption):
        return caption
    return append_camera_phrase(caption, estimate_camera_motion(tracks, visibility, height, width).phrase)


@dataclass
class CameraMotion:
    """Estimated global camera motion.

    Attributes:
        translation: mean content translation ``(tx, ty)`` in px/frame.
        zoom_rate: mean radial rate per frame (> 0: content expands, camera zooms in).
        roll_rate: mean content rotation in rad/frame (> 0: clockwise on screen, camera rolls counterclockwise).
        shake: RMS of the high-frequency translation residual in px/frame.
        motion / speed: the chosen vocabulary primitive and speed bucket (speed None for static/handheld).
    """

    translation: tuple
    zoom_rate: float
    roll_rate: float
    shake: float
    motion: str
    speed: Optional[str]
    width: int
    height: int

    @property
    def phrase(self) -> str:
        return camera_motion_phrase(self.motion, self.speed)


def _bucket(value: float, edges: tuple) -> Optional[str]:
    if value < edges[0]:
        return None
    if value < edges[1]:
        return SPEED_NAMES[0]
    if value < edges[2]:
        return SPEED_NAMES[1]
    return SPEED_NAMES[2]


def _fit_similarity(r: np.ndarray, d: np.ndarray, keep_fraction: float = 0.6, iters: int = 3) -> Optional[np.ndarray]:
    """Trimmed least squares of ``d = tau + s r + theta J r``; ``r, d`` ``[M, 2]``. Returns ``[tx, ty, s, theta]``."""
    m = r.shape[0]
    if m < 4:
        return None
    a = np.zeros((2 * m, 4))
    a[0::2, 0] = 1.0
    a[1::2, 1] = 1.0
    a[0::2, 2], a[1::2, 2] = r[:, 0], r[:, 1]
    a[0::2, 3], a[1::2, 3] = -r[:, 1], r[:, 0]
    b = d.reshape(-1)
    idx = np.arange(m)
    params = None
    for _ in range(iters):
        rows = np.stack([2 * idx, 2 * idx + 1], axis=1).reshape(-1)
        params, *_ = np.linalg.lstsq(a[rows], b[rows], rcond=None)
        resid = np.linalg.norm((a @ params - b).reshape(m, 2), axis=1)
        idx = np.argsort(resid)[: max(4, int(keep_fraction * m))]
    return params


def estimate_camera_motion(tracks, visibility, height: int, width: int) -> CameraMotion:
    """Estimate the camera primitive of a clip from its tracks.

    Args:
        tracks: ``[T, N, 2]`` pixels (T >= 2).
        visibility: ``[T, N]`` bool or None (all visible).
        height, width: frame size in pixels.
    """
    tracks = np.asarray(tracks, dtype=np.float64)
    check_tracks(tracks, "tracks", min_ndim=3, max_ndim=3, allow_nonfinite=True)
    if tracks.shape[0] < 2:
        raise ValueError(f"`tracks` needs at least 2 frames to estimate motion, got {tracks.shape[0]}")
    vis = np.ones(tracks.shape[:2], bool) if visibility is None else np.asarray(visibility).astype(bool)
    check_visibility(vis, tracks.shape, "visibility")
    vis = vis & np.isfinite(tracks).all(-1)
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    scale = max(width, height)  # normalise r so s and theta are well conditioned
    per_step = []
    for t in range(tracks.shape[0] - 1):
        ok = vis[t] & vis[t + 1]
        r = (tracks[t, ok] - centre) / scale
        d = tracks[t + 1, ok] - tracks[t, ok]
        p = _fit_similarity(r, d)
        if p is not None:
            per_step.append([p[0], p[1], p[2] / scale, p[3] / scale])
    if not per_step:
        return CameraMotion((0.0, 0.0), 0.0, 0.0, 0.0, "static", None, width, height)
    steps = np.asarray(per_step)
    tx, ty, zoom, roll = steps.mean(axis=0)
    # handheld shake: translation minus its moving average (window 9 frames)
    k = min(9, len(steps))
    kernel = np.ones(k) / k
    trans = steps[:, :2]
    smooth = np.stack([np.convolve(np.pad(trans[:, i], (k // 2, k - 1 - k // 2), mode="edge"), kernel, "valid") for i in range(2)], 1)
    shake = float(np.sqrt(((trans - smooth) ** 2).sum(axis=1).mean()))

    if shake / width > SHAKE_THRESHOLD:
        motion, speed = "handheld", None
    else:
        tmag = float(np.hypot(tx, ty)) / width
        candidates = {
            "translation": tmag,
            "zoom": abs(float(zoom)),
            "roll": abs(float(roll)),
        }
        ratios = {k2: v / SPEED_EDGES[k2][0] for k2, v in candidates.items()}
        kind = max(ratios, key=ratios.get)
        speed = _bucket(candidates[kind], SPEED_EDGES[kind])
        if speed is None:
            motion = "static"
        elif kind == "translation":
            if abs(tx) >= abs(ty):
                motion = "pan_right" if tx < 0 else "pan_left"
            else:
                motion = "tilt_up" if ty > 0 else "tilt_down"
        elif kind == "zoom":
            motion = "zoom_in" if zoom > 0 else "zoom_out"
        else:
            motion = "roll_counterclockwise" if roll > 0 else "roll_clockwise"
    return CameraMotion((float(tx), float(ty)), float(zoom), float(roll), shake, motion, speed, width, height)
