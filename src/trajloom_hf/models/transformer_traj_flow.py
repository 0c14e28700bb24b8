"""TrajLoom-Flow velocity network (paper §3.3, App. A.2, E.1; reference §3.3–3.8).

A Latte-style DiT over future latent tokens ``[B, K, N, C]`` (K latent steps, N = H_g * W_g grid tokens) with
alternating temporal (per token, over K) and spatial (per step, over N) blocks, WAN-like AdaLN-Zero modulation
(9 chunks), qk-norm, and cross-attention to the history context:

* history tokens ``h = hist_track_proj(z_hist) + α_vis hist_vis_proj(vis)`` (+ video tokens, concatenated in time),
  with the absolute-time embedding of the history frames and a segment embedding;
* temporal blocks attend, per grid token, to that token's full history (``2K`` tokens with video);
* spatial blocks attend to the last history step of every token ("pooled_last"), shared by all future steps;
* token-aligned history fusion into the queries (eqs. 20–21): ``α g_k (h_{-1} + ω_k (h_{-1} - h_{-2}))``;
* conditioning vector ``c = MLP(τ(t)) + text + β_vid video summary + β_trk track summary`` (reference §3.6).

The history context does not depend on the flow state or time, so :meth:`TrajFlowTransformer.prepare_context`
computes it (and every block's cross-attention K/V) once per history; ODE solvers reuse it at every step, and
S samples of one history (a batch of ``B * S``, sample-major) attend to it as a broadcast view, not S copies.
State-dict keys equal the official ``trajloom_generator.pt`` keys (reference Appendix A).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput

from ..precision import KeepFP32ModulesMixin, autocast_off
from .attention import Attention, Mlp, RMSNorm
from .auto_map import AutoMapConfigMixin
from .embeddings import timestep_embedding

VIDEO_CTX_MODES = ("concat", "sum")
SPATIAL_CTX_MODES = ("pooled_last", "none")


@dataclass
class TrajFlowTransformerOutput(BaseOutput):
    """``sample``: predicted velocity ``dz/dt`` ``[B, K, N, C]`` in the normalised latent space, fp32 (``out_proj``
    stays fp32 in a bf16 model)."""

    sample: torch.Tensor


def _map_tensors(obj, fn):
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(o, fn) for o in obj)
    if isinstance(obj, dict):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    return obj


@dataclass
class TrajFlowContext:
    """History-dependent part of a :class:`TrajFlowTransformer` evaluation, reusable across ODE steps.

    Attributes:
        cond: ``[B, D]`` conditioning vector without the time term (text + video + track summaries).
        fusion: ``[B, K, N, D]`` token-aligned history fusion term added to the queries, or None ("w/o fusion").
        temporal_context: ``[B*N, L_t, D]`` per-token history tokens for the temporal blocks' cross-attention.
        spatial_context: ``[B, L_s, D]`` last-step history tokens for the spatial blocks, or None.
        kv: per block, the cross-attention key/value projections of its context (``Attention.project_context``);
            None when not cached (then every evaluation projects the context again).
        batch_size: B.
    """

    cond: torch.Tensor
    fusion: Optional[torch.Tensor]
    temporal_context: torch.Tensor
    spatial_context: Optional[torch.Tensor]
    kv: Optional[List[Any]]
    batch_size: int

    @property
    def is_cached(self) -> bool:
        return self.kv is not None

    def repeat_interleave(self, repeats: int) -> "TrajFlowContext":
        """The context copied for ``repeats`` samples per history (batch ``B * repeats``, sample-major).

        Not needed for several samples: :meth:`TrajFlowTransformer.forward` broadcasts a context of batch B over a
        ``sample`` of batch ``B * S`` without the copies (the same numbers; this form costs S times the memory).
        """
        if repeats < 1:
            raise ValueError(f"`repeats` must be a positive integer, got {repeats}")
        b = self.batch_size

        def rep(t: torch.Tensor) -> torch.Tensor:
            return t.unflatten(0, (b, -1)).repeat_interleave(repeats, dim=0).flatten(0, 1)

        out = {f.name: _map_tensors(getattr(self, f.name), rep) for f in fields(self) if f.name != "batch_size"}
        return TrajFlowContext(batch_size=b * repeats, **out)

    def detach(self) -> "TrajFlowContext":
        return replace(self, **{f.name: _map_tensors(getattr(self, f.name), torch.Tensor.detach) for f in fields(self) if f.name != "batch_size"})


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x * (1 + scale) + shift`` in one fused pass over ``x``."""
    return torch.addcmul(shift, x, 1 + scale)


class TrajFlowBlock(nn.Module):
    """DiT block with AdaLN-Zero (9 chunks): self-attention, cross-attention to the history, MLP (reference §3.7).

    Norms are RMSNorm without affine; attention uses qk-norm; the three gate chunks of the ``adaLN`` bias start
    at 1 (official; the official comment claiming 0 for the cross-attention gate is wrong) and its weight at 0.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qk_norm: bool = True, eps: float = 1e-6):
        super().__init__()
        self.norm1 = RMSNorm(dim, eps=eps, elementwise_affine=False)
        self.attn = Attention(dim, num_heads, qk_norm=qk_norm, qk_norm_affine=False, eps=eps)
        self.norm2 = RMSNorm(dim, eps=eps, elementwise_affine=False)
        self.xattn = Attention(dim, num_heads, qk_norm=qk_norm, qk_norm_affine=False, cross_attention_dim=dim, eps=eps)
        self.norm3 = RMSNorm(dim, eps=eps, elementwise_affine=False)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.adaLN = nn.Sequential(nn.SiLU(), nn.Linear(dim, 9 * dim))
        nn.init.zeros_(self.adaLN[1].weight)
        with torch.no_grad():
            bias = torch.zeros(9, dim)
            bias[[2, 5, 8]] = 1.0
            self.adaLN[1].bias.copy_(bias.reshape(-1))

    def forward(
        self,
        x: torch.Tensor,
        cond: torch.Tensor,
        context: Optional[torch.Tensor] = None,
        context_kv: Any = None,
    ) -> torch.Tensor:
        """``x`` ``[G, ..., L, D]`` contiguous: self-attention runs over L for every index of the leading dims;
        ``cond`` ``[..., D]`` with ``x.ndim`` dims, broadcastable to ``x`` (size 1 where the condition is shared).

        Cross-attention groups the queries by the context: ``context`` ``[G, Lc, D]`` (or its ``context_kv``,
        each ``[G, heads, Lc, head_dim]``) is attended by the ``x.reshape(G, -1, D)[g]`` queries of group g.
        Cross-attention treats queries independently, so one group holding several sequences (future steps,
        samples) equals repeating the context for each of them without the copy (views only, ``x`` contiguous).
        """
        shape, length, d = x.shape, x.shape[-2], x.shape[-1]
        mods = self.adaLN(cond).chunk(9, dim=-1)  # each [..., D]: small, broadcast over x
        # gated residuals x + g * f(x) as one fused addcmul each
        h = _modulate(self.norm1(x), mods[0], mods[1])
        x = torch.addcmul(x, mods[2], self.attn(h.view(-1, length, d)).view(shape))
        if context is not None or context_kv is not None:
            groups = (context if context_kv is None else context_kv[0]).shape[0]
            h = _modulate(self.norm2(x), mods[3], mods[4])
            x = torch.addcmul(x, mods[5], self.xattn(h.view(groups, -1, d), context, context_kv=context_kv).view(shape))
        h = _modulate(self.norm3(x), mods[6], mods[7])
        return torch.addcmul(x, mods[8], self.mlp(h))


def _logit(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p) - torch.log1p(-p)


class TrajFlowTransformer(AutoMapConfigMixin, KeepFP32ModulesMixin, ModelMixin, ConfigMixin):
    """TrajLoom-Flow generator ``v_θ(z_t, t, c)`` (defaults: the paper/official configuration, 244.46 M parameters).

    Args:
        latent_channels: C of the trajectory latents (16).
        num_latent_frames: K latent steps of history and future (21).
        grid_size: ``(H_g, W_g)`` token grid (15, 26); N = H_g * W_g.
        hidden_size / num_heads / num_layers / mlp_ratio: DiT size (768 / 12 / 16 / 4); ``num_layers`` even
            (block ``2p`` is spatial, ``2p + 1`` temporal).
        text_embed_dim: width of the pooled text embedding (4096 for UMT5-XXL); ``use_text_cond`` adds ``text_proj``.
        video_latent_channels: channels of the token-aligned video latents (16, Wan2.1 VAE); ``use_video_cond``.
        use_hist_vis_cond: embed the history latent visibility into the history tokens.
        video_ctx_mode: ``"concat"`` history and video tokens in time (2K context tokens) or ``"sum"`` them.
        spatial_ctx_mode: ``"pooled_last"`` (official) or ``"none"`` (spatial blocks without cross-attention);
            ``spatial_ctx_last_k`` history steps, block-mean pooled by ``spatial_ctx_pool``, with video tokens if
            ``spatial_ctx_include_video``.
        temporal_first: run the temporal block before the spatial one in each pair (official).
        use_history_fusion / fusion_velocity_term / fusion_time_gate / fusion_scale_init: the token-aligned fusion
            (eqs. 20–21; ``use_history_fusion=False`` is the "w/o fusion" ablation of Table 5).
        hist_vis_scale_init: initial ``α_vis``.
        history_num_frames / temporal_stride / use_overlap: raw-frame positions of the absolute-time embeddings
            (history latent k at frame ``stride * k``, future latent k at ``history_num_frames + stride * k``, or
            ``history_num_frames - 1 + stride * k`` with overlap).
        qk_norm / eps: attention qk-norm and RMSNorm epsilon.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["TrajFlowBlock"]
    # the ODE state enters and the velocity leaves in fp32 whatever the trunk dtype (trajloom_hf.precision)
    _keep_in_fp32_modules = ["in_proj", "out_proj"]

    @register_to_config
    def __init__(
        self,
        latent_channels: int = 16,
        num_latent_frames: int = 21,
        grid_size: Sequence[int] = (15, 26),
        hidden_size: int = 768,
        num_heads: int = 12,
        num_layers: int = 16,
        mlp_ratio: float = 4.0,
        text_embed_dim: int = 4096,
        video_latent_channels: int = 16,
        use_text_cond: bool = True,
        use_video_cond: bool = True,
        use_hist_vis_cond: bool = True,
        video_ctx_mode: str = "concat",
        spatial_ctx_mode: str = "pooled_last",
        spatial_ctx_pool: int = 1,
        spatial_ctx_last_k: int = 1,
        spatial_ctx_include_video: bool = True,
        temporal_first: bool = True,
        use_history_fusion: bool = True,
        fusion_velocity_term: bool = True,
        fusion_time_gate: bool = True,
        fusion_scale_init: float = 0.1,
        hist_vis_scale_init: float = 1.0,
        history_num_frames: int = 81,
        temporal_stride: int = 4,
        use_overlap: bool = False,
        qk_norm: bool = True,
        eps: float = 1e-6,
    ):
        super().__init__()
        gh, gw = (int(v) for v in grid_size)
        k, d = num_latent_frames, hidden_size
        if num_layers < 2 or num_layers % 2:
            raise ValueError(f"`num_layers` must be a positive even number (spatial/temporal pairs), got {num_layers}")
        if d % num_heads or d % 2:
            raise ValueError(f"`hidden_size`={d} must be even and divisible by `num_heads`={num_heads}")
        if video_ctx_mode not in VIDEO_CTX_MODES:
            raise ValueError(f"`video_ctx_mode` must be one of {VIDEO_CTX_MODES}, got {video_ctx_mode!r}")
        if spatial_ctx_mode not in SPATIAL_CTX_MODES:
            raise ValueError(f"`spatial_ctx_mode` must be one of {SPATIAL_CTX_MODES}, got {spatial_ctx_mode!r}")
        if not 1 <= spatial_ctx_last_k <= k or spatial_ctx_pool < 1:
            raise ValueError(f"need 1 <= spatial_ctx_last_k <= K={k} and spatial_ctx_pool >= 1, got {spatial_ctx_last_k}, {spatial_ctx_pool}")
        if use_history_fusion and fusion_velocity_term and k < 2:
            raise ValueError("the fusion velocity term h_{-1} - h_{-2} needs num_latent_frames >= 2")
        self.num_tokens = gh * gw
        self.gradient_checkpointing = False

        # conditioning vector c (reference §3.6)
        self.time_mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.SiLU(), nn.Linear(4 * d, d))
        if use_text_cond:
            self.text_proj = nn.Linear(text_embed_dim, d)
        self.track_global_proj = nn.Linear(2 * latent_channels, d)
        self.beta_track_cond = nn.Parameter(torch.tensor(1.0))
        if use_video_cond:
            self.video_global_proj = nn.Linear(video_latent_channels, d)
            self.beta_video_cond = nn.Parameter(torch.tensor(1.0))

        # history context tokens (reference §3.3)
        self.hist_track_proj = nn.Linear(latent_channels, d)
        if use_hist_vis_cond:
            self.hist_vis_proj = nn.Linear(1, d)
            nn.init.zeros_(self.hist_vis_proj.weight)
            nn.init.zeros_(self.hist_vis_proj.bias)
            self.alpha_hist_vis = nn.Parameter(torch.tensor(float(hist_vis_scale_init)))
        if use_video_cond:
            self.hist_video_proj = nn.Linear(video_latent_channels, d)
            self.alpha_video_ctx = nn.Parameter(torch.tensor(1.0))

        # token-aligned history fusion (eqs. 20–21): g_k = 0.95 -> 0.35 (official 0.95 - 0.03 k at K = 21)
        if use_history_fusion:
            self.track_fusion_scale = nn.Parameter(torch.tensor(float(fusion_scale_init)))
            if fusion_time_gate:
                self.track_fusion_gate_logit = nn.Parameter(_logit(torch.linspace(0.95, 0.35, k)) if k > 1 else _logit(torch.tensor([0.95])))

        # query stream
        self.in_proj = nn.Linear(latent_channels, d)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_tokens, d))
        self.seg_embed = nn.Parameter(torch.zeros(2, d))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.seg_embed, std=0.02)
        future_start = history_num_frames - 1 if use_overlap else history_num_frames
        steps = torch.arange(k, dtype=torch.float32) * temporal_stride
        self.register_buffer("abs_time_embed_hist", timestep_embedding(steps, d)[None], persistent=False)
        self.register_buffer("abs_time_embed_fut", timestep_embedding(steps + future_start, d)[None], persistent=False)

        self.blocks = nn.ModuleList([TrajFlowBlock(d, num_heads, mlp_ratio, qk_norm, eps) for _ in range(num_layers)])
        self.norm_out = RMSNorm(d, eps=eps, elementwise_affine=False)
        self.out_proj = nn.Linear(d, latent_channels)

    # ------------------------------------------------------------------------------------------------------------
    # input checks

    @property
    def latent_shape(self) -> Tuple[int, int, int]:
        """``(K, N, C)`` of the latents this model accepts."""
        return self.config.num_latent_frames, self.num_tokens, self.config.latent_channels

    def _check_latents(self, x: torch.Tensor, name: str, channels: Optional[int] = None) -> None:
        k, n, c = self.latent_shape
        c = c if channels is None else channels
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"`{name}` must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or tuple(x.shape[1:]) != (k, n, c):
            raise ValueError(f"`{name}` must have shape [B, K={k}, N={n}, C={c}], got {list(x.shape)}")

    def _check_conditioning(self, b, history_visibility, video_latents, text_embeds) -> None:
        k, n, _ = self.latent_shape
        cfg = self.config
        if history_visibility is not None:
            if not cfg.use_hist_vis_cond:
                raise ValueError("`history_visibility` was given but the model has use_hist_vis_cond=False")
            v = history_visibility[..., 0] if history_visibility.ndim == 4 and history_visibility.shape[-1] == 1 else history_visibility
            if tuple(v.shape) != (b, k, n):
                raise ValueError(f"`history_visibility` must have shape [B={b}, K={k}, N={n}] (or [..., 1]), got {list(history_visibility.shape)}")
            if v.dtype != torch.bool and v.numel() and bool(((v != 0) & (v != 1)).any()):
                raise ValueError("`history_visibility` must be bool or 0/1 (latent-token visibility)")
        if video_latents is not None:
            if not cfg.use_video_cond:
                raise ValueError("`video_latents` were given but the model has use_video_cond=False")
            self._check_latents(video_latents, "video_latents", cfg.video_latent_channels)
            if video_latents.shape[0] != b:
                raise ValueError(f"`video_latents` batch {video_latents.shape[0]} != history batch {b}")
        if text_embeds is not None:
            if not cfg.use_text_cond:
                raise ValueError("`text_embeds` were given but the model has use_text_cond=False")
            if text_embeds.ndim != 2 or tuple(text_embeds.shape) != (b, cfg.text_embed_dim):
                raise ValueError(f"`text_embeds` must have shape [B={b}, text_embed_dim={cfg.text_embed_dim}], got {list(text_embeds.shape)}")

    @staticmethod
    def video_latents_to_tokens(video_latents: torch.Tensor) -> torch.Tensor:
        """Wan VAE latents ``[B, C, K, H_g, W_g]`` -> token-aligned ``[B, K, H_g * W_g, C]`` (row-major tokens)."""
        if video_latents.ndim != 5:
            raise ValueError(f"`video_latents` must have shape [B, C, K, H_g, W_g], got {list(video_latents.shape)}")
        return video_latents.permute(0, 2, 3, 4, 1).flatten(2, 3)

    # ------------------------------------------------------------------------------------------------------------
    # context

    def _pool_grid(self, x: torch.Tensor) -> torch.Tensor:
        """Masked block-mean over ``spatial_ctx_pool`` x ``spatial_ctx_pool`` cells: ``[B, N, D]`` -> ``[B, N', D]``."""
        p = self.config.spatial_ctx_pool
        if p == 1:
            return x
        gh, gw = (int(v) for v in self.config.grid_size)
        grid = x.unflatten(1, (gh, gw)).permute(0, 3, 1, 2)  # [B, D, H_g, W_g]
        ph, pw = (-gh) % p, (-gw) % p
        ones = torch.ones(1, 1, gh, gw, dtype=grid.dtype, device=grid.device)
        total = F.avg_pool2d(F.pad(grid, (0, pw, 0, ph)), p, divisor_override=1)
        count = F.avg_pool2d(F.pad(ones, (0, pw, 0, ph)), p, divisor_override=1)
        return (total / count).flatten(2).transpose(1, 2)

    def prepare_context(
        self,
        history_latents: torch.Tensor,
        history_visibility: Optional[torch.Tensor] = None,
        video_latents: Optional[torch.Tensor] = None,
        text_embeds: Optional[torch.Tensor] = None,
        *,
        project_kv: bool = True,
    ) -> TrajFlowContext:
        """Everything that depends only on the conditioning, computed once per history (shared by its samples).

        Args:
            history_latents: normalised history trajectory latents ``[B, K, N, C]``.
            history_visibility: history latent-token visibility ``[B, K, N]`` (or ``[B, K, N, 1]``), bool / 0-1;
                None means all 0 (only the projection bias is added — what the official inference script feeds).
            video_latents: token-aligned history video latents ``[B, K, N, C_v]`` (e.g. ``AutoencoderKLWan``
                ``latent_dist.mean``, normalised, via :meth:`video_latents_to_tokens`); None means zeros.
            text_embeds: pooled text embedding ``[B, text_embed_dim]`` or None (no text term).
            project_kv: also compute every block's cross-attention K/V (the cache).
        """
        self._check_latents(history_latents, "history_latents")
        b = history_latents.shape[0]
        self._check_conditioning(b, history_visibility, video_latents, text_embeds)
        cfg = self.config
        dtype, device = self.dtype, history_latents.device
        k, n, _ = self.latent_shape
        z_hist = history_latents.to(dtype)

        # conditioning vector without time (reference §3.6)
        summary = torch.cat([z_hist.mean(dim=(1, 2)), z_hist[:, -1].mean(dim=1)], dim=-1)
        cond = self.beta_track_cond * self.track_global_proj(summary)
        if cfg.use_text_cond and text_embeds is not None:
            cond = cond + self.text_proj(text_embeds.to(dtype))
        if cfg.use_video_cond:
            video = torch.zeros(b, k, n, cfg.video_latent_channels, dtype=dtype, device=device) if video_latents is None else video_latents.to(dtype)
            cond = cond + self.beta_video_cond * self.video_global_proj(video.mean(dim=(1, 2)))

        # history tokens (reference §3.3)
        h = self.hist_track_proj(z_hist)  # [B, K, N, D]
        if cfg.use_hist_vis_cond:
            if history_visibility is None:
                vis = torch.zeros(b, k, n, 1, dtype=dtype, device=device)
            else:
                vis = history_visibility.reshape(b, k, n, 1).to(dtype)
            h = h + self.alpha_hist_vis * self.hist_vis_proj(vis)

        fusion = None
        if cfg.use_history_fusion:  # eqs. 20–21 on h (including the visibility embedding), omega_k = k / (K - 1)
            cue = h[:, -1:]
            if cfg.fusion_velocity_term:
                omega = torch.linspace(0.0, 1.0, k, dtype=dtype, device=device).view(1, k, 1, 1)
                cue = cue + omega * (h[:, -1:] - h[:, -2:-1])
            scale = self.track_fusion_scale
            if cfg.fusion_time_gate:
                scale = scale * torch.sigmoid(self.track_fusion_gate_logit).view(1, k, 1, 1)
            fusion = scale * cue.expand(b, k, n, -1)

        halves = [h]
        if cfg.use_video_cond:
            u = self.alpha_video_ctx * self.hist_video_proj(video)
            halves = [h, u] if cfg.video_ctx_mode == "concat" else [h + u]
        p_hist = self.abs_time_embed_hist.to(dtype).unsqueeze(2)  # [1, K, 1, D]
        halves = [x + p_hist + self.seg_embed[0] for x in halves]
        ctx = torch.cat(halves, dim=1)  # [B, 2K or K, N, D]
        temporal_context = ctx.permute(0, 2, 1, 3).reshape(b * n, ctx.shape[1], -1)

        spatial_context = None
        if cfg.spatial_ctx_mode == "pooled_last":
            last_k = cfg.spatial_ctx_last_k
            parts = halves if cfg.spatial_ctx_include_video else halves[:1]
            pos = self._pool_grid(self.pos_embed.to(dtype))
            grids = [self._pool_grid(x[:, j]) + pos for x in parts for j in range(k - last_k, k)]
            spatial_context = torch.cat(grids, dim=1)  # [B, last_k * (1 or 2) * N', D]

        kv = None
        if project_kv:
            # contiguous copies: a value view would keep the whole fused kv output (keys included) alive. The cache
            # holds 2 x [B*N, heads, L_t, head_dim] per temporal block (~0.8 GB per history at the paper config, fp32,
            # shared by all of its samples)
            kv = [
                _map_tensors(blk.xattn.project_context(temporal_context if i % 2 else spatial_context), torch.Tensor.contiguous)
                if (i % 2 or spatial_context is not None)
                else None
                for i, blk in enumerate(self.blocks)
            ]
        return TrajFlowContext(
            cond=cond, fusion=fusion, temporal_context=temporal_context, spatial_context=spatial_context, kv=kv, batch_size=b
        )

    # ------------------------------------------------------------------------------------------------------------
    def forward(
        self,
        sample: torch.Tensor,
        timestep,
        history_latents: Optional[torch.Tensor] = None,
        history_visibility: Optional[torch.Tensor] = None,
        video_latents: Optional[torch.Tensor] = None,
        text_embeds: Optional[torch.Tensor] = None,
        *,
        context: Optional[TrajFlowContext] = None,
        return_dict: bool = True,
    ):
        """Velocity ``v_θ(z_t, t, c)``.

        Args:
            sample: noisy future latents ``z_t`` ``[B, K, N, C]`` (normalised latent space).
            timestep: flow time ``t`` in [0, 1] (t = 0 source, t = 1 data), a scalar or ``[B]``; used as is in
                the sinusoidal embedding (official; samplers clamp it to ``[1e-5, 1 - 1e-5]``).
            history_latents, history_visibility, video_latents, text_embeds: see :meth:`prepare_context`; or
            context: a :class:`TrajFlowContext` from :meth:`prepare_context` (then give no conditioning tensors)
                for B histories; ``sample`` may hold S samples per history (batch ``B * S``, sample-major: sample
                ``j`` of history ``i`` at ``i * S + j``), which all attend to that history's context.
        Returns:
            :class:`TrajFlowTransformerOutput` with ``sample`` = velocity ``[B, K, N, C]``.
        """
        self._check_latents(sample, "sample")
        b = sample.shape[0]
        t = self._check_timestep(timestep, b, sample.device)
        if context is None:
            if history_latents is None:
                raise ValueError("give either `history_latents` (and optional conditioning) or a prepared `context`")
            self._check_latents(history_latents, "history_latents")
            if history_latents.shape != sample.shape:
                raise ValueError(f"`history_latents` shape {list(history_latents.shape)} must match `sample` shape {list(sample.shape)}")
            context = self.prepare_context(history_latents, history_visibility, video_latents, text_embeds, project_kv=False)
        else:
            given = [name for name, v in (("history_latents", history_latents), ("history_visibility", history_visibility), ("video_latents", video_latents), ("text_embeds", text_embeds)) if v is not None]
            if given:
                raise ValueError(f"give either a prepared `context` or conditioning tensors, not both (got {given})")
            if b % context.batch_size:
                raise ValueError(f"`sample` batch {b} must be a multiple of the `context` batch {context.batch_size} "
                                 "(S samples per history, sample-major as torch.repeat_interleave)")

        dtype = self.dtype
        k, n, _ = self.latent_shape
        hb = context.batch_size  # histories; each holds s = b // hb samples, broadcast over its context
        s = b // hb
        d = self.config.hidden_size
        time_term = self.time_mlp(timestep_embedding(t, d).to(dtype)).view(hb, s, d)
        cond = context.cond[:, None] + time_term  # [B_h, S, D]

        # Two contiguous layouts of the hidden state, so that every attention input is a view:
        #   spatial  [B_h, S, K, N, D]  (sequences over N; the history's spatial context shared by all S*K of them)
        #   temporal [B_h, N, S, K, D]  (sequences over K; token n's history shared by its S sequences)
        # one permuted copy per block change (2 per spatial/temporal pair) instead of strided copies inside blocks
        with autocast_off(sample.device.type):  # the ODE state enters in fp32, also under mixed precision
            x = self.in_proj(sample.to(self.in_proj.weight.dtype)).to(dtype)  # [B, K, N, D]
        x = x + self.abs_time_embed_fut.to(dtype).unsqueeze(2) + self.seg_embed[1] + self.pos_embed.unsqueeze(1)
        x = x.view(hb, s, k, n, d)
        if context.fusion is not None:
            x = x + context.fusion.unsqueeze(1)
        layout = "spatial"

        order = (1, 0) if self.config.temporal_first else (0, 1)
        for pair in range(len(self.blocks) // 2):
            for kind in order:
                i = 2 * pair + kind
                kv = context.kv[i] if context.kv is not None else None
                if kind == 1:  # temporal: per grid token over K, context = that token's history
                    if layout != "temporal":
                        x, layout = x.permute(0, 3, 1, 2, 4).contiguous(), "temporal"
                    ctx = context.temporal_context if kv is None else None
                    x = self._run_block(i, x, cond[:, None, :, None], ctx, kv)
                else:  # spatial: per step over N, context = last history step, shared by every future step
                    if layout != "spatial":
                        x, layout = x.permute(0, 2, 3, 1, 4).contiguous(), "spatial"
                    ctx = context.spatial_context if kv is None else None
                    x = self._run_block(i, x, cond[:, :, None, None], ctx, kv)
        with autocast_off(x.device.type):  # and the velocity leaves in fp32
            v = self.out_proj(self.norm_out(x.to(self.out_proj.weight.dtype)))
        if layout == "temporal":  # [B_h, N, S, K, C] -> [B_h, S, K, N, C] (C channels: a small copy)
            v = v.permute(0, 2, 3, 1, 4)
        v = v.reshape(b, k, n, -1)
        if not return_dict:
            return (v,)
        return TrajFlowTransformerOutput(sample=v)

    def _run_block(self, i, x, cond, ctx, kv):
        block = self.blocks[i]
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            return self._gradient_checkpointing_func(block, x, cond, ctx, kv)
        return block(x, cond, ctx, kv)

    def _check_timestep(self, timestep, batch_size: int, device) -> torch.Tensor:
        t = torch.as_tensor(timestep, dtype=torch.float32, device=device)
        if t.ndim == 0:
            t = t.expand(batch_size)
        if t.ndim != 1 or t.shape[0] != batch_size:
            raise ValueError(f"`timestep` must be a scalar or have shape [B={batch_size}], got {list(t.shape)}")
        if not torch.isfinite(t).all() or bool(((t < 0) | (t > 1)).any()):
            raise ValueError(f"`timestep` (flow time) must be in [0, 1], got values in [{float(t.min()):.4g}, {float(t.max()):.4g}]")
        return t
