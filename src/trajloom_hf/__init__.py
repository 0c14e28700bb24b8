"""trajloom-hf: dense future point-trajectory generation (TrajLoom) for the Hugging Face ecosystem.

Public names are imported lazily (diffusers and transformers are heavy), so ``import trajloom_hf`` is cheap and
``from trajloom_hf import TrajLoomPipeline`` loads only what it needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_LAZY = {
    # track data model
    "encoding": "trajloom_hf.encoding",
    "location_variance_explained": "trajloom_hf.location_bias",
}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trajloom_hf' has no attribute {name!r}")
    mod = importlib.import_module(module)
    return mod if module.endswith("." + name) else getattr(mod, name)


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from . import encoding  # noqa: F401
    from .location_bias import location_variance_explained  # noqa: F401
