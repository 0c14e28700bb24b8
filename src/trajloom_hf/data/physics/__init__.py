"""Physics-simulated TrajLoomBench source with exact ground truth (MuJoCo; the paper's Kubric MOVi-A row).

MOVi-A-like clips (rigid cubes, spheres and cylinders of rubber or metal, dropped and thrown onto a grey floor,
filmed by a static or moving camera), rendered headless (EGL/OSMesa, see :mod:`.gl`) with exact tracks of the
frame-0 query grid (:mod:`.generator`). ``mujoco`` comes with the package's ``physics`` extra; it is imported on
first use, so this package imports without it.
"""

from .gl import GLUnavailableError, check_gl
from .scene import (CAMERAS, LAUNCH, MATERIAL_PARAMS, MATERIALS, SHAPES, CameraPath, ObjectSpec, PhysicsScene, PhysicsSceneConfig,
                    sample_scene, scene_assets, scene_xml)
from .generator import PhysicsClip, generate_physics_clip, generate_physics_clips, launch_velocity

__all__ = ["CAMERAS", "LAUNCH", "MATERIAL_PARAMS", "MATERIALS", "SHAPES", "CameraPath", "GLUnavailableError", "ObjectSpec",
           "PhysicsClip", "PhysicsScene", "PhysicsSceneConfig", "check_gl", "generate_physics_clip",
           "generate_physics_clips", "launch_velocity", "sample_scene", "scene_assets", "scene_xml"]
