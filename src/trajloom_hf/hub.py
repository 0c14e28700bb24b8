"""Uploading a pipeline folder (``save_pretrained``) or a bench folder (``trajloom bench build``) to the Hub as it is:
one ``create_repo(exist_ok=True)`` and one ``upload_folder`` commit (``huggingface_hub.HfApi``). ``trajloom push``
is the command line; ``hf upload OWNER/NAME FOLDER . [--repo-type dataset]`` does the same with the ``hf`` CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional


def folder_kind(folder) -> str:
    """``"model"`` for a TrajLoomPipeline folder in the remote-code layout, ``"dataset"`` for a TrajLoomBench
    folder; anything else is a ValueError naming what is missing."""
    from .data.trajloombench import _CARD_MARK
    from .pipelines.hub_layout import is_own_layout
    from .pipelines.pipeline_trajloom import check_pipeline_folder

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {str(folder)!r} does not exist")
    if (folder / "model_index.json").is_file():
        check_pipeline_folder(folder)
        if not is_own_layout(folder):
            raise ValueError(f"pipeline folder {str(folder)!r} is not in the remote-code layout this version writes "
                             "(pipeline_trajloom.py and component entry points): load it and save_pretrained it again")
        return "model"
    card = folder / "README.md"
    if card.is_file() and _CARD_MARK in card.read_text(errors="replace") and any((folder / "data").glob("*/*.parquet")):
        return "dataset"
    raise ValueError(f"{str(folder)!r} is neither a TrajLoomPipeline folder (model_index.json) nor a TrajLoomBench "
                     "folder (README.md dataset card + data/<config>/*.parquet)")


def push_folder(folder, repo_id: str, *, private: Optional[bool] = None, token: Optional[str] = None,
                revision: Optional[str] = None, commit_message: Optional[str] = None, create_pr: bool = False):
    """Upload ``folder`` (a pipeline or a bench: :func:`folder_kind`) to ``repo_id`` (``owner/name``), creating the
    repository if needed. Returns ``upload_folder``'s commit info."""
    from huggingface_hub import HfApi

    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise ValueError(f"`repo_id` must be 'owner/name', got {repo_id!r}")
    kind = folder_kind(folder)
    api = HfApi(token=token)
    api.create_repo(repo_id, repo_type=kind, private=private, exist_ok=True)
    what = "TrajLoom pipeline" if kind == "model" else "TrajLoomBench"
    return api.upload_folder(repo_id=repo_id, repo_type=kind, folder_path=str(folder), revision=revision,
                             commit_message=commit_message or f"Upload {what} with trajloom-hf", create_pr=create_pr,
                             ignore_patterns=["**/.*.tmp*", ".*.tmp*"])  # atomic_path temporaries of an interrupted write
