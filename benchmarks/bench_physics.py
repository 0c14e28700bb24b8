"""Speed of the MuJoCo physics source, and how predictable its futures are for the trivial baselines.

    python benchmarks/bench_physics.py                      # clips/s at 96x160 (33+33 frames) and 240x416 (81+81)
    python benchmarks/bench_physics.py --baselines 20       # + static / constant-velocity scores on 20 clips
    python benchmarks/bench_physics.py --clips 0 --baselines 20 --tracker optical_flow --camera moving  # + a tracker
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


def baseline_scores(cfg: PhysicsSceneConfig, clips: int, history: int, tracker: str = ""):
    """Scene statistics and static / constant-velocity scores on the exact tracks (and on a tracker's, if named)."""
    from trajloom_hf.evaluation import constant_velocity_baseline, score, static_baseline
    from trajloom_hf.metrics import displacement_errors

    data = [generate_physics_clip(2_000_000 + s, cfg) for s in range(clips)]
    exact = (np.stack([c.tracks for c in data]), np.stack([c.visibility for c in data]))
    on_obj = np.stack([c.surface_id > 0 for c in data])  # [V, N]
    fut, fvis = exact[0][:, history:], exact[1][:, history:]
    disp = np.linalg.norm(fut[:, -1] - fut[:, 0], axis=-1)  # [V, N] px over the future
    stats = {
        "points on objects": float(on_obj.mean()),
        "visible in the future": float(fvis.mean()),
        "object points moving > 1 px in the future": float((disp[on_obj] > 1).mean()),
        "mean future path of visible object points (px)": float(
            (np.linalg.norm(np.diff(fut, axis=1), axis=-1) * (fvis[:, 1:] & fvis[:, :-1]))[on_obj[:, None].repeat(fut.shape[1] - 1, 1)].sum()
            / max(on_obj.sum(), 1)),
    }
    protocols = {"exact": exact}
    if tracker:
        from trajloom_hf.tracking import get_tracker

        trk = get_tracker(tracker)
        tracked = [trk.track(c.frames, c.query_xy) for c in data]
        tt, tv = np.stack([t for t, _ in tracked]), np.stack([v for _, v in tracked])
        both = exact[1] & tv
        err = np.linalg.norm(tt - exact[0], axis=-1)[both]
        stats[f"{tracker} vs exact: median / mean EPE (px)"] = (float(np.median(err)), float(err.mean()))
        stats[f"{tracker} vs exact: visibility accuracy"] = float((tv == exact[1]).mean())
        protocols[tracker] = (tt, tv)
    grid = (cfg.height // cfg.stride, cfg.width // cfg.stride)
    out = {}
    for proto, (tracks, vis) in protocols.items():
        hist, fut, fvis = tracks[:, :history], tracks[:, history:], vis[:, history:]
        for name, pred in (("static", static_baseline(hist, fut.shape[1])),
                           ("constant velocity", constant_velocity_baseline(hist, fut.shape[1]))):
            s = score(pred[:, None], fut, fvis, grid, cfg.stride)
            keep = (fvis & on_obj[:, None]).any((1, 2))  # clips with a visible object point in the future
            obj = displacement_errors(pred[keep], fut[keep], (fvis & on_obj[:, None])[keep]).min_ade
            out[f"{proto}: {name}"] = {"min_ade": s["min_ade"], "fvmd": s["fvmd"], "fvmd_long": s["fvmd_long"], "min_ade_objects": obj}
    return stats, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=10, help="timed clips per size")
    ap.add_argument("--baselines", type=int, default=0, help="clips for the baseline scores (0: skip)")
    ap.add_argument("--camera", default="static", choices=["static", "moving"])
    ap.add_argument("--fps", type=float, default=16.0, help="frames per simulated second (the bench's --fps)")
    ap.add_argument("--tracker", default="", help="with --baselines: also score a tracker run on the frames (e.g. optical_flow)")
    ap.add_argument("--montage", default=None, help="write a PNG of 4 clips (9 frames each, tracks drawn) here")
    args = ap.parse_args()
    print(f"GL: {check_gl()}; MUJOCO_GL={os.environ.get('MUJOCO_GL')}; {os.cpu_count()} CPUs")
    sizes = [(96, 160, 33, 16), (240, 416, 81, 16)]
    for h, w, half, stride in sizes if args.clips else []:
        cfg = PhysicsSceneConfig(height=h, width=w, num_frames=2 * half, stride=stride, camera=args.camera)
        rate, cpu = time_clips(cfg, args.clips)
        print(f"{h}x{w}, {half}+{half} frames, stride {stride}, camera {args.camera}: {rate:.2f} clips/s "
              f"({cpu:.2f} CPU-s per clip)")
        cfg_nr = PhysicsSceneConfig(height=h, width=w, num_frames=2 * half, stride=stride, camera=args.camera, render=False)
        rate, cpu = time_clips(cfg_nr, args.clips)
        print(f"    tracks only (no rendering): {rate:.2f} clips/s ({cpu:.2f} CPU-s per clip)")
    if args.baselines:
        cfg = PhysicsSceneConfig(height=96, width=160, num_frames=66, stride=16, camera=args.camera,
                                 render=bool(args.tracker), fps=args.fps)
        stats, scores = baseline_scores(cfg, args.baselines, 33, args.tracker)
        print(f"{args.baselines} test-seed clips at 96x160, 33+33 frames, stride 16, {args.fps:g} fps, camera {args.camera}:")
        for k, v in stats.items():
            print(f"    {k}: " + (" / ".join(f"{x:.3f}" for x in v) if isinstance(v, tuple) else f"{v:.3f}"))
        for name, s in scores.items():
            print(f"    {name}: minADE {s['min_ade']:.3f} px (object points only {s['min_ade_objects']:.3f} px), "
                  f"FVMD {s['fvmd']:.1f}, FVMD-Long {s['fvmd_long']:.4g}")
    if args.montage:
        from trajloom_hf.rendering import montage, render_tracks
        from trajloom_hf.video_io import save_png

        cfg = PhysicsSceneConfig(height=96, width=160, num_frames=66, stride=16, camera=args.camera, fps=args.fps)
        rows = []
        for s in range(4):
            c = generate_physics_clip(2_000_000 + s, cfg)
            rows.append(montage(render_tracks(c.frames, c.tracks, c.visibility)[::8], num=9, padding=4))
        save_png(args.montage, np.concatenate(rows, 0))
        print(f"wrote {args.montage}")


if __name__ == "__main__":
    main()
