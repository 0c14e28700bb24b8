"""``trajloom bench build``: build (or resume) one config of TrajLoomBench as Parquet shards + a dataset card.

    trajloom bench build --source synthetic --out trajloombench --config synthetic --num-train 64 --num-test 16
    trajloom bench build --source physics --out trajloombench --config physics --height 96 --width 160 --stride 16
    trajloom bench build --source physics --camera moving --tracker optical_flow --out trajloombench --config physics_camera
    trajloom bench build --source tapvid --input tapvid_davis.pkl --out trajloombench --config davis \
        --history-frames 24 --future-frames 24
    trajloom bench build --source trajloom-official --input kubric_alltracker_s32/ --out trajloombench --config kubric
    trajloom bench build --source videos --input my_videos/ --out trajloombench --config mine

TAP-Vid pickles are read with a restricted unpickler that loads numpy arrays, dicts, lists, strings and numbers
only: a file that names anything else (a pickle can run code while it loads) is refused unless --trust-pickle.
TAP-Vid .npz files (video, points or target_points, occluded; one video each) are read without unpickling.
--out must be new, empty, or an earlier TrajLoomBench build: the build rewrites README.md and prunes
data/<config>/, so a folder holding other files there is refused.
"""

from __future__ import annotations

import argparse
import shlex
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="bench_command", metavar="ACTION", required=True)
    b = sub.add_parser("build", help="build or resume a config", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--source", required=True, choices=["synthetic", "physics", "tapvid", "trajloom-official", "videos"])
    b.add_argument("--out", required=True, help="dataset folder")
    b.add_argument("--config", required=True, help="config name (a folder under data/)")
    b.add_argument("--input", default=None, help="input file/folder (all sources but synthetic and physics)")
    b.add_argument("--split", default="test", help="split for non-synthetic sources")
    b.add_argument("--num-train", type=int, default=64)
    b.add_argument("--num-validation", type=int, default=8)
    b.add_argument("--num-test", type=int, default=16)
    b.add_argument("--height", type=int, default=480)
    b.add_argument("--width", type=int, default=832)
    b.add_argument("--history-frames", type=int, default=81)
    b.add_argument("--future-frames", type=int, default=81)
    b.add_argument("--stride", type=int, default=32)
    b.add_argument("--fps", type=float, default=16.0)
    b.add_argument("--shard-size", type=int, default=32)
    b.add_argument("--seed", type=int, default=0, help="first synthetic/physics seed")
    b.add_argument("--camera", default=None, choices=["static", "moving"],
                   help="physics: a static camera (MOVi-A, default) or a moving one (MOVi-E style)")
    b.add_argument("--launch", action="store_true",
                   help="physics: a launch scene: objects at rest through the history, pushed at the forecast start the "
                        "way their colour points (the future is written only in the appearance)")
    b.add_argument("--tracks-key", default=None, help="trajloom-official: npz key of the [N, T, 2] tracks")
    b.add_argument("--visibility-key", default=None, help="trajloom-official: npz key of the [N, T] visibility")
    b.add_argument("--axis-order", default="xy", choices=["xy", "yx"], help="trajloom-official: order of the last dim")
    b.add_argument("--trust-pickle", action="store_true",
                   help="tapvid: load the .pkl with plain pickle (runs any code the file names; trusted files only). "
                        "Without it only numpy arrays, dicts, lists, strings and numbers are read")
    b.add_argument("--tracker", default=None,
                   help="videos: tracker name (trajloom_hf.tracking.get_tracker; default auto). synthetic: 'analytic' "
                        "(exact scene geometry, default) or a tracker name to track the rendered frames, as the paper "
                        "does for all data (§4.1.2). physics: 'exact' (simulated geometry, default) or a tracker name")


def run(args: argparse.Namespace) -> int:
    from ..data.trajloombench import BenchSettings, build_trajloombench

    settings = BenchSettings(height=args.height, width=args.width, history_frames=args.history_frames,
                             future_frames=args.future_frames, stride=args.stride, fps=args.fps, shard_size=args.shard_size)
    kwargs = {}
    if args.source == "trajloom-official":
        kwargs = dict(tracks_key=args.tracks_key, visibility_key=args.visibility_key, axis_order=args.axis_order)
    elif args.source == "tapvid":
        kwargs = dict(trust_pickle=True) if args.trust_pickle else {}
    elif args.source == "videos":
        kwargs = dict(tracker=args.tracker or "auto")
    elif args.source == "synthetic" and args.tracker not in (None, "analytic"):
        kwargs = dict(tracks=args.tracker)  # analytic stays the implicit default (benches built before keep resuming)
    elif args.source == "physics":
        kwargs = {"camera": args.camera or "static"}
        if args.tracker not in (None, "exact"):
            kwargs["tracks"] = args.tracker
        if args.launch:  # only when asked: configs built before the option keep their build identity
            kwargs["launch"] = True
    for option, given in (("--camera", args.camera is not None), ("--launch", args.launch)):
        if given and args.source != "physics":
            print(f"trajloom bench: error: {option} is an option of --source physics, not of {args.source!r}",
                  file=sys.stderr)
            return 2
    from ..data.physics.gl import GLUnavailableError

    try:
        manifest = build_trajloombench(
            args.source, args.out, args.config, settings=settings, split=args.split,
            counts={"train": args.num_train, "validation": args.num_validation, "test": args.num_test},
            input_path=args.input, seed=args.seed, source_kwargs=kwargs, command=build_command(args),
        )
    except GLUnavailableError as err:  # nothing was written: say what to install
        print(f"trajloom bench: error: {err}", file=sys.stderr)
        return 1
    print(f"{args.out}: config {args.config!r} " + ", ".join(f"{k}={v}" for k, v in manifest["counts"].items()) + " clips")
    for clip_id, why in manifest["skipped"].items():
        print(f"  skipped {clip_id}: {why}")
    if not any(manifest["counts"].values()):
        print(f"trajloom: error: no clip could be built for config {args.config!r} (see the skipped inputs above)",
              file=sys.stderr)
        return 1
    return 0


def build_command(args: argparse.Namespace) -> str:
    """The exact command, every option spelled out (the card records it; defaults may change between versions)."""
    parts = ["trajloom", "bench", args.bench_command]
    for key, value in vars(args).items():
        if key.startswith("_") or key in ("command", "bench_command", "debug") or value is None or value is False:
            continue
        parts += [f"--{key.replace('_', '-')}"] + ([] if value is True else [str(value)])
    return shlex.join(parts)
