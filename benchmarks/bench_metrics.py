"""Time of every metric on 1,000 clips (videos) of 81 frames on a 15x26 grid (stride 32 px), numpy on the CPU.

FVMD official runs on a 20x20 grid (the package's square grid) with its 16-frame clips at stride 1; FVMD trajectory
uses the paper's setting (16-frame clips, stride 1, visibility-masked). Both windowings give 66 clips per video.

    python benchmarks/bench_metrics.py [--clips 1000]
"""

import argparse
import os
import resource
import time

import numpy as np

from trajloom_hf.metrics import (
    displacement_errors,
    div_curl_energy,
    flow_tv,
    fvmd,
    fvmd_long,
    vepe,
)


def random_tracks(rng, v, t, gh, gw, stride=32.0):
    """Grid-anchored random walks ``[V, T, N, 2]`` float32 px, and a noisy copy as the "prediction"."""
    ys, xs = np.meshgrid(np.arange(gh) * stride, np.arange(gw) * stride, indexing="ij")
    q = np.stack([xs.ravel(), ys.ravel()], -1).astype(np.float32)
    gt = q + rng.normal(0, 1.5, (v, t, gh * gw, 2)).astype(np.float32).cumsum(1)
    return gt, gt + rng.normal(0, 2.0, gt.shape).astype(np.float32)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    v, t, gh, gw = args.clips, 81, 15, 26
    gt, pred = random_tracks(rng, v, t, gh, gw)
    vis = rng.random(gt.shape[:-1]) > 0.05
    gt20, pred20 = random_tracks(rng, v, t, 20, 20)
    cases = [
        ("FVMD trajectory (16-frame clips, stride 1, masked; 15x26)",
         lambda: fvmd(pred, gt, prediction_visibility=vis, reference_visibility=vis, grid_shape=(gh, gw))),
        ("FVMD official (16-frame clips, stride 1; 20x20)", lambda: fvmd(pred20, gt20, mode="official")),
        ("FVMD-Long (one 81-frame clip per video)",
         lambda: fvmd_long(pred, gt, prediction_visibility=vis, reference_visibility=vis, grid_shape=(gh, gw))),
        ("FlowTV", lambda: flow_tv(pred, vis, grid_shape=(gh, gw), grid_stride=32)),
        ("DivCurlE", lambda: div_curl_energy(pred, vis, grid_shape=(gh, gw), grid_stride=32)),
        ("VEPE", lambda: vepe(pred, gt, vis)),
        ("minADE / minFDE (K = 4)",
         lambda: displacement_errors(np.stack([pred, pred + 1.0, pred - 1.0, gt], 1), gt, vis)),
    ]
    print(f"{v} videos x {t} frames, numpy {np.__version__}, {os.cpu_count()} CPU cores\n")
    print("| metric | clips | seconds |")
    print("|---|---|---|")
    for name, fn in cases:
        t0 = time.perf_counter()
        out = fn()
        clips = getattr(out, "num_clips", v)
        print(f"| {name} | {clips} | {time.perf_counter() - t0:.2f} |", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"\npeak resident memory: {peak:.1f} GiB")


if __name__ == "__main__":
    main()
