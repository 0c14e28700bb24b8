"""Speed of the MuJoCo physics source, and how predictable its futures are for the trivial baselines.

    python benchmarks/bench_physics.py                      # clips/s at 96x160 (33+33 frames) and 240x416 (81+81)
    python benchmarks/bench_physics.py --baselines 20       # + static / constant-velocity scores on 20 clips
    python benchmarks/bench_physics.py --montage out.png    # + a PNG strip of a few clips with their tracks

Each size is timed on a few clips after one warm-up clip (which creates the GL context): wall time and process CPU
time (all threads: Mesa's llvmpipe renders on several), simulation + rendering + exact tracks, without the mp4
encoding and Parquet writing of the builder. ``--baselines`` scores the last history position held (static) and
constant-velocity extrapolation against the exact future with ``trajloom_hf.evaluation.score`` (minADE@1, FVMD).
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

from trajloom_hf.data.physics import PhysicsSceneConfig, check_gl, generate_physics_clip


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def time_clips(cfg: PhysicsSceneConfig, clips: int, seed0: int = 1000):
    generate_physics_clip(seed0 - 1, cfg)  # warm-up
    t0, c0 = time.perf_counter(), _cpu()
    for s in range(clips):
        generate_physics_clip(seed0 + s, cfg)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    return clips / wall, cpu / clips


def baseline_scores(cfg: PhysicsSceneConfig, clips: int, history: int):
    from trajloom_hf.evaluation import constant_velocity_baseline, score, static_baseline

    data = [generate_physics_clip(2_000_000 + s, cfg) for s in range(clips)]
    tracks = np.stack([c.tracks for c in data])
    vis = np.stack([c.visibility for c in data])
    hist, fut, fvis = tracks[:, :history], tracks[:, history:], vis[:, history:]
    grid = (cfg.height // cfg.stride, cfg.width // cfg.stride)
    on_obj = np.stack([c.surface_id > 0 for c in data])  # [V, N]
    disp = np.linalg.norm(fut[:, -1] - fut[:, 0], axis=-1)  # [V, N] px over the future
    stats = {
        "points on objects": float(on_obj.mean()),
        "visible in the future": float(fvis.mean()),
        "object points moving > 1 px in the future": float((disp[on_obj] > 1).mean()),
        "mean future path of object points (px)": float(np.linalg.norm(np.diff(fut, axis=1), axis=-1).sum(1)[on_obj].mean()),
    }
    out = {}
    for name, pred in (("static", static_baseline(hist, fut.shape[1])), ("constant velocity", constant_velocity_baseline(hist, fut.shape[1]))):
        s = score(pred[:, None], fut, fvis, grid, cfg.stride)
        out[name] = {k: s[k] for k in ("min_ade", "fvmd", "fvmd_long")}
    return stats, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=10, help="timed clips per size")
    ap.add_argument("--baselines", type=int, default=0, help="clips for the baseline scores (0: skip)")
    ap.add_argument("--camera", default="static", choices=["static", "moving"])
    ap.add_argument("--montage", default=None, help="write a PNG of 4 clips (9 frames each, tracks drawn) here")
    args = ap.parse_args()
    print(f"GL: {check_gl()}; MUJOCO_GL={os.environ.get('MUJOCO_GL')}; {os.cpu_count()} CPUs")
    sizes = [(96, 160, 33, 16), (240, 416, 81, 16)]
    for h, w, half, stride in sizes:
        cfg = PhysicsSceneConfig(height=h, width=w, num_frames=2 * half, stride=stride, camera=args.camera)
        rate, cpu = time_clips(cfg, args.clips)
        print(f"{h}x{w}, {half}+{half} frames, stride {stride}, camera {args.camera}: {rate:.2f} clips/s "
              f"({cpu:.2f} CPU-s per clip)")
        cfg_nr = PhysicsSceneConfig(height=h, width=w, num_frames=2 * half, stride=stride, camera=args.camera, render=False)
        rate, cpu = time_clips(cfg_nr, args.clips)
        print(f"    tracks only (no rendering): {rate:.2f} clips/s ({cpu:.2f} CPU-s per clip)")
    if args.baselines:
        cfg = PhysicsSceneConfig(height=96, width=160, num_frames=66, stride=16, camera=args.camera, render=False)
        stats, scores = baseline_scores(cfg, args.baselines, 33)
        print(f"{args.baselines} test-seed clips at 96x160, 33+33 frames, stride 16, camera {args.camera}:")
        for k, v in stats.items():
            print(f"    {k}: {v:.3f}")
        for name, s in scores.items():
            print(f"    {name}: minADE {s['min_ade']:.3f} px, FVMD {s['fvmd']:.1f}, FVMD-Long {s['fvmd_long']:.4g}")
    if args.montage:
        from trajloom_hf.rendering import montage, render_tracks
        from trajloom_hf.video_io import save_png

        cfg = PhysicsSceneConfig(height=96, width=160, num_frames=66, stride=16, camera=args.camera)
        rows = []
        for s in range(4):
            c = generate_physics_clip(2_000_000 + s, cfg)
            rows.append(montage(render_tracks(c.frames, c.tracks, c.visibility)[::8], num=9, padding=4))
        save_png(args.montage, np.concatenate(rows, 0))
        print(f"wrote {args.montage}")


if __name__ == "__main__":
    main()
