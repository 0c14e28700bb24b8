"""Time of every metric on 1,000 clips of 81 frames on a 15x26 grid (stride 32 px), as in the issue.

    python benchmarks/bench_metrics.py [--clips 1000]
"""

import argparse
import time

import numpy as np

from trajloom_hf.metrics import displacement_errors, div_curl_energy, flow_tv, fvmd, fvmd_long, vepe


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    v, t, gh, gw = args.clips, 81, 15, 26
    ys, xs = np.meshgrid(np.arange(gh) * 32.0, np.arange(gw) * 32.0, indexing="ij")
    q = np.stack([xs.ravel(), ys.ravel()], -1)
    gt = (q[None, None] + rng.normal(0, 1.5, (v, t, gh * gw, 2)).cumsum(1)).astype(np.float32)
    pred = gt + rng.normal(0, 2.0, gt.shape).astype(np.float32)
    vis = rng.random(gt.shape[:-1]) > 0.05
    samples = np.stack([pred, pred + 1.0, pred - 1.0, gt], 1)  # K = 4
    cases = [
        ("FVMD trajectory (16-frame clips, stride 15)", lambda: fvmd(pred, gt, prediction_visibility=vis, reference_visibility=vis,
                                                                    grid_shape=(gh, gw), clip_len=16, clip_stride=15)),
        ("FVMD-Long (one 81-frame clip per video)", lambda: fvmd_long(pred, gt, prediction_visibility=vis,
                                                                     reference_visibility=vis, grid_shape=(gh, gw))),
        ("FlowTV", lambda: flow_tv(pred, vis, grid_shape=(gh, gw), grid_stride=32)),
        ("DivCurlE", lambda: div_curl_energy(pred, vis, grid_shape=(gh, gw), grid_stride=32)),
        ("VEPE", lambda: vepe(pred, gt, vis)),
        ("minADE / minFDE (K = 4)", lambda: displacement_errors(samples, gt, vis)),
    ]
    print(f"| metric ({v} clips, {t} frames, {gh}x{gw} grid) | seconds |")
    print("|---|---|")
    for name, fn in cases:
        t0 = time.perf_counter()
        fn()
        print(f"| {name} | {time.perf_counter() - t0:.2f} |")


if __name__ == "__main__":
    main()
