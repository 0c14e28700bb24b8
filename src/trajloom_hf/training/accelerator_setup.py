"""The ``Accelerator`` of a training run, its trackers and the run's bookkeeping files.

``make_accelerator(args, run_name)`` reads ``--output_dir``, ``--gradient_accumulation_steps``,
``--mixed_precision`` and ``--report_to`` ("csv": :class:`CSVTracker` at ``output_dir/logs/<run>/metrics.csv``,
"none", or any Accelerate tracker name such as "tensorboard").
"""

from __future__ import annotations

import json
import logging
import os
from typing import Dict

from accelerate import Accelerator
from accelerate.tracking import get_available_trackers
from accelerate.utils import LoggerType, ProjectConfiguration

from ..video_io import atomic_path
from .csv_tracker import CSVTracker

__all__ = ["log_metrics", "make_accelerator", "start_run", "tracker_config", "write_json"]

logger = logging.getLogger(__name__)


def write_json(path: str, obj) -> None:
    """``obj`` as indented JSON at ``path``, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        json.dump(obj, fh, indent=2, default=str)


def _trackers(report_to: str, run_name: str, logging_dir: str):
    if report_to == "csv":
        return [CSVTracker(run_name, logging_dir)]
    if report_to == "none":
        return None
    if report_to != "all":
        if report_to not in LoggerType.list():
            raise ValueError(f"--report_to must be 'csv', 'none', 'all' or one of {LoggerType.list()}, got {report_to!r}")
        if LoggerType(report_to) not in get_available_trackers():
            raise ValueError(f"--report_to {report_to}: the {report_to} package is not installed (pip install {report_to})")
    return report_to


def make_accelerator(args, run_name: str, **kwargs) -> Accelerator:
    """An ``Accelerator`` with the project folder ``args.output_dir`` and the ``--report_to`` tracker; ``kwargs`` go
    to ``Accelerator`` (e.g. ``dataloader_config``)."""
    project = ProjectConfiguration(project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, "logs"))
    return Accelerator(gradient_accumulation_steps=args.gradient_accumulation_steps, mixed_precision=args.mixed_precision,
                       log_with=_trackers(args.report_to, run_name, project.logging_dir), project_config=project, **kwargs)


def tracker_config(args) -> Dict[str, object]:
    """The scalar arguments of a run (what trackers can store as hyperparameters)."""
    return {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))}


def start_run(accelerator: Accelerator, args, run_name: str) -> None:
    """Write ``output_dir/train_args.json`` and initialise the trackers (main process)."""
    if accelerator.is_main_process:
        os.makedirs(args.output_dir, exist_ok=True)
        write_json(os.path.join(args.output_dir, "train_args.json"), vars(args))
        accelerator.init_trackers(run_name, config=tracker_config(args))


def log_metrics(accelerator: Accelerator, step: int, metrics: Dict[str, float]) -> None:
    """Log to the trackers and, on the main process, one ``step N: k=v, ...`` line."""
    accelerator.log(metrics, step=step)
    if accelerator.is_main_process:
        logger.info("step %d: %s", step, ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))
