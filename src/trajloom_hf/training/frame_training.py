"""Frame conditioning in flow training: the trainable :class:`FrameEncoder` and the frames it reads.

The latent cache cannot hold the features of an encoder that is being trained, so what is cached is its *input*:
each window's conditioning frames (:func:`trajloom_hf.frame_conditioning.conditioning_frames`: one per history
latent step for TrajLoom, the forecast-start frame for the WHN-style baseline), decoded once from the bench's
``video`` column and resized to the encoder's low input resolution (:meth:`FrameEncoder.resize_frames`, whose
result encodes exactly like the full-size frames, so training sees what the pipeline computes at inference).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Dict, Optional, Sequence

import torch
from tqdm.auto import tqdm

from ..frame_conditioning import conditioning_frames
from ..json_files import read_json_object
from ..models.frame_encoder import FrameEncoder
from ..video_io import atomic_path

__all__ = ["FrameCache", "build_frame_encoder", "frame_encoder_parameters"]

logger = logging.getLogger(__name__)


def build_frame_encoder(vae_config, *, init_from: Optional[str] = None, config_path: Optional[str] = None,
                        backbone_path: Optional[str] = None, out_channels: Optional[int] = None) -> FrameEncoder:
    """The run's frame encoder: loaded from ``init_from`` (the on-policy stage continues the stage-1 encoder), a
    frozen pretrained ``transformers`` vision backbone from ``backbone_path`` (e.g. a DINOv2 folder, loaded through
    ``AutoModel``) with a trainable projection, or a new conv encoder from the JSON arguments in ``config_path``.
    Frame size and grid stride are the VAE's; ``out_channels`` overrides the config's."""
    size = dict(height=int(vae_config.height), width=int(vae_config.width), grid_stride=int(vae_config.patch_size))
    if init_from:
        enc = FrameEncoder.from_pretrained(init_from, use_safetensors=True)
        got = dict(height=enc.config.height, width=enc.config.width, grid_stride=enc.config.grid_stride)
        if got != size:
            raise ValueError(f"--init_frame_encoder {init_from!r} works on {got}, the VAE on {size}")
        return enc
    config = {}
    if config_path:
        config = read_json_object(config_path, "--frame_encoder_config", "FrameEncoder arguments")
    if out_channels is not None:
        config["out_channels"] = int(out_channels)
    if backbone_path:
        from transformers import AutoModel

        model = AutoModel.from_pretrained(backbone_path)
        keep = {k: config[k] for k in ("out_channels", "global_context") if k in config}
        return FrameEncoder.from_backbone(model, **size, **keep)
    return FrameEncoder(**size, **config)


def frame_encoder_parameters(encoder: FrameEncoder):
    """The trainable parameters (a pretrained backbone stays frozen)."""
    return [p for p in encoder.parameters() if p.requires_grad]


class FrameCache:
    """Conditioning frames per window key, uint8 ``[T', h, w, 3]`` at the encoder's input size, in memory and in
    ``<root>/frames_<digest>.pt`` (written atomically, read with ``weights_only=True``); the digest names the
    history mode, the encoder's input size and the window layout."""

    def __init__(self, frames: Dict[str, torch.Tensor]):
        self.frames = frames

    @classmethod
    def build(cls, datasets: Sequence, encoder: FrameEncoder, *, history_frames: int, temporal_stride: int,
              history_mode: str, root: Optional[str] = None, progress: bool = True) -> "FrameCache":
        """Decode every window's history frames once (``datasets``: keyed window datasets built ``with_frames``)."""
        spec = {"mode": history_mode, "size": list(encoder.sample_size), "frames": history_frames,
                "stride": temporal_stride, "windows": [len(d) for d in datasets]}
        layouts = [getattr(d, "layout", "first") for d in datasets]
        if any(layout != "first" for layout in layouts):  # windows at frame 0 keep the digest of earlier caches
            spec["layouts"] = layouts
        key = json.dumps(spec, sort_keys=True)
        path = None
        if root:
            os.makedirs(root, exist_ok=True)
            path = os.path.join(root, f"frames_{hashlib.sha1(key.encode()).hexdigest()[:12]}.pt")
            if os.path.exists(path):
                return cls(torch.load(path, map_location="cpu", weights_only=True))
        frames: Dict[str, torch.Tensor] = {}
        total = sum(len(d) for d in datasets)
        with tqdm(total=total, desc="decode conditioning frames", disable=not progress) as bar:
            for dataset in datasets:
                for i in range(len(dataset)):
                    item = dataset[i]
                    video = item["history_frames"][None]  # [1, T_h, H, W, 3]
                    sel = conditioning_frames(video, history_frames, temporal_stride, history_mode)
                    frames[item["key"]] = encoder.resize_frames(sel)[0].contiguous()
                    bar.update()
        if path:
            with atomic_path(path) as tmp:
                torch.save(frames, tmp)
        logger.info("cached the conditioning frames of %d windows", total)
        return cls(frames)

    def batch(self, keys: Sequence[str], device=None) -> torch.Tensor:
        """uint8 ``[B, T', h, w, 3]`` for the windows ``keys``."""
        missing = [k for k in keys if k not in self.frames]
        if missing:
            raise KeyError(f"no cached frames for windows {missing[:3]}")
        return torch.stack([self.frames[k] for k in keys]).to(device)
