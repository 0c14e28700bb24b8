"""The ``trajloom`` command line. Each subcommand lives in its own module and registers itself with ``add_parser``."""

from __future__ import annotations

import argparse
import importlib
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
    "analyze-offsets": ("trajloom_hf.cli.analyze_offsets", "location-bias diagnostic of Grid-Anchor offsets (App. B.1)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="trajloom", description="Dense future point-trajectory generation (TrajLoom).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(sp)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    return int(importlib.import_module(args._module).run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
