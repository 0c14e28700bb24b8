"""Forecasts past one window: TrajLoom rolled out window after window vs constant velocity, scored per window.

    OMP_NUM_THREADS=1 python benchmarks/bench_long_horizon.py --out long_horizon_out        # build, train, score
    python benchmarks/bench_long_horizon.py --out o --pipeline PIPE --bench BENCH --config CFG  # score a pipeline

Without ``--pipeline`` it builds a small physics TrajLoomBench of long clips (MuJoCo, moving camera, exact tracks,
``trajloom_hf.data.trajloombench.build_trajloombench``: ``--history`` frames, then ``--windows`` x ``--history``
future frames), trains a tiny TrajLoom-VAE and TrajLoom-Flow with the example scripts on windows that start anywhere
in the clips (``--window_start random``) and, with ``--compare_first``, a second flow on windows at frame 0 only (the
paper's training; same VAE, same budget). Then it rolls ``--windows`` windows out on the test clips
(``TrajLoomPipeline(..., num_windows=k)``, the last forecast becoming the next history, hold-last visibility, no
video) and scores each window against its ground truth with ``trajloom_hf.evaluation.score_windows`` (as
``trajloom evaluate --num-windows`` does): FVMD-Long (10^-3),
FVMD, minADE@K (px, K = ``--samples``) and ADE of sample 1. Constant velocity
(``trajloom_hf.evaluation.constant_velocity_baseline``) extrapolates the last history velocity over the whole horizon
and is scored the same way (one sample: minADE@1). ``forecast.gif`` shows the first test clip (ground truth,
TrajLoom sample 1, constant velocity over all windows, drawn on the last observed frame with the ground-truth
visibility); ``forecast.png`` is its still at the last observed frame and the end of every window. Every stage
resumes (a finished bench, VAE or flow is kept).

Limits (what degrades): errors compound over the windows, since window ``j + 1`` is conditioned on forecast ``j``,
not on observed motion: minADE grows with ``j`` for every method (FVMD need not: it compares motion statistics,
and in the physics clips the bodies slow down and settle, so later windows hold less motion). A model trained on windows at
frame 0 only sees later histories (which no longer start on the query grid) out of distribution; training with
random starts is what makes window 2 and 3 in-distribution, but only for clips as long as the training clips. The
rollout sees no new frames (the video pathway holds the last observed frame, ``rollout_video``), no new points
(points that leave the frame stay lost; no re-querying of the grid), and hold-last visibility cannot bring an
occluded point back. The default budget is a toy one (a few CPU-minutes): read the numbers as a check of the
mechanics, not of the method at scale.

Measured with the defaults (``--compare_first``; 96x160 px, stride 16, 17-frame windows, 48 training / 8 test
clips, VAE 500 steps, flows 600 steps, 5.9 CPU-minutes in all): constant velocity is ahead in every window
(minADE 2.98 / 8.15 / 13.67 px vs 4.56 / 10.13 / 14.61 for TrajLoom trained on random starts and 3.92 / 9.29 /
16.97 trained on frame-0 windows); random starts win window 3 only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"


def cpu_minutes() -> float:
    """CPU time of this process and its finished children, minutes."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return (me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime) / 60


def run(cmd, threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    t0 = time.perf_counter()
    out = subprocess.run([str(c) for c in cmd], env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{' '.join(map(str, cmd[:2]))} failed:\n{out.stderr[-3000:]}")
    print(f"    {Path(str(cmd[1])).name}: {time.perf_counter() - t0:.0f} s wall", flush=True)


def write_json(path: Path, obj) -> Path:
    from trajloom_hf.video_io import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2)
    return path


def build_bench(args, out: Path) -> Path:
    from trajloom_hf.data.trajloombench import BenchSettings, build_trajloombench

    settings = BenchSettings(height=args.height, width=args.width, history_frames=args.history,
                             future_frames=args.windows * args.history, stride=args.stride, fps=args.fps, shard_size=64)
    build_trajloombench("physics", str(out / "bench"), "physics_long", settings=settings,
                        counts={"train": args.train_clips, "validation": 2, "test": args.test_clips}, seed=args.seed,
                        source_kwargs={"camera": "moving"}, progress=False)
    return out / "bench"


def train(args, out: Path, bench: Path) -> dict:
    """VAE, then one flow per window layout (``random``, and ``first`` with --compare_first); -> {label: pipeline dir}."""
    py = sys.executable
    data = ["--bench", bench, "--bench_config", "physics_long", "--train_batch_size", args.batch, "--seed", args.seed,
            "--report_to", "none"]
    vae_cfg = write_json(out / "configs" / "vae.json", dict(hidden_size=32, num_heads=4, encoder_depth=4,
                                                           decoder_depth=4, latent_channels=4, pos_embed_dim=8))
    flow_cfg = write_json(out / "configs" / "transformer.json", dict(hidden_size=48, num_heads=4, num_layers=2))
    if not (out / "vae" / "config.json").exists():
        run([py, EXAMPLES / "train_autoencoder_traj.py", "--output_dir", out / "vae", "--model_config", vae_cfg,
             "--height", args.height, "--width", args.width, "--stride", args.stride, "--num_frames", args.history,
             *data, "--learning_rate", 2e-3, "--lr_warmup_steps", 10, "--max_train_steps", args.vae_steps,
             "--validation_steps", 0, "--checkpointing_steps", args.vae_steps, "--window_start", "random",
             "--window_start_stride", args.start_stride], args.threads)
    pipes = {}
    for layout in ["random"] + (["first"] if args.compare_first else []):
        d = out / f"flow_{layout}"
        if not (d / "transformer" / "config.json").exists():
            run([py, EXAMPLES / "train_trajloom_flow.py", "--vae_path", out / "vae", "--output_dir", d,
                 "--transformer_config", flow_cfg, *data, "--learning_rate", 1e-3, "--max_train_steps", args.flow_steps,
                 "--validation_steps", 0, "--checkpointing_steps", args.flow_steps, "--window_start", layout,
                 "--window_start_stride", args.start_stride, "--latent_cache_dir", out / f"latents_{layout}"],
                args.threads)
        pipes[layout] = save_pipeline(out / "vae", d, out / f"pipeline_{layout}")
    return pipes


def save_pipeline(vae_dir: Path, flow_dir: Path, target: Path) -> Path:
    if (target / "model_index.json").exists():
        return target
    from trajloom_hf.models import AutoencoderTraj, TrajFlowTransformer
    from trajloom_hf.pipelines import TrajLoomPipeline
    from trajloom_hf.schedulers import FlowMatchTrajScheduler

    pipe = TrajLoomPipeline(vae=AutoencoderTraj.from_pretrained(vae_dir), transformer=TrajFlowTransformer.from_pretrained(
        flow_dir / "transformer"), scheduler=FlowMatchTrajScheduler.from_pretrained(flow_dir / "scheduler"))
    pipe.save_pretrained(target)
    return target


def rollout(pipe, tracks, vis, history: int, windows: int, samples: int, steps: int, seed: int) -> np.ndarray:
    """``[V, S, windows * F, N, 2]`` px: each clip rolled out from its first ``history`` frames (seed ``seed + i``)."""
    import torch

    outs = []
    for i in range(tracks.shape[0]):
        res = pipe(tracks[i, :history], vis[i, :history], num_samples=samples, num_inference_steps=steps,
                   num_windows=windows, visibility_mode="hold_last", generator=[torch.Generator().manual_seed(seed + i)])
        outs.append(res.future_tracks[0])
    return np.stack(outs)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output folder (bench, models, results.json, forecast.gif)")
    ap.add_argument("--pipeline", default=None, help="score this TrajLoomPipeline folder instead of training one "
                    "(needs --bench and --config of clips holding history + windows x future frames)")
    ap.add_argument("--bench", default=None, help="with --pipeline: a TrajLoomBench folder")
    ap.add_argument("--config", default=None, help="with --pipeline: its config")
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--history", type=int, default=17, help="history = window frames of the trained models (4n + 1)")
    ap.add_argument("--height", type=int, default=96)
    ap.add_argument("--width", type=int, default=160)
    ap.add_argument("--stride", type=int, default=16)
    ap.add_argument("--fps", type=float, default=24.0)
    ap.add_argument("--train_clips", type=int, default=48)
    ap.add_argument("--test_clips", type=int, default=8)
    ap.add_argument("--vae_steps", type=int, default=500)
    ap.add_argument("--flow_steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--start_stride", type=int, default=2, help="--window_start_stride of the training windows")
    ap.add_argument("--compare_first", action="store_true", help="also train a flow on windows at frame 0 only")
    ap.add_argument("--samples", type=int, default=4, help="K of minADE@K")
    ap.add_argument("--steps", type=int, default=10, help="Euler steps per window")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    for name in ("windows", "history", "train_clips", "test_clips", "vae_steps", "flow_steps", "batch", "samples",
                 "steps", "threads", "start_stride"):
        if getattr(args, name) < 1:
            raise ValueError(f"`--{name}` must be >= 1, got {getattr(args, name)}")
    if args.pipeline and not (args.bench and args.config):
        raise ValueError("`--pipeline` needs `--bench` and `--config` (clips of history + windows x future frames)")
    import torch

    torch.set_num_threads(args.threads)
    from trajloom_hf.evaluation import constant_velocity_baseline, load_bench_split, rollout_windows, score_windows
    from trajloom_hf.pipelines import TrajLoomPipeline

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.pipeline:
        bench, config, pipes = Path(args.bench), args.config, {"given": Path(args.pipeline)}
    else:
        print("1/3 physics bench of long clips, TrajLoom-VAE and -Flow (random window starts)", flush=True)
        bench, config = build_bench(args, out), "physics_long"
        pipes = train(args, out, bench)
    test = load_bench_split(str(bench), config, "test", max_clips=args.test_clips, with_video=True)
    loaded = {k: TrajLoomPipeline.from_pretrained(str(v)) for k, v in pipes.items()}
    for p in loaded.values():
        p.set_progress_bar_config(disable=True)
    h, f = next(iter(loaded.values())).history_frames, next(iter(loaded.values())).future_frames
    rollout_windows(test.tracks, h, f, args.windows)  # a clip too short for the horizon stops here, before any work
    print(f"2/3 roll out {args.windows} windows of {f} frames on {len(test.tracks)} test clips", flush=True)
    preds = {f"TrajLoom ({k}-start windows)" if k != "given" else "TrajLoom": rollout(p, test.tracks, test.visibility, h,
             args.windows, args.samples, args.steps, args.seed) for k, p in loaded.items()}
    preds["constant velocity"] = constant_velocity_baseline(test.tracks[:, :h], args.windows * f)[:, None]
    results = {name: score_windows(p, test.tracks, test.visibility, h, f, args.windows, test.grid_shape, test.stride)
               for name, p in preds.items()}

    print("3/3 scores per window (test split; GT visibility masks every metric)\n")
    print("| method | window | frames | FVMD-Long (10^-3) | FVMD | minADE@K (px) | ADE (px) |")
    print("|---|---|---|---|---|---|---|")
    for name, per in results.items():
        for j, s in enumerate(per):
            print(f"| {name} | {j + 1} | +{j * f + 1}..+{(j + 1) * f} | {s['fvmd_long'] / 1e3:.3f} | {s['fvmd']:.1f} | "
                  f"{s['min_ade']:.2f} (K={s['num_samples']}) | {s['ade']:.2f} |")
    from trajloom_hf.rendering import montage, render_forecast
    from trajloom_hf.video_io import save_png, write_gif

    frames = test.history_frames([0], h)[0]
    shown = {"ground truth": np.concatenate(rollout_windows(test.tracks[:1], h, f, args.windows), 1)[0]}
    shown.update({name: p[0, 0] for name, p in preds.items()})
    gt_vis = np.concatenate(rollout_windows(test.visibility[:1], h, f, args.windows, "visibility"), 1)[0]
    video = render_forecast(frames, test.tracks[0, :h], test.visibility[0, :h], np.stack(list(shown.values())),
                            np.stack([gt_vis] * len(shown)), labels=list(shown))
    write_gif(out / "forecast.gif", video[::2], args.fps / 2)
    # a still: the last observed frame, then the end of every window
    save_png(out / "forecast.png", montage(video, indices=[h - 1 + j * f for j in range(args.windows + 1)]))
    meta = dict(command=" ".join(["python", "benchmarks/bench_long_horizon.py", *(sys.argv[1:] if argv is None else argv)]),
                windows=args.windows, window_frames=f, history_frames=h,
                test_clips=int(len(test.tracks)), samples=args.samples, steps=args.steps,
                wall_s=round(time.perf_counter() - t0, 1), cpu_min=round(cpu_minutes(), 2),
                results={k: [{m: float(s[m]) for m in ("fvmd_long", "fvmd", "min_ade", "ade")} for s in v]
                         for k, v in results.items()})
    write_json(out / "results.json", meta)
    print(f"\nwrote {out / 'results.json'}, {out / 'forecast.gif'} and forecast.png ({meta['wall_s']:.0f} s wall, "
          f"{meta['cpu_min']:.1f} CPU-min incl. training)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
