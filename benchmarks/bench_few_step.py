"""Few-step sampling (paper §3.3.3, Table 5): the metrics of pipelines at several Euler step counts on one bench split.

    python benchmarks/bench_few_step.py --bench quickstart_out/cpu/trajloombench --config synthetic_tracked \
        --run "on-policy=quickstart_out/cpu/trajloom/pipeline@2,4,10" \
        --run "base=quickstart_out/cpu/trajloom/pipeline_base@10,100" --out few_step.json

Each ``--run NAME=DIR@STEPS,...`` scores the pipeline folder at every step count on the same clips, samples and
seeds (``trajloom_hf.evaluation.forecast_split`` + ``score``: FVMD with GT-visibility masking, FVMD-Long, FlowTV,
DivCurlE, minADE/ADE), with the wall time of the forecasts. The on-policy stage exists to make few steps good:
the question is whether the on-policy model at 4 steps is no worse on FVMD than the base model at 10.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def parse_run(text: str):
    """``NAME=DIR@2,4,10`` -> ``(NAME, DIR, [2, 4, 10])``."""
    name, sep, rest = text.partition("=")
    folder, at, steps = rest.rpartition("@")
    if not sep or not at or not name or not folder:
        raise argparse.ArgumentTypeError(f"--run must look like NAME=DIR@2,4,10, got {text!r}")
    try:
        counts = [int(s) for s in steps.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--run step counts must be integers, got {steps!r}") from None
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"--run needs step counts >= 1, got {steps!r}")
    return name, folder, counts


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", required=True, help="TrajLoomBench folder")
    parser.add_argument("--config", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--run", type=parse_run, action="append", required=True, metavar="NAME=DIR@STEPS",
                        help="a pipeline folder and its Euler step counts (repeatable)")
    parser.add_argument("--num-samples", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-clips", type=int, default=None)
    parser.add_argument("--dtype", default="auto", help="auto, float32 or bfloat16 (trajloom_hf.precision)")
    parser.add_argument("--out", default=None, help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    if args.num_samples < 1:
        parser.error("--num-samples must be >= 1")
    for _, folder, _ in args.run:
        if not Path(folder, "model_index.json").is_file():
            parser.error(f"--run: {folder!r} is not a pipeline folder (no model_index.json)")

    from trajloom_hf.evaluation import forecast_split, load_bench_split, score, uses_frames
    from trajloom_hf.pipelines import TrajLoomPipeline
    from trajloom_hf.precision import dtype_name, resolve_dtype

    dtype = resolve_dtype(args.dtype, "cpu")
    pipes = {name: TrajLoomPipeline.from_pretrained(folder, torch_dtype=dtype) for name, folder, _ in args.run}
    for pipe in pipes.values():
        pipe.set_progress_bar_config(disable=True)
    data = load_bench_split(args.bench, args.config, args.split, args.max_clips,
                            with_video=any(uses_frames(p) for p in pipes.values()))
    first = next(iter(pipes.values()))
    t_h = first.history_frames
    t_f = min(first.vae.config.num_frames, data.tracks.shape[1] - t_h)
    if t_f < 2:
        parser.error(f"clips have {data.tracks.shape[1]} frames: no future window after {t_h} history frames")
    gt, gt_vis = data.tracks[:, t_h : t_h + t_f], data.visibility[:, t_h : t_h + t_f]
    rows = []
    for name, folder, counts in args.run:
        pipe = pipes[name]
        if pipe.history_frames != t_h:
            parser.error(f"--run {name}: history of {pipe.history_frames} frames, the first pipeline's {t_h}")
        for steps in counts:
            t0 = time.perf_counter()
            fc = forecast_split(pipe, data, t_h, num_samples=args.num_samples, num_inference_steps=steps, solver="euler",
                                seed=args.seed, progress=False)
            sec = time.perf_counter() - t0
            s = score(fc.tracks[:, :, :t_f], gt, gt_vis, data.grid_shape, float(data.stride))
            rows.append(dict(method=name, pipeline=os.path.abspath(folder), steps=steps, forecast_s=sec, **s))
            print(f"  {name} @ {steps} steps: FVMD {s['fvmd']:.4g} ({sec:.1f} s)", file=sys.stderr, flush=True)
    print(f"\n{args.config}/{args.split}: {len(gt)} clips, {t_h} + {t_f} frames, {args.num_samples} samples, Euler, "
          f"seed {args.seed}, {dtype_name(dtype)}\n")
    print("| method | Euler steps | FVMD | FVMD-Long (10^-3) | FlowTV (10^2) | DivCurlE (10^3) | minADE (px) | ADE (px) | "
          "forecast s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['steps']} | {r['fvmd']:.4g} | {r['fvmd_long'] * 1e-3:.4g} | {r['flow_tv'] * 1e2:.4g} | "
              f"{r['div_curl_energy'] * 1e3:.4g} | {r['min_ade']:.4g} | {r['ade']:.4g} | {r['forecast_s']:.1f} |")
    if args.out:
        from trajloom_hf.video_io import atomic_path

        with atomic_path(Path(args.out)) as tmp:
            Path(tmp).write_text(json.dumps({"settings": {k: v for k, v in vars(args).items() if k != "run"} | {
                "runs": [dict(name=n, pipeline=f, steps=c) for n, f, c in args.run], "dtype": dtype_name(dtype),
                "num_clips": int(len(gt))}, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
