"""``trajloom synth``: generate synthetic clips with ground-truth tracks, save them and render them.

Writes per clip ``<out>/clip_<seed>.npz`` (tracks [T, N, 2] px, visibility [T, N], query_xy, caption),
``clip_<seed>.mp4`` (the frames), ``clip_<seed>_tracks.gif`` (tracks drawn over the frames) and a PNG montage.
Existing outputs are kept, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--num-clips", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="first seed")
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--width", type=int, default=416)
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--stride", type=int, default=16)
    parser.add_argument("--camera-motion", default="random")
    parser.add_argument("--fps", type=float, default=16.0)


def run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    import math

    # every check before the first file is written (and before the heavy imports: the error answers at once)
    if args.num_clips < 1:
        raise ValueError(f"`--num-clips` must be >= 1, got {args.num_clips}")
    if not math.isfinite(args.fps) or args.fps <= 0:
        raise ValueError(f"`--fps` must be a positive number, got {args.fps}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"`--out` {args.out!r} exists and is not a folder")

    import numpy as np
    from tqdm.auto import tqdm

    from ..data.synthetic import SceneConfig, generate_clip
    from ..rendering import montage, render_tracks
    from ..video_io import atomic_path, save_png, write_gif, write_video
    cfg = SceneConfig(height=args.height, width=args.width, num_frames=args.frames, stride=args.stride,
                      camera_motion=args.camera_motion)  # checks every scene setting
    out.mkdir(parents=True, exist_ok=True)
    for seed in tqdm(range(args.seed, args.seed + args.num_clips), desc="synthetic clips"):
        stem = out / f"clip_{seed:06d}"
        if os.path.exists(f"{stem}_montage.png"):  # written last: the clip is complete
            continue
        clip = generate_clip(seed, cfg)
        with atomic_path(f"{stem}.npz", ".npz") as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, tracks=clip.tracks, visibility=clip.visibility, query_xy=clip.query_xy,
                                    caption=np.array(clip.caption), camera_motion=np.array(clip.camera_motion))
        write_video(f"{stem}.mp4", clip.frames, args.fps)
        drawn = render_tracks(clip.frames, clip.tracks, clip.visibility)
        write_gif(f"{stem}_tracks.gif", drawn[::2], args.fps / 2)
        save_png(f"{stem}_montage.png", montage(drawn, 3))
    print(f"wrote {args.num_clips} clips to {out.resolve()}")
    return 0
