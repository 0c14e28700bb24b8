"""Accuracy and speed of the embedded optical-flow tracker against synthetic ground truth.

    python benchmarks/bench_tracker.py [--clips 6] [--frames 81] [--method dis|farneback]

Per camera motion: median / mean end-point error (px) over GT-visible points, visibility accuracy, frames/s.
"""

import argparse
import time

import numpy as np

from trajloom_hf.camera_motion import CAMERA_MOTIONS
from trajloom_hf.data.synthetic import SceneConfig, generate_clip
from trajloom_hf.tracking import OpticalFlowTracker


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=3, help="clips per camera motion")
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=416)
    parser.add_argument("--method", choices=("dis", "farneback"), default="dis", help="dense optical flow")
    args = parser.parse_args()
    tracker = OpticalFlowTracker(method=args.method)
    print(f"optical flow: {args.method}")
    print(f"| camera motion | median EPE (px) | mean EPE (px) | visibility acc. | frames/s |  ({args.height}x{args.width}, "
          f"{args.frames} frames, stride 16, {args.clips} clips each)")
    print("|---|---|---|---|---|")
    all_err, all_acc = [], []
    for motion in CAMERA_MOTIONS:
        errs, accs, frames, secs = [], [], 0, 0.0
        for seed in range(args.clips):
            clip = generate_clip(seed, SceneConfig(height=args.height, width=args.width, num_frames=args.frames,
                                                   stride=16, camera_motion=motion))
            t0 = time.perf_counter()
            tracks, vis = tracker.track(clip.frames, clip.query_xy)
            secs += time.perf_counter() - t0
            frames += args.frames
            errs.append(np.linalg.norm(tracks - clip.tracks, axis=-1)[clip.visibility])
            accs.append((vis == clip.visibility).mean())
        e = np.concatenate(errs)
        all_err.append(e), all_acc.extend(accs)
        print(f"| {motion} | {np.median(e):.2f} | {e.mean():.2f} | {np.mean(accs):.3f} | {frames / secs:.1f} |")
    e = np.concatenate(all_err)
    print(f"| **all** | {np.median(e):.2f} | {e.mean():.2f} | {np.mean(all_acc):.3f} | |")


if __name__ == "__main__":
    main()
