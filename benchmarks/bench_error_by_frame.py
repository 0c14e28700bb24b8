"""Where in the future window each method's error is: the mean error per future frame (px, GT-visible points) of the
best-of-K sample (the one minADE picks) and over all samples, for pipelines and the constant-velocity / static
baselines on one bench split (``trajloom_hf.metrics.error_by_frame``).

    python benchmarks/bench_error_by_frame.py --bench quickstart_out/cpu/trajloombench --config physics_camera \
        --run TrajLoom=quickstart_out/cpu/trajloom/pipeline --run "TrajLoom (no video)=quickstart_out/cpu/trajloom_novideo/pipeline"

A minADE level with constant velocity can hide a forecast that is better late and worse early (a straight line is
nearly exact for the first frames): this prints the curve. ``--fix-first-latent`` samples every pipeline with the
official ``--fix_first_frame``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def parse_run(text: str):
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"--run must look like NAME=DIR, got {text!r}")
    return name, folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", required=True, help="TrajLoomBench folder")
    parser.add_argument("--config", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--run", type=parse_run, action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--num-samples", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-clips", type=int, default=None)
    parser.add_argument("--dtype", default="auto", help="auto, float32 or bfloat16 (trajloom_hf.precision)")
    parser.add_argument("--fix-first-latent", action="store_true", default=None)
    parser.add_argument("--frames", type=int, nargs="+", default=None,
                        help="future frames to print (default: 0, 1, 2, 4, 8, ... and the last)")
    parser.add_argument("--out", default=None, help="also write every frame's errors to this JSON file")
    args = parser.parse_args(argv)
    for name, folder in args.run:  # check every folder before any work
        if not os.path.isfile(os.path.join(folder, "model_index.json")):
            parser.error(f"--run {name}: {folder!r} has no model_index.json")

    from trajloom_hf import TrajLoomPipeline
    from trajloom_hf.evaluation import (constant_velocity_baseline, forecast_split, load_bench_split,
                                        static_baseline, uses_frames)
    from trajloom_hf.metrics import error_by_frame
    from trajloom_hf.precision import resolve_dtype

    dtype = resolve_dtype(args.dtype, "cpu")
    pipes = {name: TrajLoomPipeline.from_pretrained(folder, **({} if dtype is None else {"torch_dtype": dtype}))
             for name, folder in args.run}
    for pipe in pipes.values():
        pipe.set_progress_bar_config(disable=True)
    data = load_bench_split(args.bench, args.config, args.split, args.max_clips,
                            with_video=any(uses_frames(p) for p in pipes.values()))
    first = next(iter(pipes.values()))
    t_h, t_f = first.vae.config.num_frames, first.future_frames
    gt, vis = data.tracks[:, t_h : t_h + t_f], data.visibility[:, t_h : t_h + t_f]
    rows = {}
    for name, pipe in pipes.items():
        f = forecast_split(pipe, data, t_h, num_samples=args.num_samples, num_inference_steps=args.steps,
                           solver="euler", seed=args.seed, fix_first_latent=args.fix_first_latent)
        rows[name] = error_by_frame(f.tracks, gt, vis)
    hist = data.tracks[:, :t_h]
    rows["constant velocity"] = error_by_frame(constant_velocity_baseline(hist, t_f), gt, vis)
    rows["static"] = error_by_frame(static_baseline(hist, t_f), gt, vis)
    frames = args.frames or sorted({0, 1, 2, *[2 ** i for i in range(2, 10) if 2 ** i < t_f - 1], t_f - 1})
    if any(not 0 <= t < t_f for t in frames):
        parser.error(f"--frames must lie in [0, {t_f - 1}], got {frames}")
    print(f"{args.config}/{args.split}, {len(gt)} clips, {args.num_samples} samples, euler x {args.steps}"
          f"{', fix_first_latent' if args.fix_first_latent else ''}; error (px) at future frame t, best-of-K sample"
          " (all samples)\n")
    print("| method | " + " | ".join(f"t = {t}" for t in frames) + " | mean over frames |")
    print("|---|" + "---|" * (len(frames) + 1))
    for name, r in rows.items():
        cells = [f"{r.best_of_k[t]:.2f} ({r.mean_over_samples[t]:.2f})" for t in frames]
        print(f"| {name} | " + " | ".join(cells) + f" | {r.best_of_k.mean():.2f} ({r.mean_over_samples.mean():.2f}) |")
    if args.out:
        tmp = args.out + ".tmp"
        with open(tmp, "w") as fh:
            json.dump({"settings": {k: v for k, v in vars(args).items() if k != "run"} | {"runs": dict(args.run)},
                       "rows": {n: {"best_of_k": r.best_of_k.tolist(), "mean_over_samples": r.mean_over_samples.tolist()}
                                for n, r in rows.items()}}, fh, indent=1)
        os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
