"""``trajloom evaluate``: forecast a TrajLoomBench split with one or more pipelines, add the static and
constant-velocity baselines, and write ``results.json`` + ``results.md`` (paper Table 1 layout).

    trajloom evaluate --pipeline out/pipeline --bench trajloombench --config synthetic --split test \
        --baseline whn=out/whn_pipeline --num-samples 4 --vepe-frames 24 81 --out results/
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline", required=True, help="TrajLoomPipeline folder (reported as 'TrajLoom')")
    parser.add_argument("--bench", required=True, help="TrajLoomBench folder")
    parser.add_argument("--config", default="synthetic")
    parser.add_argument("--split", default="test")
    parser.add_argument("--baseline", action="append", default=[], metavar="[NAME=]DIR",
                        help="another pipeline folder to score in the same run (repeatable)")
    parser.add_argument("--num-samples", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--solver", default="euler", choices=["euler", "heun", "dopri5", "dopri5_adaptive"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-clips", type=int, default=None)
    parser.add_argument("--vepe-frames", type=int, nargs="+", default=[], metavar="L",
                        help="also report the VAE VEPE of the first L frames of each window (paper Table 2: 24 81)")
    parser.add_argument("--out", default=".", help="where results.json and results.md go")
    parser.add_argument("--shuffle-frames", action="store_true",
                        help="also score every frame-conditioned pipeline with each clip given another clip's frames "
                             "(row '<name> (other clip's frames)'): shows whether a model uses the image")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..evaluation import evaluate_bench, results_markdown

    pipelines = {"TrajLoom": args.pipeline}
    for item in args.baseline:
        name, _, path = item.rpartition("=")
        pipelines[name or Path(path).name] = path
    results = evaluate_bench(pipelines, args.bench, args.config, args.split, num_samples=args.num_samples,
                             num_inference_steps=args.steps, solver=args.solver, seed=args.seed,
                             max_clips=args.max_clips, out_dir=args.out, vepe_frames=args.vepe_frames,
                             shuffle_frames=args.shuffle_frames)
    print(results_markdown(results, f"{args.config}/{args.split}"))
    print(f"wrote {Path(args.out).resolve() / 'results.json'} and results.md")
    return 0
