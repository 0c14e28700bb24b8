"""A dependency-free Accelerate tracker that appends metrics to a CSV file (one row per ``log`` call).

    accelerator = Accelerator(log_with=CSVTracker("run", logging_dir), project_dir=...)

New metric names add columns; the file is rewritten (atomically) when that happens, so it stays a valid CSV.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Optional

from accelerate.tracking import GeneralTracker


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
        if self.path.exists():  # resumed run: keep what was logged before
            with open(self.path, newline="") as fh:
                reader = csv.DictReader(fh)
                self._columns = list(reader.fieldnames or ["step"])
                self._rows = list(reader)

    @property
    def tracker(self):
        return self.path

    def store_init_configuration(self, values: dict):
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / ".config.json.tmp"
        tmp.write_text(json.dumps(values, indent=2, default=str))
        os.replace(tmp, self.dir / "config.json")

    def log(self, values: dict, step: Optional[int] = None, **kwargs):
        self.dir.mkdir(parents=True, exist_ok=True)
        row = {"step": step, **{k: (float(v) if hasattr(v, "__float__") else v) for k, v in values.items()}}
        new_cols = [k for k in row if k not in self._columns]
        self._columns += new_cols
        self._rows.append(row)
        tmp = self.dir / ".metrics.csv.tmp"
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self._columns)
            writer.writeheader()
            writer.writerows(self._rows)
        os.replace(tmp, self.path)

    def finish(self):
        pass
