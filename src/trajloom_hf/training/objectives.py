"""The training objective of TrajLoom-Flow as one module (so that DDP sees exactly one forward per backward).

The losses themselves are :mod:`trajloom_hf.flow_losses` (eq. 9 flow matching, eqs. 10-14 on-policy K-step); the
flow-time, source and state samplers are the scheduler's (the same source distribution as at inference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch
import torch.nn as nn

from ..flow_losses import flow_matching_loss, on_policy_losses, token_weights
from ..frame_conditioning import frame_tokens

__all__ = ["FlowObjective", "FlowObjectiveConfig", "visibility_logits"]


def visibility_logits(model, lat: Dict[str, torch.Tensor], batch: Dict, height: int, width: int, *,
                      latents: Optional[torch.Tensor] = None, uses_history: Optional[bool] = None) -> torch.Tensor:
    """Visibility-head logits ``[B, K, N]`` for a training / validation batch, with the inputs the pipeline gives it.

    ``latents`` (default: ``lat["future_latents"]``) ``[B, K, N, C]``. A ``"history_residual"`` head also gets the
    window's history latents and its per-frame history visibility AND the in-frame test (what
    ``TrajLoomPipeline`` passes at inference). ``model`` may be the accelerate-wrapped module; then pass
    ``uses_history`` (the unwrapped model's ``uses_history``)."""
    from ..encoding import in_frame

    latents = lat["future_latents"] if latents is None else latents
    if uses_history is None:
        uses_history = model.uses_history
    if not uses_history:
        return model(latents).logits
    tracks = batch["history_tracks"].to(latents.device).float()
    hist_vis = batch["history_visibility"].to(latents.device).bool() & in_frame(tracks, height, width)
    return model(latents, lat["history_latents"], hist_vis).logits


@dataclass
class FlowObjectiveConfig:
    """Weights of the flow objective (App. A.2-A.3 defaults). ``on_policy`` adds ``on_policy_weight * (L_k-step +
    on_policy_gamma * L_cons)`` (eq. 14) on a sub-batch of ``on_policy_batch_size`` with ``on_policy_steps`` steps."""

    invisible_weight: float = 0.01
    on_policy: bool = False
    on_policy_steps: int = 8
    on_policy_batch_size: int = 8
    on_policy_weight: float = 0.1
    on_policy_gamma: float = 0.1
    on_policy_w1: float = 1.0
    on_policy_w0: float = 0.5
    on_policy_spacing: str = "logit"  # rollout grid, flow_losses / flow_time_grid ("logit_uniform": literal reading)
    on_policy_source_term_start: int = 1  # 0: literal eq. 12 (the w0 term at i = 0, where its target is 0)

    def __post_init__(self):
        if self.on_policy and self.on_policy_steps < 2 and self.on_policy_source_term_start == 1:
            # flow_losses.on_policy_losses: the w0 term starts at i = 1
            raise ValueError(f"--on_policy_steps must be >= 2 (the source term of eq. 12 starts at step 1), got {self.on_policy_steps}")
        if self.on_policy_spacing not in ("logit", "logit_uniform", "uniform"):
            raise ValueError(f"--on_policy_spacing must be 'logit', 'logit_uniform' or 'uniform', got {self.on_policy_spacing!r}")
        if self.on_policy_source_term_start not in (0, 1):
            raise ValueError(f"--on_policy_source_term_start must be 0 or 1, got {self.on_policy_source_term_start!r}")
        if not 0.0 <= self.invisible_weight <= 1.0:
            raise ValueError(f"--invisible_weight must be in [0, 1], got {self.invisible_weight}")

    @classmethod
    def from_args(cls, args) -> "FlowObjectiveConfig":
        return cls(**{f: getattr(args, f) for f in cls.__dataclass_fields__ if hasattr(args, f)})


class FlowObjective(nn.Module):
    """Flow-matching loss (eq. 9) plus, with ``on_policy``, ``lambda (L_k-step + gamma L_cons)`` (eq. 14).

    ``config``: a :class:`FlowObjectiveConfig` (default: its defaults) or anything with its fields (a script's parsed
    arguments). ``frame_encoder``: a :class:`~trajloom_hf.models.FrameEncoder` trained jointly (its forward is part
    of this module's, so DDP synchronises its gradients); then ``forward`` takes the conditioning ``frames``."""

    def __init__(self, transformer, scheduler, config=None, frame_encoder=None):
        super().__init__()
        self.transformer = transformer
        self.scheduler = scheduler
        self.frame_encoder = frame_encoder
        if config is None:
            config = FlowObjectiveConfig()
        self.config = config if isinstance(config, FlowObjectiveConfig) else FlowObjectiveConfig.from_args(config)

    def forward(self, hist, fut, fut_vis, hist_vis=None, video=None, text=None, seed: int = 0,
                frames: Optional[torch.Tensor] = None) -> Dict[str, torch.Tensor]:
        """``hist``/``fut`` normalised latents ``[B, K, N, C]``, ``fut_vis`` token visibility ``[B, K, N]``; the
        per-step draws (``t``, ``z_0``, tube noise) come from a CPU generator seeded with ``seed`` (identical on every
        device, resumable). ``frames``: the conditioning frames ``[B, T', h, w, 3]`` uint8 of the frame encoder (their
        features become ``video``). Returns ``loss`` and the detached terms ``fm`` (and ``k_step``, ``consistency``)."""
        a = self.config
        b = fut.shape[0]
        if self.frame_encoder is not None:
            if frames is None:
                raise ValueError("the objective trains a frame encoder: pass the conditioning `frames`")
            video = frame_tokens(self.frame_encoder, frames, hist.shape[1])
        gen = torch.Generator().manual_seed(seed)
        t = self.scheduler.sample_training_timesteps(b, generator=gen).to(fut.device)
        z0 = self.scheduler.sample_source(hist, generator=gen)
        zt = self.scheduler.interpolate(z0, fut, t, generator=gen)
        weights = token_weights(fut_vis, invisible_weight=a.invisible_weight)
        v = self.transformer(zt, t, hist, hist_vis, video, text).sample
        fm = flow_matching_loss(v, self.scheduler.velocity_target(z0, fut), weights)
        out = {"loss": fm, "fm": fm.detach()}
        if a.on_policy:
            s = min(a.on_policy_batch_size, b)
            sub = _head(s)
            context = self.transformer.prepare_context(hist[:s], sub(hist_vis), sub(video), sub(text))
            op = on_policy_losses(
                lambda z, tt: self.transformer(z, tt, context=context).sample,
                z0[:s], fut[:s], weights[:s],
                num_steps=a.on_policy_steps, w1=a.on_policy_w1, w0=a.on_policy_w0, gamma=a.on_policy_gamma,
                t_eps=self.scheduler.config.t_eps, spacing=a.on_policy_spacing,
                source_term_start=a.on_policy_source_term_start,
            )
            out["loss"] = fm + a.on_policy_weight * op.total
            out["k_step"], out["consistency"] = op.k_step.detach(), op.consistency.detach()
        return out


def _head(s: int):
    def sub(x: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        return None if x is None else x[:s]

    return sub
