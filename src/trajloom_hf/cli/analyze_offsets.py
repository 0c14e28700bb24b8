"""``trajloom analyze-offsets``: how much coordinate variance the grid location explains (paper App. B.1, Fig. 3b).

Reads clips from a TrajLoomBench folder (``--bench``) or generates synthetic clips, then prints the table of
:func:`trajloom_hf.location_bias.location_variance_explained` for absolute coordinates and Grid-Anchor offsets.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bench", default=None, help="TrajLoomBench folder (default: generate synthetic clips)")
    parser.add_argument("--config", default="synthetic", help="dataset config name, with --bench")
    parser.add_argument("--split", default="test", help="dataset split, with --bench")
    parser.add_argument("--num-clips", type=int, default=128, help="clips to analyse (paper: 128)")
    parser.add_argument("--height", type=int, default=240, help="synthetic frame height (px)")
    parser.add_argument("--width", type=int, default=416, help="synthetic frame width (px)")
    parser.add_argument("--stride", type=int, default=16, help="synthetic grid stride (px)")
    parser.add_argument("--frames", type=int, default=81, help="synthetic frames per clip")
    parser.add_argument("--seed", type=int, default=0, help="first synthetic seed")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm.auto import tqdm

    from ..location_bias import location_variance_explained

    if args.num_clips < 1:
        raise ValueError(f"`--num-clips` must be >= 1, got {args.num_clips}")
    if args.bench:
        from ..data.trajloombench import load_trajloombench

        ds = load_trajloombench(args.bench, args.config, args.split)
        n = min(args.num_clips, len(ds))
        rows = [ds[i] for i in range(n)]
        tracks = np.stack([r["tracks"] for r in rows]).astype(np.float32)
        vis = np.stack([r["visibility"] for r in rows]).astype(bool)
        height, width, stride = int(rows[0]["height"]), int(rows[0]["width"]), int(rows[0]["stride"])
        source = f"{args.bench} ({args.config}/{args.split}, {n} clips)"
    else:
        from ..data.synthetic import SceneConfig, generate_clip

        cfg = SceneConfig(height=args.height, width=args.width, num_frames=args.frames, stride=args.stride, render=False)
        clips = [generate_clip(args.seed + i, cfg) for i in tqdm(range(args.num_clips), desc="synthetic clips")]
        tracks = np.stack([c.tracks for c in clips])
        vis = np.stack([c.visibility for c in clips])
        height, width, stride = args.height, args.width, args.stride
        source = f"synthetic ({args.num_clips} clips, {height}x{width}, stride {stride}, {args.frames} frames)"
    result = location_variance_explained(tracks, vis, height, width, stride)
    print(f"Location bias, {source}")
    print(result.table())
    return 0
