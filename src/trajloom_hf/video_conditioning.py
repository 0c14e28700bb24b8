"""History-video latents aligned to the track token grid (reference §3.9), from diffusers' ``AutoencoderKLWan``.

The official code feeds the 81 history frames, ``/127.5 - 1``, downsampled so that the Wan VAE's 8x spatial
compression lands exactly on the track grid (480x832 -> 120x208 -> 15x26 tokens), and its causal 4x temporal
compression on the 21 latent steps. The posterior mean is normalised with the VAE's ``latents_mean/latents_std``
and rearranged to ``[B, K, N, C]`` (row-major tokens), so video token ``n`` sits on track token ``n``.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .validation import check_video


def spatial_compression(video_vae) -> int:
    """Spatial downsampling factor of a video VAE (config ``scale_factor_spatial``, else ``2 ** len(temperal_downsample)``
    as diffusers' Wan pipelines compute it, else 8)."""
    factor = getattr(getattr(video_vae, "config", None), "scale_factor_spatial", None)
    if factor:
        return int(factor)
    down = getattr(video_vae, "temperal_downsample", None) or getattr(getattr(video_vae, "config", None), "temperal_downsample", None)
    return 2 ** len(down) if down is not None else 8


@torch.no_grad()
def encode_video_latents(
    video_vae,
    video,
    frame_size: Tuple[int, int],
    grid_hw: Tuple[int, int],
    history_frames: int,
    *,
    batch_size: int,
    device=None,
) -> torch.Tensor:
    """History frames ``[T, H, W, 3]`` / ``[B, T, H, W, 3]`` uint8 -> token-aligned latents ``[B, K, N, C]`` float32.

    The last ``history_frames`` frames are used; frames must already be ``frame_size`` (the tracks' frame).
    """
    v = torch.as_tensor(np.asarray(video)) if not isinstance(video, torch.Tensor) else video
    if v.ndim == 4:
        v = v[None]
    if v.ndim != 5 or v.shape[-1] != 3:
        raise ValueError(f"`video` must have shape [T, H, W, 3] or [B, T, H, W, 3], got {list(v.shape)}")
    check_video(v[0].numpy() if v.device.type == "cpu" else v[0].cpu().numpy(), "video", height=frame_size[0], width=frame_size[1])
    if v.shape[0] != batch_size:
        raise ValueError(f"`video` has {v.shape[0]} clips, the tracks have {batch_size}")
    if v.shape[1] < history_frames:
        raise ValueError(f"`video` has {v.shape[1]} frames, the history needs {history_frames}")
    device = device or next(video_vae.parameters()).device
    dtype = next(video_vae.parameters()).dtype
    x = v[:, -history_frames:].to(device).float() / 127.5 - 1.0  # [B, T, H, W, 3]
    b, t = x.shape[:2]
    f = spatial_compression(video_vae)
    size = (grid_hw[0] * f, grid_hw[1] * f)
    x = F.interpolate(x.permute(0, 1, 4, 2, 3).reshape(b * t, 3, *frame_size), size=size, mode="bilinear",
                      align_corners=False)
    x = x.reshape(b, t, 3, *size).permute(0, 2, 1, 3, 4)  # [B, 3, T, h, w]
    mean = video_vae.encode(x.to(dtype)).latent_dist.mean.float()  # [B, C, K, H_g, W_g]
    if tuple(mean.shape[-2:]) != tuple(grid_hw):
        raise ValueError(f"the video VAE produced a {tuple(mean.shape[-2:])} latent grid, the tracks need {tuple(grid_hw)}")
    cfg = getattr(video_vae, "config", None)
    lm, ls = getattr(cfg, "latents_mean", None), getattr(cfg, "latents_std", None)
    if lm is not None and ls is not None:
        shape = (1, -1, 1, 1, 1)
        mean = (mean - torch.tensor(lm, device=mean.device).view(shape)) / torch.tensor(ls, device=mean.device).view(shape)
    from .models.transformer_traj_flow import TrajFlowTransformer

    return TrajFlowTransformer.video_latents_to_tokens(mean)  # [B, K, N, C], row-major tokens
