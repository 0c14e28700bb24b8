"""Image encoder that turns RGB frames into features on the track grid (the appearance input of the generator).

``FrameEncoder`` maps frames ``[B, T, H, W, 3]`` (uint8 in [0, 255], or float in [0, 1]) to per-token features
``[B, T, N, C]`` aligned with the track grid (``N = H_g * W_g`` cells of ``grid_stride`` px, row-major, token ``n``
= the cell of query point ``n``). These features enter :class:`TrajFlowTransformer` through its token-aligned
video-conditioning input (``video_latents``, ``video_latent_channels = out_channels``), the slot the paper fills with
Wan VAE latents (reference §3.9): per grid token in the temporal blocks, all tokens of the last history step in the
spatial blocks (``spatial_ctx_include_video``), and their mean in the conditioning vector. WHN (reference
``whn-baseline.md`` §4) cross-attends to DINOv2 patch tokens with a 2-D position embedding; the token-aligned slot
gives the same information with the position already fixed by the grid, and keeps the official state-dict keys.

Two backbones:

* ``"conv"`` (default): a small convolutional encoder trained jointly with the generator (no pretrained weights are
  needed): frames resized (antialiased) to ``cell_px`` pixels per grid cell, ``log2(cell_px)`` stride-2 3x3 convs
  down to the grid, a 3x3 conv at grid resolution (neighbouring cells), and a little global context (the mean
  feature through a linear layer, added to every token);
* ``"pretrained"``: a frozen ``transformers`` vision backbone with patch tokens (e.g. ``Dinov2Model``), rebuilt from
  ``backbone_config`` through ``AutoConfig``/``AutoModel`` (its normal class); frames resized to its
  ``image_size`` and ImageNet-normalised (WHN's ``AutoImageProcessor`` settings), the patch tokens (prefix/CLS
  tokens dropped) bilinearly resampled to the grid and projected to ``out_channels`` by a trainable linear layer.
  Build one from a loaded model with :meth:`FrameEncoder.from_backbone`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput

from .auto_map import AutoMapConfigMixin

BACKBONES = ("conv", "pretrained")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class FrameEncoderOutput(BaseOutput):
    """``features``: per-token frame features ``[B, T, N, C]`` (model dtype), token ``n`` on grid cell ``n``."""

    features: torch.Tensor


def _conv_block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    # no GroupNorm/BatchNorm: they normalise over the whole frame, so a token's feature would depend on far cells
    # (locality is what aligns a feature with its grid cell; the global term adds the whole-frame context on purpose)
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.SiLU())


class FrameEncoder(AutoMapConfigMixin, ModelMixin, ConfigMixin):
    """RGB frames -> features on the track grid (see the module docstring).

    Args:
        height / width: frame size in pixels the tracks live in (the VAE's ``height``/``width``).
        grid_stride: track grid stride ``s`` (the VAE's ``patch_size``); the grid is ``H/s x W/s``.
        out_channels: feature width ``C`` (the transformer's ``video_latent_channels``).
        hidden_channels: conv width (``"conv"``).
        cell_px: pixels per grid cell after the input resize (``"conv"``; a power of two; frames are stored and
            encoded at ``(H/s * cell_px) x (W/s * cell_px)``, the "low resolution" of the training cache).
        global_context: add the projected mean feature to every token.
        backbone: ``"conv"`` or ``"pretrained"``.
        backbone_config: the backbone's ``transformers`` config as a dict (``config.to_dict()``, with ``model_type``).
    """

    @register_to_config
    def __init__(
        self,
        height: int = 480,
        width: int = 832,
        grid_stride: int = 32,
        out_channels: int = 16,
        hidden_channels: int = 32,
        cell_px: int = 8,
        global_context: bool = True,
        backbone: str = "conv",
        backbone_config: Optional[Dict[str, Any]] = None,
    ):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"`backbone` must be one of {BACKBONES}, got {backbone!r}")
        if grid_stride < 1 or height % grid_stride or width % grid_stride:
            raise ValueError(f"`height`={height} and `width`={width} must be multiples of `grid_stride`={grid_stride}")
        if out_channels < 1 or hidden_channels < 1:
            raise ValueError(f"`out_channels` and `hidden_channels` must be positive, got {out_channels}, {hidden_channels}")
        self.grid_hw = (height // grid_stride, width // grid_stride)
        if backbone == "conv":
            if cell_px < 1 or cell_px & (cell_px - 1):
                raise ValueError(f"`cell_px` must be a power of two, got {cell_px}")
            layers, c = [], 3
            for _ in range(int(math.log2(cell_px))):
                layers.append(_conv_block(c, hidden_channels, 2))
                c = hidden_channels
            layers.append(_conv_block(c, hidden_channels, 1))  # neighbouring cells, at grid resolution
            self.stem = nn.Sequential(*layers)
            feat = hidden_channels
            self.sample_size = (self.grid_hw[0] * cell_px, self.grid_hw[1] * cell_px)
        else:
            if not backbone_config or "model_type" not in backbone_config:
                raise ValueError("`backbone='pretrained'` needs `backbone_config`, a transformers config dict with 'model_type'")
            from transformers import AutoConfig, AutoModel

            cfg = dict(backbone_config)
            bconf = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
            self.vision_model = AutoModel.from_config(bconf)
            self.vision_model.requires_grad_(False).eval()  # frozen, as WHN's DINOv2
            size = bconf.image_size
            size = (size, size) if isinstance(size, int) else tuple(size)
            patch = bconf.patch_size
            if size[0] % patch or size[1] % patch:
                raise ValueError(f"backbone image_size {size} is not a multiple of its patch_size {patch}")
            self.patch_hw = (size[0] // patch, size[1] // patch)
            self.num_prefix_tokens = 1 + int(getattr(bconf, "num_register_tokens", 0) or 0)  # CLS (+ registers)
            self.sample_size = size
            feat = int(bconf.hidden_size)
            self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.proj = nn.Linear(feat, out_channels)
        if global_context:
            self.global_proj = nn.Linear(feat, out_channels)

    # ------------------------------------------------------------------------------------------------------------
    @classmethod
    def from_backbone(cls, model, *, height: int, width: int, grid_stride: int, out_channels: int = 16,
                      global_context: bool = True) -> "FrameEncoder":
        """Wrap a loaded ``transformers`` vision model (e.g. ``Dinov2Model.from_pretrained(...)``), frozen; its
        weights are copied in, so ``save_pretrained`` writes one self-contained folder."""
        cfg = model.config.to_dict()
        enc = cls(height=height, width=width, grid_stride=grid_stride, out_channels=out_channels,
                  global_context=global_context, backbone="pretrained", backbone_config=cfg)
        enc.vision_model.load_state_dict(model.state_dict())
        return enc

    def train(self, mode: bool = True):
        super().train(mode)
        if self.config.backbone == "pretrained":
            self.vision_model.eval()  # a frozen backbone stays in inference mode (dropout, layer scale)
        return self

    @property
    def num_tokens(self) -> int:
        return self.grid_hw[0] * self.grid_hw[1]

    # ------------------------------------------------------------------------------------------------------------
    def _check_frames(self, frames: torch.Tensor) -> None:
        if not isinstance(frames, torch.Tensor):
            raise TypeError(f"`frames` must be a torch.Tensor, got {type(frames).__name__}")
        if frames.ndim != 5 or frames.shape[-1] != 3:
            raise ValueError(f"`frames` must have shape [B, T, H, W, 3] (RGB), got {list(frames.shape)}")
        if frames.dtype != torch.uint8 and not frames.is_floating_point():
            raise TypeError(f"`frames` must be uint8 in [0, 255] or float in [0, 1], got dtype {frames.dtype}")
        if frames.is_floating_point() and frames.numel() and (not torch.isfinite(frames).all()
                                                             or float(frames.min()) < 0 or float(frames.max()) > 1):
            raise ValueError(f"float `frames` must be in [0, 1], got [{float(frames.min()):.4g}, {float(frames.max()):.4g}]")
        h, w = frames.shape[2:4]
        if (h, w) != (self.config.height, self.config.width) and (h, w) != tuple(self.sample_size):
            raise ValueError(f"`frames` must be {self.config.height}x{self.config.width} (the tracks' frame) or "
                             f"{self.sample_size[0]}x{self.sample_size[1]} (already resized), got {h}x{w}")

    def resize_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames ``[B, T, H, W, 3]`` -> uint8 ``[B, T, h, w, 3]`` at the encoder's input size (antialiased bilinear,
        rounded). Encoding the result gives exactly the features of encoding the original frames, so training can
        cache frames at this low resolution."""
        self._check_frames(frames)
        if tuple(frames.shape[2:4]) == tuple(self.sample_size):
            return frames if frames.dtype == torch.uint8 else (frames.float() * 255).round().clamp(0, 255).to(torch.uint8)
        b, t, h, w, _ = frames.shape
        x = frames.float() if frames.dtype == torch.uint8 else frames.float() * 255
        x = x.reshape(b * t, h, w, 3).permute(0, 3, 1, 2)
        x = F.interpolate(x, size=tuple(self.sample_size), mode="bilinear", align_corners=False, antialias=True)
        x = x.round().clamp(0, 255).to(torch.uint8)
        return x.permute(0, 2, 3, 1).reshape(b, t, *self.sample_size, 3)

    def forward(self, frames: torch.Tensor, return_dict: bool = True):
        """Frames ``[B, T, H, W, 3]`` (uint8, or float in [0, 1]; at the tracks' frame size or already
        :meth:`resize_frames`-d) -> :class:`FrameEncoderOutput` ``features [B, T, N, C]``."""
        x = self.resize_frames(frames)
        b, t = x.shape[:2]
        x = x.reshape(b * t, *x.shape[2:]).permute(0, 3, 1, 2).to(self.dtype) / 255.0  # [BT, 3, h, w] in [0, 1]
        gh, gw = self.grid_hw
        if self.config.backbone == "conv":
            f = self.stem(x * 2.0 - 1.0)  # [BT, F, H_g, W_g]
        else:
            x = (x - self.pixel_mean.to(x.dtype)) / self.pixel_std.to(x.dtype)
            with torch.no_grad():
                tokens = self.vision_model(pixel_values=x).last_hidden_state[:, self.num_prefix_tokens:]
            ph, pw = self.patch_hw
            f = tokens.transpose(1, 2).reshape(b * t, -1, ph, pw)
            if (ph, pw) != (gh, gw):  # patch tokens resampled onto the track grid
                f = F.interpolate(f, size=(gh, gw), mode="bilinear", align_corners=False)
        f = f.flatten(2).transpose(1, 2)  # [BT, N, F]
        out = self.proj(f)
        if self.config.global_context:
            out = out + self.global_proj(f.mean(dim=1, keepdim=True))
        out = out.reshape(b, t, gh * gw, -1)
        if not return_dict:
            return (out,)
        return FrameEncoderOutput(features=out)

