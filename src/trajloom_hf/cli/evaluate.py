"""``trajloom evaluate``: forecast a TrajLoomBench split with one or more pipelines, add the static and
constant-velocity baselines, and write ``results.json`` + ``results.md`` (paper Table 1 layout, plus the FDE, points
within 1-16 px and MVD of "Forecasting Motion in the Wild"), and the Hub's eval-results file of every scored
pipeline folder (``<pipeline>/.eval_results/trajloombench-<config>-<split>.yaml``; ``--no-eval-results`` skips it).

    trajloom evaluate --pipeline out/pipeline --bench trajloombench --config synthetic --split test \
        --baseline whn=out/whn_pipeline --num-samples 4 --vepe-frames 24 81 --out results/

``--oracle`` adds each pipeline VAE's reconstruction of the ground-truth future as a row (the flow's upper bound).
``--num-windows K`` forecasts K windows with each pipeline's rollout and scores every window against its own ground
truth (the clips need K x the window's future frames; results.json: window j > 1 under each method's
``"window_<j>"``; results.md: one section per window).
"""

from __future__ import annotations

import argparse

from ..precision import DTYPE_CHOICES


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """The forecast settings every command that samples a bench split takes (samples, steps, solver, seed, clips)."""
    parser.add_argument("--num-samples", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--solver", default="euler", choices=["euler", "heun", "dopri5", "dopri5_adaptive"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-clips", type=int, default=None)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline", required=True, help="TrajLoomPipeline folder (reported as 'TrajLoom')")
    parser.add_argument("--bench", required=True, help="TrajLoomBench folder")
    parser.add_argument("--config", default=None, help="bench config (default: the bench's only config; with several, "
                        "the error lists them)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--baseline", action="append", default=[], metavar="[NAME=]DIR",
                        help="another pipeline folder to score in the same run (repeatable)")
    add_sampling_arguments(parser)
    parser.add_argument("--vepe-frames", type=int, nargs="+", default=[], metavar="L",
                        help="also report the VAE VEPE of the first L frames of each window (paper Table 2: 24 81)")
    parser.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES,
                        help="dtype of the model trunks; auto: bfloat16 where the CPU has AVX512-BF16/AMX, else "
                             "float32 (coordinates and metrics stay fp32)")
    parser.add_argument("--out", default=".", help="where results.json and results.md go")
    parser.add_argument("--bench-repo-id", default=None, metavar="OWNER/NAME",
                        help="the bench's Hub id, recorded in the eval-results files (default: the --bench folder's name)")
    parser.add_argument("--no-eval-results", action="store_true",
                        help="do not write .eval_results/*.yaml into the pipeline folders")
    parser.add_argument("--shuffle-frames", action="store_true",
                        help="also score every frame-conditioned pipeline with each clip given another clip's frames "
                             "(row '<name> (other clip's frames)'): shows whether a model uses the image")
    parser.add_argument("--oracle", action="store_true",
                        help="also score each pipeline's VAE reconstruction of the ground-truth future, "
                             "decode(encode(gt)) (row 'VAE reconstruction (oracle, <name>)'): the best a forecast "
                             "through that VAE can score; worse than constant velocity means the VAE is the limit")
    parser.add_argument("--temporal-smoothing", type=float, default=None, metavar="SIGMA",
                        help="Gaussian low-pass of every pipeline's decoded tracks along time, sigma in frames (0 = "
                             "off; default: each pipeline's own temporal_smoothing config, 0 unless set)")
    parser.add_argument("--fix-first-latent", action="store_true", default=None,
                        help="hold every pipeline's first future latent at its last history latent during sampling "
                             "(the official --fix_first_frame; default: each pipeline's scheduler config, off)")
    parser.add_argument("--boundary-continuity", type=float, default=None, metavar="TAU",
                        help="join every pipeline's decoded window onto its history: the offset of future frame 0 "
                             "from the history's first constant-velocity step removed with weight exp(-t / TAU) "
                             "(frames; inf = a constant shift; 0 = off; default: each pipeline's own config, off)")
    parser.add_argument("--num-windows", type=int, default=1, metavar="K",
                        help="forecast K windows with each pipeline's rollout (window j + 1 conditioned on forecast j) "
                             "and score each window against its ground truth; the clips need K x future frames")
    parser.add_argument("--rollout-video", default="hold_last", choices=["hold_last", "none"],
                        help="with --num-windows > 1, the frame conditioning of windows 2.. (their frames are unseen): "
                             "hold the last observed frame, or none")


def bench_configs(bench) -> list:
    """The config names of a TrajLoomBench folder (sub-folders of ``data/`` holding Parquet shards)."""
    from pathlib import Path

    data = Path(bench) / "data"
    return sorted(p.name for p in data.iterdir() if p.is_dir() and any(p.glob("*.parquet"))) if data.is_dir() else []


def resolve_bench_config(args: argparse.Namespace) -> None:
    """Check ``args.bench`` (a TrajLoomBench folder) and set ``args.config`` to its only config when None; a config
    the bench lacks, or None with several, is a ``ValueError`` listing the bench's configs."""
    from pathlib import Path

    if not Path(args.bench).is_dir():
        raise FileNotFoundError(f"`--bench` folder {args.bench!r} does not exist")
    configs = bench_configs(args.bench)
    if not configs:
        raise ValueError(f"`--bench` {args.bench!r} holds no TrajLoomBench config (no data/<config>/*.parquet); "
                         "build one with `trajloom bench build`")
    if args.config is None:
        if len(configs) > 1:
            raise ValueError(f"`--bench` {args.bench!r} has several configs: pass --config (one of {', '.join(configs)})")
        args.config = configs[0]
    elif args.config not in configs:
        raise ValueError(f"`--config` {args.config!r} is not in {args.bench!r}; its configs: {', '.join(configs)}")


def check_out_folder(folder: str, files=(), flag: str = "--out") -> None:
    """``folder`` can be created or written into, and ``files`` in it, where they exist, overwritten: learnt
    before any work, not after it."""
    import os
    from pathlib import Path

    out = Path(folder)
    if out.exists() and not out.is_dir():
        raise ValueError(f"`{flag}` {folder!r} exists and is not a folder")
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(f"`{flag}` {folder!r}: cannot write into {str(probe)!r}")
    for name in files:
        if (out / name).exists() and not os.access(out / name, os.W_OK):
            raise PermissionError(f"`{flag}` {folder!r}: {name} exists and is not writable")


def check_arguments(args: argparse.Namespace) -> dict:
    """Every check that needs no model: run before anything is loaded or scored. Returns ``{name: folder}``."""
    from pathlib import Path

    resolve_bench_config(args)
    for flag, value, low in (("--num-samples", args.num_samples, 1), ("--steps", args.steps, 1), ("--max-clips", args.max_clips, 2),
                              ("--num-windows", getattr(args, "num_windows", 1), 1)):
        if value is not None and value < low:
            raise ValueError(f"`{flag}` must be >= {low}, got {value}")
    if getattr(args, "temporal_smoothing", None) is not None:
        from ..track_smoothing import check_sigma

        check_sigma(args.temporal_smoothing, "--temporal-smoothing")
    if getattr(args, "boundary_continuity", None) is not None:
        from ..boundary_continuity import check_tau

        check_tau(args.boundary_continuity, "--boundary-continuity")
    pipelines = {"TrajLoom": args.pipeline}
    for item in args.baseline:
        name, _, path = item.rpartition("=")
        name = name or Path(path).name
        if name in pipelines:
            raise ValueError(f"`--baseline` name {name!r} is used twice (give NAME=DIR)")
        pipelines[name] = path
    for name, path in pipelines.items():
        flag = "--pipeline" if name == "TrajLoom" else "--baseline"
        if not Path(path).exists():
            raise FileNotFoundError(f"`{flag}` folder {path!r} does not exist")
        if not Path(path).is_dir():
            raise ValueError(f"`{flag}` {path!r} is not a folder (a TrajLoomPipeline save_pretrained folder)")
        if not Path(path, "model_index.json").is_file():
            raise FileNotFoundError(f"`{flag}` folder {path!r} has no model_index.json (not a TrajLoomPipeline folder)")
    check_out_folder(args.out, ("results.json", "results.md"))  # now, not after scoring everything
    if not getattr(args, "no_eval_results", False):
        from ..eval_results import check_writable, eval_results_path

        for path in pipelines.values():
            check_writable(eval_results_path(path, args.config, args.split))
    return pipelines


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    pipelines = check_arguments(args)
    from ..evaluation import evaluate_bench, results_markdown
    from ..precision import resolve_dtype

    results = evaluate_bench(pipelines, args.bench, args.config, args.split, num_samples=args.num_samples,
                             num_inference_steps=args.steps, solver=args.solver, seed=args.seed,
                             max_clips=args.max_clips, out_dir=args.out, vepe_frames=args.vepe_frames,
                             shuffle_frames=args.shuffle_frames, torch_dtype=resolve_dtype(args.dtype, "cpu"),
                             oracle=args.oracle, temporal_smoothing=args.temporal_smoothing,
                             num_windows=args.num_windows, rollout_video=args.rollout_video,
                             fix_first_latent=args.fix_first_latent,
                             boundary_continuity=getattr(args, "boundary_continuity", None))
    if args.num_windows == 1:
        print(results_markdown(results, f"{args.config}/{args.split}"))
    else:
        from ..evaluation import window_results

        for j in range(1, args.num_windows + 1):
            print(f"window {j}:\n{results_markdown(window_results(results, j), f'{args.config}/{args.split}')}\n")
    print(f"wrote {Path(args.out).resolve() / 'results.json'} and results.md")
    if not args.no_eval_results:
        from ..eval_results import write_eval_results
        from ..evaluation import TABLE_ROWS

        dataset_id = args.bench_repo_id or Path(args.bench).resolve().name
        notes = (f"config {args.config}, split {args.split}, {args.num_samples} samples, {args.solver} x {args.steps} "
                 f"steps, seed {args.seed}" + (f", first {args.max_clips} clips" if args.max_clips else ""))
        metrics = set(TABLE_ROWS) | {"min_fde"} | {f"vae_vepe_{n}" for n in args.vepe_frames}
        for name, path in pipelines.items():
            written = write_eval_results(path, results[name], dataset_id=dataset_id, config=args.config,
                                         split=args.split, notes=notes, metrics=metrics)
            print(f"wrote {written} ({name})")
    return 0
