"""The attention calls of the paper configuration on the CPU: the fused SDPA kernel against an explicit
``softmax(Q K^T / sqrt(d)) V`` in chunks, in bf16 and fp32 (issue 14: is attention's share of the bf16 step a kernel
choice?).

    OMP_NUM_THREADS=2 python benchmarks/bench_attention.py            # the generator's shapes (12 heads x 64)
    OMP_NUM_THREADS=2 python benchmarks/bench_attention.py --heads 8  # the VAE's (8 heads x 64)

Shapes ``[batch, heads, L, S]``: spatial self-attention over the 15x26 = 390 tokens of each of 21 latent frames,
spatial cross-attention to a 780-token context, and the temporal ones over 21 / 42 steps for each of the 390 tokens.
GFLOP/s counts ``QK^T`` and ``PV`` only (4 L S d per head). Prints a table; best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

SHAPES = ((21, 390, 390, "spatial self"), (21, 390, 780, "spatial cross"), (390, 21, 21, "temporal self"),
          (390, 21, 42, "temporal cross"))


def best(fn, repeats):
    fn()
    out = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out = min(out, time.perf_counter() - t0)
    return out


def explicit(q, k, v, chunk):
    """``softmax(Q K^T / sqrt(d)) V`` over ``chunk`` batch entries at a time (bounds the score matrix)."""
    out = torch.empty_like(q)
    scale = q.shape[-1] ** -0.5
    for i in range(0, q.shape[0], chunk):
        s = torch.matmul(q[i : i + chunk], k[i : i + chunk].transpose(-1, -2)).mul_(scale)
        torch.matmul(torch.softmax(s, -1), v[i : i + chunk], out=out[i : i + chunk])
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=4, help="batch entries per explicit score matrix")
    parser.add_argument("--quick", action="store_true", help="a tenth of the batch (development)")
    args = parser.parse_args(argv)
    print(f"{torch.get_num_threads()} threads, {args.heads} heads x {args.head_dim}")
    print("| call | dtype | fused SDPA (ms) | GFLOP/s | explicit (ms) | GFLOP/s | max abs difference |")
    print("|---|---|---|---|---|---|---|")
    for dtype in (torch.bfloat16, torch.float32):
        for b, lq, lk, name in SHAPES:
            b = max(1, b // 10) if args.quick else b
            g = torch.Generator().manual_seed(0)
            q, k, v = (torch.randn(b, args.heads, n, args.head_dim, generator=g).to(dtype) for n in (lq, lk, lk))
            flops = 4 * b * args.heads * lq * lk * args.head_dim / 1e9
            with torch.no_grad():
                fused = best(lambda: F.scaled_dot_product_attention(q, k, v), args.repeats)
                expl = best(lambda: explicit(q, k, v, args.chunk), args.repeats)
                diff = (explicit(q, k, v, args.chunk).float() - F.scaled_dot_product_attention(q, k, v).float()).abs().max()
            print(f"| {name} [{b}, {args.heads}, {lq}, {lk}] | {str(dtype).replace('torch.', '')} | {fused * 1e3:.1f} | "
                  f"{flops / fused:.0f} | {expl * 1e3:.1f} | {flops / expl:.0f} | {diff:.2g} |", flush=True)


if __name__ == "__main__":
    main()
