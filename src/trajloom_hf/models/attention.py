"""Attention building blocks shared by AutoencoderTraj (Latte blocks) and TrajFlowTransformer (DiT blocks).

State-dict names follow the official TrajLoom modules (``qkv``, ``q``, ``kv``, ``proj``, ``fc1``, ``fc2``) so that
checkpoint conversion is a matter of renames (reference Appendix A).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    """RMS normalisation over the last dim: the mean square is accumulated in fp32, the output has the input dtype.

    Two passes over ``x`` (one fp32-accumulating reduction, one multiply): in a bf16 trunk the former
    ``x.float() ... .to(x.dtype)`` form spent more time converting than the matmuls it sits between. A bf16 ``x`` is
    reduced as bf16: the norm kernels accumulate reduced-precision inputs in fp32 (CPU and CUDA) and only the result
    is rounded, whereas asking for an fp32 result first copies all of ``x`` to fp32 (3.5x slower on CPU). fp16 is
    reduced to fp32 (its norm would overflow at 65504).
    """

    def __init__(self, dim: int, eps: float = 1e-6, elementwise_affine: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim)) if elementwise_affine else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.bfloat16:  # fp32 accumulation inside the kernel, no fp32 copy of x; fp32's range
            norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True).float()  # [..., 1]: small
        else:  # fp32 accumulation (fp64 kept for fp64 inputs)
            norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=torch.promote_types(x.dtype, torch.float32))
        r = torch.rsqrt(norm.square() / x.shape[-1] + self.eps).to(x.dtype)
        if self.weight is None:
            return x * r
        return x * r * self.weight.to(x.dtype)


class Attention(nn.Module):
    """Multi-head self- or cross-attention with optional qk-norm, using ``F.scaled_dot_product_attention``.

    Self-attention projects q, k, v with one fused Linear ``qkv``; cross-attention (``cross_attention_dim`` given)
    uses ``q`` on the queries and ``kv`` on the context. Shapes: x ``[B, L, D]``, context ``[B, M, D_ctx]``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        qk_norm: bool = False,
        qk_norm_affine: bool = False,
        cross_attention_dim: Optional[int] = None,
        bias: bool = True,
        eps: float = 1e-6,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"`dim` ({dim}) must be divisible by `num_heads` ({num_heads})")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.is_cross = cross_attention_dim is not None
        if self.is_cross:
            self.q = nn.Linear(dim, dim, bias=bias)
            self.kv = nn.Linear(cross_attention_dim, 2 * dim, bias=bias)
        else:
            self.qkv = nn.Linear(dim, 3 * dim, bias=bias)
        self.q_norm = RMSNorm(self.head_dim, eps, qk_norm_affine) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(self.head_dim, eps, qk_norm_affine) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim, bias=bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # [B, L, D] -> [B, heads, L, head_dim]
        b, l, _ = x.shape
        return x.reshape(b, l, self.num_heads, self.head_dim).transpose(1, 2)

    def project_context(self, context: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of a cross-attention context, each ``[B, heads, M, head_dim]`` (k already normed).

        The context of TrajLoom-Flow is fixed across ODE steps, so callers compute this once and pass it back as
        ``context_kv``.
        """
        if not self.is_cross:
            raise ValueError("project_context() is only defined for cross-attention (cross_attention_dim was None)")
        k, v = self.kv(context).chunk(2, dim=-1)
        return self.k_norm(self._heads(k)), self._heads(v)

    def forward(
        self,
        x: torch.Tensor,
        context: Optional[torch.Tensor] = None,
        *,
        context_kv: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
    ) -> torch.Tensor:
        b, l, d = x.shape
        if self.is_cross:
            if context_kv is None:
                if context is None:
                    raise ValueError("cross-attention needs `context` [B, M, D_ctx] or precomputed `context_kv`")
                context_kv = self.project_context(context)
            k, v = context_kv
            q = self._heads(self.q(x))
        else:
            q, k, v = (self._heads(t) for t in self.qkv(x).chunk(3, dim=-1))
            k = self.k_norm(k)
        q = self.q_norm(q)
        out = F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype))
        return self.proj(out.transpose(1, 2).reshape(b, l, d))


class Mlp(nn.Module):
    """Two-layer MLP ``fc1 -> GELU -> fc2`` (timm ``Mlp`` layout)."""

    def __init__(self, dim: int, hidden_dim: int, approximate: str = "none"):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU(approximate=approximate)
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))
