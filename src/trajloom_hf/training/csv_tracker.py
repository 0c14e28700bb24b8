"""An Accelerate tracker that writes metrics to a plain CSV file (``logging_dir/<run>/metrics.csv``, one row per
``log`` call, a ``step`` column first).

    accelerator = Accelerator(log_with=CSVTracker("run", logging_dir), project_dir=...)

Why not one of Accelerate's own trackers: it ships TensorBoard, W&B, Comet, Aim, MLflow, ClearML, DVCLive, SwanLab
and Trackio, each an extra dependency with its own binary or server format; none writes a file that the standard
library reads. The quickstart's progress bar, the tests and a person with a spreadsheet read ``metrics.csv``
directly. ``--report_to tensorboard`` (or any other Accelerate tracker name) still works in every script.

Rows are appended (a column set that grows rewrites the file atomically, so it stays a valid CSV); a resumed run
calls :meth:`CSVTracker.rewind` so that steps logged after its checkpoint by the killed run are not duplicated.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Optional

from accelerate.tracking import GeneralTracker

from ..video_io import atomic_path

__all__ = ["CSVTracker"]


def _step(row) -> float:
    try:
        return float(row.get("step") or "nan")
    except ValueError:
        return math.nan


class CSVTracker(GeneralTracker):
    name = "csv"
    requires_logging_directory = True

    def __init__(self, run_name: str, logging_dir: str):
        super().__init__()
        self.run_name = run_name
        self.dir = Path(logging_dir) / run_name
        self.path = self.dir / "metrics.csv"
        self._columns = ["step"]
        self._rows = []
        self._rewrite_next = False  # nothing is written before the first log (every process builds a tracker)
        if self.path.exists():  # resumed run: keep what was logged before
            text = self.path.read_text()
            if text and not text.endswith("\n"):  # a row cut off by a kill: drop it (rewritten at the next log)
                text = text[: text.rfind("\n") + 1]
                self._rewrite_next = True
            reader = csv.DictReader(text.splitlines())
            self._columns = list(reader.fieldnames or ["step"])
            self._rows = list(reader)

    @property
    def tracker(self):
        return self.path

    def store_init_configuration(self, values: dict):
        with atomic_path(self.dir / "config.json") as tmp, open(tmp, "w") as fh:
            json.dump(values, fh, indent=2, default=str)

    def _rewrite(self) -> None:
        with atomic_path(self.path) as tmp, open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self._columns)
            writer.writeheader()
            writer.writerows(self._rows)

    def rewind(self, step: int) -> None:
        """Forget the rows logged after ``step`` (the step a resumed run continues from)."""
        kept = [r for r in self._rows if not _step(r) > step]
        if len(kept) != len(self._rows):
            self._rows = kept
            self._rewrite()

    def log(self, values: dict, step: Optional[int] = None, **kwargs):
        row = {"step": step, **{k: (float(v) if hasattr(v, "__float__") else v) for k, v in values.items()}}
        new_cols = [k for k in row if k not in self._columns]
        self._rows.append(row)
        if new_cols or self._rewrite_next or not self.path.exists():
            self._columns += new_cols
            self._rewrite()
            self._rewrite_next = False
            return
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=self._columns).writerow(row)

    def finish(self):
        pass
