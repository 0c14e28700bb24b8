"""The pinhole camera MuJoCo renders with, in the package's pixel convention (fp64).

Pixel ``(x, y)`` (integers at pixel centres, x right, y down) has the camera-frame ray
``((x + 0.5 - W/2) / f, -(y + 0.5 - H/2) / f, -1)``: OpenGL looks along -z with y up and samples pixel centres, and
MuJoCo's frustum is centred with square pixels, ``f = H / 2 / tan(fovy / 2)`` (the horizontal half width follows
from the aspect ratio). The pose comes from MuJoCo's own ``mjvGLCamera`` after ``mjv_updateScene``, so tracks use
exactly the camera of the rendered frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PinholeCamera:
    """``position`` [3] m, ``rotation`` [3, 3] (columns: camera x right, y up, z back in world), ``focal`` px."""

    position: np.ndarray
    rotation: np.ndarray
    focal: float
    height: int
    width: int

    @classmethod
    def from_gl_camera(cls, glcam, height: int, width: int) -> "PinholeCamera":
        """From a MuJoCo ``mjvGLCamera`` (``scene.camera[0]``, mono; ``ipd`` is 0 in our models)."""
        forward = np.asarray(glcam.forward, np.float64)
        forward = forward / np.linalg.norm(forward)
        right = np.cross(forward, np.asarray(glcam.up, np.float64))
        right = right / np.linalg.norm(right)
        up = np.cross(right, forward)
        if abs(float(glcam.frustum_center)) > 1e-9 or abs(float(glcam.frustum_top) + float(glcam.frustum_bottom)) > 1e-9:
            raise ValueError("only centred frusta are supported (MuJoCo free and fixed perspective cameras)")
        focal = (height / 2.0) * float(glcam.frustum_near) / float(glcam.frustum_top)
        return cls(np.asarray(glcam.pos, np.float64).copy(), np.stack([right, up, -forward], 1), focal, height, width)

    def rays(self, xy: np.ndarray) -> np.ndarray:
        """Unit world directions ``[N, 3]`` through pixels ``xy`` ``[N, 2]``."""
        xy = np.asarray(xy, np.float64)
        d = np.stack([(xy[:, 0] + 0.5 - self.width / 2.0) / self.focal, -(xy[:, 1] + 0.5 - self.height / 2.0) / self.focal,
                      -np.ones(len(xy))], -1)
        d = d @ self.rotation.T
        return d / np.linalg.norm(d, axis=-1, keepdims=True)

    def project(self, points: np.ndarray, min_depth: float = 1e-6):
        """World points ``[N, 3]`` -> pixels ``[N, 2]`` and depth ``[N]`` along the optical axis (m).

        Points behind the camera (depth <= ``min_depth``) are projected as if at ``min_depth``; callers mark them
        invisible.
        """
        c = (np.asarray(points, np.float64) - self.position) @ self.rotation
        depth = -c[:, 2]
        z = np.maximum(depth, min_depth)
        xy = np.stack([self.focal * c[:, 0] / z + self.width / 2.0 - 0.5, -self.focal * c[:, 1] / z + self.height / 2.0 - 0.5], -1)
        return xy, depth
