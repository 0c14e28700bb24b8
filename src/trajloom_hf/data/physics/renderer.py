"""A small MuJoCo offscreen renderer on the shared headless GL context: RGB, geom segmentation, depth.

``mujoco.Renderer`` creates a GL context per instance; a clip needs a model (and so an ``MjrContext``) of its own
but not a context of its own, so this one reuses :func:`.gl.gl_context`. The scene is updated once per frame
(:meth:`update`, which also returns the frame's :class:`PinholeCamera`); RGB, segmentation and depth reads then
render that same scene. Without rendering (``render=False``) :meth:`update` still runs MuJoCo's camera update,
which needs no GL.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .camera import PinholeCamera
from .gl import gl_context, import_mujoco


class OffscreenRenderer:
    """Renders one model at ``height x width``; ``render=False`` only computes cameras."""

    def __init__(self, model, height: int, width: int, render: bool = True):
        mj = import_mujoco()
        self._mj = mj
        self.model, self.height, self.width = model, height, width
        self.scene = mj.MjvScene(model, maxgeom=max(64, 4 * model.ngeom))
        self.option = mj.MjvOption()
        self.camera = mj.MjvCamera()
        self.camera.type = mj.mjtCamera.mjCAMERA_FREE
        self._ctx = None
        if render:
            gl_context()
            self._ctx = mj.MjrContext(model, mj.mjtFontScale.mjFONTSCALE_50.value)
            mj.mjr_setBuffer(mj.mjtFramebuffer.mjFB_OFFSCREEN.value, self._ctx)
            self._ctx.readDepthMap = mj.mjtDepthMap.mjDEPTH_ZEROFAR
        self._rect = mj.MjrRect(0, 0, width, height)

    def update(self, data, look_at, distance: float, azimuth: float, elevation: float) -> PinholeCamera:
        """Place the free camera (elevation in degrees above the horizon, looking down) and update the scene."""
        mj = self._mj
        self.camera.lookat[:] = look_at
        self.camera.distance = float(distance)
        self.camera.azimuth = float(azimuth)
        self.camera.elevation = -float(elevation)  # MuJoCo: negative elevation looks down
        if self._ctx is None:
            mj.mjv_updateCamera(self.model, data, self.camera, self.scene)
        else:
            mj.mjv_updateScene(self.model, data, self.option, None, self.camera, mj.mjtCatBit.mjCAT_ALL.value, self.scene)
        return PinholeCamera.from_gl_camera(self.scene.camera[0], self.height, self.width)

    def _render(self, rgb: Optional[np.ndarray], depth: Optional[np.ndarray]) -> None:
        if self._ctx is None:
            raise RuntimeError("this renderer was made with render=False")
        gl_context()
        self._mj.mjr_render(self._rect, self.scene, self._ctx)
        self._mj.mjr_readPixels(rgb, depth, self._rect, self._ctx)

    def rgb(self) -> np.ndarray:
        """``[H, W, 3]`` uint8 of the current scene."""
        buf = np.empty((self.height, self.width, 3), np.uint8)
        self._render(buf, None)
        return buf[::-1].copy()  # OpenGL rows start at the bottom

    def segmentation(self) -> np.ndarray:
        """``[H, W]`` int32 geom id seen at each pixel (-1: nothing)."""
        mj = self._mj
        flags = self.scene.flags.copy()
        self.scene.flags[mj.mjtRndFlag.mjRND_SEGMENT] = True
        self.scene.flags[mj.mjtRndFlag.mjRND_IDCOLOR] = True
        try:
            buf = np.empty((self.height, self.width, 3), np.uint8)
            self._render(buf, None)
        finally:
            self.scene.flags[:] = flags
        segid = buf[::-1].astype(np.int64) @ np.array([1, 256, 65536])  # 0 = background, else segid + 1
        lut = np.full(self.scene.ngeom + 1, -1, np.int32)
        for g in self.scene.geoms[: self.scene.ngeom]:
            if g.segid >= 0 and g.objtype == mj.mjtObj.mjOBJ_GEOM:
                lut[g.segid + 1] = g.objid
        return lut[np.clip(segid, 0, len(lut) - 1)]

    def depth(self) -> np.ndarray:
        """``[H, W]`` float64 depth along the optical axis (m), from the depth buffer (MuJoCo's reverse-z map)."""
        buf = np.empty((self.height, self.width), np.float32)
        self._render(None, buf)
        extent = self.model.stat.extent
        near = np.float32(self.model.vis.map.znear * extent)
        far = np.float32(self.model.vis.map.zfar * extent)
        c = -(far + near) / (far - near)
        d = -(np.float32(2) * far * near) / (far - near)
        c, d = np.float32(-0.5) * c - np.float32(0.5), np.float32(-0.5) * d  # reverse-z, as mujoco.Renderer
        return (float(d) / (buf[::-1].astype(np.float64) + float(c)))

    def close(self) -> None:
        if self._ctx is not None:
            gl_context()
            self._ctx.free()
            self._ctx = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
