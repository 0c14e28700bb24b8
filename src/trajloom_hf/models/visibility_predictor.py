"""Visibility heads for generated future latents (paper App. E.3; reference §4 ``TinyVisPredictor``).

Two designs, chosen by the config field ``design``:

* ``"official"`` (default; loadable from ``visibility_predictor.pt``): per spatial token, over latent time,
  ``Linear(C -> hidden)`` then ``depth`` x ``(Conv1d(k) + SiLU)`` then a 1x1 ``Conv1d(hidden -> 1)``, giving one
  visibility logit per latent step ``[B, K, N]`` from the future latents alone. State-dict keys equal the official
  ones (``in_proj``, ``temporal_net.{0,2,4}``, ``out``); the official config has 38,209 parameters.
* ``"history_residual"``: residual on the trivial "hold each point's last history visibility" rule. Inputs are the
  future latents, the last history latent step and the history visibility of each point; the logit is
  ``prior_scale * (2 v_last - 1) + correction``, with the correction network's last layer zero-initialised, so an
  untrained head *is* hold-last and training only learns where visibility changes (occlusion, disocclusion).
  Its blocks mix over latent time (``Conv1d``) and, with ``grid_size`` and ``spatial_kernel > 0``, over the token
  grid (``Conv2d``), so a token sees its neighbours' motion (an occluder arriving).

Targets are the future visibility max-pooled to the token grid (``encoding.latent_visibility``). At inference the
per-frame visibility is the thresholded head AND the in-frame test of the decoded tracks (points predicted outside the
frame are invisible), see :func:`visibility_from_logits`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput

from .. import encoding
from ..precision import KeepFP32ModulesMixin
from ..validation import check_probability
from .auto_map import AutoMapConfigMixin


@dataclass
class VisibilityPredictorOutput(BaseOutput):
    """``logits``: ``[B, K, N]`` float32 per-token visibility logits (``sigmoid > threshold`` means visible)."""

    logits: torch.Tensor


DESIGNS = ("official", "history_residual")


def history_visibility_features(history_visibility: torch.Tensor, temporal_stride: int = 4) -> torch.Tensor:
    """Per-point history visibility features ``[B, N, 3]`` float32 from ``[B, T_h, N]`` bool: the last frame's
    visibility (the hold-last state), the fraction visible over the last latent step's frames and over the history."""
    if history_visibility.ndim != 3:
        raise ValueError(f"`history_visibility` must have shape [B, T_h, N], got {list(history_visibility.shape)}")
    v = history_visibility.float()
    recent = v[:, -temporal_stride:].mean(dim=1)
    return torch.stack([v[:, -1], recent, v.mean(dim=1)], dim=-1)


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


class VisibilityPredictor(AutoMapConfigMixin, KeepFP32ModulesMixin, ModelMixin, ConfigMixin):
    """Lightweight per-token visibility classifier on (normalised) future latents (App. E.3); see the module doc.

    Args:
        latent_channels: C of the latents.
        hidden_size: width of the conv stack (official 64).
        depth: number of ``Conv1d + SiLU`` layers (official 3); for ``"history_residual"``, of blocks.
        kernel_size: temporal kernel (odd; official 3, "same" padding).
        temporal_stride: raw frames per latent step (used by :meth:`predict_visibility`).
        threshold: default probability threshold.
        design: ``"official"`` (future latents only) or ``"history_residual"`` (hold-last prior + learnt correction;
            needs ``history_latents`` and ``history_visibility`` in :meth:`forward`).
        grid_size: ``(H_g, W_g)`` token grid (``"history_residual"`` with ``spatial_kernel > 0``).
        spatial_kernel: odd ``Conv2d`` kernel over the token grid in each block (0: tokens independent).
        prior_logit: initial magnitude of the hold-last prior logit (learnt; 3.0 is p = 0.95).
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
        design: str = "official",
        grid_size: Optional[Sequence[int]] = None,
        spatial_kernel: int = 0,
        prior_logit: float = 3.0,
    ):
        super().__init__()
        if design not in DESIGNS:
            raise ValueError(f"`design` must be one of {DESIGNS}, got {design!r}")
        if kernel_size % 2 != 1:
            raise ValueError(f"`kernel_size` must be odd (same-length temporal convs), got {kernel_size}")
        check_probability(threshold, "threshold")
        if depth < 0:
            raise ValueError(f"`depth` must be >= 0, got {depth}")
        if design == "official":
            self.in_proj = nn.Linear(latent_channels, hidden_size)
            layers = []
            for _ in range(depth):
                layers += [nn.Conv1d(hidden_size, hidden_size, kernel_size, padding=kernel_size // 2), nn.SiLU()]
            self.temporal_net = nn.Sequential(*layers)
            self.out = nn.Conv1d(hidden_size, 1, 1)
            return
        if spatial_kernel < 0 or (spatial_kernel and spatial_kernel % 2 != 1):
            raise ValueError(f"`spatial_kernel` must be 0 or odd, got {spatial_kernel}")
        if spatial_kernel and (grid_size is None or len(grid_size) != 2 or min(grid_size) < 1):
            raise ValueError(f"`grid_size` must be (H_g, W_g) when `spatial_kernel` > 0, got {grid_size!r}")
        # per token and future step: z_f, the last history latent, their difference, 3 history visibility
        # features, the step's relative time
        self.feature_proj = nn.Linear(3 * latent_channels + 4, hidden_size)
        self.temporal_convs = nn.ModuleList(
            nn.Conv1d(hidden_size, hidden_size, kernel_size, padding=kernel_size // 2) for _ in range(depth))
        self.spatial_convs = nn.ModuleList(
            nn.Conv2d(hidden_size, hidden_size, spatial_kernel, padding=spatial_kernel // 2)
            for _ in range(depth if spatial_kernel else 0))
        self.correction_out = nn.Conv1d(hidden_size, 1, 1)
        nn.init.zeros_(self.correction_out.weight)  # an untrained head is exactly hold-last
        nn.init.zeros_(self.correction_out.bias)
        self.prior_scale = nn.Parameter(torch.tensor(float(prior_logit)))

    @property
    def uses_history(self) -> bool:
        """Whether :meth:`forward` needs ``history_latents`` and ``history_visibility``."""
        return self.config.design != "official"

    def forward(
        self,
        latents: torch.Tensor,
        history_latents: Optional[torch.Tensor] = None,
        history_visibility: Optional[torch.Tensor] = None,
        return_dict: bool = True,
    ):
        """Per-token visibility logits ``[B, K, N]`` float32.

        Args:
            latents: future latents ``[B, K, N, C]`` (generator-normalised).
            history_latents: history latents ``[B, K_h, N, C]`` (``"history_residual"`` only).
            history_visibility: per-frame history visibility ``[B, T_h, N]`` bool, out-of-frame points invisible
                (``"history_residual"`` only).
        """
        c = self.config.latent_channels
        if latents.ndim != 4 or latents.shape[-1] != c:
            raise ValueError(f"`latents` must have shape [B, K, N, C={c}], got {list(latents.shape)}")
        b, k, n, _ = latents.shape
        if not self.uses_history:
            if history_latents is not None or history_visibility is not None:
                raise ValueError("the 'official' visibility head sees only the future latents; got history inputs")
            x = latents.to(self.dtype).permute(0, 2, 1, 3).reshape(b * n, k, c)  # one sequence per token
            h = self.in_proj(x).transpose(1, 2)  # [B*N, hidden, K]
            logits = self.out(self.temporal_net(h))[:, 0]  # [B*N, K]
            logits = logits.reshape(b, n, k).transpose(1, 2).float()
        else:
            logits = self._history_residual(latents, history_latents, history_visibility)
        if not return_dict:
            return (logits,)
        return VisibilityPredictorOutput(logits=logits)

    def _history_residual(self, latents, history_latents, history_visibility) -> torch.Tensor:
        b, k, n, c = latents.shape
        if history_latents is None or history_visibility is None:
            raise ValueError("the 'history_residual' visibility head needs `history_latents` and `history_visibility`")
        if history_latents.ndim != 4 or (history_latents.shape[0], history_latents.shape[2], history_latents.shape[3]) != (b, n, c):
            raise ValueError(f"`history_latents` must have shape [B={b}, K_h, N={n}, C={c}], got {list(history_latents.shape)}")
        if history_visibility.ndim != 3 or (history_visibility.shape[0], history_visibility.shape[2]) != (b, n):
            raise ValueError(f"`history_visibility` must have shape [B={b}, T_h, N={n}], got {list(history_visibility.shape)}")
        feats = history_visibility_features(history_visibility.to(latents.device).bool(), self.config.temporal_stride)
        z_f = latents.float()
        z_last = history_latents[:, -1:].float().expand_as(z_f)
        tau = torch.arange(1, k + 1, dtype=torch.float32, device=z_f.device).div(k).view(1, k, 1, 1).expand(b, k, n, 1)
        x = torch.cat([z_f, z_last, z_f - z_last, feats[:, None].expand(b, k, n, 3), tau], dim=-1)
        h = F.silu(self.feature_proj(x.to(self.dtype)))  # [B, K, N, hidden]
        hid = h.shape[-1]
        for i, tconv in enumerate(self.temporal_convs):
            t_in = h.permute(0, 2, 3, 1).reshape(b * n, hid, k)
            h = h + F.silu(tconv(t_in)).reshape(b, n, hid, k).permute(0, 3, 1, 2)
            if self.spatial_convs:
                gh, gw = self.config.grid_size
                if gh * gw != n:
                    raise ValueError(f"`grid_size` {gh}x{gw} does not match N={n} tokens")
                s_in = h.reshape(b * k, gh, gw, hid).permute(0, 3, 1, 2)
                h = h + F.silu(self.spatial_convs[i](s_in)).permute(0, 2, 3, 1).reshape(b, k, n, hid)
        corr = self.correction_out(h.permute(0, 2, 3, 1).reshape(b * n, hid, k))[:, 0]  # [B*N, K]
        corr = corr.reshape(b, n, k).transpose(1, 2).float()
        prior = self.prior_scale.float() * (2.0 * feats[..., 0] - 1.0)  # [B, N]: +-prior for visible/invisible
        return prior[:, None, :] + corr

    @torch.no_grad()
    def predict_visibility(
        self,
        latents: torch.Tensor,
        tracks_px: Optional[torch.Tensor],
        height: int,
        width: int,
        num_frames: int,
        threshold: Optional[float] = None,
        history_latents: Optional[torch.Tensor] = None,
        history_visibility: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Per-frame visibility ``[B, T, N]`` bool for generated latents; see :func:`visibility_from_logits`."""
        logits = self(latents, history_latents, history_visibility).logits
        return visibility_from_logits(
            logits,
            tracks_px,
            height,
            width,
            num_frames,
            threshold=self.config.threshold if threshold is None else threshold,
            temporal_stride=self.config.temporal_stride,
        )
