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
    # models, scheduler, pipeline (diffusers)
    "AutoencoderTraj": "trajloom_hf.models.autoencoder_traj",
    "TrajFlowTransformer": "trajloom_hf.models.transformer_traj_flow",
    "FrameEncoder": "trajloom_hf.models.frame_encoder",
    "VisibilityPredictor": "trajloom_hf.models.visibility_predictor",
    "FlowMatchTrajScheduler": "trajloom_hf.schedulers.scheduling_flow_match_traj",
    "TrajLoomPipeline": "trajloom_hf.pipelines.pipeline_trajloom",
    "TrajLoomPipelineOutput": "trajloom_hf.pipelines.pipeline_trajloom",
    # data, metrics
    "SceneConfig": "trajloom_hf.data.synthetic",
    "generate_clip": "trajloom_hf.data.synthetic",
    "build_trajloombench": "trajloom_hf.data.trajloombench",
    "metrics": "trajloom_hf.metrics",
    # training building blocks (Accelerate)
    "training": "trajloom_hf.training",
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
    from . import encoding, metrics, training  # noqa: F401
    from .data.synthetic import SceneConfig, generate_clip  # noqa: F401
    from .data.trajloombench import build_trajloombench  # noqa: F401
    from .location_bias import location_variance_explained  # noqa: F401
    from .models import AutoencoderTraj, FrameEncoder, TrajFlowTransformer, VisibilityPredictor  # noqa: F401
    from .pipelines import TrajLoomPipeline, TrajLoomPipelineOutput  # noqa: F401
    from .schedulers import FlowMatchTrajScheduler  # noqa: F401
