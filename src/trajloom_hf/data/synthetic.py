"""Procedural synthetic scenes with exact ground-truth tracks (our embedded, Kubric/MOVi-like data source).

A clip is a textured background seen through a moving camera plus several textured objects with a depth order.
Everything is a 2-D affine map, so ground truth is exact: a grid point queried at frame 0 lies on the nearest
surface covering it (an object, else the background), keeps its surface-local coordinates, and is mapped through
that surface's per-frame transform. It is invisible when a nearer object covers it or when it leaves the frame.

World coordinates equal the frame-0 screen coordinates. The camera maps world ``w`` to screen
``x = centre + z_t R(alpha_t) (w - c_t)`` (zoom ``z_t``, content rotation ``alpha_t``, camera centre ``c_t``);
an object maps local sprite coordinates ``l`` to world ``w = p_t + sigma_t R(phi_t) l``. Frames are rendered by
warping texture images with ``cv2.warpAffine`` through the same maps, so pixels and tracks agree.

The camera speeds come from :data:`trajloom_hf.camera_motion.SPEED_RATES`, the same table that the caption
estimator buckets with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..camera_motion import CAMERA_MOTIONS, SPEED_NAMES, SPEED_RATES, camera_motion_phrase
from ..encoding import GRID_ORIGINS, make_query_grid
from ..validation import check_frame_size

OBJECT_MOTIONS = ("constant", "gravity", "rotate", "scale", "stop_and_go", "enter", "leave")
SHAPES = ("ellipse", "rectangle", "triangle")


@dataclass
class SceneConfig:
    """What a synthetic clip looks like. Sizes in pixels; the grid is queried at frame 0.

    ``camera_motion``/``camera_speed``: a name from ``CAMERA_MOTIONS``/``SPEED_NAMES`` or ``"random"``.
    ``num_objects``: inclusive ``(min, max)``. ``object_motions``: the motion types objects draw from.
    """

    height: int = 480
    width: int = 832
    num_frames: int = 162
    stride: int = 32
    grid_origin: str = "topleft"
    num_objects: Tuple[int, int] = (2, 5)
    camera_motion: str = "random"
    camera_speed: str = "random"
    object_motions: Sequence[str] = OBJECT_MOTIONS
    render: bool = True

    def __post_init__(self):
        check_frame_size(self.height, self.width, self.stride)
        if not isinstance(self.num_frames, (int, np.integer)) or self.num_frames < 2:
            raise ValueError(f"`num_frames` must be an integer >= 2, got {self.num_frames!r}")
        if self.camera_motion != "random" and self.camera_motion not in CAMERA_MOTIONS:
            raise ValueError(f"`camera_motion` must be 'random' or one of {CAMERA_MOTIONS}, got {self.camera_motion!r}")
        if self.camera_speed != "random" and self.camera_speed not in SPEED_NAMES:
            raise ValueError(f"`camera_speed` must be 'random' or one of {SPEED_NAMES}, got {self.camera_speed!r}")
        if self.grid_origin not in GRID_ORIGINS:
            raise ValueError(f"`grid_origin` must be one of {GRID_ORIGINS}, got {self.grid_origin!r}")
        if not (isinstance(self.num_objects, (tuple, list)) and len(self.num_objects) == 2
                and all(isinstance(v, (int, np.integer)) for v in self.num_objects)):
            raise TypeError(f"`num_objects` must be an inclusive (min, max) pair of integers, got {self.num_objects!r}")
        lo, hi = self.num_objects
        if not (0 <= lo <= hi):
            raise ValueError(f"`num_objects` must be (min, max) with 0 <= min <= max, got {self.num_objects!r}")
        bad = [m for m in self.object_motions if m not in OBJECT_MOTIONS]
        if bad or not self.object_motions:
            raise ValueError(f"`object_motions` must be a non-empty subset of {OBJECT_MOTIONS}, got {list(self.object_motions)}")


@dataclass
class SyntheticClip:
    """One generated clip.

    Attributes:
        frames: ``[T, H, W, 3]`` uint8 RGB (``None`` when rendering was switched off).
        tracks: ``[T, N, 2]`` float32 pixels of the grid points queried at frame 0 (row-major grid).
        visibility: ``[T, N]`` bool (False when occluded by a nearer object or outside the frame).
        caption: scene description ending with the camera phrase.
        camera_motion / camera_speed: the ground-truth camera primitive (speed None for static/handheld).
        surface_id: ``[N]`` int, 0 = background, k = object k (depth order: larger k is nearer).
    """

    frames: Optional[np.ndarray]
    tracks: np.ndarray
    visibility: np.ndarray
    caption: str
    camera_motion: str
    camera_speed: Optional[str]
    surface_id: np.ndarray
    seed: int
    height: int
    width: int
    stride: int
    query_xy: np.ndarray = field(repr=False)


# ----------------------------------------------------------------------------------------------------------------
# textures and shapes


def _texture(rng: np.random.Generator, height: int, width: int, base: np.ndarray) -> np.ndarray:
    """Smooth multi-octave colour noise with stripes, ``[height, width, 3]`` uint8 (features ~8-64 px)."""
    img = np.zeros((height, width, 3), np.float32)
    for cell, weight in ((64, 0.5), (24, 0.35), (8, 0.15)):
        gh, gw = max(2, height // cell + 2), max(2, width // cell + 2)
        noise = rng.uniform(-1, 1, size=(gh, gw, 3)).astype(np.float32)
        img += weight * cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    ang = rng.uniform(0, np.pi)
    period = rng.uniform(18, 48)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    stripes = np.sin(2 * np.pi * (xx * np.cos(ang) + yy * np.sin(ang)) / period)
    img += 0.35 * stripes[..., None] * rng.uniform(-1, 1, size=3).astype(np.float32)
    out = base[None, None].astype(np.float32) + 70.0 * img
    return np.clip(out, 0, 255).astype(np.uint8)


def _inside(shape: str, lx: np.ndarray, ly: np.ndarray, a: float, b: float) -> np.ndarray:
    """Analytic shape test in local coordinates (sprite centre at 0, half sizes ``a`` x ``b``)."""
    if shape == "ellipse":
        return (lx / a) ** 2 + (ly / b) ** 2 <= 1.0
    if shape == "rectangle":
        return (np.abs(lx) <= a) & (np.abs(ly) <= b)
    # isosceles triangle with apex at (0, -b) and base from (-a, b) to (a, b)
    t = (ly + b) / (2 * b)  # 0 at the apex, 1 at the base
    return (ly <= b) & (ly >= -b) & (np.abs(lx) <= a * t)


# ----------------------------------------------------------------------------------------------------------------
# motions


def _rot(angle: np.ndarray) -> np.ndarray:
    """Rotation matrices ``[..., 2, 2]`` (y down: positive angles turn clockwise on screen)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def _camera(rng, cfg: SceneConfig, motion: str, speed: Optional[str]):
    """Per-frame camera ``(c_t [T,2], z_t [T], alpha_t [T])`` in world units (world = frame-0 screen)."""
    t = np.arange(cfg.num_frames, dtype=np.float64)
    centre = np.array([(cfg.width - 1) / 2.0, (cfg.height - 1) / 2.0])
    c = np.repeat(centre[None], cfg.num_frames, 0)
    z = np.ones(cfg.num_frames)
    alpha = np.zeros(cfg.num_frames)
    jitter = rng.uniform(0.9, 1.1)
    if motion in ("pan_left", "pan_right", "tilt_up", "tilt_down"):
        rate = SPEED_RATES["translation"][speed] * cfg.width * jitter  # px/frame
        direction = {"pan_right": (1, 0), "pan_left": (-1, 0), "tilt_up": (0, -1), "tilt_down": (0, 1)}[motion]
        c = c + rate * t[:, None] * np.asarray(direction, np.float64)[None]
    elif motion in ("zoom_in", "zoom_out"):
        rate = SPEED_RATES["zoom"][speed] * jitter
        z = np.exp((rate if motion == "zoom_in" else -rate) * t)
    elif motion in ("roll_clockwise", "roll_counterclockwise"):
        rate = SPEED_RATES["roll"][speed] * jitter
        # a camera rolling clockwise turns the content counterclockwise on screen (alpha decreasing)
        alpha = (-rate if motion == "roll_clockwise" else rate) * t
    elif motion == "handheld":
        for _ in range(3):
            f = rng.uniform(0.15, 0.35)
            amp = rng.uniform(0.003, 0.005) * cfg.width
            ph = rng.uniform(0, 2 * np.pi, size=2)
            c = c + amp * (np.sin(2 * np.pi * f * t[:, None] + ph[None]) - np.sin(ph)[None])
    return c, z, alpha


def _object_path(rng, cfg: SceneConfig, motion: str, a: float, b: float):
    """World-space ``(p_t [T,2], phi_t [T], sigma_t [T])`` of an object with half sizes ``a, b``."""
    n, w, h = cfg.num_frames, cfg.width, cfg.height
    unit = min(w, h) / 240.0
    t = np.arange(n, dtype=np.float64)
    p0 = np.array([rng.uniform(a, w - 1 - a), rng.uniform(b, h - 1 - b)])
    ang = rng.uniform(0, 2 * np.pi)
    vel = rng.uniform(0.4, 2.5) * unit * np.array([np.cos(ang), np.sin(ang)])
    phi = np.full(n, rng.uniform(-0.4, 0.4))
    sigma = np.ones(n)
    if motion == "constant":
        p = p0 + vel * t[:, None]
    elif motion == "gravity":
        g, restitution = 0.12 * unit, 0.85
        p = np.empty((n, 2))
        pos, v = p0.copy(), vel.copy()
        for i in range(n):
            p[i] = pos
            v[1] += g
            pos = pos + v
            if pos[1] > h - 1 - b:  # floor
                pos[1] = 2 * (h - 1 - b) - pos[1]
                v[1] = -abs(v[1]) * restitution
            for lo, hi in ((a, w - 1 - a),):  # walls
                if pos[0] < lo or pos[0] > hi:
                    pos[0] = np.clip(2 * np.clip(pos[0], lo, hi) - pos[0], lo, hi)
                    v[0] = -v[0] * restitution
    elif motion == "rotate":
        p = p0 + 0.4 * vel * t[:, None]
        phi = phi + rng.choice([-1, 1]) * rng.uniform(0.01, 0.05) * t
    elif motion == "scale":
        p = p0 + 0.3 * vel * t[:, None]
        sigma = np.exp(rng.choice([-1, 1]) * rng.uniform(0.002, 0.006) * t)
    elif motion == "stop_and_go":
        period = rng.integers(8, 25)
        moving = ((t // period) % 2 == 0).astype(np.float64)
        p = p0 + np.concatenate([[0.0], np.cumsum(moving[:-1])])[:, None] * 1.5 * vel
    elif motion == "enter":
        side = rng.integers(4)
        speed = rng.uniform(1.5, 3.5) * unit
        start = {0: (-a - 8, p0[1]), 1: (w + a + 8, p0[1]), 2: (p0[0], -b - 8), 3: (p0[0], h + b + 8)}[side]
        v = {0: (speed, 0), 1: (-speed, 0), 2: (0, speed), 3: (0, -speed)}[side]
        p = np.asarray(start) + np.asarray(v) * t[:, None]
    else:  # leave
        side = rng.integers(4)
        speed = rng.uniform(1.5, 3.5) * unit
        v = {0: (-speed, 0), 1: (speed, 0), 2: (0, -speed), 3: (0, speed)}[side]
        p = p0 + np.asarray(v) * t[:, None]
    return p, phi, sigma


def _screen_affine(c, z, alpha, p=None, phi=None, sigma=None):
    """Per-frame affine ``(A [T,2,2], b [T,2])`` with ``x = A l + b``: camera only (``p`` None) or camera∘object."""
    ra = _rot(alpha) * z[:, None, None]
    if p is None:
        return ra, -np.einsum("tij,tj->ti", ra, c)
    a_mat = np.einsum("tij,tjk->tik", ra, _rot(phi)) * sigma[:, None, None]
    return a_mat, np.einsum("tij,tj->ti", ra, p - c)


# ----------------------------------------------------------------------------------------------------------------
# the generator


def generate_clip(seed: int, config: Optional[SceneConfig] = None) -> SyntheticClip:
    """Generate one clip, deterministically from ``seed`` (same seed and config -> identical arrays)."""
    cfg = config or SceneConfig()
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    h, w, n_frames = cfg.height, cfg.width, cfg.num_frames
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])

    motion = cfg.camera_motion if cfg.camera_motion != "random" else CAMERA_MOTIONS[rng.integers(len(CAMERA_MOTIONS))]
    speed = cfg.camera_speed if cfg.camera_speed != "random" else SPEED_NAMES[rng.integers(len(SPEED_NAMES))]
    speed = None if motion in ("static", "handheld") else speed
    cam_c, cam_z, cam_alpha = _camera(rng, cfg, motion, speed)
    cam_a, cam_b = _screen_affine(cam_c, cam_z, cam_alpha)
    cam_b = cam_b + centre

    # objects: shape, half sizes, sprite texture, path; index order is depth order (later = nearer)
    n_obj = int(rng.integers(cfg.num_objects[0], cfg.num_objects[1] + 1))
    objects = []
    for _ in range(n_obj):
        shape = SHAPES[rng.integers(len(SHAPES))]
        a = rng.uniform(0.06, 0.16) * min(h, w)
        b = a * rng.uniform(0.6, 1.4)
        kind = cfg.object_motions[rng.integers(len(cfg.object_motions))]
        p, phi, sigma = _object_path(rng, cfg, kind, a, b)
        oa, ob = _screen_affine(cam_c, cam_z, cam_alpha, p, phi, sigma)
        objects.append(dict(shape=shape, a=a, b=b, motion=kind, p=p, phi=phi, sigma=sigma, A=oa, b_vec=ob + centre,
                            colour=rng.uniform(40, 215, size=3)))

    # ---- ground-truth tracks --------------------------------------------------------------------------------
    query = make_query_grid(h, w, cfg.stride, cfg.grid_origin).astype(np.float64)  # [N, 2]
    surface = np.zeros(len(query), np.int64)
    local = {0: query.copy()}  # background: world = frame-0 screen
    for k, ob in reversed(list(enumerate(objects, start=1))):  # nearest first
        inv = np.linalg.inv(ob["A"][0])
        l = (query - ob["b_vec"][0]) @ inv.T
        hit = (surface == 0) & _inside(ob["shape"], l[:, 0], l[:, 1], ob["a"], ob["b"])
        surface[hit] = k
        local[k] = l
    tracks = np.empty((n_frames, len(query), 2))
    bg = surface == 0
    tracks[:, bg] = np.einsum("tij,nj->tni", cam_a, query[bg]) + cam_b[:, None]
    for k, ob in enumerate(objects, start=1):
        sel = surface == k
        if sel.any():
            tracks[:, sel] = np.einsum("tij,nj->tni", ob["A"], local[k][sel]) + ob["b_vec"][:, None]
    visibility = (tracks[..., 0] >= 0) & (tracks[..., 0] <= w - 1) & (tracks[..., 1] >= 0) & (tracks[..., 1] <= h - 1)
    for k, ob in enumerate(objects, start=1):
        nearer_than_surface = surface < k  # object k occludes points on farther surfaces
        if not nearer_than_surface.any():
            continue
        inv = np.linalg.inv(ob["A"])  # [T, 2, 2]
        l = np.einsum("tij,tnj->tni", inv, tracks - ob["b_vec"][:, None])
        covered = _inside(ob["shape"], l[..., 0], l[..., 1], ob["a"], ob["b"])
        visibility &= ~(covered & nearer_than_surface[None])

    # ---- frames ----------------------------------------------------------------------------------------------
    frames = _render(rng, cfg, cam_c, cam_z, cam_alpha, cam_a, cam_b, objects) if cfg.render else None

    counts = {}
    for ob in objects:
        counts[ob["motion"]] = counts.get(ob["motion"], 0) + 1
    desc = ", ".join(f"{v} {k.replace('_', '-')}" for k, v in sorted(counts.items()))
    obj_text = f"{n_obj} textured object{'s' if n_obj != 1 else ''} ({desc})" if n_obj else "no objects"
    caption = f"{obj_text} over a textured background, {camera_motion_phrase(motion, speed)}"
    return SyntheticClip(
        frames=frames,
        tracks=tracks.astype(np.float32),
        visibility=visibility,
        caption=caption,
        camera_motion=motion,
        camera_speed=speed,
        surface_id=surface,
        seed=int(seed),
        height=h,
        width=w,
        stride=cfg.stride,
        query_xy=query.astype(np.float32),
    )


def generate_clips(seeds: Iterable[int], config: Optional[SceneConfig] = None) -> Iterator[SyntheticClip]:
    """Yield :func:`generate_clip` for each seed."""
    for seed in seeds:
        yield generate_clip(seed, config)


def _render(rng, cfg, cam_c, cam_z, cam_alpha, cam_a, cam_b, objects) -> np.ndarray:
    h, w, n_frames = cfg.height, cfg.width, cfg.num_frames
    # background texture covering every world point the camera sees (inverse-mapped frame corners + margin)
    corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], np.float64)
    inv = np.linalg.inv(cam_a)
    world = np.einsum("tij,tkj->tki", inv, corners[None] - cam_b[:, None])
    lo = np.floor(world.reshape(-1, 2).min(0)) - 8
    hi = np.ceil(world.reshape(-1, 2).max(0)) + 8
    tex = _texture(rng, int(hi[1] - lo[1]) + 1, int(hi[0] - lo[0]) + 1, rng.uniform(60, 190, size=3))
    sprites = []
    for ob in objects:
        ax, by = int(np.ceil(ob["a"])) + 1, int(np.ceil(ob["b"])) + 1
        yy, xx = np.mgrid[-by : by + 1, -ax : ax + 1].astype(np.float64)
        mask = _inside(ob["shape"], xx, yy, ob["a"], ob["b"]).astype(np.uint8) * 255
        rgb = _texture(rng, 2 * by + 1, 2 * ax + 1, ob["colour"])
        sprites.append((np.dstack([rgb, mask]), ax, by))
    frames = np.empty((n_frames, h, w, 3), np.uint8)
    for t in range(n_frames):
        m_bg = np.hstack([cam_a[t], (cam_a[t] @ lo + cam_b[t])[:, None]])
        frame = cv2.warpAffine(tex, m_bg, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        for ob, (sprite, ax, by) in zip(objects, sprites):
            a_t, b_t = ob["A"][t], ob["b_vec"][t]
            # sprite pixel (u, v) has local coordinates (u - ax, v - by)
            m = np.hstack([a_t, (b_t - a_t @ np.array([ax, by]))[:, None]])
            sh, sw = sprite.shape[:2]
            pts = np.array([[0, 0], [sw - 1, 0], [0, sh - 1], [sw - 1, sh - 1]], np.float64) @ m[:, :2].T + m[:, 2]
            x0, y0 = np.maximum(np.floor(pts.min(0)).astype(int) - 1, 0)
            x1, y1 = np.minimum(np.ceil(pts.max(0)).astype(int) + 2, [w, h])
            if x1 <= x0 or y1 <= y0:
                continue
            m_roi = m.copy()
            m_roi[:, 2] -= (x0, y0)
            patch = cv2.warpAffine(sprite, m_roi, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            alpha = patch[..., 3:4].astype(np.float32) / 255.0
            roi = frame[y0:y1, x0:x1]
            frame[y0:y1, x0:x1] = (roi * (1 - alpha) + patch[..., :3] * alpha + 0.5).astype(np.uint8)
        frames[t] = frame
    return frames
