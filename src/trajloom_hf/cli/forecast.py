"""``trajloom forecast``: a video (and optionally its tracks) in, sampled future tracks out, with pictures.

    trajloom forecast clip.mp4 --pipeline out/pipeline --num-samples 3 --out forecast/
    trajloom forecast clip.mp4 --pipeline out/pipeline --tracks clip.npz --tracks-key tracks --layout TN --out f/

The history is the first ``--history-frames`` frames (default: the pipeline's VAE segment length), resized to the
pipeline's frame size. Without ``--tracks`` the history is tracked with the embedded tracker on the pipeline's
query grid. Writes ``forecast.npz`` (future tracks ``[S, T_f, N, 2]`` px, visibility, probabilities, history),
``meta.json``, ``forecast.mp4``/``forecast.gif`` (history, then the futures drawn on the last frame) and a PNG
montage; ``--official-layout`` also writes ``official/`` (``pred_tracks.npy``, ...) for the official scripts.
Everything goes to a temporary folder first and is moved into ``--out`` only when complete.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="input video file")
    parser.add_argument("--pipeline", required=True, help="TrajLoomPipeline folder")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--tracks", default=None, help=".npz with history tracks (default: track the video)")
    parser.add_argument("--tracks-key", default=None, help="array name of the tracks (default: official names)")
    parser.add_argument("--visibility-key", default=None, help="array name of the visibility")
    parser.add_argument("--layout", default="NT", choices=["NT", "TN"], help="tracks array layout [N,T,2] or [T,N,2]")
    parser.add_argument("--axis-order", default="xy", choices=["xy", "yx"])
    parser.add_argument("--caption", default=None, help="caption for text conditioning (needs a text encoder)")
    parser.add_argument("--history-frames", type=int, default=None, help="default: the pipeline's VAE num_frames")
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--solver", default="euler", choices=["euler", "heun", "dopri5"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fps", type=float, default=16.0)
    parser.add_argument("--official-layout", action="store_true", help="also write the official per-video files")


def run(args: argparse.Namespace) -> int:
    import json
    import os
    import shutil
    import tempfile
    from pathlib import Path

    import numpy as np
    import torch

    from ..pipelines import TrajLoomPipeline
    from ..rendering import montage, render_forecast
    from ..track_files import read_track_file, write_official_layout
    from ..video_io import read_video, resize_video, save_png, write_gif, write_video

    if not Path(args.pipeline, "model_index.json").is_file():
        raise FileNotFoundError(f"`--pipeline` {args.pipeline!r} is not a pipeline folder (no model_index.json)")
    pipe = TrajLoomPipeline.from_pretrained(args.pipeline)
    h, w = pipe.frame_size
    t_h = args.history_frames or pipe.history_frames
    if t_h < pipe.history_frames:
        raise ValueError(f"`--history-frames` {t_h} is shorter than the pipeline's {pipe.history_frames}")
    frames, fps_in = read_video(args.video, max_frames=t_h)
    if frames.shape[0] < t_h:
        raise ValueError(f"`video` has {frames.shape[0]} frames, the history needs {t_h}")
    src_h, src_w = frames.shape[1:3]
    frames = resize_video(frames, h, w)
    query = pipe.query_grid()
    if args.tracks:
        tracks, vis = read_track_file(args.tracks, tracks_key=args.tracks_key, visibility_key=args.visibility_key,
                                      layout=args.layout, axis_order=args.axis_order)
        if tracks.shape[0] < t_h:
            raise ValueError(f"`--tracks` has {tracks.shape[0]} frames, the history needs {t_h}")
        if tracks.shape[1] != len(query):
            raise ValueError(f"`--tracks` has N={tracks.shape[1]} points; the pipeline grid has N={len(query)}")
        if (src_h, src_w) != (h, w):  # tracks are in the video's pixels: rescale with the frames
            scale = np.array([w / src_w, h / src_h], np.float32)
            tracks = (tracks + 0.5) * scale - 0.5
        tracks, vis, source = tracks[:t_h], vis[:t_h], f"file {args.tracks}"
    else:
        from ..tracking import get_tracker

        tracker = get_tracker("auto")
        tracks, vis = tracker.track(frames, query)
        source = f"tracker {tracker.name}"
    out = pipe(tracks, vis, prompt=args.caption, num_samples=args.num_samples, num_inference_steps=args.steps,
               solver=args.solver, generator=[torch.Generator().manual_seed(args.seed)])
    fut, fvis = out.future_tracks[0], out.future_visibility[0]
    prob = None if out.visibility_prob is None else out.visibility_prob[0]

    final = Path(args.out)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        arrays = dict(future_tracks=fut, future_visibility=fvis, history_tracks=tracks, history_visibility=vis,
                      query_xy=query)
        if prob is not None:
            arrays["future_visibility_prob"] = prob
        np.savez_compressed(tmp / "forecast.npz", **arrays)
        meta = dict(video=os.path.abspath(args.video), pipeline=os.path.abspath(args.pipeline), height=h, width=w,
                    source_size=[src_h, src_w], fps=fps_in, history_frames=t_h, future_frames=int(fut.shape[1]),
                    num_samples=args.num_samples, steps=args.steps, solver=args.solver, seed=args.seed,
                    caption=args.caption, history_tracks_from=source, grid_stride=pipe.vae.config.patch_size,
                    num_points=int(len(query)))
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        video = render_forecast(frames, tracks, vis, fut, fvis, labels=[f"sample {k + 1}" for k in range(len(fut))],
                                history_stride=max(1, t_h // 40))
        write_video(tmp / "forecast.mp4", video, args.fps)
        write_gif(tmp / "forecast.gif", video[::2], args.fps / 2)
        save_png(tmp / "forecast_montage.png", montage(video, 3))
        if args.official_layout:
            write_official_layout(tmp / "official", pred_tracks=fut[0], pred_visibility=fvis[0], query_xy=query,
                                  pred_visibility_prob=None if prob is None else prob[0],
                                  meta={**meta, "pred_len": int(fut.shape[1]), "cond_index": t_h})
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"wrote {final.resolve()}: forecast.npz, meta.json, forecast.mp4/.gif, forecast_montage.png")
    return 0
