"""Memory of one ``pipe()`` call against the number of samples S: one shared context vs the context copied per sample.

    python benchmarks/bench_sample_memory.py                      # mid size, S = 1, 4, 16, fp32, about 5 minutes
    python benchmarks/bench_sample_memory.py --samples 1 4 --quick

The generator's history context (every block's cross-attention K/V: 2 x [N, heads, 2K, head_dim] per temporal block)
does not depend on the sample, so ``TrajFlowTransformer`` broadcasts one context per clip over its S samples.
``repeated`` is the former form, the context copied for every sample (``TrajFlowContext.repeat_interleave``, what
``pipe()`` did before): the same numbers at S times the context memory. Each (S, form) runs in a fresh process:
peak RSS during the call (sampled every 20 ms) minus the RSS before it, the bytes of the context the transformer
attends to, and s/call. Default mid size: 320x512 (10x16 tokens), 81 frames (K = 21), generator 384 wide with 8
layers (4 temporal blocks), a small VAE, 1 Euler step, fp32 (the Python API's default; ``--dtype bfloat16``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

SIZES = {
    "mid": dict(height=320, width=512, frames=81, gen_dim=384, gen_heads=6, gen_layers=8, vae_dim=128, vae_depth=4),
    "quick": dict(height=128, width=192, frames=17, gen_dim=64, gen_heads=4, gen_layers=4, vae_dim=32, vae_depth=4),
}
FORMS = ("shared", "repeated")


def _pipe(cfg, dtype):
    import torch

    from trajloom_hf.models import AutoencoderTraj, TrajFlowTransformer
    from trajloom_hf.pipelines import TrajLoomPipeline
    from trajloom_hf.schedulers import FlowMatchTrajScheduler

    torch.manual_seed(0)
    vae = AutoencoderTraj(height=cfg["height"], width=cfg["width"], patch_size=32, num_frames=cfg["frames"],
                          hidden_size=cfg["vae_dim"], num_heads=4, encoder_depth=cfg["vae_depth"],
                          decoder_depth=cfg["vae_depth"], latents_mean=[0.0] * 16, latents_std=[1.0] * 16).eval()
    gen = TrajFlowTransformer(num_latent_frames=vae.num_latent_frames, grid_size=vae.grid_hw,
                              latent_channels=vae.config.latent_channels, hidden_size=cfg["gen_dim"],
                              num_heads=cfg["gen_heads"], num_layers=cfg["gen_layers"], use_text_cond=False,
                              use_video_cond=False, history_num_frames=cfg["frames"]).eval()
    with torch.no_grad():  # open the zero-initialised gates (VAE) and adaLN weights so the tracks depend on the flow
        for p in vae.parameters():
            if p.dim() == 3 or p.shape[0] == 2:
                p.normal_(0, 0.05)
        for blk in gen.blocks:
            blk.adaLN[1].weight.normal_(0, 0.1 / cfg["gen_dim"] ** 0.5)
    pipe = TrajLoomPipeline(vae=vae, transformer=gen, scheduler=FlowMatchTrajScheduler())
    if dtype != "float32":
        pipe.to(getattr(torch, dtype))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def worker(args) -> None:
    import numpy as np
    import torch

    from bench_paper_config import _PeakRSS, _rss_mb
    from trajloom_hf.encoding import make_query_grid

    torch.set_num_threads(args.threads)
    cfg = SIZES["quick" if args.quick else "mid"]
    pipe = _pipe(cfg, args.dtype)
    h, w, t = cfg["height"], cfg["width"], cfg["frames"]
    g = torch.Generator().manual_seed(1)
    q = torch.from_numpy(make_query_grid(h, w, 32))
    hist = (q[None] + torch.randn(t, q.shape[0], 2, generator=g).mul(1.5).cumsum(0)).numpy()
    tr, seen = pipe.transformer, {}
    prepare = tr.prepare_context

    def prepare_context(*a, **k):  # the context the ODE steps attend to: shared, or copied per sample (former form)
        ctx = prepare(*a, **k)
        if args._worker == "repeated" and args._samples > 1:
            ctx = ctx.repeat_interleave(args._samples)
        tensors = [ctx.cond, ctx.fusion, ctx.temporal_context, ctx.spatial_context]
        tensors += [x for kv in (ctx.kv or []) if kv is not None for x in kv]
        seen["context_mb"] = sum(x.numel() * x.element_size() for x in tensors if x is not None) / 2**20
        return ctx

    tr.prepare_context = prepare_context
    before = _rss_mb()
    with torch.no_grad(), _PeakRSS() as rss:
        t0 = time.perf_counter()
        out = pipe(hist, None, num_samples=args._samples, num_inference_steps=args.steps,
                   generator=torch.Generator().manual_seed(0), output_type="np")
        sec = time.perf_counter() - t0
    print(json.dumps({"sec": sec, "peak_mb": rss.peak - before, "context_mb": seen["context_mb"],
                      "checksum": float(np.abs(out.future_tracks).mean())}), flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--forms", nargs="+", default=list(FORMS), choices=FORMS)
    parser.add_argument("--steps", type=int, default=1, help="Euler steps per call")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="toy sizes (development)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--_worker", choices=FORMS, help=argparse.SUPPRESS)
    parser.add_argument("--_samples", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if any(s < 1 for s in args.samples) or args.steps < 1 or args.threads < 1:
        parser.error(f"--samples, --steps and --threads must be positive, got {args.samples}, {args.steps}, {args.threads}")
    if args._worker:
        return worker(args)

    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([here, os.environ.get("PYTHONPATH", "")]))
    rows = []
    for s in args.samples:
        for form in args.forms:
            cmd = [sys.executable, os.path.abspath(__file__), "--_worker", form, "--_samples", str(s), "--steps",
                   str(args.steps), "--dtype", args.dtype, "--threads", str(args.threads)] + (["--quick"] if args.quick else [])
            res = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True)
            r = dict(json.loads(res.stdout.strip().splitlines()[-1]), samples=s, form=form)
            rows.append(r)
            print(f"  S={s} {form}: {r['sec']:.1f} s, peak +{r['peak_mb']:.0f} MB, context {r['context_mb']:.1f} MB",
                  flush=True)
    size = "toy" if args.quick else "320x512 (N = 160), 81 frames (K = 21), generator 384 wide x 8 layers"
    print(f"\n{size}, {args.dtype}, {args.steps} Euler step(s), {args.threads} threads; peak = RSS high-water during the "
          "call minus RSS before it\n")
    print("| S | context | context MB | peak RSS MB | s/call | mean track px (equal across forms) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['samples']} | {r['form']} | {r['context_mb']:.1f} | {r['peak_mb']:.0f} | {r['sec']:.1f} | "
              f"{r['checksum']:.4f} |")
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as fh:
            json.dump({"args": {k: v for k, v in vars(args).items() if not k.startswith("_")}, "rows": rows}, fh, indent=2)
        os.replace(tmp, args.json)


if __name__ == "__main__":
    main()
