"""TrajLoom-VAE as a diffusers model (paper §3.2, App. A.1; reference §2).

Latte-style encoder/decoder (alternating spatial and temporal transformer blocks) over **one token per track**,
with a stride-``s`` temporal convolution that compresses ``T = 81`` frames to ``K = 21`` latent steps.

Grid form of the official dense model (reference §1.6). The official VAE rasterises the ``N`` tracks to a dense
``[T, H, W, 2]`` field, subtracts the pixel-centre anchor of every pixel and patch-embeds with a
``Conv2d(2, D, k=s, stride=s)``. Inside patch ``n`` the field is the constant track value ``v_n``, and the anchor
of pixel ``(s i + r, s j + q)`` is the query-pixel anchor ``g_n`` plus a ramp ``(2 (q - q0) / W, 2 (r - r0) / H)``
that is the **same for every patch** (``(r0, q0)`` is the query pixel inside the patch). Hence

    Conv(D - G)_n = S (v_n - g_n) + (b - R),  S = sum_{r,q} W[:, :, r, q],  R = sum_{r,q} W[:, :, r, q] ramp(r, q)

which is a plain ``Linear(2, D)`` on grid offsets. The official inference reads only the query pixel of each
decoded patch, so the decoder head is ``Linear(D, 2)`` (the two rows of the official ``final_layer`` for that
pixel) plus the anchor. Nothing of size ``T x H x W`` is ever built: memory grows with ``T N``.

Public interface: normalised coordinates (``2 x / W - 1``, as diffusers VAEs take images in [-1, 1]):
``encode(tracks [B, T, N, 2]) -> latent_dist`` over ``[B, K, N, C]``; ``decode(z) -> sample [B, T, N, 2]``.
Use :func:`trajloom_hf.encoding.normalize_tracks` / ``denormalize_tracks`` for pixels. Coordinates stay fp32 at the
model boundary whatever the weights' dtype.
"""

from __future__ import annotations

import math
import numbers

from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

from ..encoding import grid_anchors, grid_shape, num_latent_frames
from ..precision import KeepFP32ModulesMixin, autocast_off
from .attention import Attention, Mlp, RMSNorm
from .auto_map import AutoMapConfigMixin
from .embeddings import FourierFeatures, sincos_1d, sincos_2d


class TrajLatentDistribution:
    """Diagonal Gaussian posterior ``N(mean, std^2)`` with ``std = softplus(0.5 * raw) + 1e-8`` (reference §2.2 step 8).

    ``mean``/``std`` ``[B, K, N, C]``. (diffusers' ``DiagonalGaussianDistribution`` uses ``exp(0.5 logvar)``; the
    TrajLoom checkpoint was trained with softplus, so we keep it.)
    """

    def __init__(self, mean: torch.Tensor, raw_scale: torch.Tensor):
        self.mean = mean
        self.std = F.softplus(0.5 * raw_scale) + 1e-8
        self.var = self.std**2

    def sample(self, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        eps = randn_tensor(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * eps

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """``KL(q || N(0, I))`` per sample ``[B]``: mean over (K, N, C) of ``-ln s + (s^2 + m^2)/2 - 1/2`` (fp32)."""
        m, s = self.mean.float(), self.std.float()
        return (-torch.log(s) + 0.5 * (s**2 + m**2) - 0.5).mean(dim=(1, 2, 3))


@dataclass
class AutoencoderTrajEncoderOutput(BaseOutput):
    """``latent_dist``: the posterior over latents ``[B, K, N, C]``."""

    latent_dist: TrajLatentDistribution


@dataclass
class AutoencoderTrajDecoderOutput(BaseOutput):
    """``sample``: decoded tracks ``[B, T, N, 2]``, normalised coordinates, fp32."""

    sample: torch.Tensor


@dataclass
class AutoencoderTrajOutput(BaseOutput):
    """``sample`` ``[B, T, N, 2]`` normalised reconstruction; ``latents`` ``[B, K, N, C]``; ``latent_dist`` posterior.

    The later fields default to None only so that ``BaseOutput`` can be rebuilt from a dict, as Accelerate does
    under ``mixed_precision`` (``convert_to_fp32`` calls ``type(output)(dict)``); ``forward`` always fills them.
    """

    sample: torch.Tensor
    latents: Optional[torch.Tensor] = None
    latent_dist: Optional[TrajLatentDistribution] = None


class LatteBlock(nn.Module):
    """Pre-norm transformer block with zero-initialised per-channel gates (reference §2.5).

    ``x + g_msa * MHSA(RMSNorm(x))`` then ``x + g_mlp * MLP(RMSNorm(x))``; used over the grid (spatial) or over time
    (temporal) depending on how the caller folds the batch. Every block starts as the identity.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = RMSNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm3 = RMSNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.gate_msa = nn.Parameter(torch.zeros(1, 1, dim))
        self.gate_mlp = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.addcmul(x, self.gate_msa, self.attn(self.norm1(x)))  # fused x + g * f(x)
        return torch.addcmul(x, self.gate_mlp, self.mlp(self.norm3(x)))


class PatchPositionLFF(FourierFeatures):
    """Learned-Fourier-feature embedding of patch centres: frozen random features then an MLP (reference §2.2 step 4)."""

    def __init__(self, dim: int = 64):
        super().__init__(in_dim=2, num_frequencies=dim // 2)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.mlp(super().forward(coords).to(self.mlp.fc1.weight.dtype))


class TemporalCompressor(nn.Module):
    """``T -> K`` per token: replicate-pad ``s - 1`` frames, ``Conv1d(k = 2s - 1, stride s)`` (reference §2.4).

    Latent ``k`` is centred on frame ``s k`` with window ``[s k - s + 1, s k + s - 1]``.
    """

    def __init__(self, dim: int, stride: int):
        super().__init__()
        self.stride = stride
        self.conv = nn.Conv1d(dim, dim, kernel_size=2 * stride - 1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, N, D] -> [B, K, N, D]
        b, t, n, d = x.shape
        seq = x.permute(0, 2, 3, 1).reshape(b * n, d, t)
        seq = F.pad(seq, (self.stride - 1, self.stride - 1), mode="replicate")
        out = self.conv(seq)
        return out.reshape(b, n, d, -1).permute(0, 3, 1, 2)


class TemporalExpander(nn.Module):
    """``K -> T`` per token: ``ConvTranspose1d(k = 2s - 1, stride s, padding s - 1)``; output length ``(K-1) s + 1``.

    The official module replicate-pads 3 latent steps and crops ``[3s, 3s + T)``; a padded step only reaches frames
    outside that crop (latent ``k`` feeds frames ``|s k - f| <= s - 1``), so both give identical frames.
    """

    def __init__(self, dim: int, stride: int):
        super().__init__()
        self.deconv = nn.ConvTranspose1d(dim, dim, kernel_size=2 * stride - 1, stride=stride, padding=stride - 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # [B, K, N, D] -> [B, T, N, D]
        b, k, n, d = z.shape
        out = self.deconv(z.permute(0, 2, 3, 1).reshape(b * n, d, k))
        return out.reshape(b, n, d, -1).permute(0, 3, 1, 2)


class AutoencoderTraj(AutoMapConfigMixin, KeepFP32ModulesMixin, ModelMixin, ConfigMixin):
    r"""TrajLoom-VAE: dense point tracks ``[B, T, N, 2]`` <-> latents ``[B, K, N, C]``.

    The default config is the paper's (480x832 frames, stride 32 -> 15x26 = 390 tracks, 81 frames -> 21 latent steps,
    16 + 16 blocks of width 512 with 8 heads, 16 latent channels). Every size is a config field, so tiny CPU configs
    exist too.

    Args:
        height, width: frame size in pixels (defines normalisation and anchors).
        patch_size: grid stride ``s`` in pixels (one track per ``s x s`` cell).
        grid_origin: ``"topleft"`` (official) or ``"center"`` query pixel inside each cell.
        num_frames: frames per segment ``T``; ``(T - 1) % temporal_stride == 0``.
        temporal_stride: temporal compression factor (4: 81 -> 21).
        in_channels: coordinate channels (2).
        latent_channels: ``C``.
        hidden_size, num_heads, mlp_ratio: transformer width.
        encoder_depth, decoder_depth: number of blocks (multiples of 4: two stages of spatial/temporal pairs).
        pos_embed_dim: width of the patch-centre Fourier embedding (64).
        use_offsets: Grid-Anchor Offset Encoding (paper §3.1); False encodes absolute coordinates (Table 4 ablation).
        offset_scale: multiplies the offsets entering the encoder and divides the decoder's output offsets. 1.0 is the
            official parameterisation (exact for converted checkpoints); training from scratch, ``"grid"`` measures
            offsets in grid cells (``W / 2s`` and ``H / 2s``), so the embedding sees O(1) inputs instead of ~0.01
            (the function class is the same; only the optimisation is better conditioned).
        beta, lambda_temporal, lambda_spatial, huber_delta, spatial_hops: training-loss weights (eqs. 1-5),
            read by :func:`trajloom_hf.vae_losses.vae_loss`; ``lambda_* = 0`` is the "w/o regulariser" ablation.
        latents_mean, latents_std: per-channel latent statistics (``C`` values each), set by
            :func:`trajloom_hf.latent_statistics.compute_latent_statistics`; used by :meth:`scale_latents`.
    """

    _supports_gradient_checkpointing = True
    # coordinate-facing layers stay fp32 in a bf16/fp16 model (trajloom_hf.precision): the offset embedding, the
    # offset head (bf16 would round a 0.5 offset by 2e-3 = 0.8 px at 832 px) and the patch-centre Fourier features
    _keep_in_fp32_modules = ["x_embedder", "final_layer", "patch_pos_lff"]

    @register_to_config
    def __init__(
        self,
        height: int = 480,
        width: int = 832,
        patch_size: int = 32,
        grid_origin: str = "topleft",
        num_frames: int = 81,
        temporal_stride: int = 4,
        in_channels: int = 2,
        latent_channels: int = 16,
        hidden_size: int = 512,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        encoder_depth: int = 16,
        decoder_depth: int = 16,
        pos_embed_dim: int = 64,
        use_offsets: bool = True,
        offset_scale: Union[float, str] = 1.0,
        beta: float = 5e-5,
        lambda_temporal: float = 0.1,
        lambda_spatial: float = 0.2,
        huber_delta: float = 1.0,
        spatial_hops: Sequence[int] = (1, 2, 4),
        latents_mean: Optional[List[float]] = None,
        latents_std: Optional[List[float]] = None,
    ):
        super().__init__()
        gh, gw = grid_shape(height, width, patch_size)
        if in_channels != 2:
            raise ValueError(f"`in_channels` must be 2 (x, y coordinates), got {in_channels}")
        if num_frames < 1 or temporal_stride < 1 or (num_frames - 1) % temporal_stride:
            raise ValueError(
                f"`num_frames` - 1 must be a multiple of `temporal_stride`: got num_frames={num_frames}, "
                f"temporal_stride={temporal_stride} (e.g. 81 and 4 -> 21 latent steps)"
            )
        for name, depth in (("encoder_depth", encoder_depth), ("decoder_depth", decoder_depth)):
            if depth < 4 or depth % 4:
                raise ValueError(f"`{name}` must be a positive multiple of 4 (two stages of spatial/temporal pairs), got {depth}")
        if hidden_size % num_heads or (hidden_size // num_heads) % 2:
            raise ValueError(f"`hidden_size` ({hidden_size}) must be divisible by `num_heads` ({num_heads}) into even head dims")
        if hidden_size % 4 or pos_embed_dim % 2:
            raise ValueError(f"`hidden_size` must be a multiple of 4 and `pos_embed_dim` even, got {hidden_size}, {pos_embed_dim}")
        for name, stats in (("latents_mean", latents_mean), ("latents_std", latents_std)):
            if stats is not None and len(stats) != latent_channels:
                raise ValueError(f"`{name}` must have latent_channels={latent_channels} values, got {len(stats)}")
            if stats is not None and not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
                                             for v in stats):
                raise ValueError(f"`{name}` must hold finite numbers, got {list(stats)}")
        if latents_std is not None and min(latents_std) <= 0:  # scale_latents divides by it
            raise ValueError(f"`latents_std` must be positive, got {list(latents_std)}")
        if offset_scale == "grid":
            scale = (width / (2.0 * patch_size), height / (2.0 * patch_size))
        elif isinstance(offset_scale, (int, float)) and offset_scale > 0:
            scale = (float(offset_scale), float(offset_scale))
        else:
            raise ValueError(f"`offset_scale` must be a positive number or 'grid', got {offset_scale!r}")
        self._offset_scale = torch.tensor(scale, dtype=torch.float32)
        self.grid_hw = (gh, gw)
        self.num_latent_frames = (num_frames - 1) // temporal_stride + 1
        assert self.num_latent_frames == num_latent_frames(num_frames, temporal_stride)

        # anchors of the query pixels in normalised units. Deliberately not a buffer: `model.to(torch.bfloat16)`
        # would round them (0.5 px at 832 px); coordinates never leave fp32.
        self._anchors_fp32 = torch.as_tensor(grid_anchors(height, width, patch_size, grid_origin), dtype=torch.float32)
        self.x_embedder = nn.Linear(in_channels, hidden_size)
        self.register_buffer("pos_embed", sincos_2d(gh, gw, hidden_size)[None], persistent=False)  # [1, N, D]
        self.register_buffer("temp_embed_in", sincos_1d(range(num_frames), hidden_size)[None], persistent=False)
        rows, cols = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
        centres = torch.stack([2 * (cols.reshape(-1) + 0.5) / gw - 1, 2 * (rows.reshape(-1) + 0.5) / gh - 1], -1)
        self.register_buffer("patch_centres", centres.float(), persistent=False)  # [N, 2]
        self.patch_pos_lff = PatchPositionLFF(pos_embed_dim)
        self.patch_pos_proj = nn.Linear(pos_embed_dim, hidden_size)

        self.encoder_blocks = nn.ModuleList(LatteBlock(hidden_size, num_heads, mlp_ratio) for _ in range(encoder_depth))
        self.temp_compressor = TemporalCompressor(hidden_size, temporal_stride)
        self.to_latents = nn.Linear(hidden_size, 2 * latent_channels)
        self.from_latents = nn.Linear(latent_channels, hidden_size)
        self.decoder_blocks = nn.ModuleList(LatteBlock(hidden_size, num_heads, mlp_ratio) for _ in range(decoder_depth))
        self.temp_expander = TemporalExpander(hidden_size, temporal_stride)
        self.final_layer = nn.Linear(hidden_size, in_channels)
        self.gradient_checkpointing = False
        self._init_weights()

    @property
    def anchors(self) -> torch.Tensor:
        """Pixel-centre anchors of the query pixels ``[N, 2]``, normalised, always fp32, on the model's device."""
        device = self.x_embedder.weight.device
        if self._anchors_fp32.device != device:
            self._anchors_fp32 = self._anchors_fp32.to(device)
        return self._anchors_fp32

    def _init_weights(self) -> None:
        # reference §2.6: Xavier-uniform linears with zero bias, zero final layer (decoder starts at the anchors);
        # the temporal convolutions keep PyTorch's default init
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.zeros_(self.final_layer.weight)
        nn.init.zeros_(self.final_layer.bias)

    # ------------------------------------------------------------------------------------------------------------
    def _check_tracks(self, tracks: torch.Tensor, name: str = "tracks") -> None:
        if not isinstance(tracks, torch.Tensor):
            raise TypeError(f"`{name}` must be a torch.Tensor, got {type(tracks).__name__}")
        t, n = self.config.num_frames, self.grid_hw[0] * self.grid_hw[1]
        if tracks.ndim != 4 or tuple(tracks.shape[1:]) != (t, n, 2):
            raise ValueError(
                f"`{name}` must have shape [B, {t}, {n}, 2] (num_frames={t}, grid {self.grid_hw[0]}x{self.grid_hw[1]}), "
                f"got {list(tracks.shape)}"
            )
        if not torch.isfinite(tracks).all():
            raise ValueError(f"`{name}` contains NaN or inf: fill invisible points with finite values first")

    def _run(self, blocks: Sequence[nn.Module], h: torch.Tensor, temporal_embed: Optional[torch.Tensor] = None):
        """Alternate spatial (over N) and temporal (over T) blocks on ``h`` ``[B, T, N, D]``."""
        b, t, n, d = h.shape
        for i, block in enumerate(blocks):
            spatial = i % 2 == 0
            x = h.reshape(b * t, n, d) if spatial else h.permute(0, 2, 1, 3).reshape(b * n, t, d)
            if x.element_size() < 4:
                # bf16/fp16: one copy into the block's own layout. With B = 1 the reshape of the other layout is a
                # strided view, and the reduced-precision norm kernel is slow on it (paper config, CPU: RMSNorm 68 ms
                # vs 1 ms per call, plus a copy before each matmul): encode 1.07x, decode 1.13x faster (A/B in one
                # process). In fp32 the copy costs more than it saves (0.93x / 0.96x), so fp32 keeps the view.
                x = x.contiguous()
            if not spatial and i == 1 and temporal_embed is not None:
                x = x + temporal_embed.to(x.dtype)  # fixed 1-D sin-cos, only before the first temporal block
            if self.gradient_checkpointing and torch.is_grad_enabled():
                x = self._gradient_checkpointing_func(block, x)
            else:
                x = block(x)
            h = x.reshape(b, t, n, d) if spatial else x.reshape(b, n, t, d).permute(0, 2, 1, 3)
        return h

    def encode(self, tracks: torch.Tensor, return_dict: bool = True):
        """Normalised tracks ``[B, T, N, 2]`` -> posterior over ``[B, K, N, C]`` (Grid-Anchor offsets taken inside)."""
        self._check_tracks(tracks)
        dtype = self.dtype  # the trunk's (the coordinate-facing layers may be fp32 islands)
        x = tracks.float()
        if self.config.use_offsets:
            x = (x - self.anchors) * self._offset_scale.to(x.device)
        with autocast_off(x.device.type):  # coordinates in, fp32 even under mixed precision
            h = self.x_embedder(x.to(self.x_embedder.weight.dtype)).to(dtype)
        lff = self.patch_pos_lff(self.patch_centres.float())
        token_pos = self.pos_embed[0].to(dtype) + self.patch_pos_proj(lff.to(self.patch_pos_proj.weight.dtype)).to(dtype)
        h = h + token_pos
        half = self.config.encoder_depth // 2
        h = self._run(self.encoder_blocks[:half], h, temporal_embed=self.temp_embed_in[0][None])
        h = self.temp_compressor(h)
        h = self._run(self.encoder_blocks[half:], h)
        moments = self.to_latents(h)
        mean, raw = moments.chunk(2, dim=-1)
        dist = TrajLatentDistribution(mean, raw)
        return AutoencoderTrajEncoderOutput(latent_dist=dist) if return_dict else (dist,)

    def decode(self, z: torch.Tensor, return_dict: bool = True, clamp: bool = False):
        """Latents ``[B, K, N, C]`` -> normalised tracks ``[B, T, N, 2]`` fp32 (``clamp``: to [-1, 1] as the official
        inference does before converting to pixels)."""
        k, n, c = self.num_latent_frames, self.grid_hw[0] * self.grid_hw[1], self.config.latent_channels
        if not isinstance(z, torch.Tensor) or z.ndim != 4 or tuple(z.shape[1:]) != (k, n, c):
            shape = list(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"`z` must have shape [B, {k}, {n}, {c}], got {shape}")
        h = self.from_latents(z.to(self.from_latents.weight.dtype))
        half = self.config.decoder_depth // 2
        h = self._run(self.decoder_blocks[:half], h)
        h = self.temp_expander(h)
        h = self._run(self.decoder_blocks[half:], h)
        with autocast_off(h.device.type):  # offsets out, fp32 even under mixed precision
            x = self.final_layer(h.to(self.final_layer.weight.dtype)).float()
        if self.config.use_offsets:
            x = x / self._offset_scale.to(x.device) + self.anchors
        if clamp:
            x = x.clamp(-1.0, 1.0)
        return AutoencoderTrajDecoderOutput(sample=x) if return_dict else (x,)

    def forward(
        self,
        tracks: torch.Tensor,
        sample_posterior: bool = True,
        generator: Optional[torch.Generator] = None,
        return_dict: bool = True,
    ):
        """Encode then decode ``[B, T, N, 2]`` normalised tracks (posterior sample, or its mean)."""
        dist = self.encode(tracks).latent_dist
        z = dist.sample(generator) if sample_posterior else dist.mode()
        x = self.decode(z).sample
        if not return_dict:
            return (x, z, dist)
        return AutoencoderTrajOutput(sample=x, latents=z, latent_dist=dist)

    # ------------------------------------------------------------------------------------------------------------
    def _stats(self, like: torch.Tensor):
        if self.config.latents_mean is None or self.config.latents_std is None:
            raise ValueError(
                "this AutoencoderTraj has no latent statistics (`latents_mean`/`latents_std` are None); compute them "
                "with trajloom_hf.latent_statistics.compute_latent_statistics and set_latent_statistics"
            )
        mean = torch.tensor(self.config.latents_mean, dtype=torch.float32, device=like.device)
        std = torch.tensor(self.config.latents_std, dtype=torch.float32, device=like.device).clamp_min(1e-8)
        return mean, std

    def scale_latents(self, z: torch.Tensor) -> torch.Tensor:
        """``(z - mean_c) / std_c`` per channel (fp32 maths, returned in z's dtype; reference §2.10)."""
        mean, std = self._stats(z)
        return ((z.float() - mean) / std).to(z.dtype)

    def unscale_latents(self, z: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`scale_latents`: ``z * std_c + mean_c``."""
        mean, std = self._stats(z)
        return (z.float() * std + mean).to(z.dtype)
