"""How the cost of the VAE and the generator grows with the grid (N), the frames (T) and the samples (S).

    python benchmarks/bench_scaling.py                          # one factor at a time around N = 60, T = 33, S = 1
    python benchmarks/bench_scaling.py --layers paper --dtype float32
    python benchmarks/bench_scaling.py --quick                  # tiny widths, seconds

Rows vary one factor from the base (N = 60 tokens, T = 33 frames, S = 1 sample): N = 60, 390, 1560 (stride 32 at
192x320, 480x832, 960x1664), T = 33, 81, S = 1, 4, 16. Calls: VAE encode of one history (once per clip, whatever S),
VAE decode of S futures, one generator step on S samples with the cached context. By default the widths are the
paper's (VAE 512, generator 768) with fewer blocks (VAE 4 + 4, generator 2 layers), so every block costs what it
costs at the paper config and the growth factors are the paper's; ``--layers paper`` uses all 16 + 16 / 16.

Where the math is not linear: spatial attention is quadratic in N (the VAE's spatial blocks attend over N tokens per
frame, the generator's over N per step plus 2N context tokens), temporal attention quadratic in T (the VAE over 81 or
21 steps, the generator over K = (T - 1) / 4 + 1 latent steps and 2K context tokens). The table prints each call's
growth next to the token ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import time

BASE = dict(n=60, frames=33, samples=1)
GRIDS = {60: (192, 320), 390: (480, 832), 1560: (960, 1664)}  # stride 32: 6x10, 15x26, 30x52


def _models(n, frames, args):
    import torch

    from trajloom_hf.models import AutoencoderTraj, TrajFlowTransformer

    h, w = GRIDS[n]
    if args.quick:
        vae_kw, gen_kw = dict(hidden_size=64, num_heads=4, encoder_depth=4, decoder_depth=4), dict(hidden_size=64, num_heads=4, num_layers=2)
    elif args.layers == "paper":
        vae_kw, gen_kw = {}, {}
    else:
        vae_kw, gen_kw = dict(encoder_depth=4, decoder_depth=4), dict(num_layers=2)
    torch.manual_seed(0)
    vae = AutoencoderTraj(height=h, width=w, patch_size=32, num_frames=frames, **vae_kw).eval()
    k = vae.num_latent_frames
    gen = TrajFlowTransformer(num_latent_frames=k, grid_size=vae.grid_hw, history_num_frames=frames, use_text_cond=False,
                              use_video_cond=False, **gen_kw).eval()
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    return vae.to(dtype), gen.to(dtype)


def measure(n, frames, samples, args):
    import torch

    vae, gen = _models(n, frames, args)
    k, c = vae.num_latent_frames, vae.config.latent_channels
    x = torch.rand(1, frames, n, 2) * 2 - 1
    z = torch.randn(samples, k, n, c)
    hist = torch.randn(1, k, n, c)
    out = {}
    with torch.no_grad():
        ctx = gen.prepare_context(hist)
        calls = {"encode": lambda: vae.encode(x).latent_dist.mean, "decode": lambda: vae.decode(z).sample,
                 "step": lambda: gen(z, 0.5, context=ctx).sample}
        for name, fn in calls.items():
            fn()  # warm-up
            best = float("inf")
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                fn()
                best = min(best, time.perf_counter() - t0)
            out[name] = best
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"])
    parser.add_argument("--layers", default="reduced", choices=["reduced", "paper"])
    parser.add_argument("--quick", action="store_true", help="tiny widths (development)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    configs = [dict(BASE, n=n) for n in (60, 390, 1560)] + [dict(BASE, frames=81)] + \
              [dict(BASE, samples=s) for s in (4, 16)]
    rows = []
    for cfg in configs:
        r = measure(cfg["n"], cfg["frames"], cfg["samples"], args)
        rows.append(dict(cfg, **r))
        print(f"  N={cfg['n']} T={cfg['frames']} S={cfg['samples']}: " + ", ".join(f"{k} {v:.3f} s" for k, v in r.items()),
              flush=True)
    base = rows[0]
    print(f"\n{args.dtype}, {args.threads} threads, "
          f"{'tiny widths' if args.quick else ('paper depth' if args.layers == 'paper' else 'paper widths, VAE 4+4 blocks, generator 2 layers')}; "
          "growth = s/call relative to the base row, tokens = relative tokens of that call\n")
    print("| N | T | S | encode s | growth (tokens) | decode s | growth (tokens) | generator step s | growth (tokens) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        tok_enc = r["n"] * r["frames"] / (base["n"] * base["frames"])
        tok_dec = tok_enc * r["samples"] / base["samples"]
        k_r, k_b = (r["frames"] - 1) // 4 + 1, (base["frames"] - 1) // 4 + 1
        tok_gen = r["n"] * k_r * r["samples"] / (base["n"] * k_b * base["samples"])
        print(f"| {r['n']} | {r['frames']} | {r['samples']} | {r['encode']:.3f} | {r['encode'] / base['encode']:.1f}x "
              f"({tok_enc:.1f}x) | {r['decode']:.3f} | {r['decode'] / base['decode']:.1f}x ({tok_dec:.1f}x) | "
              f"{r['step']:.3f} | {r['step'] / base['step']:.1f}x ({tok_gen:.1f}x) |")
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as fh:
            json.dump({"args": vars(args), "rows": rows}, fh, indent=2)
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
