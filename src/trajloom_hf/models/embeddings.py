"""Fixed and frozen embeddings: sin-cos tables, the flow-time embedding and random Fourier features."""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def sincos_1d(positions, dim: int, *, sin_first: bool = True) -> torch.Tensor:
    """1-D sin-cos table ``[L, dim]`` (float32) with ``omega_k = 10000^(-k / (dim/2))`` (MAE convention, sin first).

    Args:
        positions: ``[L]`` positions (frame indices, grid rows/columns), any numeric sequence or tensor.
    """
    if dim % 2:
        raise ValueError(f"`dim` must be even for a sin-cos table, got {dim}")
    pos = torch.as_tensor(positions, dtype=torch.float64).reshape(-1)
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
    angles = pos[:, None] * omega[None]
    parts = [torch.sin(angles), torch.cos(angles)] if sin_first else [torch.cos(angles), torch.sin(angles)]
    return torch.cat(parts, dim=-1).float()


def sincos_2d(grid_h: int, grid_w: int, dim: int) -> torch.Tensor:
    """2-D sin-cos table ``[grid_h * grid_w, dim]``, row-major: ``concat(E_{dim/2}(col j), E_{dim/2}(row i))``
    (reference §2.2 step 3: the column half comes first)."""
    if dim % 4:
        raise ValueError(f"`dim` must be divisible by 4 for a 2-D sin-cos table, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
    return torch.cat([sincos_1d(cols.reshape(-1), dim // 2), sincos_1d(rows.reshape(-1), dim // 2)], dim=-1)


def timestep_embedding(t: torch.Tensor, dim: int, *, max_period: float = 10000.0, cos_first: bool = True) -> torch.Tensor:
    """Flow-time embedding ``[B, dim]`` float32: ``[cos(t f_i), sin(t f_i)]`` with ``f_i = exp(-ln(max_period) i / (dim/2))``.

    ``t`` is used directly in [0, 1] (no x1000), as in the official generator (reference §3.6).
    """
    if dim % 2:
        raise ValueError(f"`dim` must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t.float().reshape(-1, 1) * freqs[None]
    parts = [torch.cos(angles), torch.sin(angles)] if cos_first else [torch.sin(angles), torch.cos(angles)]
    return torch.cat(parts, dim=-1)


class FourierFeatures(nn.Module):
    """Random Fourier features of low-dimensional positions: ``(1/sqrt(2F)) [cos(c w^T), sin(c w^T)]``, ``[..., 2F]``.

    ``w`` ``[F, in_dim]`` ~ N(0, 1) is frozen but stored in the state dict (the official VAE saves it, so a converted
    checkpoint must load it rather than redraw it).
    """

    def __init__(self, in_dim: int = 2, num_frequencies: int = 32):
        super().__init__()
        self.w = nn.Parameter(torch.randn(num_frequencies, in_dim), requires_grad=False)
        self.num_frequencies = num_frequencies

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        dtype = torch.float64 if self.w.dtype == torch.float64 else torch.float32  # never below fp32
        proj = coords.to(dtype) @ self.w.to(dtype).t()
        return torch.cat([torch.cos(proj), torch.sin(proj)], dim=-1) / math.sqrt(2 * self.num_frequencies)
