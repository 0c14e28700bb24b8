"""VAE-side changes measured by the oracle: fine-tune a trained TrajLoom-VAE a few more steps under given loss
weights / learning rate and score its reconstruction of the GT future windows (the flow's upper bound) before and
after, on the validation and test splits.

    python benchmarks/bench_vae_oracle.py --vae quickstart_out/cpu/trajloom/pipeline/vae \
        --bench quickstart_out/cpu/trajloombench --config physics_camera --steps 100 --learning-rate 5e-4 \
        --lambda-temporal 0.1 1.0 --out vae_oracle.json

Per variant: ``--steps`` AdamW steps (betas 0.9/0.999, no weight decay, grad clip 1.0, constant ``--learning-rate``)
on the train split's history and future windows (the segments the VAE was trained on), posterior sampled, loss
:func:`trajloom_hf.vae_losses.vae_loss` with that ``lambda_temporal`` (the VAE config's ``beta``,
``lambda_spatial`` and Huber delta); every variant starts from the same weights with the same batches and noise.
Scores of ``decode(encode(gt).mean)`` (:func:`trajloom_hf.evaluation.vae_reconstruct`): FVMD (GT-visibility
masked), FVMD-Long, VEPE and the mean acceleration magnitude next to the ground truth's. The quickstart VAE
(400 steps at a constant 2e-3) jitters (mean |a| ~0.95 px/frame^2 against 0.05); this says which change removes it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vae", required=True, help="AutoencoderTraj folder (e.g. <pipeline>/vae)")
    parser.add_argument("--bench", required=True, help="TrajLoomBench folder with train/validation/test splits")
    parser.add_argument("--config", required=True, help="bench config")
    parser.add_argument("--steps", type=int, default=100, help="fine-tuning steps per variant (0: score only)")
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lambda-temporal", type=float, nargs="+", default=[0.1], metavar="W",
                        help="one variant per value (eq. 3's temporal weight)")
    parser.add_argument("--splits", nargs="+", default=["validation", "test"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON file for the scores")
    args = parser.parse_args(argv)
    for flag, value, low in (("--steps", args.steps, 0), ("--batch-size", args.batch_size, 1)):
        if value < low:
            parser.error(f"{flag} must be >= {low}, got {value}")
    if not args.learning_rate > 0 or any(not w >= 0 for w in args.lambda_temporal):
        parser.error("--learning-rate must be > 0 and --lambda-temporal values >= 0")
    if not Path(args.vae, "config.json").is_file():
        parser.error(f"--vae {args.vae!r} is not an AutoencoderTraj folder (no config.json)")

    import numpy as np
    import torch

    from trajloom_hf.encoding import normalize_tracks
    from trajloom_hf.evaluation import load_bench_split, score, vae_reconstruct
    from trajloom_hf.metrics import mean_acceleration, vepe
    from trajloom_hf.models import AutoencoderTraj
    from trajloom_hf.vae_losses import vae_loss

    base = AutoencoderTraj.from_pretrained(args.vae)
    t, (h, w) = base.config.num_frames, (base.config.height, base.config.width)
    splits = {s: load_bench_split(args.bench, args.config, s) for s in args.splits}
    for name, d in splits.items():
        if d.tracks.shape[1] < 2 * t:
            raise ValueError(f"split {name!r} has {d.tracks.shape[1]} frames; history + future need {2 * t}")

    def oracle(vae) -> dict:
        vae.eval()
        out = {}
        for name, d in splits.items():
            gt, vis = d.tracks[:, t : 2 * t], d.visibility[:, t : 2 * t]
            rec = vae_reconstruct(vae, gt)
            s = score(rec[:, None], gt, vis, d.grid_shape, float(d.stride))
            out[name] = {"fvmd": s["fvmd"], "fvmd_long": s["fvmd_long"], "vepe": vepe(rec, gt, vis),
                         "mean_accel": mean_acceleration(rec, vis), "gt_mean_accel": mean_acceleration(gt, vis)}
        return out

    def show(label, scores):
        for name, s in scores.items():
            print(f"{label:34s} {name:10s} oracle FVMD {s['fvmd']:.1f}  FVMD-Long {s['fvmd_long']:.1f}  VEPE "
                  f"{s['vepe']:.3f} px  mean|a| {s['mean_accel']:.3f} (GT {s['gt_mean_accel']:.3f}) px/frame^2")

    results = {"settings": vars(args), "base": oracle(base), "variants": {}}
    show("trained VAE", results["base"])
    if args.steps:
        train = load_bench_split(args.bench, args.config, "train")
        segs = np.concatenate([train.tracks[:, :t], train.tracks[:, t : 2 * t]])
        segv = np.concatenate([train.visibility[:, :t], train.visibility[:, t : 2 * t]])
        if len(segs) < args.batch_size:
            raise ValueError(f"--batch-size {args.batch_size} is larger than the {len(segs)} training windows")
        cfg = base.config
        for lam in args.lambda_temporal:
            start = time.process_time()
            vae = AutoencoderTraj.from_pretrained(args.vae).train()
            opt = torch.optim.AdamW(vae.parameters(), lr=args.learning_rate, betas=(0.9, 0.999), weight_decay=0.0)
            rng, noise = np.random.default_rng(args.seed), torch.Generator().manual_seed(args.seed)
            for _ in range(args.steps):
                b = rng.choice(len(segs), args.batch_size, replace=False)
                x = normalize_tracks(torch.from_numpy(segs[b]), h, w)
                out = vae(x, sample_posterior=True, generator=noise)
                loss = vae_loss(out.sample, x, torch.from_numpy(segv[b]), out.latent_dist.kl(), grid_hw=vae.grid_hw,
                                beta=cfg.beta, lambda_temporal=lam, lambda_spatial=cfg.lambda_spatial,
                                huber_delta=cfg.huber_delta, hops=cfg.spatial_hops).loss
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
                opt.step()
            key = f"+{args.steps} steps, lr {args.learning_rate:g}, lambda_temporal {lam:g}"
            results["variants"][key] = {**oracle(vae), "cpu_seconds": time.process_time() - start}
            show(key, {k: v for k, v in results["variants"][key].items() if k != "cpu_seconds"})
    if args.out:
        from trajloom_hf.video_io import atomic_path

        with atomic_path(args.out) as tmp:
            Path(tmp).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
