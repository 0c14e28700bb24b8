"""``trajloom forecast``: a video (and optionally its tracks) in, sampled future tracks out, with pictures.

    trajloom forecast clip.mp4 --pipeline out/pipeline --num-samples 3 --out forecast/
    trajloom forecast clip.mp4 --pipeline out/pipeline --tracks clip.npz --out f/ --official-layout

The history is ``--history-frames`` frames from ``--start-frame`` (default: the pipeline's VAE segment length from
frame 0; if longer, the pipeline uses its last ``vae.config.num_frames``), fitted to the pipeline's frame size by
``--fit``: ``crop`` (default when the video is tracked here) keeps the aspect ratio and cuts the centre, ``pad``
keeps it and adds black bars, ``stretch`` (default with ``--tracks``) resizes the whole frame
(:class:`trajloom_hf.video_io.FrameFit`). Without ``--tracks`` the history is tracked with the embedded tracker
(:func:`trajloom_hf.tracking.get_tracker`) on the pipeline's query grid; a history in which most tracks are lost at
one frame, or whose picture changes at once (a scene cut), gives a warning that names the frame to start from
(:func:`trajloom_hf.tracking.scene_cuts`, :func:`trajloom_hf.tracking.sudden_track_loss`).

Track files (reference §1.1): official TrajLoomDatasets ``.npz`` files hold ``[N, T, 2]`` pixel tracks and ``[N, T]``
visibility; ``--layout``, ``--axis-order``, ``--tracks-key`` / ``--visibility-key`` say how to read other files (no
guessing). Tracks are in pixels of ``--tracks-size`` (default: the video's frame size) and are rescaled with the
frames (``x * W_pipe / W_tracks``, consistent with the ``2 x / W - 1`` normalisation). Unless ``--no-grid-check``,
frame 0 must sit on the pipeline's query grid (official tracks are queried there), which catches a wrong layout,
axis order or frame size. If the file holds frames after the history, they are the ground-truth future.

Writes ``forecast.npz`` (future tracks ``[S, T_f, N, 2]`` px of the pipeline frame, visibility, probabilities,
history; the same tracks in the input video's pixels as ``future_tracks_input_px`` / ``history_tracks_input_px``,
``input = (pipeline - offset_xy) / scale_xy`` with ``meta.json["frame_fit"]``), ``meta.json``,
``forecast.mp4``/``forecast.gif`` (history, then the futures drawn on the last frame), ``forecast_montage.png`` (the
last observed frame, half-way and the end of the future);
``--official-layout`` also writes ``official/`` (``pred_tracks.npy``, ``pred_visibility.npy``,
``pred_visibility_prob.npy``, ``query_xy.npy``, ``grid_idx.npy``, ``gt_tracks.npy`` + ``gt_visibility.npy`` when
the track file has a future, ``meta.json``; sample 1) for the official benchmark scripts. ``--export wan-move``
writes, for each sample, what ``ali-vilab/Wan-Move``'s ``generate.py`` reads (:mod:`trajloom_hf.track_export`):
``wan-move/sample_K_tracks.npy`` float32 ``[1, F, N, 2]`` pixels ``(x, y)`` and ``sample_K_visibility.npy`` bool
``[1, F, N]`` (history then forecast on one time axis, ``F = --wan-move-frames`` = 81; frames past the forecast
hold their last position, not visible), and ``wan-move/first_frame.png``, the image of frame 0 (the same view of
the video as the model's, ``--fit``), at the frame Wan-Move derives for ``--wan-move-size`` (480x832 -> 464x832);
``meta.json["wan_move"]`` holds the ``generate.py`` command line.

``--horizon FRAMES`` forecasts past one window: ``ceil(FRAMES / future_frames)`` windows are rolled out, each
forecast becoming the next window's history (``TrajLoomPipeline(..., num_windows=k)``), and the first ``FRAMES``
frames are kept (a horizon that is not a multiple of the window is rounded up to whole windows, then trimmed;
``meta.json`` records ``num_windows`` and ``window_frames``). The frames of later windows are unknown: a
frame-conditioned pipeline sees the last observed frame held there (``--rollout-video none``: no video context).

``--out`` may be any folder, ``.`` included: the command replaces only the files it writes, each atomically (staged
in a hidden temporary folder inside ``--out``, then moved with ``os.replace``), never deletes or rewrites anything
else and leaves the folder's permissions alone (:mod:`trajloom_hf.output_folder`). ``meta.json`` lists the files
written (``files``, ``written_by``); a later forecast into the same folder replaces those and removes the ones it
does not write again. A file of the same name that no previous forecast listed stops the command before any work.
"""

from __future__ import annotations

import argparse

from ..precision import DTYPE_CHOICES


def _frame_size(text: str):
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH (e.g. 480x832), got {text!r}") from None
    if h <= 0 or w <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive HEIGHTxWIDTH, got {text!r}")
    return h, w


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="input video file")
    parser.add_argument("--pipeline", required=True, help="TrajLoomPipeline folder (save_pretrained output)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--tracks", default=None, help=".npz (or single-array .npy) with history tracks "
                        "(default: track the video)")
    parser.add_argument("--tracks-key", default=None, help="array name of the tracks (default: the official lookup "
                        "order trajectory, trajectories, tracks)")
    parser.add_argument("--visibility-key", default=None, help="array name of the visibility (default: visibility, "
                        "visibilities, vis; if none exists, all visible; names containing 'occ' are inverted)")
    parser.add_argument("--layout", default="NT", choices=["NT", "TN"],
                        help="tracks array layout: NT = [N, T, 2] (official files) or TN = [T, N, 2]")
    parser.add_argument("--axis-order", default="xy", choices=["xy", "yx"], help="coordinate order of the last axis")
    parser.add_argument("--tracks-size", type=_frame_size, default=None, metavar="HxW",
                        help="frame size the track pixels refer to (default: the video's frame size)")
    parser.add_argument("--tracker", default="auto", help="tracker used without --tracks: auto, optical_flow or "
                        "cotracker (see trajloom_hf.tracking.get_tracker)")
    parser.add_argument("--tracker-checkpoint", default=None, help="CoTracker checkpoint (for --tracker cotracker/auto)")
    parser.add_argument("--no-grid-check", action="store_true",
                        help="do not require frame 0 of --tracks to lie on the query grid")
    parser.add_argument("--caption", default=None, help="caption for text conditioning (needs a text encoder; "
                        "default: the empty caption)")
    parser.add_argument("--history-frames", type=int, default=None, help="default: the pipeline's VAE num_frames")
    parser.add_argument("--start-frame", type=int, default=0, help="first video frame of the history (default 0; "
                        "e.g. the frame after a scene cut); with --tracks, the file's frame 0 is this frame")
    parser.add_argument("--fit", default=None, choices=["crop", "pad", "stretch"],
                        help="how the video is fitted to the pipeline's frame size: crop = keep the aspect ratio and "
                        "cut the centre (default when the video is tracked here), pad = keep it and add black bars, "
                        "stretch = resize the whole frame (default with --tracks: track files are queried on a grid "
                        "over the whole frame). Tracks also come back in the video's pixels (*_input_px in "
                        "forecast.npz; the transform in meta.json frame_fit)")
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--horizon", type=int, default=None, metavar="FRAMES",
                        help="future frames to forecast (default: one window, the pipeline's future_frames). Longer "
                        "horizons roll out window after window, each forecast becoming the next history "
                        "(TrajLoomPipeline num_windows); a horizon that is not a multiple of the window runs whole "
                        "windows and keeps the first FRAMES frames. Frames after the video's history are unknown: "
                        "later windows see the last observed frame held (--rollout-video none: no video context)")
    parser.add_argument("--rollout-video", default="hold_last", choices=["hold_last", "none"],
                        help="with --horizon past one window and a frame-conditioned pipeline: the frame conditioning "
                        "of later windows (default hold_last: the last observed frame held)")
    parser.add_argument("--steps", type=int, default=None, help="ODE steps (default 10; 100 with --official-compat)")
    parser.add_argument("--solver", default="euler", choices=["euler", "heun", "dopri5", "dopri5_adaptive"])
    parser.add_argument("--fix-first-latent", action="store_true", default=None,
                        help="hold the first future latent at the last history latent during sampling (the official "
                        "--fix_first_frame; default: the pipeline's scheduler config, off)")
    parser.add_argument("--seed", type=int, default=None, help="noise seed (default 0, drawn on the CPU; with "
                        "--official-compat 42, drawn on the device)")
    parser.add_argument("--official-compat", action="store_true",
                        help="reproduce the official run_trajloom_generator.py choices to check a conversion against "
                             "published outputs: no history visibility to the model, 100 steps, seed 42 drawn on the "
                             "device (add --dtype fp16 on CUDA for its precision); see TrajLoomPipeline")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES,
                        help="dtype of the model trunks; auto: bfloat16 where the device has fast bf16 (CUDA, or a CPU "
                             "with AVX512-BF16/AMX), else float32. Coordinates stay fp32 either way")
    parser.add_argument("--fps", type=float, default=16.0)
    parser.add_argument("--official-layout", action="store_true", help="also write the official per-video files")
    parser.add_argument("--export", action="append", default=[], choices=["wan-move", "comfyui"],
                        help="also write the tracks for a video generator (repeatable): wan-move = for each sample, "
                        "wan-move/sample_K_tracks.npy float32 [1, F, N, 2] px (x, y) and sample_K_visibility.npy bool "
                        "[1, F, N] (history + forecast on one time axis, F frames) and first_frame.png, the picture "
                        "to generate from, as ali-vilab/Wan-Move's generate.py reads them (--image, --track, "
                        "--track_visibility); comfyui = the same tracks as the track_coords JSON of ComfyUI's "
                        "WanMoveTracksFromCoords (comfyui/sample_K_tracks.json, only points visible throughout: the "
                        "format has no visibility) and first_frame.png; pixels of meta.json wan_move.frame_size")
    parser.add_argument("--wan-move-size", type=_frame_size, default=(480, 832), metavar="HxW",
                        help="Wan-Move's --size (default 480x832, the 480p model). Wan-Move derives its frame from the "
                        "image's aspect ratio and this area (a 480x832 image becomes 464x832), so the image and the "
                        "tracks are written at the frame it will use (see trajloom_hf.track_export)")
    parser.add_argument("--wan-move-frames", type=int, default=81, help="frames F of the export (4n + 1; default 81): "
                        "shorter tracks are held and marked not visible, longer ones cut")
    parser.add_argument("--wan-move-from", default="history", choices=["history", "last"],
                        help="frame 0 of the export: history = the first history frame (the query grid; default), "
                        "last = the last observed frame (the generator continues from the newest picture)")


OWNER = "trajloom forecast"
OFFICIAL_FILES = ("pred_tracks.npy", "pred_visibility.npy", "pred_visibility_prob.npy", "query_xy.npy", "grid_idx.npy",
                  "gt_tracks.npy", "gt_visibility.npy", "meta.json")


def output_names(args: argparse.Namespace) -> list:
    """Every file (relative to ``--out``) this run may write, ``meta.json`` (the manifest) excluded."""
    names = ["forecast.npz", "forecast.mp4", "forecast.gif", "forecast_montage.png"]
    if args.official_layout:
        names += [f"official/{n}" for n in OFFICIAL_FILES]
    if "wan-move" in args.export:
        names.append("wan-move/first_frame.png")
        names += [f"wan-move/sample_{k + 1}_{kind}.npy" for k in range(args.num_samples)
                  for kind in ("tracks", "visibility")]
    if "comfyui" in args.export:
        names += ["comfyui/first_frame.png"] + [f"comfyui/sample_{k + 1}_tracks.json" for k in range(args.num_samples)]
    return names


def run(args: argparse.Namespace) -> int:
    import json
    import os
    import warnings
    from pathlib import Path

    import numpy as np
    import torch

    from ..encoding import in_frame
    from ..output_folder import OutputFolder
    from ..pipelines import TrajLoomPipeline
    from ..pipelines.pipeline_trajloom import check_pipeline_folder
    from ..precision import dtype_name, resolve_dtype
    from ..rendering import forecast_keyframes, montage, render_forecast
    from ..track_files import check_query_alignment, read_track_file, write_official_layout
    from ..tracking import scene_cuts, sudden_track_loss
    from ..video_io import FrameFit, read_video, save_png, write_gif, write_video

    from ..pipelines.pipeline_trajloom import OFFICIAL_NOISE_SEED, OFFICIAL_NUM_STEPS

    if args.steps is None:
        args.steps = OFFICIAL_NUM_STEPS if args.official_compat else 10
    seed_given = args.seed is not None
    if not seed_given:
        args.seed = OFFICIAL_NOISE_SEED if args.official_compat else 0
    for name, value in (("--num-samples", args.num_samples), ("--steps", args.steps)):
        if value < 1:
            raise ValueError(f"`{name}` must be >= 1, got {value}")
    if args.horizon is not None and args.horizon < 1:
        raise ValueError(f"`--horizon` must be a positive number of frames, got {args.horizon}")
    if args.history_frames is not None and args.history_frames < 1:
        raise ValueError(f"`--history-frames` must be >= 1, got {args.history_frames}")
    if args.fps <= 0:
        raise ValueError(f"`--fps` must be positive, got {args.fps}")
    if args.start_frame < 0:
        raise ValueError(f"`--start-frame` must be >= 0, got {args.start_frame}")
    fit_mode = args.fit or ("stretch" if args.tracks else "crop")
    if {"wan-move", "comfyui"} & set(args.export):
        from ..track_export import comfyui_tracks, wan_move_command, wan_move_frame_for, wan_move_tracks

        if args.wan_move_frames < 1 or (args.wan_move_frames - 1) % 4:
            raise ValueError(f"`--wan-move-frames` must be 4n + 1 (e.g. 81), got {args.wan_move_frames}")
        wan_hw = wan_move_frame_for(args.wan_move_size)
    out_folder = OutputFolder(args.out, manifest="meta.json", owner=OWNER)
    out_folder.check(output_names(args))
    if not Path(args.video).is_file():
        raise FileNotFoundError(f"`video` file not found: {args.video!r}")
    try:
        check_pipeline_folder(args.pipeline)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"`--pipeline`: {err}") from None
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    dtype = resolve_dtype(args.dtype, device)
    pipe = TrajLoomPipeline.from_pretrained(args.pipeline, torch_dtype=dtype)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    num_windows = 1 if args.horizon is None else pipe.num_windows_for(args.horizon)
    h, w = pipe.frame_size
    stride = pipe.vae.config.patch_size
    t_h = args.history_frames or pipe.history_frames
    if t_h < pipe.history_frames:
        raise ValueError(f"`--history-frames` {t_h} is shorter than the pipeline's {pipe.history_frames} (vae num_frames)")
    try:
        frames_in, fps_in = read_video(args.video, max_frames=t_h, start=args.start_frame)
    except ValueError as err:
        if args.start_frame and "at or after frame" in str(err):
            raise ValueError(f"`video` has no frames at or after `--start-frame` {args.start_frame}") from None
        raise
    if frames_in.shape[0] < t_h:
        raise ValueError(f"`video` has {frames_in.shape[0]} frames" + (f" from `--start-frame` {args.start_frame}"
                         if args.start_frame else "") + f", the history needs {t_h}")
    src_h, src_w = frames_in.shape[1:3]
    fit = FrameFit((src_h, src_w), (h, w), fit_mode)  # video pixels <-> pipeline pixels
    frames = fit.apply(frames_in)
    query = pipe.query_grid()

    gt = gt_vis = None
    if args.tracks:
        tracks, vis = read_track_file(args.tracks, tracks_key=args.tracks_key, visibility_key=args.visibility_key,
                                      layout=args.layout, axis_order=args.axis_order)
        if tracks.shape[0] < t_h:
            raise ValueError(f"`--tracks` has {tracks.shape[0]} frames, the history needs {t_h}")
        if tracks.shape[1] != len(query):
            raise ValueError(f"`--tracks` has N={tracks.shape[1]} points; the pipeline's "
                             f"{pipe.vae.grid_hw[0]}x{pipe.vae.grid_hw[1]} grid has N={len(query)}")
        tr_h, tr_w = args.tracks_size or (src_h, src_w)
        # pixels of the tracks' frame -> of the video -> of the pipeline frame (as the frames are fitted)
        tracks = fit.to_output(tracks * np.array([src_w / tr_w, src_h / tr_h], np.float32))
        if not args.no_grid_check:
            try:
                check_query_alignment(tracks, vis & in_frame(tracks, h, w), query, stride, name="--tracks")
            except ValueError as err:
                raise ValueError(f"{err} (--tracks-size {tr_h}x{tr_w}, the video is {src_h}x{src_w}, --fit "
                                 f"{fit_mode}; --no-grid-check skips this test)") from None
        if tracks.shape[0] > t_h:  # frames after the history: the ground-truth future
            gt, gt_vis = tracks[t_h:], vis[t_h:] & in_frame(tracks[t_h:], h, w)
        tracks, vis, source = tracks[:t_h], vis[:t_h], f"file {os.path.abspath(args.tracks)}"
    else:
        from ..tracking import get_tracker

        kwargs = {"device": device} if args.tracker_checkpoint is None else {"checkpoint": args.tracker_checkpoint, "device": device}
        try:
            tracker = get_tracker(args.tracker, **kwargs)
        except ValueError as err:
            raise ValueError(f"`--tracker`: {err}") from None
        tracks, vis = tracker.track(frames, query)
        source = f"tracker {getattr(tracker, 'name', type(tracker).__name__)}"
    cuts, losses = scene_cuts(frames), sudden_track_loss(vis)
    breaks = sorted({t for t, _ in cuts} | {t for t, _ in losses})
    if breaks:
        what = [f"frame {t} (video frame {args.start_frame + t}): " + ", ".join(
            [f"the picture changes by {c:.2f} (colour histogram)" for u, c in cuts if u == t]
            + [f"{100 * f:.0f}% of the tracked points are lost at once" for u, f in losses if u == t]) for t in breaks]
        warnings.warn(f"the history looks like it holds a scene cut at history {'; '.join(what)}. A forecast from "
                      f"tracks across a cut follows no real motion; forecast from after it with "
                      f"`--start-frame {args.start_frame + breaks[-1]}`.", UserWarning, stacklevel=2)
    video = frames if (pipe.video_vae is not None or getattr(pipe, "frame_encoder", None) is not None) else None
    out = pipe(tracks, vis, video=video, prompt=args.caption, num_samples=args.num_samples,
               num_inference_steps=args.steps, solver=args.solver, check_query_grid=not args.no_grid_check,
               official_compat=args.official_compat, num_windows=num_windows, rollout_video=args.rollout_video,
               fix_first_latent=args.fix_first_latent, generator=None if args.official_compat and not seed_given else
               [torch.Generator(device=pipe._execution_device if args.official_compat else "cpu").manual_seed(args.seed)])
    keep = slice(None) if args.horizon is None else slice(0, args.horizon)  # whole windows run, the horizon kept
    fut, fvis = out.future_tracks[0][:, keep], out.future_visibility[0][:, keep]
    prob = None if out.visibility_prob is None else out.visibility_prob[0][:, keep]
    t_f = int(fut.shape[1])

    with out_folder.staging() as tmp:
        arrays = dict(future_tracks=fut, future_visibility=fvis, history_tracks=tracks, history_visibility=vis,
                      query_xy=query, future_tracks_input_px=fit.to_input(fut),
                      history_tracks_input_px=fit.to_input(tracks))
        if prob is not None:
            arrays["future_visibility_prob"] = prob
        if gt is not None:
            arrays.update(gt_future_tracks=gt[:t_f], gt_future_visibility=gt_vis[:t_f],
                          gt_future_tracks_input_px=fit.to_input(gt[:t_f]))
        np.savez_compressed(tmp / "forecast.npz", **arrays)
        meta = dict(video=os.path.abspath(args.video), pipeline=os.path.abspath(args.pipeline), height=h, width=w,
                    source_size=[src_h, src_w], fps=fps_in, history_frames=t_h, future_frames=t_f,
                    num_windows=num_windows, window_frames=pipe.future_frames,
                    rollout_video=args.rollout_video if num_windows > 1 and video is not None else None,
                    num_samples=args.num_samples, steps=args.steps, solver=args.solver, seed=args.seed,
                    official_compat=args.official_compat, caption=args.caption, history_tracks_from=source,
                    grid_stride=stride,
                    grid_origin=pipe.vae.config.grid_origin, num_points=int(len(query)), device=str(device),
                    dtype=dtype_name(dtype), video_conditioning=video is not None,
                    tracks_size=None if not args.tracks else list(args.tracks_size or (src_h, src_w)),
                    start_frame=args.start_frame, frame_fit=fit.to_dict(),
                    history_scene_cuts=[{"history_frame": t, "histogram_change": round(c, 4)} for t, c in cuts],
                    history_track_loss=[{"history_frame": t, "lost_fraction": round(f, 4)} for t, f in losses])
        rendered = render_forecast(frames, tracks, vis, fut, fvis, labels=[f"sample {k + 1}" for k in range(len(fut))],
                                   history_stride=max(1, t_h // 40))  # as `shown` below
        write_video(tmp / "forecast.mp4", rendered, args.fps)
        write_gif(tmp / "forecast.gif", rendered[::2], args.fps / 2)
        shown = len(range(0, t_h, max(1, t_h // 40)))  # history frames in the video
        save_png(tmp / "forecast_montage.png", montage(rendered, indices=forecast_keyframes(shown, t_f)))
        if args.official_layout:
            # official meta keys (reference §6.1); pred_len shrinks to the ground truth the file provides
            pred_len = t_f if gt is None else min(t_f, len(gt))
            official_meta = dict(video_path=os.path.abspath(args.video), H=h, W=w, cond_index=t_h,
                                 hist_len=pipe.history_frames, future_len=t_f, use_overlap=False, pred_len=pred_len,
                                 grid_stride=stride, grid_border=0, grid_origin=pipe.vae.config.grid_origin,
                                 num_points=int(len(query)), dtype=dtype_name(dtype), device=str(device),
                                 noise_seed=args.seed, solver=args.solver, steps=args.steps,
                                 vis_threshold=None if pipe.visibility_predictor is None
                                 else pipe.visibility_predictor.config.threshold,
                                 vis_temp_stride=pipe.vae.config.temporal_stride, caption=args.caption or "",
                                 history_tracks_from=source, sample_index=0)
            write_official_layout(tmp / "official", pred_tracks=fut[0, :pred_len], pred_visibility=fvis[0, :pred_len],
                                  query_xy=query, width=w,
                                  pred_visibility_prob=None if prob is None else prob[0, :pred_len],
                                  gt_tracks=None if gt is None else gt[:pred_len],
                                  gt_visibility=None if gt is None else gt_vis[:pred_len], meta=official_meta)
        if {"wan-move", "comfyui"} & set(args.export):
            # the generator's view of the video: the same fit as the model's, at the generator's frame size
            wan_fit = FrameFit((src_h, src_w), wan_hw, fit_mode)

            def to_wan(xy):
                return wan_fit.to_output(fit.to_input(xy))

            first = 0 if args.wan_move_from == "history" else t_h - 1
            image = wan_fit.apply(frames_in[first : first + 1])[0]
            exports = [e for e in ("wan-move", "comfyui") if e in args.export]
            for e in exports:
                (tmp / e).mkdir()
                save_png(tmp / e / "first_frame.png", image)
            for k in range(len(fut)):
                tr, vi, real = wan_move_tracks(to_wan(tracks), vis, to_wan(fut[k]), fvis[k], frame_hw=wan_hw,
                                               num_frames=args.wan_move_frames, start=args.wan_move_from)
                if "wan-move" in exports:
                    for kind, arr in (("tracks", tr), ("visibility", vi)):
                        with open(tmp / "wan-move" / f"sample_{k + 1}_{kind}.npy", "wb") as fh:
                            np.save(fh, arr)
                if "comfyui" in exports:
                    (tmp / "comfyui" / f"sample_{k + 1}_tracks.json").write_text(
                        json.dumps(comfyui_tracks(tr, vi, real)))
            meta["wan_move"] = dict(
                exports=exports, frame_size=list(wan_hw), size_arg=list(args.wan_move_size),
                num_frames=args.wan_move_frames, start=args.wan_move_from, first_video_frame=args.start_frame + first,
                frames_from_tracks=real, view=wan_fit.to_dict(),
                layout="tracks [1, F, N, 2] float32 px (x, y); visibility [1, F, N] bool",
                command=wan_move_command("wan-move/first_frame.png", "wan-move/sample_1_tracks.npy",
                                         "wan-move/sample_1_visibility.npy", args.wan_move_size, args.wan_move_frames))
        out_folder.check(output_names(args))  # nothing foreign appeared meanwhile
        written = out_folder.commit(tmp, meta)
    print(f"wrote {out_folder.folder}: {', '.join(written)}")
    return 0
