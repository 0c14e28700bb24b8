"""Visibility head for generated future latents (paper App. E.3; reference §4 ``TinyVisPredictor``).

Per spatial token, over latent time: ``Linear(C -> hidden)`` then ``depth`` x ``(Conv1d(k) + SiLU)`` then a 1x1
``Conv1d(hidden -> 1)``, giving one visibility logit per latent step ``[B, K, N]``. Targets are the future
visibility max-pooled to the token grid (``encoding.latent_visibility``). State-dict keys equal the official
ones (``in_proj``, ``temporal_net.{0,2,4}``, ``out``); the official config has 38,209 parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput

from .. import encoding


@dataclass
class VisibilityPredictorOutput(BaseOutput):
    """``logits``: ``[B, K, N]`` float32 per-token visibility logits (``sigmoid > threshold`` means visible)."""

    logits: torch.Tensor


def visibility_targets(future_visibility: torch.Tensor, temporal_stride: int = 4) -> torch.Tensor:
    """Token targets ``[B, K, N]`` bool: per-frame visibility ``[B, T, N]`` max-pooled over each latent step's frames."""
    return encoding.latent_visibility(future_visibility, temporal_stride)


def visibility_from_logits(
    logits: torch.Tensor,
    tracks_px: Optional[torch.Tensor],
    height: int,
    width: int,
    num_frames: int,
    threshold: float = 0.5,
    temporal_stride: int = 4,
) -> torch.Tensor:
    """Per-frame visibility ``[B, T, N]`` bool from token logits (reference §4 post-processing).

    ``sigmoid(logits) > threshold`` (strict), each latent step repeated over its ``temporal_stride`` frames and
    cropped to ``num_frames``, then AND-ed with the in-frame test of the predicted tracks (points leaving the frame
    become invisible). The official code upsamples the probabilities to pixels and reads them back at the query
    pixels, which is the identity on the token grid, so no spatial upsampling is done here.

    Args:
        logits: ``[B, K, N]`` (or ``[K, N]``).
        tracks_px: predicted tracks ``[B, T, N, 2]`` in pixels (or ``[T, N, 2]``), or None to skip the in-frame check.
        height / width: frame size in pixels; num_frames: T.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"`threshold` must be in [0, 1], got {threshold}")
    if logits.ndim not in (2, 3):
        raise ValueError(f"`logits` must have shape [B, K, N] or [K, N], got {list(logits.shape)}")
    visible = torch.sigmoid(logits.float()) > threshold
    visible = encoding.upsample_latent_time(visible, num_frames, temporal_stride)
    if tracks_px is not None:
        expected = list(visible.shape) + [2]
        if list(tracks_px.shape) != expected:
            raise ValueError(f"`tracks_px` must have shape {expected} (logits upsampled to T frames), got {list(tracks_px.shape)}")
        visible = visible & encoding.in_frame(tracks_px.float(), height, width).to(visible.device)
    return visible


class VisibilityPredictor(ModelMixin, ConfigMixin):
    """Lightweight per-token temporal visibility classifier on (normalised) future latents (App. E.3).

    Args:
        latent_channels: C of the latents.
        hidden_size: width of the temporal conv stack (official 64).
        depth: number of ``Conv1d + SiLU`` layers (official 3).
        kernel_size: temporal kernel (odd; official 3, "same" padding).
        temporal_stride: raw frames per latent step (used by :meth:`predict_visibility`).
        threshold: default probability threshold.
    """

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 16,
        hidden_size: int = 64,
        depth: int = 3,
        kernel_size: int = 3,
        temporal_stride: int = 4,
        threshold: float = 0.5,
    ):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"`kernel_size` must be odd (same-length temporal convs), got {kernel_size}")
        if depth < 0:
            raise ValueError(f"`depth` must be >= 0, got {depth}")
        self.in_proj = nn.Linear(latent_channels, hidden_size)
        layers = []
        for _ in range(depth):
            layers += [nn.Conv1d(hidden_size, hidden_size, kernel_size, padding=kernel_size // 2), nn.SiLU()]
        self.temporal_net = nn.Sequential(*layers)
        self.out = nn.Conv1d(hidden_size, 1, 1)

    def forward(self, latents: torch.Tensor, return_dict: bool = True):
        """``latents`` ``[B, K, N, C]`` (generator-normalised) -> logits ``[B, K, N]`` float32."""
        c = self.config.latent_channels
        if latents.ndim != 4 or latents.shape[-1] != c:
            raise ValueError(f"`latents` must have shape [B, K, N, C={c}], got {list(latents.shape)}")
        b, k, n, _ = latents.shape
        x = latents.to(self.dtype).permute(0, 2, 1, 3).reshape(b * n, k, c)  # one sequence per token
        h = self.in_proj(x).transpose(1, 2)  # [B*N, hidden, K]
        logits = self.out(self.temporal_net(h))[:, 0]  # [B*N, K]
        logits = logits.reshape(b, n, k).transpose(1, 2).float()
        if not return_dict:
            return (logits,)
        return VisibilityPredictorOutput(logits=logits)

    @torch.no_grad()
    def predict_visibility(
        self,
        latents: torch.Tensor,
        tracks_px: Optional[torch.Tensor],
        height: int,
        width: int,
        num_frames: int,
        threshold: Optional[float] = None,
    ) -> torch.Tensor:
        """Per-frame visibility ``[B, T, N]`` bool for generated latents; see :func:`visibility_from_logits`."""
        logits = self(latents).logits
        return visibility_from_logits(
            logits,
            tracks_px,
            height,
            width,
            num_frames,
            threshold=self.config.threshold if threshold is None else threshold,
            temporal_stride=self.config.temporal_stride,
        )
