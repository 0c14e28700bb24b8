"""Headless OpenGL for MuJoCo's offscreen renderer: backend choice, one shared context, a clear error when none.

MuJoCo picks its GL backend from ``MUJOCO_GL`` when it is first imported. Unset, it would try GLFW (a window
system), so :func:`import_mujoco` sets ``MUJOCO_GL=egl`` first: EGL renders without a display, on the CPU
through Mesa's llvmpipe where there is no GPU. ``MUJOCO_GL=osmesa`` (Mesa's OSMesa, package ``libosmesa6``) is
the other headless backend; it must be chosen before the first import, since PyOpenGL fixes its platform then.

One GL context serves every clip of a process (creating one costs tens of ms); each clip's model gets its own
``MjrContext`` on it (see :mod:`.renderer`).
"""

from __future__ import annotations

import os
from typing import Optional

INSTALL_HINT = (
    "install the `physics` extra (pip install 'trajloom-hf[physics]', which brings `mujoco`) and a headless GL: "
    "EGL with Mesa (`apt-get install libegl1 libgl1-mesa-dri`, then MUJOCO_GL=egl, the default here) or OSMesa "
    "(`apt-get install libosmesa6`, then MUJOCO_GL=osmesa set before Python starts)"
)


class GLUnavailableError(RuntimeError):
    """No headless OpenGL context can be created (or ``mujoco`` is missing); the message says what to install."""


_CONTEXT = None  # the process-wide GL context, created on first use
_CONTEXT_ERROR: Optional[str] = None


def import_mujoco():
    """``import mujoco`` with a headless default backend (``MUJOCO_GL=egl`` unless the variable is set)."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import mujoco
    except ImportError as err:
        raise GLUnavailableError(f"the physics source needs MuJoCo ({err}); {INSTALL_HINT}") from err
    return mujoco


def _create_context():
    """Make a GL context of the backend ``MUJOCO_GL`` names (raises whatever the backend raises)."""
    import_mujoco()
    from mujoco.gl_context import GLContext

    if GLContext is None:
        raise RuntimeError(f"MUJOCO_GL={os.environ.get('MUJOCO_GL')!r} disables rendering")
    ctx = GLContext(64, 64)  # MuJoCo renders into its own offscreen framebuffer; this surface size does not matter
    ctx.make_current()
    return ctx


def gl_context():
    """The shared GL context, made current. Raises :class:`GLUnavailableError` (with install hints) if none."""
    global _CONTEXT, _CONTEXT_ERROR
    if _CONTEXT is None:
        if _CONTEXT_ERROR is not None:  # a backend that failed once fails again: do not retry per clip
            raise GLUnavailableError(_CONTEXT_ERROR)
        try:
            _CONTEXT = _create_context()
        except GLUnavailableError:
            raise
        except Exception as err:  # ImportError of the backend, EGL/OSMesa init errors, missing libraries
            _CONTEXT_ERROR = (f"cannot create a headless OpenGL context with MUJOCO_GL="
                              f"{os.environ.get('MUJOCO_GL')!r} ({type(err).__name__}: {err}); {INSTALL_HINT}")
            raise GLUnavailableError(_CONTEXT_ERROR) from err
    else:
        _CONTEXT.make_current()
    return _CONTEXT


def check_gl() -> str:
    """Fail at once when no frame can be rendered; returns the GL backend and renderer, e.g. ``'egl: llvmpipe'``."""
    gl_context()
    from OpenGL import GL

    renderer = GL.glGetString(GL.GL_RENDERER)
    version = GL.glGetString(GL.GL_VERSION)
    text = lambda b: b.decode() if isinstance(b, bytes) else str(b)  # noqa: E731
    return f"{os.environ.get('MUJOCO_GL')}: {text(renderer)}, OpenGL {text(version)}"
