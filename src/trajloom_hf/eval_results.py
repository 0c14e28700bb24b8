"""The Hub's eval-results files of a model folder: ``.eval_results/<name>.yaml``, a YAML list of entries
``{dataset: {id, task_id}, value, date, notes}`` (huggingface_hub's ``EvalResultEntry`` /
``eval_result_entries_to_yaml``, https://huggingface.co/docs/hub/eval-results). Uploaded with the model they appear
on its page and on the benchmark dataset's leaderboard.

``trajloom evaluate`` writes one file per (bench config, split) into each scored pipeline folder: one entry per
metric of the results table (``task_id`` = the metric key of ``results.json``, raw value, not the table's scale),
with the run's settings in ``notes``. It only ever rewrites files it wrote itself (they start with ``MARK``).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, Optional

import numpy as np

MARK = "# written by trajloom evaluate"
FOLDER = ".eval_results"


def eval_results_path(model_dir, config: str, split: str) -> Path:
    """``<model_dir>/.eval_results/trajloombench-<config>-<split>.yaml`` (names reduced to ``[A-Za-z0-9_.-]``)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"trajloombench-{config}-{split}")
    return Path(model_dir) / FOLDER / f"{safe}.yaml"


def check_writable(path: Path) -> None:
    """Raise before any work when ``path`` exists and was not written by :func:`write_eval_results`, or its folder
    cannot be written."""
    import os

    if path.exists():
        if not path.is_file() or not path.read_text(errors="replace").startswith(MARK):
            raise ValueError(f"{str(path)!r} exists and was not written by trajloom evaluate: move it away or pass "
                             "--no-eval-results")
        if not os.access(path, os.W_OK):
            raise PermissionError(f"{str(path)!r} is not writable (or pass --no-eval-results)")
    probe = path.parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write the eval results into {str(probe)!r} (or pass --no-eval-results)")


def write_eval_results(model_dir, scores: Dict[str, float], *, dataset_id: str, config: str, split: str,
                       notes: Optional[str] = None, metrics=None, date: Optional[str] = None) -> Path:
    """Write ``scores`` (metric key -> value; non-finite values and keys outside ``metrics``, when given, are left
    out) as the eval-results file of ``model_dir`` for ``dataset_id`` (the bench's Hub id). Returns the path."""
    import yaml
    from huggingface_hub import EvalResultEntry, eval_result_entries_to_yaml

    from .video_io import atomic_path

    if not isinstance(dataset_id, str) or not dataset_id:
        raise ValueError(f"`dataset_id` must be the bench's Hub id (owner/name), got {dataset_id!r}")
    date = date or datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    entries = [EvalResultEntry(dataset_id=dataset_id, task_id=key, value=float(value), date=date, notes=notes)
               for key, value in scores.items()
               if (metrics is None or key in metrics) and isinstance(value, (int, float, np.floating))
               and not isinstance(value, bool) and np.isfinite(value)]
    if not entries:
        raise ValueError("no finite score to write")
    path = eval_results_path(model_dir, config, split)
    check_writable(path)
    text = f"{MARK} ({dataset_id}, config {config}, split {split})\n" + yaml.safe_dump(
        eval_result_entries_to_yaml(entries), sort_keys=False)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
    return path
