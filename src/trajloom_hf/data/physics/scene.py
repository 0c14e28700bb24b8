"""MOVi-A-like physics scenes: what a clip holds (config, objects, camera path), sampled from a seed, as MJCF.

Units are SI (metres, seconds, kg/m^3); the world has z up and the floor at z = 0. A scene is 3-10 rigid shapes
(cube, sphere, cylinder) of two materials, dropped or thrown onto a grey floor and filmed by a pinhole camera that
looks down at the arena: static (MOVi-A) or moving on a smooth orbit/dolly path (MOVi-E style). The camera always
looks down steeply enough (lowest elevation above half the vertical field of view) that every pixel sees the floor
or an object: there is no sky, so every query pixel has a surface to track.

Materials set MuJoCo's contact parameters: ``friction`` (sliding; a contact takes the larger of the two geoms')
and ``solref = (timeconst, dampratio)``, the contact's spring time constant and damping ratio. At the 2 ms
time step a damping ratio of 0.15 bounces back with a coefficient of restitution of about 0.67 (rubber) and 0.4
with about 0.35 (metal), measured by dropping a sphere and a cube from 1 m. The floor's ``solmix`` is tiny, so
an object-floor contact uses the object's ``solref``. Shading: rubber is matte (low specular), metal shiny.
Launch scenes (``launch_frame > 0``): the objects start at rest on the floor (upright, random heading), stay
still until ``launch_frame`` and are then pushed, each in the image direction its colour names (:data:`LAUNCH`: red
right, yellow-green away from the camera, cyan left, violet towards it; direction relative to the camera at the
launch frame). A clip whose history ends at the launch frame shows no motion before its future: the direction is
written only in the appearance, so a forecaster that ignores the frames cannot know it (the check that a model uses
its image, #12).

Shadows are off by default: on Mesa's CPU rasteriser a shadow map doubles the render time and shows acne at these
sizes (``shadows=True`` turns them on).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ...encoding import GRID_ORIGINS
from ...validation import check_frame_size

SHAPES = ("cube", "sphere", "cylinder")
MATERIALS = ("rubber", "metal")
CAMERAS = ("static", "moving")

# MuJoCo parameters per material (module docstring). density kg/m^3; specular/shininess are OpenGL shading.
MATERIAL_PARAMS = {
    "rubber": dict(friction=0.8, solref=(0.02, 0.15), density=1100.0, specular=0.1, shininess=0.1, reflectance=0.0),
    "metal": dict(friction=0.4, solref=(0.02, 0.4), density=2700.0, specular=0.9, shininess=0.9, reflectance=0.2),
}
FLOOR_PARAMS = dict(friction=0.3, solmix=1e-6, rgb=(0.5, 0.5, 0.5), checker_rgb=(0.44, 0.44, 0.44),
                    textured_rgb=(0.75, 0.75, 0.75))
GRAVITY = 9.81  # m/s^2, along -z
# Fixed sampling constants of :func:`sample_scene` (the dataset card lists them with the config's ranges).
SAMPLING = dict(
    cylinder_height=(0.6, 1.2),  # cylinder half height / radius
    colour_saturation=(0.5, 1.0), colour_value=(0.45, 1.0),  # HSV, hue uniform in [0, 1)
    centre_pull=0.5,  # horizontal velocity -= centre_pull * start position (1/s): throws aim back at the arena
    vertical_speed=(0.0, 1.5),  # m/s, upwards
    angular_speed=3.0,  # rad/s, each body-frame component uniform in [-a, a]
    min_gap=0.05,  # m between the bounding spheres of two objects at the start
    light_tilt=0.4,  # std of the directional light's horizontal direction components (pointing down)
)
# Launch scenes (``launch_frame > 0``): (hue, image heading in degrees: 0 right, 90 up the image, i.e. away from the
# camera on the floor) per colour; the saturation and value stay random. The push is ``launch_speed`` m/s along the
# heading on the floor plus ``vertical_speed`` m/s up (a hop: the objects leave the floor, so friction cannot stop a
# cube within a frame or two).
LAUNCH = dict(palette=((0.0, 0.0), (0.22, 90.0), (0.5, 180.0), (0.78, 270.0)), vertical_speed=1.5)
# Textures (``textures=True``): smooth, tiling multi-octave grey noise, (cell px, weight) per octave, mapped to
# ``[low, 1]`` and multiplied by the geom colour. The floor's 256 px tile spans 4 m; each object's 128 px image
# covers every face of a cube map.
TEXTURES = dict(floor_size=256, floor_tile=4.0, floor_octaves=((32, 0.5), (10, 0.3), (3, 0.2)), floor_low=0.45,
                object_size=128, object_octaves=((24, 0.5), (8, 0.3), (3, 0.2)), object_low=0.35)


def _pair(value, name: str, lo: float = 0.0, strict: bool = True) -> Tuple[float, float]:
    if not (isinstance(value, (tuple, list)) and len(value) == 2
            and all(isinstance(v, (int, float, np.integer, np.floating)) for v in value)):
        raise TypeError(f"`{name}` must be a (min, max) pair of numbers, got {value!r}")
    a, b = float(value[0]), float(value[1])
    if not (np.isfinite(a) and np.isfinite(b) and a <= b and (a > lo if strict else a >= lo)):
        raise ValueError(f"`{name}` must be (min, max) with {lo} {'<' if strict else '<='} min <= max, got {value!r}")
    return a, b


@dataclass
class PhysicsSceneConfig:
    """What a physics clip looks like. Image sizes in px, the rest in SI units and degrees.

    ``num_objects``: inclusive (min, max). ``object_size``: the half extent of a shape in m (cube half side,
    sphere radius, cylinder radius and half height), uniform in the range. ``spawn_extent``: objects start
    over ``[-e, e]^2`` at heights ``spawn_height``; ``max_speed``: horizontal throw speed (m/s), aimed back
    towards the arena centre as in MOVi. ``camera``: ``"static"`` or ``"moving"``; ``camera_distance`` (m) and
    ``camera_elevation`` (degrees above the horizon, looking down at ``look_at_extent`` around the origin) are
    drawn per clip; a moving camera orbits by ``camera_orbit_speed`` deg/s and changes its distance by up to
    ``camera_dolly`` (fraction) and its elevation by up to ``camera_tilt`` degrees over the clip. ``fps``: frames
    per simulated second; ``physics_hz``: the simulation rate (an integer number of steps per frame).
    ``launch_frame`` > 0 makes a launch scene (module docstring): objects at rest until that frame, then pushed at
    ``launch_speed`` m/s the way their colour points; 0 (default) is the thrown MOVi-A scene.
    ``textures``: seeded grey noise textures on the floor and (tinted by their colour) on the objects, so that a
    tracker run on the frames has something to follow; without them the floor is a plain grey, with a faint 2 m
    checker if ``floor_checker``, and objects are flat colours (MOVi-A's look).
    """

    height: int = 96
    width: int = 160
    num_frames: int = 66
    stride: int = 16
    grid_origin: str = "topleft"
    fps: float = 16.0
    num_objects: Tuple[int, int] = (3, 10)
    shapes: Sequence[str] = SHAPES
    materials: Sequence[str] = MATERIALS
    object_size: Tuple[float, float] = (0.4, 0.8)
    spawn_extent: float = 1.5
    spawn_height: Tuple[float, float] = (0.4, 3.0)
    max_speed: float = 2.5
    camera: str = "static"
    fovy: float = 45.0
    camera_distance: Tuple[float, float] = (5.5, 7.0)
    camera_elevation: Tuple[float, float] = (40.0, 65.0)
    look_at_extent: float = 0.5
    camera_orbit_speed: Tuple[float, float] = (6.0, 18.0)
    camera_dolly: float = 0.25
    camera_tilt: float = 10.0
    textures: bool = True
    floor_checker: bool = True
    shadows: bool = False
    physics_hz: float = 500.0
    render: bool = True
    launch_frame: int = 0
    launch_speed: float = 2.5

    def __post_init__(self):
        check_frame_size(self.height, self.width, self.stride)
        if not isinstance(self.num_frames, (int, np.integer)) or self.num_frames < 2:
            raise ValueError(f"`num_frames` must be an integer >= 2, got {self.num_frames!r}")
        if self.grid_origin not in GRID_ORIGINS:
            raise ValueError(f"`grid_origin` must be one of {GRID_ORIGINS}, got {self.grid_origin!r}")
        if not (isinstance(self.num_objects, (tuple, list)) and len(self.num_objects) == 2
                and all(isinstance(v, (int, np.integer)) for v in self.num_objects)):
            raise TypeError(f"`num_objects` must be an inclusive (min, max) pair of integers, got {self.num_objects!r}")
        if not (1 <= self.num_objects[0] <= self.num_objects[1] <= 32):
            raise ValueError(f"`num_objects` must be (min, max) with 1 <= min <= max <= 32, got {self.num_objects!r}")
        for name, allowed in (("shapes", SHAPES), ("materials", MATERIALS)):
            value = list(getattr(self, name))
            if not value or any(v not in allowed for v in value):
                raise ValueError(f"`{name}` must be a non-empty subset of {allowed}, got {value}")
        if self.camera not in CAMERAS:
            raise ValueError(f"`camera` must be one of {CAMERAS}, got {self.camera!r}")
        for name in ("fps", "physics_hz", "spawn_extent", "max_speed", "fovy", "look_at_extent", "camera_dolly",
                     "camera_tilt"):
            v = getattr(self, name)
            if not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v) or v < 0:
                raise ValueError(f"`{name}` must be a finite number >= 0, got {v!r}")
        if self.fps <= 0 or self.physics_hz < self.fps:
            raise ValueError(f"`fps` must be > 0 and `physics_hz` >= fps, got fps={self.fps}, physics_hz={self.physics_hz}")
        if not 10.0 <= self.fovy <= 120.0:
            raise ValueError(f"`fovy` must be in [10, 120] degrees, got {self.fovy}")
        if (isinstance(self.launch_frame, bool) or not isinstance(self.launch_frame, (int, np.integer))
                or not 0 <= self.launch_frame < self.num_frames):
            raise ValueError(f"`launch_frame` must be an integer in [0, num_frames) = [0, {self.num_frames}), "
                             f"got {self.launch_frame!r}")
        if not isinstance(self.launch_speed, (int, float, np.integer, np.floating)) or not np.isfinite(self.launch_speed) \
                or self.launch_speed <= 0:
            raise ValueError(f"`launch_speed` must be a finite number > 0 (m/s), got {self.launch_speed!r}")
        if self.camera_dolly >= 0.9:
            raise ValueError(f"`camera_dolly` must be < 0.9 (a fraction of the distance), got {self.camera_dolly}")
        _pair(self.object_size, "object_size")
        _pair(self.spawn_height, "spawn_height", strict=False)
        _pair(self.camera_orbit_speed, "camera_orbit_speed", strict=False)
        dmin, _ = _pair(self.camera_distance, "camera_distance")
        emin, emax = _pair(self.camera_elevation, "camera_elevation")
        # every pixel must see the floor: the top image row must point below the horizon, with a margin
        lowest = emin - (self.camera_tilt if self.camera == "moving" else 0.0)
        if lowest - self.fovy / 2 < 5.0 or emax + (self.camera_tilt if self.camera == "moving" else 0.0) > 89.0:
            raise ValueError(
                f"`camera_elevation` {self.camera_elevation} (with `camera_tilt` {self.camera_tilt} for a moving camera) "
                f"must stay within [fovy/2 + 5, 89] = [{self.fovy / 2 + 5:g}, 89] degrees so that every pixel sees the floor")
        if dmin * (1 - self.camera_dolly) <= self.object_size[1] * 2 + self.look_at_extent:
            raise ValueError(f"`camera_distance` {self.camera_distance} is too close to the objects")

    @property
    def substeps(self) -> int:
        """Physics steps per frame (the time step is ``1 / (fps * substeps)``)."""
        return max(1, int(round(self.physics_hz / self.fps)))

    @property
    def floor_half_size(self) -> float:
        """Half side (m) of the square floor: it covers every ray of the lowest, farthest camera (1.2x margin)."""
        lowest = np.radians(self.camera_elevation[0] - (self.camera_tilt if self.camera == "moving" else 0.0))
        dist = self.camera_distance[1] * (1 + (self.camera_dolly if self.camera == "moving" else 0.0))
        ty = np.tan(np.radians(self.fovy) / 2)
        tx = ty * self.width / self.height
        down = np.sin(lowest) - np.cos(lowest) * ty  # downward component of the top-corner ray (camera frame z=-1)
        horiz = np.hypot(tx, np.cos(lowest) + np.sin(lowest) * ty)
        reach = self.look_at_extent + dist * np.cos(lowest) + dist * np.sin(lowest) * horiz / down
        return float(1.2 * reach)


@dataclass
class ObjectSpec:
    """One rigid body: ``size`` is MuJoCo's geom size (box half sides, sphere radius, cylinder radius + half height);
    ``pos`` (m), ``quat`` (w, x, y, z), ``linvel`` (m/s, world), ``angvel`` (rad/s, body frame)."""

    shape: str
    material: str
    size: Tuple[float, ...]
    rgb: Tuple[float, float, float]
    pos: Tuple[float, float, float]
    quat: Tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    linvel: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    angvel: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    launch_heading: Optional[float] = None  # degrees in the image (launch scenes): 0 right, 90 up

    def __post_init__(self):
        if self.shape not in SHAPES:
            raise ValueError(f"`shape` must be one of {SHAPES}, got {self.shape!r}")
        if self.material not in MATERIALS:
            raise ValueError(f"`material` must be one of {MATERIALS}, got {self.material!r}")
        n = {"cube": 3, "sphere": 1, "cylinder": 2}[self.shape]
        if len(self.size) != n or min(self.size) <= 0:
            raise ValueError(f"a {self.shape} needs {n} positive size values, got {self.size!r}")

    @property
    def bounding_radius(self) -> float:
        return float(np.linalg.norm(self.size)) if self.shape != "sphere" else float(self.size[0])


@dataclass
class CameraPath:
    """Per-frame free-camera parameters (MuJoCo ``mjvCamera``): ``look_at`` [T, 3] m, ``distance`` [T] m,
    ``azimuth`` [T] and ``elevation`` [T] degrees (elevation > 0 looks down; MuJoCo stores it negated)."""

    look_at: np.ndarray
    distance: np.ndarray
    azimuth: np.ndarray
    elevation: np.ndarray

    @classmethod
    def static(cls, num_frames: int, look_at=(0.0, 0.0, 0.0), distance: float = 9.0, azimuth: float = 90.0,
               elevation: float = 50.0) -> "CameraPath":
        """A camera that stays put for ``num_frames`` frames."""
        ones = np.ones(num_frames)
        return cls(np.repeat(np.asarray(look_at, np.float64)[None], num_frames, 0), distance * ones, azimuth * ones,
                   elevation * ones)

    @property
    def moving(self) -> bool:
        return bool(np.ptp(self.distance) > 0 or np.ptp(self.azimuth) > 0 or np.ptp(self.elevation) > 0
                    or np.ptp(self.look_at, axis=0).max() > 0)


@dataclass
class PhysicsScene:
    """Everything a clip is made of; :func:`sample_scene` draws one from a seed."""

    objects: List[ObjectSpec]
    camera: CameraPath
    light_dir: Tuple[float, float, float] = (-0.3, 0.2, -1.0)
    texture_seed: int = 0


def _rgb(rng: np.random.Generator) -> Tuple[float, float, float]:
    return tuple(float(c) for c in colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(*SAMPLING["colour_saturation"]),
                                                       rng.uniform(*SAMPLING["colour_value"])))


def _random_quat(rng: np.random.Generator) -> Tuple[float, ...]:
    q = rng.normal(size=4)
    return tuple(float(v) for v in q / np.linalg.norm(q))


def sample_scene(seed: int, cfg: PhysicsSceneConfig) -> PhysicsScene:
    """Draw objects, camera path and light from ``seed`` (same seed and config -> the same scene)."""
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    n = int(rng.integers(cfg.num_objects[0], cfg.num_objects[1] + 1))
    objects: List[ObjectSpec] = []
    if cfg.launch_frame:
        objects = _resting_objects(rng, n, cfg)
    for _ in range(0 if cfg.launch_frame else n):
        shape = cfg.shapes[rng.integers(len(cfg.shapes))]
        material = cfg.materials[rng.integers(len(cfg.materials))]
        a = rng.uniform(*cfg.object_size)
        size = {"cube": (a, a, a), "sphere": (a,), "cylinder": (a, a * rng.uniform(*SAMPLING["cylinder_height"]))}[shape]
        rgb = _rgb(rng)
        spec = None
        for _try in range(50):  # rejection: start without overlaps (bounding spheres), else leave the object out
            pos = (rng.uniform(-cfg.spawn_extent, cfg.spawn_extent), rng.uniform(-cfg.spawn_extent, cfg.spawn_extent),
                   0.0)
            cand = ObjectSpec(shape, material, tuple(float(s) for s in size), rgb, pos)
            r = cand.bounding_radius
            z = max(rng.uniform(*cfg.spawn_height), 0.0) + r
            if all(np.linalg.norm(np.subtract((pos[0], pos[1], z), o.pos)) > r + o.bounding_radius + SAMPLING["min_gap"]
                   for o in objects):
                spec = cand
                spec.pos = (float(pos[0]), float(pos[1]), float(z))
                break
        if spec is None:
            continue
        # MOVi-style throw: a random horizontal velocity, pulled back towards the centre
        v = rng.uniform(-cfg.max_speed, cfg.max_speed, size=2) - SAMPLING["centre_pull"] * np.asarray(spec.pos[:2])
        spec.linvel = (float(v[0]), float(v[1]), float(rng.uniform(*SAMPLING["vertical_speed"])))
        spec.quat = _random_quat(rng)
        w = SAMPLING["angular_speed"]
        spec.angvel = tuple(float(x) for x in rng.uniform(-w, w, size=3))
        objects.append(spec)

    t = np.arange(cfg.num_frames, dtype=np.float64)
    look = np.array([*rng.uniform(-cfg.look_at_extent, cfg.look_at_extent, size=2), 0.0])
    dist = rng.uniform(*cfg.camera_distance)
    az = rng.uniform(0.0, 360.0)
    el = rng.uniform(*cfg.camera_elevation)
    if cfg.camera == "moving":
        seconds = (cfg.num_frames - 1) / cfg.fps
        orbit = rng.choice([-1.0, 1.0]) * rng.uniform(*cfg.camera_orbit_speed) * seconds  # degrees over the clip
        dolly = rng.uniform(-cfg.camera_dolly, cfg.camera_dolly)
        tilt = rng.uniform(-cfg.camera_tilt, cfg.camera_tilt)
        end_look = np.array([*rng.uniform(-cfg.look_at_extent, cfg.look_at_extent, size=2), 0.0])
        # smooth-step easing: the camera starts and stops gently (velocity and acceleration vary over the clip)
        u = t / max(t[-1], 1.0)
        s = u * u * (3.0 - 2.0 * u)
        camera = CameraPath(look[None] + s[:, None] * (end_look - look)[None], dist * (1 + dolly * s), az + orbit * s,
                            np.clip(el + tilt * s, cfg.camera_elevation[0] - cfg.camera_tilt,
                                    cfg.camera_elevation[1] + cfg.camera_tilt))
    else:
        ones = np.ones_like(t)
        camera = CameraPath(np.repeat(look[None], cfg.num_frames, 0), dist * ones, az * ones, el * ones)
    light = rng.normal(size=3) * np.array([SAMPLING["light_tilt"], SAMPLING["light_tilt"], 0.0]) + np.array([0.0, 0.0, -1.0])
    return PhysicsScene(objects, camera, tuple(float(v) for v in light / np.linalg.norm(light)),
                        int(rng.integers(2**31)))


def _resting_objects(rng: np.random.Generator, n: int, cfg: PhysicsSceneConfig) -> List[ObjectSpec]:
    """Up to ``n`` objects of a launch scene: upright on the floor, random heading about z, at rest; colour hue and
    launch heading from one :data:`LAUNCH` palette entry each."""
    objects: List[ObjectSpec] = []
    palette = LAUNCH["palette"]
    for _ in range(n):
        shape = cfg.shapes[rng.integers(len(cfg.shapes))]
        material = cfg.materials[rng.integers(len(cfg.materials))]
        a = rng.uniform(*cfg.object_size)
        size = {"cube": (a, a, a), "sphere": (a,), "cylinder": (a, a * rng.uniform(*SAMPLING["cylinder_height"]))}[shape]
        hue, heading = palette[rng.integers(len(palette))]
        rgb = tuple(float(c) for c in colorsys.hsv_to_rgb(hue, rng.uniform(*SAMPLING["colour_saturation"]),
                                                          rng.uniform(*SAMPLING["colour_value"])))
        yaw = rng.uniform(0.0, 2 * np.pi)
        quat = (float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2)))
        for _try in range(50):  # rejection: no overlaps (bounding spheres), else leave the object out
            xy = rng.uniform(-cfg.spawn_extent, cfg.spawn_extent, size=2)
            cand = ObjectSpec(shape, material, tuple(float(s) for s in size), rgb,
                              (float(xy[0]), float(xy[1]), float(size[-1] if shape != "sphere" else size[0])), quat,
                              launch_heading=float(heading))
            if all(np.linalg.norm(np.subtract(cand.pos[:2], o.pos[:2])) > cand.bounding_radius + o.bounding_radius
                   + SAMPLING["min_gap"] for o in objects):
                objects.append(cand)
                break
    return objects


def _noise(rng: np.random.Generator, size: int, octaves, low: float) -> np.ndarray:
    """Smooth, seamlessly tiling grey noise ``[size, size]`` uint8 in ``[255 low, 255]``.

    White noise shaped in the Fourier domain (periodic, so the floor's repeated tiles show no seams) by a sum of
    Gaussian low-passes of std ``cell / 2`` px, each scaled to give its octave unit variance, times its weight.
    """
    f2 = np.fft.fftfreq(size)[:, None] ** 2 + np.fft.rfftfreq(size)[None] ** 2
    shape = np.zeros_like(f2)
    for cell, weight in octaves:
        h = np.exp(-2 * (np.pi * cell / 2) ** 2 * f2)
        full = np.concatenate([h, h[:, 1:(size + 1) // 2][:, ::-1]], 1)  # the full spectrum, for Parseval's norm
        shape += weight * h / np.sqrt(np.mean(full ** 2))
    img = np.fft.irfft2(np.fft.rfft2(rng.normal(size=(size, size))) * shape, s=(size, size))
    img = (img - img.min()) / max(float(img.max() - img.min()), 1e-12)
    return np.round(255 * (low + (1 - low) * img)).astype(np.uint8)


def scene_assets(scene: PhysicsScene, cfg: PhysicsSceneConfig) -> dict:
    """The texture images of a scene as PNG bytes by file name (``MjModel.from_xml_string(xml, assets)``)."""
    import cv2

    if not cfg.textures:
        return {}
    rng = np.random.default_rng(scene.texture_seed)
    t = TEXTURES
    images = {"floor.png": _noise(rng, t["floor_size"], t["floor_octaves"], t["floor_low"])}
    for k in range(len(scene.objects)):
        images[f"obj{k}.png"] = _noise(rng, t["object_size"], t["object_octaves"], t["object_low"])
    return {name: cv2.imencode(".png", img)[1].tobytes() for name, img in images.items()}


def scene_xml(scene: PhysicsScene, cfg: PhysicsSceneConfig) -> str:
    """The MJCF model of a scene (objects as free bodies ``obj<k>``; the floor is geom ``floor``)."""
    half = cfg.floor_half_size
    far = 2.0 * half + cfg.camera_distance[1] * 2
    extent = far / 10.0  # MuJoCo scales the clip planes by the model extent: near = 0.005 * extent, far = 10 * extent
    timestep = 1.0 / (cfg.fps * cfg.substeps)
    fl = FLOOR_PARAMS
    assets = "".join(
        f'<material name="{name}" specular="{p["specular"]}" shininess="{p["shininess"]}" reflectance="{p["reflectance"]}"/>'
        for name, p in MATERIAL_PARAMS.items())
    if cfg.textures:
        rep = 2 * half / TEXTURES["floor_tile"]
        assets += ('<texture name="floor" type="2d" file="floor.png"/>'
                   f'<material name="floor" texture="floor" texrepeat="{rep:.6g} {rep:.6g}" specular="0.1"/>')
        floor_look = f'material="floor" rgba="{" ".join(map(str, fl["textured_rgb"]))} 1"'
        # one cube-map texture per object, tinted by the geom colour (material colour x texture)
        for k, ob in enumerate(scene.objects):
            p = MATERIAL_PARAMS[ob.material]
            assets += (f'<texture name="obj{k}" type="cube" file="obj{k}.png"/>'
                       f'<material name="obj{k}" texture="obj{k}" specular="{p["specular"]}" shininess="{p["shininess"]}" '
                       f'reflectance="{p["reflectance"]}"/>')
    elif cfg.floor_checker:
        rgb1, rgb2 = " ".join(map(str, fl["rgb"])), " ".join(map(str, fl["checker_rgb"]))
        # 2 m squares (a builtin checker tile holds 2 x 2); a 512 px texture keeps far squares free of moire
        assets += (f'<texture name="floor" type="2d" builtin="checker" rgb1="{rgb1}" rgb2="{rgb2}" width="512" height="512"/>'
                   f'<material name="floor" texture="floor" texrepeat="{half / 2:.6g} {half / 2:.6g}" specular="0.1"/>')
        floor_look = 'material="floor"'
    else:
        floor_look = f'rgba="{" ".join(map(str, fl["rgb"]))} 1"'
    bodies = []
    for k, ob in enumerate(scene.objects):
        p = MATERIAL_PARAMS[ob.material]
        kind = {"cube": "box", "sphere": "sphere", "cylinder": "cylinder"}[ob.shape]
        bodies.append(
            f'<body name="obj{k}" pos="{" ".join(repr(v) for v in ob.pos)}" quat="{" ".join(repr(v) for v in ob.quat)}">'
            f'<freejoint/><geom name="obj{k}" type="{kind}" size="{" ".join(repr(v) for v in ob.size)}" '
            f'rgba="{" ".join(repr(v) for v in ob.rgb)} 1" material="{f"obj{k}" if cfg.textures else ob.material}" '
            f'friction="{p["friction"]} 0.005 0.0001" '
            f'solref="{p["solref"][0]} {p["solref"][1]}" density="{p["density"]}"/></body>')
    light = " ".join(repr(v) for v in scene.light_dir)
    shadow = "true" if cfg.shadows else "false"
    return (
        f'<mujoco model="trajloom-physics">'
        f'<option timestep="{timestep!r}" gravity="0 0 {-GRAVITY}"/>'
        f'<statistic extent="{extent!r}" center="0 0 0"/>'
        f'<visual><global fovy="{cfg.fovy!r}" ipd="0" offwidth="{cfg.width}" offheight="{cfg.height}"/>'
        f'<quality shadowsize="{1024 if cfg.shadows else 0}" offsamples="0"/>'
        f'<map znear="0.005" zfar="10" shadowclip="1" shadowscale="0.5"/>'
        f'<headlight ambient="0.35 0.35 0.35" diffuse="0.3 0.3 0.3" specular="0.1 0.1 0.1"/></visual>'
        f'<asset>{assets}</asset>'
        f'<worldbody><light directional="true" pos="0 0 20" dir="{light}" diffuse="0.6 0.6 0.6" specular="0.4 0.4 0.4" '
        f'castshadow="{shadow}"/>'
        f'<geom name="floor" type="plane" size="{half!r} {half!r} {2 * half!r}" {floor_look} '
        f'friction="{fl["friction"]} 0.005 0.0001" solmix="{fl["solmix"]}"/>'
        f'{"".join(bodies)}</worldbody></mujoco>')
