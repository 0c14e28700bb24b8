"""Metric speed: this package against the official loops (same inputs, equal values), the ``evaluate`` modules against
the library calls, and the time of every metric on many clips. numpy on the CPU, 81-frame videos on a 15x26 grid
(stride 32 px).

    python benchmarks/bench_metrics.py                    # 40 videos: official vs ours, evaluate vs library
    python benchmarks/bench_metrics.py --table-clips 1000 # also every metric on 1,000 videos
    python benchmarks/bench_metrics.py --cpu-time         # CPU seconds of this process (a loaded machine)

The official loops (``benchmarks/official_metrics.py``) follow trajloom-official-code.md §5: FVMD per video and
window (TrajLoom's defaults, 16-frame clips at stride 15, GT-visibility masked), FlowTV / DivCurlE per video and frame,
VEPE per video. Each pair is timed interleaved (official, ours, official, ...; best of ``--repeats``): the machine is
shared. Set ``OMP_NUM_THREADS=1`` on a small shared machine: multi-threaded OpenBLAS busy-waits and slows the
eigendecompositions of both sides by 10x or more there.
"""

import argparse
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from official_metrics import official_div_curl, official_flow_tv, official_fvmd, official_vepe  # noqa: E402

from trajloom_hf.metrics import displacement_errors, div_curl_energy, flow_tv, fvmd, fvmd_long, vepe  # noqa: E402


def random_tracks(rng, v, t, gh, gw, stride=32.0):
    """Grid-anchored random walks ``[V, T, N, 2]`` float32 px, and a noisy copy as the "prediction"."""
    ys, xs = np.meshgrid(np.arange(gh) * stride, np.arange(gw) * stride, indexing="ij")
    q = np.stack([xs.ravel(), ys.ravel()], -1).astype(np.float32)
    gt = q + rng.normal(0, 1.5, (v, t, gh * gw, 2)).astype(np.float32).cumsum(1)
    return gt, gt + rng.normal(0, 2.0, gt.shape).astype(np.float32)


CLOCK = time.perf_counter  # --cpu-time: time.process_time (this process's CPU seconds: steadier on a loaded machine)


def best_of(fn, repeats):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = CLOCK()
        out = fn()
        best = min(best, CLOCK() - t0)
    return best, out


def interleaved(fns, repeats):
    """Best time of each function, the functions alternating within every round; and their last outputs."""
    best, outs = [float("inf")] * len(fns), [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = CLOCK()
            outs[i] = fn()
            best[i] = min(best[i], CLOCK() - t0)
    return best, outs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=40, help="videos for the official and evaluate comparisons")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--table-clips", type=int, default=0, help="also time every metric on this many videos")
    parser.add_argument("--cpu-time", action="store_true",
                        help="time with this process's CPU seconds (time.process_time) instead of wall seconds")
    args = parser.parse_args()
    global CLOCK
    if args.cpu_time:
        CLOCK = time.process_time
    rng = np.random.default_rng(0)
    t, gh, gw, grid = 81, 15, 26, (15, 26)
    gt, pred = random_tracks(rng, args.clips, t, gh, gw)
    vis = rng.random(gt.shape[:-1]) > 0.05
    print(f"{args.clips} videos x {t} frames, 15x26 grid, numpy {np.__version__}, {os.cpu_count()} CPU cores, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {'CPU' if args.cpu_time else 'wall'} seconds\n")

    cases = [
        ("FVMD (16-frame clips, stride 15, GT-visibility masked)",
         lambda: official_fvmd(pred, gt, vis, grid, 16, 15),
         lambda: (lambda r: (r.velocity, r.acceleration, r.combined))(
             fvmd(pred, gt, prediction_visibility=vis, reference_visibility=vis, grid_shape=grid, clip_len=16, clip_stride=15))),
        ("FVMD (16-frame clips, stride 1)",
         lambda: official_fvmd(pred, gt, vis, grid, 16, 1),
         lambda: (lambda r: (r.velocity, r.acceleration, r.combined))(
             fvmd(pred, gt, prediction_visibility=vis, reference_visibility=vis, grid_shape=grid, clip_len=16, clip_stride=1))),
        ("FlowTV", lambda: official_flow_tv(pred, vis, grid, 32.0), lambda: flow_tv(pred, vis, grid_shape=grid, grid_stride=32).value),
        ("DivCurlE", lambda: official_div_curl(pred, vis, grid, 32.0),
         lambda: div_curl_energy(pred, vis, grid_shape=grid, grid_stride=32).value),
        ("VEPE", lambda: official_vepe(pred, gt, vis), lambda: vepe(pred, gt, vis)),
    ]
    print("| metric | official loops (s) | this package (s) | speed-up | value (official) | max abs. difference | "
          "max rel. difference |")
    print("|---|---|---|---|---|---|---|")
    for name, official, ours in cases:
        # cheap calls get more rounds: the best of a few is noisy on a shared machine
        (t_off, t_ours), (v_off, v_ours) = interleaved([official, ours], args.repeats * (1 if "FVMD" in name else 5))
        a, b = np.atleast_1d(np.asarray(v_off, np.float64)), np.atleast_1d(np.asarray(v_ours, np.float64))
        diff = np.abs(a - b)
        rel = float(np.max(diff / np.maximum(np.abs(a), 1e-300)))
        shown = ", ".join(f"{x:.6g}" for x in a)
        print(f"| {name} | {t_off:.3f} | {t_ours:.4f} | {t_off / t_ours:.1f}x | {shown} | {diff.max():.1e} | {rel:.1e} |",
              flush=True)

    import evaluate

    from trajloom_hf.metrics.evaluate_modules import metric_path

    os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
    modules = [
        ("fvmd", dict(predictions=pred, references=gt, prediction_visibility=vis, reference_visibility=vis, grid_shape=grid),
         lambda: fvmd(pred, gt, prediction_visibility=vis, reference_visibility=vis, grid_shape=grid)),
        ("fvmd_long", dict(predictions=pred, references=gt, prediction_visibility=vis, reference_visibility=vis, grid_shape=grid),
         lambda: fvmd_long(pred, gt, prediction_visibility=vis, reference_visibility=vis, grid_shape=grid)),
        ("flow_tv", dict(predictions=pred, visibility=vis, grid_shape=grid, grid_stride=32),
         lambda: flow_tv(pred, vis, grid_shape=grid, grid_stride=32)),
        ("div_curl_energy", dict(predictions=pred, visibility=vis, grid_shape=grid, grid_stride=32),
         lambda: div_curl_energy(pred, vis, grid_shape=grid, grid_stride=32)),
        ("vepe", dict(predictions=pred, references=gt, visibility=vis), lambda: vepe(pred, gt, vis)),
        ("min_ade", dict(predictions=np.stack([pred, gt], 1), references=gt, visibility=vis),
         lambda: displacement_errors(np.stack([pred, gt], 1), gt, vis)),
    ]
    print("\n| evaluate module | evaluate compute (s) | library call (s) | overhead |")
    print("|---|---|---|---|")
    for name, kwargs, library in modules:
        module = evaluate.load(metric_path(name))
        if name in ("flow_tv", "div_curl_energy"):
            kwargs = dict(kwargs)
        (t_mod, t_lib), _ = interleaved([lambda: module.compute(**kwargs), library], args.repeats * 3)
        print(f"| {name} | {t_mod:.3f} | {t_lib:.3f} | {100 * (t_mod / t_lib - 1):+.0f} % |", flush=True)

    if args.table_clips:
        v = args.table_clips
        gt, pred = random_tracks(rng, v, t, gh, gw)
        vis = rng.random(gt.shape[:-1]) > 0.05
        gt20, pred20 = random_tracks(rng, v, t, 20, 20)
        table = [
            ("FVMD trajectory (16-frame clips, stride 1, masked; 15x26)",
             lambda: fvmd(pred, gt, prediction_visibility=vis, reference_visibility=vis, grid_shape=grid)),
            ("FVMD trajectory (16-frame clips, stride 15, masked; 15x26)",
             lambda: fvmd(pred, gt, prediction_visibility=vis, reference_visibility=vis, grid_shape=grid, clip_stride=15)),
            ("FVMD official (16-frame clips, stride 1; 20x20)", lambda: fvmd(pred20, gt20, mode="official")),
            ("FVMD-Long (one 81-frame clip per video)",
             lambda: fvmd_long(pred, gt, prediction_visibility=vis, reference_visibility=vis, grid_shape=grid)),
            ("FlowTV", lambda: flow_tv(pred, vis, grid_shape=grid, grid_stride=32)),
            ("DivCurlE", lambda: div_curl_energy(pred, vis, grid_shape=grid, grid_stride=32)),
            ("VEPE", lambda: vepe(pred, gt, vis)),
            ("minADE / minFDE (K = 4)", lambda: displacement_errors(np.stack([pred, pred + 1.0, pred - 1.0, gt], 1), gt, vis)),
        ]
        print(f"\n{v} videos x {t} frames\n\n| metric | clips | seconds |\n|---|---|---|")
        for name, fn in table:
            sec, out = best_of(fn, 1)
            print(f"| {name} | {getattr(out, 'num_clips', v)} | {sec:.2f} |", flush=True)
    print(f"\npeak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.1f} GiB")


if __name__ == "__main__":
    main()
