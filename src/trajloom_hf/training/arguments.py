"""Command-line arguments shared by the training scripts, with their checks.

Argument types (:func:`positive_int`, :func:`fraction`, ...) reject bad values at parse time with a message naming
the flag; :func:`check_paths` reports a missing input folder or file before any work starts.
"""

from __future__ import annotations

import argparse
import math
import os

from ..json_files import read_json_object

__all__ = [
    "add_checkpointing_args",
    "add_latent_training_args",
    "add_run_args",
    "add_window_start_args",
    "check_paths",
    "data_options",
    "fraction",
    "non_negative_float",
    "non_negative_int",
    "positive_float",
    "positive_int",
]


def _number(kind, text: str, ok, expected: str):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if (isinstance(value, float) and not math.isfinite(value)) or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    return _number(int, text, lambda v: v >= 1, "an integer >= 1")


def non_negative_int(text: str) -> int:
    return _number(int, text, lambda v: v >= 0, "an integer >= 0")


def positive_float(text: str) -> float:
    return _number(float, text, lambda v: v > 0, "a finite number > 0")


def non_negative_float(text: str) -> float:
    return _number(float, text, lambda v: v >= 0, "a finite number >= 0")


def fraction(text: str) -> float:
    return _number(float, text, lambda v: 0 <= v <= 1, "a number in [0, 1]")


def add_run_args(group, *, output_help: str = None) -> None:
    """``--output_dir --seed --deterministic --gradient_accumulation_steps --max_grad_norm --mixed_precision
    --gradient_checkpointing --dataloader_num_workers``."""
    group.add_argument("--output_dir", required=True, help=output_help)
    group.add_argument("--seed", type=non_negative_int, default=42)
    group.add_argument("--deterministic", action="store_true",
                       help="torch's deterministic kernels (CUDA: no atomic-add nondeterminism; a little slower). On a "
                            "CPU a run is reproducible from its seed and thread count (OMP_NUM_THREADS) alone")
    group.add_argument("--gradient_accumulation_steps", type=positive_int, default=1)
    group.add_argument("--max_grad_norm", type=non_negative_float, default=1.0, help="0: no clipping")
    group.add_argument("--mixed_precision", default="no", choices=["no", "fp16", "bf16"])
    group.add_argument("--gradient_checkpointing", action="store_true")
    group.add_argument("--dataloader_num_workers", type=non_negative_int, default=0)


def add_checkpointing_args(group, *, checkpointing_steps: int, validation_steps: int) -> None:
    """``--checkpointing_steps --checkpoints_total_limit --resume_from_checkpoint --validation_steps --report_to``."""
    group.add_argument("--checkpointing_steps", type=positive_int, default=checkpointing_steps)
    group.add_argument("--checkpoints_total_limit", type=non_negative_int, default=2, help="checkpoints kept (0: all)")
    group.add_argument("--resume_from_checkpoint", default=None, help='a checkpoint folder or "latest"')
    group.add_argument("--validation_steps", type=non_negative_int, default=validation_steps,
                       help="validate every N steps and at the end (0: never)")
    group.add_argument("--report_to", default="csv",
                       help='"csv" (output_dir/logs/<run>/metrics.csv), "tensorboard" (or another Accelerate tracker) or "none"')


def add_latent_training_args(parser: argparse.ArgumentParser) -> None:
    """Data, VAE, latent cache, optimisation and checkpointing arguments of the models trained on frozen
    TrajLoom-VAE latents (the flow transformer and the visibility head)."""
    g = parser.add_argument_group("data (window size, frame size and grid come from the VAE config)")
    g.add_argument("--vae_path", required=True, help="trained AutoencoderTraj folder (from_pretrained, with latent statistics)")
    g.add_argument("--bench", default=None, help="TrajLoomBench dataset folder; default: procedural synthetic clips")
    g.add_argument("--bench_config", default="synthetic")
    g.add_argument("--num_train_clips", type=positive_int, default=256, help="synthetic training clips")
    g.add_argument("--num_val_clips", type=non_negative_int, default=16, help="synthetic validation clips")
    g.add_argument("--cache_dir", default=None, help="where synthetic clips are cached (default: output_dir/cache)")
    g.add_argument("--latent_cache_dir", default=None, help="on-disk cache of the frozen encoders' latents (one file per window)")
    add_window_start_args(g)
    g = parser.add_argument_group("optimisation")
    add_run_args(g)
    g.add_argument("--train_batch_size", type=positive_int, default=4, help="per process")
    g.add_argument("--max_train_steps", type=positive_int, default=1000, help="optimizer steps")
    g.add_argument("--adam_weight_decay", type=non_negative_float, default=0.0)
    g = parser.add_argument_group("checkpointing, logging and validation")
    add_checkpointing_args(g, checkpointing_steps=1000, validation_steps=1000)
    g.add_argument("--num_validation_windows", type=non_negative_int, default=4)


def add_window_start_args(group) -> None:
    """``--window_start --window_start_stride``: where the training windows start in a clip
    (:mod:`trajloom_hf.training.window_datasets`)."""
    group.add_argument("--window_start", default="first", choices=["first", "random"],
                       help="first: every training window starts at the clip's query frame (default); random: windows "
                            "start anywhere in [0, T_clip - history - future] (one item per start; needs clips longer "
                            "than one window, e.g. a bench built with --future-frames 3x the window): what a model "
                            "rolled out past one window (TrajLoomPipeline num_windows, forecast --horizon) sees. With "
                            "--latent_cache_dir the cache holds one entry per (clip, start)")
    group.add_argument("--window_start_stride", type=positive_int, default=1,
                       help="with --window_start random: every N-th start only (fewer items, a smaller latent cache)")


def check_paths(args, folders=(), files=()) -> None:
    """Raise ``FileNotFoundError`` naming the flag for each given input folder / file that does not exist.

    ``folders``/``files`` are attribute names of ``args`` (``"vae_path"`` -> ``--vae_path``); unset ones are skipped.
    JSON files are parsed, so a malformed config is reported here rather than deep inside the model. Always checked
    when present: ``--output_dir`` is not a file, ``--resume_from_checkpoint`` (unless "latest") is a folder."""
    out = getattr(args, "output_dir", None)
    if out and os.path.exists(out) and not os.path.isdir(out):
        raise FileExistsError(f"--output_dir {out!r} is a file, not a folder")
    resume = getattr(args, "resume_from_checkpoint", None)
    if resume and resume != "latest" and not os.path.isdir(resume):
        raise FileNotFoundError(f"--resume_from_checkpoint {resume!r}: no such checkpoint folder (or pass 'latest')")
    for name in folders:
        value = getattr(args, name, None)
        if value and not os.path.isdir(value):
            what = "is a file, not a folder" if os.path.exists(value) else "does not exist"
            raise FileNotFoundError(f"--{name} {value!r}: the folder {what}")
    for name in files:
        value = getattr(args, name, None)
        if not value:
            continue
        if not os.path.isfile(value):
            raise FileNotFoundError(f"--{name} {value!r}: the file does not exist")
        if value.endswith(".json"):
            read_json_object(value, f"--{name}", "model arguments")


def data_options(args) -> dict:
    """The data keyword arguments of :func:`~trajloom_hf.training.window_datasets.build_windows` /
    ``build_segment_datasets`` from the parsed flags (synthetic clips cached under ``output_dir/cache`` by default)."""
    return dict(bench=args.bench, bench_config=args.bench_config, num_train_clips=args.num_train_clips,
                num_val_clips=args.num_val_clips, cache_dir=args.cache_dir or os.path.join(args.output_dir, "cache"),
                window_start=getattr(args, "window_start", "first"),
                window_start_stride=getattr(args, "window_start_stride", 1))
