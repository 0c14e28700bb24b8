"""``trajloom choose-continuity``: choose a pipeline's boundary-continuity tau on a held-out TrajLoomBench split.

One forecast per clip with the join off, then every tau of ``--taus`` applied to those samples and scored
(:func:`trajloom_hf.evaluation.choose_boundary_continuity`); the tau with the lowest ``--criterion`` wins. Writes
``continuity.json`` and ``continuity.md`` to ``--out``. The same forecast also chooses the visibility reading
(:func:`trajloom_hf.evaluation.choose_visibility_mode`: the head only where it beats holding each point's last history
visibility on both accuracy and occlusion F1). ``--save-pipeline DIR`` also saves the pipeline with that tau and that
reading in its config (``boundary_continuity`` and ``visibility_mode`` in ``model_index.json``; ``--keep-visibility``
keeps the pipeline's own reading) into the new folder ``DIR``. The given pipeline folder itself is never changed.

    trajloom choose-continuity --pipeline out/pipeline --bench trajloombench --split validation \
        --out out/continuity --save-pipeline out/pipeline_joined
"""

from __future__ import annotations

import argparse
import math

from ..precision import DTYPE_CHOICES
from .evaluate import add_sampling_arguments


def _tau(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of frames: {text!r} (0 = off, inf allowed)") from None
    if math.isnan(value) or value < 0:
        raise argparse.ArgumentTypeError(f"tau must be 0 (off), > 0 or inf, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # no package import here: `trajloom --help` stays fast (the defaults are trajloom_hf.evaluation's)
    parser.add_argument("--pipeline", required=True, help="TrajLoomPipeline folder")
    parser.add_argument("--bench", required=True, help="TrajLoomBench folder")
    parser.add_argument("--config", default=None, help="bench config (default: the bench's only config)")
    parser.add_argument("--split", default="validation", help="a held-out split (default: validation; never choose "
                        "on the split you report)")
    parser.add_argument("--taus", type=_tau, nargs="+", default=None, metavar="TAU",
                        help="the grid, in frames (0 = off, inf = a constant shift; default: 0 5 10 20 40 inf)")
    parser.add_argument("--criterion", default="min_ade", choices=["min_ade", "fvmd"])
    add_sampling_arguments(parser)
    parser.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES,
                        help="dtype of the model trunks while forecasting; auto: bfloat16 where the CPU has "
                             "AVX512-BF16/AMX, else float32 (a saved pipeline keeps its fp32 weights)")
    parser.add_argument("--out", default=".", help="where continuity.json and continuity.md go")
    parser.add_argument("--save-pipeline", default=None, metavar="DIR",
                        help="also save the pipeline with the chosen tau (and visibility reading) into DIR (a new or "
                             "empty folder)")
    parser.add_argument("--keep-visibility", action="store_true",
                        help="save with the pipeline's own visibility_mode instead of the reading chosen on the split")


def check_arguments(args: argparse.Namespace) -> None:
    """Every check that needs no model, before anything is loaded."""
    from pathlib import Path

    from .evaluate import check_out_folder, resolve_bench_config

    if not Path(args.pipeline, "model_index.json").is_file():
        raise FileNotFoundError(f"`--pipeline` {args.pipeline!r} has no model_index.json (not a TrajLoomPipeline folder)")
    resolve_bench_config(args)
    if args.split == "test":
        raise ValueError("`--split` test: choose tau on a held-out split (validation) and report on test")
    if args.taus is not None and len(set(args.taus)) != len(args.taus):
        raise ValueError(f"`--taus` names a value twice: {args.taus}")
    for flag, value, low in (("--num-samples", args.num_samples, 1), ("--steps", args.steps, 1),
                             ("--max-clips", args.max_clips, 2)):
        if value is not None and value < low:
            raise ValueError(f"`{flag}` must be >= {low}, got {value}")
    check_out_folder(args.out, ("continuity.json", "continuity.md"))
    if args.save_pipeline is not None:
        target = Path(args.save_pipeline)
        if target.exists() and (not target.is_dir() or any(target.iterdir())):
            raise FileExistsError(f"`--save-pipeline` {args.save_pipeline!r} exists and is not an empty folder: "
                                  "give a new folder (nothing is overwritten)")
        if target.resolve() == Path(args.pipeline).resolve():
            raise ValueError("`--save-pipeline` must differ from `--pipeline`")


def save_with_tau(pipeline: str, target: str, tau: float, visibility_mode: str) -> None:
    """Save the fp32 pipeline of folder ``pipeline`` with ``boundary_continuity=tau`` and ``visibility_mode`` into the
    new folder ``target`` (written under a temporary name, then renamed: no half-written pipeline is left)."""
    import shutil
    import tempfile
    from pathlib import Path

    from ..pipelines import TrajLoomPipeline

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        pipe = TrajLoomPipeline.from_pretrained(pipeline)
        pipe.register_to_config(boundary_continuity=float(tau), visibility_mode=visibility_mode)
        pipe.save_pretrained(tmp)
        if target.exists():  # an empty folder (checked before any work)
            target.rmdir()
        tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    check_arguments(args)
    from ..evaluation import (choose_boundary_continuity, continuity_markdown, load_bench_split, uses_frames,
                              visibility_markdown)
    from ..pipelines import TrajLoomPipeline
    from ..precision import dtype_name, resolve_dtype
    from ..video_io import atomic_path

    dtype = resolve_dtype(args.dtype, "cpu")
    pipe = TrajLoomPipeline.from_pretrained(args.pipeline, **({} if dtype is None else {"torch_dtype": dtype}))
    data = load_bench_split(args.bench, args.config, args.split, args.max_clips, with_video=uses_frames(pipe))
    from ..evaluation import CONTINUITY_TAUS

    choice = choose_boundary_continuity(pipe, data, taus=args.taus or CONTINUITY_TAUS, criterion=args.criterion,
                                        num_samples=args.num_samples, num_inference_steps=args.steps,
                                        solver=args.solver, seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"pipeline": str(args.pipeline), "bench": str(args.bench), "config": args.config, "split": args.split,
                "clips": int(data.tracks.shape[0]), "num_samples": args.num_samples, "solver": args.solver,
                "steps": args.steps, "seed": args.seed, "dtype": dtype_name(dtype) if dtype else "float32",
                "criterion": args.criterion}
    # JSON has no inf: the taus are written as strings ("inf", "40")
    vis = choice.visibility
    # the reading a saved pipeline gets: the chosen one, or with --keep-visibility the pipeline's own
    saved_mode = pipe.config.get("visibility_mode", "auto") if args.keep_visibility else vis.mode
    record = {"settings": settings, "tau": f"{choice.tau:g}", "scores": {f"{t:g}": sc for t, sc in choice.scores.items()},
              "visibility_mode": vis.mode, "visibility_scores": vis.scores,
              "saved_visibility_mode": None if args.save_pipeline is None else saved_mode}
    with atomic_path(out / "continuity.json") as tmp:
        Path(tmp).write_text(json.dumps(record, indent=1))
    table, vis_table = continuity_markdown(choice), visibility_markdown(vis)
    with atomic_path(out / "continuity.md") as tmp:
        Path(tmp).write_text(f"# Boundary continuity on {args.config}/{args.split}\n\nChosen tau: {choice.tau:g} "
                             f"frames (lowest {args.criterion}; {settings['clips']} clips, {args.num_samples} samples, "
                             f"{args.solver} x {args.steps}).\n\n{table}\n\nChosen visibility reading: {vis.mode.replace('_', '-')} "
                             "(the head only where it beats hold-last on both accuracy and occlusion F1; tau 0)"
                             f"{f'; the pipeline keeps its own, visibility_mode={saved_mode!r}' if args.keep_visibility else ''}."
                             f"\n\n{vis_table}\n")
    print(table)
    print(vis_table)
    print(f"chosen tau: {choice.tau:g} frames (lowest {args.criterion}), visibility reading: {vis.mode}; wrote "
          f"{(out / 'continuity.json').resolve()}")
    if args.save_pipeline is not None:
        save_with_tau(args.pipeline, args.save_pipeline, choice.tau, saved_mode)
        print(f"saved the pipeline with boundary_continuity={choice.tau:g}, visibility_mode={saved_mode!r} to "
              f"{Path(args.save_pipeline).resolve()}")
    return 0
