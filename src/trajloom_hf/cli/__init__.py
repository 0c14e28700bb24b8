"""The ``trajloom`` command line. Each subcommand lives in its own module and registers itself with ``add_parser``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import List, Optional

# (module, help). Each module defines add_arguments(parser) and run(args); it keeps heavy imports (torch models,
# diffusers) inside run() so that building the parser and `trajloom --help` stay fast.
SUBCOMMANDS = {
    "synth": ("trajloom_hf.cli.synth", "generate synthetic clips with ground-truth tracks and render them"),
    "bench": ("trajloom_hf.cli.bench", "build TrajLoomBench (Parquet shards + dataset card) from a source"),
    "forecast": ("trajloom_hf.cli.forecast", "forecast future tracks for a video with a TrajLoomPipeline"),
    "convert-official": ("trajloom_hf.convert.cli", "convert the official TrajLoom .pt checkpoints to a pipeline folder"),
    "evaluate": ("trajloom_hf.cli.evaluate", "score pipelines and baselines on a TrajLoomBench split (Table 1 layout)"),
    "choose-continuity": ("trajloom_hf.cli.choose_continuity", "choose a pipeline's boundary-continuity tau on a held-out split"),
    "analyze-offsets": ("trajloom_hf.cli.analyze_offsets", "location-bias diagnostic of Grid-Anchor offsets (App. B.1)"),
    "push": ("trajloom_hf.cli.push", "upload a pipeline folder or a bench folder to the Hugging Face Hub"),
}


DEBUG_ENV = "TRAJLOOM_DEBUG"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trajloom", description="Dense future point-trajectory generation (TrajLoom).",
        epilog=f"Errors print one line (exit code 2); --debug or {DEBUG_ENV}=1 shows the full traceback.")
    parser.add_argument("--debug", action="store_true", help=f"show the full traceback of an error (or set {DEBUG_ENV}=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(sp)
    return parser


def _debug_requested(args) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def main(argv: Optional[List[str]] = None) -> int:
    """Run one subcommand. Bad input ends with one line on stderr and exit code 2 (the traceback only with
    ``--debug`` / ``TRAJLOOM_DEBUG=1``); an interrupt ends with 130."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except KeyboardInterrupt:
        if _debug_requested(args):
            raise
        print(f"trajloom {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, LookupError) as err:  # the package's named errors (and the OS's)
        if _debug_requested(args):
            raise
        print(f"trajloom {args.command}: error: {_one_line(err)} (--debug for the traceback)", file=sys.stderr)
        return 2


def _one_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    if isinstance(err, OSError) and err.filename and str(err.filename) not in text:
        text = f"{text}: {err.filename}"
    if isinstance(err, KeyError):  # str(KeyError("x")) is "'x'": say what it is
        text = f"missing key {text}"
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
