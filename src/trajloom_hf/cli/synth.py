"""``trajloom synth``: generate synthetic clips with ground-truth tracks, save them and render them.

Writes per clip ``<out>/clip_<seed>.npz`` (tracks [T, N, 2] px, visibility [T, N], query_xy, caption),
``clip_<seed>.mp4`` (the frames), ``clip_<seed>_tracks.gif`` (tracks drawn over the frames) and a PNG montage,
and ``synth_manifest.json``, which lists every file synth wrote there and the settings of each complete clip
(:mod:`trajloom_hf.output_folder`). A complete clip with the same settings is kept, so an interrupted run resumes
where it stopped; one with other settings is replaced. A ``clip_*`` file synth did not write is never replaced: the
run is refused before anything is written.
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


MANIFEST = "synth_manifest.json"
OWNER = "trajloom synth"
SUFFIXES = (".npz", ".mp4", "_tracks.gif", "_montage.png")


def run(args: argparse.Namespace) -> int:
    import math

    from ..output_folder import OutputFolder

    # every check before the first file is written (and before the heavy imports: the error answers at once)
    if args.num_clips < 1:
        raise ValueError(f"`--num-clips` must be >= 1, got {args.num_clips}")
    if not math.isfinite(args.fps) or args.fps <= 0:
        raise ValueError(f"`--fps` must be a positive number, got {args.fps}")
    folder = OutputFolder(args.out, manifest=MANIFEST, owner=OWNER)
    seeds = range(args.seed, args.seed + args.num_clips)
    stems = {seed: f"clip_{seed:06d}" for seed in seeds}
    folder.check([stem + s for stem in stems.values() for s in SUFFIXES])  # refuses clip files synth did not write

    import numpy as np
    from tqdm.auto import tqdm

    from ..data.synthetic import SceneConfig, generate_clip
    from ..rendering import montage, render_tracks
    from ..video_io import save_png, write_gif, write_video
    cfg = SceneConfig(height=args.height, width=args.width, num_frames=args.frames, stride=args.stride,
                      camera_motion=args.camera_motion)  # checks every scene setting
    settings = dict(height=args.height, width=args.width, frames=args.frames, stride=args.stride,
                    camera_motion=args.camera_motion, fps=float(args.fps))
    clips = folder.previous_manifest().get("clips")
    clips = dict(clips) if isinstance(clips, dict) else {}  # stem -> settings of each complete clip
    own = folder.previous_files()
    written = 0
    with folder.staging() as tmp:
        for seed in tqdm(seeds, desc="synthetic clips"):
            stem = stems[seed]
            names = [stem + s for s in SUFFIXES]
            if clips.get(stem) == settings and all(n in own and (folder.folder / n).is_file() for n in names):
                continue  # complete, same settings: resume
            clips.pop(stem, None)
            clip = generate_clip(seed, cfg)
            with open(tmp / f"{stem}.npz", "wb") as fh:
                np.savez_compressed(fh, tracks=clip.tracks, visibility=clip.visibility, query_xy=clip.query_xy,
                                    caption=np.array(clip.caption), camera_motion=np.array(clip.camera_motion))
            write_video(tmp / f"{stem}.mp4", clip.frames, args.fps)
            drawn = render_tracks(clip.frames, clip.tracks, clip.visibility)
            write_gif(tmp / f"{stem}_tracks.gif", drawn[::2], args.fps / 2)
            save_png(tmp / f"{stem}_montage.png", montage(drawn, 3))
            folder.check(names)  # nothing foreign appeared meanwhile
            # the files first (listed as synth's, the clip not yet complete), then the clip's entry: an interrupted
            # commit leaves a clip the next run regenerates
            folder.commit(tmp, {"clips": clips}, keep_previous=True)
            clips[stem] = settings
            folder.commit(tmp, {"clips": clips}, keep_previous=True)
            written += 1
    print(f"wrote {written} clips ({args.num_clips - written} kept from an earlier run) to {folder.folder}")
    return 0
