"""``trajloom push``: upload a pipeline folder or a bench folder to the Hub as it is.

    trajloom push out/pipeline --repo-id you/trajloom-synthetic
    trajloom push trajloombench --repo-id you/trajloombench          # a dataset repository (detected)

The same with the ``hf`` CLI: ``hf upload you/trajloom-synthetic out/pipeline .`` and
``hf upload you/trajloombench trajloombench . --repo-type dataset``.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="a TrajLoomPipeline folder (model repo) or a TrajLoomBench folder (dataset repo)")
    parser.add_argument("--repo-id", required=True, metavar="OWNER/NAME")
    parser.add_argument("--private", action="store_true", help="create the repository private (if it is new)")
    parser.add_argument("--revision", default=None, help="branch to commit to")
    parser.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    parser.add_argument("--message", default=None, help="commit message")


def run(args: argparse.Namespace) -> int:
    from ..hub import folder_kind, push_folder

    kind = folder_kind(args.folder)  # checked before anything is created on the Hub
    info = push_folder(args.folder, args.repo_id, private=args.private or None, revision=args.revision,
                       commit_message=args.message, create_pr=args.create_pr)
    print(f"uploaded {args.folder} to the {kind} repository {args.repo_id}: {getattr(info, 'commit_url', info)}")
    return 0
