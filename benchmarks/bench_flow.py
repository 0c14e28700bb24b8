"""Time per ODE step and peak memory of TrajLoom-Flow at the paper configuration, with and without context caching.

Each (batch size, caching) setting runs in its own subprocess so that its peak memory is its own: peak resident
memory (CPU, ``ru_maxrss``) or peak allocated memory (CUDA). One "ODE step" is one Euler step of
:class:`FlowMatchTrajScheduler` = one generator evaluation; with caching, the one-off ``prepare_context`` cost is
reported separately. Random weights (the speed does not depend on them).

    python benchmarks/bench_flow.py                      # CPU, B = 1 and 4, 2 steps each
    python benchmarks/bench_flow.py --device cuda --steps 5 --batch-sizes 1 4 16
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _worker(batch_size: int, cached: bool, steps: int, device: str, dtype: str, seed: int) -> dict:
    import torch

    from trajloom_hf.models.transformer_traj_flow import TrajFlowTransformer
    from trajloom_hf.schedulers import FlowMatchTrajScheduler

    torch.manual_seed(seed)
    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    model = TrajFlowTransformer().to(device=device, dtype=torch_dtype).eval()
    k, n, c = model.latent_shape
    b = batch_size
    hist = torch.randn(b, k, n, c, device=device)
    cond = dict(
        history_visibility=torch.rand(b, k, n, device=device) > 0.2,
        video_latents=torch.randn(b, k, n, model.config.video_latent_channels, device=device),
        text_embeds=torch.randn(b, model.config.text_embed_dim, device=device),
    )
    scheduler = FlowMatchTrajScheduler()
    cuda = device.startswith("cuda")

    def sync():
        if cuda:
            torch.cuda.synchronize()

    with torch.no_grad():
        # warm-up evaluation in the same mode (allocator, kernels; CPU peak RSS cannot be reset, so the warm-up
        # must not exceed the timed run's peak), then reset the CUDA peak
        if cached:
            model(torch.randn(b, k, n, c, device=device), 0.5, context=model.prepare_context(hist, **cond))
        else:
            model(torch.randn(b, k, n, c, device=device), 0.5, hist, **cond)
        sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated() / 2**20
        else:
            base = _peak_rss_mib()
        z = scheduler.sample_source(hist)
        scheduler.set_timesteps(max(steps, 1))
        t0 = time.perf_counter()
        context = model.prepare_context(hist, **cond) if cached else None
        sync()
        prep = time.perf_counter() - t0
        times = []
        for t in scheduler.timesteps[:steps]:
            t1 = time.perf_counter()
            tm = scheduler.model_timestep(t, b, device=device)
            if cached:
                v = model(z, tm, context=context).sample
            else:
                v = model(z, tm, hist, **cond).sample
            z = scheduler.step(v, t, z).prev_sample
            sync()
            times.append(time.perf_counter() - t1)
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else _peak_rss_mib()
    return {
        "batch_size": b,
        "cached": cached,
        "prepare_context_s": prep if cached else 0.0,
        "step_s": sum(times) / len(times),
        "steps": len(times),
        "peak_mib": peak,
        "baseline_mib": base,
        "threads": torch.get_num_threads(),
        "device": torch.cuda.get_device_name() if cuda else "cpu",
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--steps", type=int, default=2, help="timed ODE steps per setting (after one warm-up evaluation)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--_worker", nargs=2, metavar=("B", "CACHED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error("--steps must be >= 1")

    if args._worker:
        row = _worker(int(args._worker[0]), args._worker[1] == "1", args.steps, args.device, args.dtype, args.seed)
        print("RESULT " + json.dumps(row))
        return

    rows = []
    for b in args.batch_sizes:
        for cached in (False, True):
            cmd = [sys.executable, os.path.abspath(__file__), "--_worker", str(b), "1" if cached else "0",
                   "--steps", str(args.steps), "--device", args.device, "--dtype", args.dtype, "--seed", str(args.seed)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            row = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
            rows.append(row)
            print(f"  done B={b} cached={cached}: {row['step_s']:.2f} s/step", file=sys.stderr, flush=True)

    mem = "peak alloc MiB" if args.device.startswith("cuda") else "peak RSS MiB"
    print(f"\nTrajLoom-Flow (paper config, 244.5 M params, K=21, N=390, C=16), {args.dtype}, device {rows[0]['device']}, "
          f"{rows[0]['threads']} threads, {args.steps} timed Euler steps each")
    header = f"| {'B':>2} | {'context':<9} | {'s / ODE step':>12} | {'prepare_context s':>17} | {mem:>15} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        print(f"| {r['batch_size']:>2} | {'cached' if r['cached'] else 'uncached':<9} | {r['step_s']:>12.3f} | "
              f"{r['prepare_context_s']:>17.3f} | {r['peak_mib']:>15.0f} |")
    by = {(r["batch_size"], r["cached"]): r for r in rows}
    for b in args.batch_sizes:
        u, c = by[(b, False)], by[(b, True)]
        print(f"B={b}: caching saves {100 * (1 - c['step_s'] / u['step_s']):.1f}% per step")
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(rows, f, indent=2)
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
