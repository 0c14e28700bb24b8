"""Simulate and render a physics clip with exact ground-truth tracks on the stride grid.

Per frame: MuJoCo steps the rigid bodies (``substeps`` steps of ``1 / (fps * substeps)`` s), the camera is placed
on its path and the frame is rendered (RGB only; segmentation and depth on request, for checks). Tracks are exact:

* frame 0: each query pixel's ray is intersected with the analytic scene geometry (``mj_multiRay``: the true
  cube/sphere/cylinder/plane, not the tessellated render, no depth-buffer quantisation), which gives the 3-D point
  and the body it lies on; the point is stored in that body's local frame (the floor's points in the world);
* frame t: the point is moved with the body's simulated pose and projected with the frame's camera
  (:class:`PinholeCamera`, the render's own);
* visibility: in front of the camera, inside the frame, and not occluded: the first surface along the ray from
  the camera to the point lies at the point's own distance (within ``1e-5`` relative). This is the exact form of
  "the projected depth agrees with the rendered depth at that pixel".

Launch scenes (``config.launch_frame > 0``): the objects' velocities are set once, after frame ``launch_frame - 1``
is rendered, so ``launch_frame`` is the first frame that shows the push; each object's heading (degrees in the image)
is turned into a floor direction with the camera of that last still frame (its right and forward axes on the floor).

Points more than one frame size outside the image (or behind the camera; all invisible) are clamped onto the box
``[-W, 2W - 1] x [-H, 2H - 1]``: a projection there is unbounded. Every query ray hits geometry: the camera looks down steeply enough and the floor is large enough
(:class:`PhysicsSceneConfig` checks and sizes both), so no point is lost to the sky.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional

import numpy as np

from ...encoding import make_query_grid
from .camera import PinholeCamera  # noqa: F401  (the documented camera type of the frames)
from .gl import import_mujoco
from .renderer import OffscreenRenderer
from .scene import LAUNCH, PhysicsScene, PhysicsSceneConfig, sample_scene, scene_assets, scene_xml

OCCLUSION_RTOL = 1e-5  # relative distance tolerance of the visibility ray test
OCCLUSION_ATOL = 1e-6  # m


@dataclass
class PhysicsClip:
    """One simulated clip.

    Attributes:
        frames: ``[T, H, W, 3]`` uint8 RGB (``None`` when rendering is off).
        tracks: ``[T, N, 2]`` float32 px of the grid points queried at frame 0 (row-major grid).
        visibility: ``[T, N]`` bool (False when occluded, behind the camera or outside the frame).
        points_3d: ``[T, N, 3]`` float64 world positions (m) of the tracked surface points.
        depth: ``[T, N]`` float64 depth of each point along the camera's optical axis (m).
        surface_id: ``[N]`` int, 0 = floor, k = object k (``scene.objects[k - 1]``).
        object_positions: ``[T, K, 3]`` float64 centres of mass of the objects (m).
        segmentation: ``[T, H, W]`` int16 surface id per pixel (-1 nothing), only when asked for.
        depth_map: ``[T, H, W]`` float32 rendered depth (m), only when asked for.
    """

    frames: Optional[np.ndarray]
    tracks: np.ndarray
    visibility: np.ndarray
    points_3d: np.ndarray
    depth: np.ndarray
    surface_id: np.ndarray
    object_positions: np.ndarray
    caption: str
    camera_motion: str
    seed: int
    height: int
    width: int
    stride: int
    scene: PhysicsScene = field(repr=False)
    query_xy: np.ndarray = field(repr=False)
    cameras: list = field(repr=False, default_factory=list)
    segmentation: Optional[np.ndarray] = field(repr=False, default=None)
    depth_map: Optional[np.ndarray] = field(repr=False, default=None)


def _ray_cast(mj, model, data, origin: np.ndarray, directions: np.ndarray):
    """First geom and distance along unit ``directions`` [N, 3] from ``origin`` (geom -1, distance -1: none)."""
    n = len(directions)
    geom = np.full(n, -1, np.int32)
    dist = np.full(n, -1.0, np.float64)
    if n:
        mj.mj_multiRay(model, data, np.ascontiguousarray(origin, np.float64),
                       np.ascontiguousarray(directions, np.float64).reshape(-1), None, 1, -1, geom, dist, None, n, mj.mjMAXVAL)
    return geom, dist


def launch_velocity(heading_deg: float, camera: PinholeCamera, speed: float) -> np.ndarray:
    """World velocity ``[3]`` (m/s) of a push ``heading_deg`` degrees in the image (0 right, 90 up the image, i.e. away
    from the camera on the floor) at ``speed`` m/s along the floor, plus :data:`LAUNCH` ``vertical_speed`` up."""
    right = camera.rotation[:, 0] * np.array([1.0, 1.0, 0.0])
    forward = -camera.rotation[:, 2] * np.array([1.0, 1.0, 0.0])  # the camera looks along -z: away from it, on the floor
    right, forward = right / np.linalg.norm(right), forward / np.linalg.norm(forward)
    h = np.radians(heading_deg)
    v = speed * (np.cos(h) * right + np.sin(h) * forward)
    return v + np.array([0.0, 0.0, LAUNCH["vertical_speed"]])


def generate_physics_clip(seed: int, config: Optional[PhysicsSceneConfig] = None, *, scene: Optional[PhysicsScene] = None,
                          segmentation: bool = False, depth_map: bool = False) -> PhysicsClip:
    """Simulate, render and track one clip, deterministically from ``seed`` (or the given ``scene``).

    ``segmentation`` / ``depth_map`` also render per-frame surface ids / depth (for checks; slower).
    """
    cfg = config or PhysicsSceneConfig()
    scene = scene if scene is not None else sample_scene(seed, cfg)
    if (segmentation or depth_map) and not cfg.render:
        raise ValueError("`segmentation`/`depth_map` need rendering (config.render=True)")
    if len(scene.camera.distance) != cfg.num_frames:
        raise ValueError(f"the scene's camera path has {len(scene.camera.distance)} frames, the config {cfg.num_frames}")
    mj = import_mujoco()
    model = mj.MjModel.from_xml_string(scene_xml(scene, cfg), scene_assets(scene, cfg))
    data = mj.MjData(model)
    floor_geom = mj.mj_name2id(model, mj.mjtObj.mjOBJ_GEOM, "floor")
    body_ids = np.array([mj.mj_name2id(model, mj.mjtObj.mjOBJ_BODY, f"obj{k}") for k in range(len(scene.objects))], int)
    geom_surface = np.full(model.ngeom, -1, np.int64)  # geom id -> 0 floor, k object k
    geom_surface[floor_geom] = 0
    for k in range(len(scene.objects)):
        geom_surface[mj.mj_name2id(model, mj.mjtObj.mjOBJ_GEOM, f"obj{k}")] = k + 1
    for k, ob in enumerate(scene.objects):  # free joint: linear velocity (world), then angular (body frame)
        adr = model.jnt_dofadr[model.body_jntadr[body_ids[k]]]
        data.qvel[adr: adr + 3] = ob.linvel
        data.qvel[adr + 3: adr + 6] = ob.angvel
    mj.mj_forward(model, data)

    h, w, n_frames = cfg.height, cfg.width, cfg.num_frames
    query = make_query_grid(h, w, cfg.stride, cfg.grid_origin).astype(np.float64)
    n = len(query)
    tracks = np.empty((n_frames, n, 2), np.float64)
    depth = np.empty((n_frames, n), np.float64)
    points = np.empty((n_frames, n, 3), np.float64)
    visibility = np.empty((n_frames, n), bool)
    obj_pos = np.empty((n_frames, len(scene.objects), 3), np.float64)
    frames = np.empty((n_frames, h, w, 3), np.uint8) if cfg.render else None
    seg = np.empty((n_frames, h, w), np.int16) if segmentation else None
    dmap = np.empty((n_frames, h, w), np.float32) if depth_map else None
    cams = []
    path = scene.camera
    renderer = OffscreenRenderer(model, h, w, render=cfg.render)
    try:
        for t in range(n_frames):
            if t:
                if t == cfg.launch_frame:  # the push of a launch scene (module docstring)
                    for k, ob in enumerate(scene.objects):
                        if ob.launch_heading is not None:
                            adr = model.jnt_dofadr[model.body_jntadr[body_ids[k]]]
                            data.qvel[adr: adr + 3] = launch_velocity(ob.launch_heading, cams[-1], cfg.launch_speed)
                mj.mj_step(model, data, cfg.substeps)
                # mj_step integrates qpos after computing the poses (xpos, xmat): bring them up to date, else frame
                # t would show the state one step before t / fps
                mj.mj_kinematics(model, data)
            cam = renderer.update(data, path.look_at[t], path.distance[t], path.azimuth[t], path.elevation[t])
            cams.append(cam)
            if t == 0:
                rays = cam.rays(query)
                geom, dist = _ray_cast(mj, model, data, cam.position, rays)
                if (geom < 0).any() or (geom_surface[np.maximum(geom, 0)] < 0).any():
                    raise RuntimeError(f"{int((geom < 0).sum())} query rays hit no geometry: the floor does not cover "
                                       "the view (PhysicsSceneConfig.floor_half_size)")
                p0 = cam.position + dist[:, None] * rays
                surface = geom_surface[geom]
                owner = np.where(surface > 0, body_ids[np.maximum(surface - 1, 0)], -1)  # body per point, -1 floor
                on_body = owner >= 0
                local = p0.copy()
                xm = data.xmat[owner[on_body]].reshape(-1, 3, 3)
                local[on_body] = np.einsum("nji,nj->ni", xm, p0[on_body] - data.xpos[owner[on_body]])
            pts = local.copy()
            if on_body.any():
                xm = data.xmat[owner[on_body]].reshape(-1, 3, 3)
                pts[on_body] = np.einsum("nij,nj->ni", xm, local[on_body]) + data.xpos[owner[on_body]]
            xy, z = cam.project(pts)
            if t == 0:
                xy0 = xy
            # the query plus the displacement since frame 0: frame 0 is the query grid exactly, and a point that
            # does not move stays bit-identical (rather than differing by fp64 round-off at the frame border)
            xy = query + (xy - xy0)
            # far outside the frame (or behind the camera) a projection is unbounded; those points are invisible, so
            # clamp them to one frame size beyond each border rather than store millions of pixels
            xy = np.clip(xy, [-w, -h], [2 * w - 1, 2 * h - 1])
            to = pts - cam.position
            rng_ = np.linalg.norm(to, axis=-1)
            _, hit = _ray_cast(mj, model, data, cam.position, to / np.maximum(rng_, 1e-12)[:, None])
            unoccluded = (hit < 0) | (hit >= rng_ * (1 - OCCLUSION_RTOL) - OCCLUSION_ATOL)
            inside = (xy[:, 0] >= 0) & (xy[:, 0] <= w - 1) & (xy[:, 1] >= 0) & (xy[:, 1] <= h - 1)
            near = model.vis.map.znear * model.stat.extent
            tracks[t], depth[t], points[t] = xy, z, pts
            visibility[t] = unoccluded & inside & (z > near)
            obj_pos[t] = data.xipos[body_ids] if len(body_ids) else np.zeros((0, 3))
            if cfg.render:
                frames[t] = renderer.rgb()
            if seg is not None:
                g = renderer.segmentation()
                seg[t] = np.where(g >= 0, geom_surface[np.maximum(g, 0)], -1)
            if dmap is not None:
                dmap[t] = renderer.depth()
    finally:
        renderer.close()

    counts = Counter(f"{ob.material} {ob.shape}" for ob in scene.objects)
    desc = ", ".join(f"{v} {k}{'s' if v > 1 else ''}" for k, v in sorted(counts.items()))
    k = len(scene.objects)
    motion = "moving" if path.moving else "static"
    if path.moving:
        from ...camera_motion import estimate_camera_motion

        phrase = estimate_camera_motion(tracks, visibility, h, w).phrase
    else:
        phrase = "static camera"
    if cfg.launch_frame:
        caption = (f"{k} object{'s' if k != 1 else ''} ({desc}) at rest on a grey floor, each pushed the way its colour "
                   f"points, {phrase}")
    else:
        caption = f"{k} object{'s' if k != 1 else ''} ({desc}) dropped and thrown onto a grey floor, {phrase}"
    return PhysicsClip(frames=frames, tracks=tracks.astype(np.float32), visibility=visibility, points_3d=points, depth=depth,
                       surface_id=surface, object_positions=obj_pos, caption=caption, camera_motion=motion, seed=int(seed),
                       height=h, width=w, stride=cfg.stride, scene=scene, query_xy=query.astype(np.float32), cameras=cams,
                       segmentation=seg, depth_map=dmap)


def generate_physics_clips(seeds: Iterable[int], config: Optional[PhysicsSceneConfig] = None) -> Iterator[PhysicsClip]:
    """Yield :func:`generate_physics_clip` for each seed."""
    for seed in seeds:
        yield generate_physics_clip(seed, config)
