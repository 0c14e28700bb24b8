"""Throughput of the synthetic scene generator (issue target: >= 2 clips/s per core at 240x416, 162 frames).

    python benchmarks/bench_synthetic.py [--clips 10]

OpenCV is pinned to one thread so the number is per core.
"""

import argparse
import time

import cv2

from trajloom_hf.data.synthetic import SceneConfig, generate_clip


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=10)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    rows = []
    for stride in (8, 16):  # 240x416 is not a multiple of 32; stride 16 gives the paper's 15x26 grid
        for render in (True, False):
            cfg = SceneConfig(height=240, width=416, num_frames=162, stride=stride, render=render)
            generate_clip(0, cfg)  # warm-up
            t0 = time.perf_counter()
            for seed in range(args.clips):
                generate_clip(seed, cfg)
            dt = time.perf_counter() - t0
            rows.append((stride, "frames+tracks" if render else "tracks only", args.clips / dt, dt / args.clips))
    print("| 240x416, 162 frames | output | clips/s per core | s/clip |")
    print("|---|---|---|---|")
    for stride, what, rate, sec in rows:
        print(f"| stride {stride} | {what} | {rate:.2f} | {sec:.3f} |")


if __name__ == "__main__":
    main()
