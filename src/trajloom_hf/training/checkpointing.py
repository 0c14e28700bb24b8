"""Checkpoints of a training run: save, find the newest intact one, resume bit for bit. A checkpoint is data, not code.

``output_dir/checkpoints/checkpoint-<step>/`` holds

* ``model.safetensors``: the (unwrapped) model's weights;
* ``optimizer.{json,safetensors}``, ``scheduler.{json,safetensors}`` (with an LR scheduler), ``scaler.*`` (fp16):
  their ``state_dict`` as a :mod:`~trajloom_hf.training.state_files` tree;
* ``random_states_<rank>.{json,safetensors}``: every process's Python / NumPy / torch (CPU and CUDA) RNG states, the
  states of the run's own ``torch.Generator``\\ s (e.g. the VAE's posterior noise) and Accelerate's micro-step
  counter;
* ``trainer_state.json``, written last: the step and the size of every file above. A folder without it, or whose
  files are missing or shorter than listed, is incomplete.

Nothing is read with ``pickle`` or ``torch.load``: ``accelerator.save_state``/``load_state`` are not used, because
Accelerate reloads objects registered with ``register_for_checkpointing`` (``custom_checkpoint_*.pkl``) with
``weights_only=False``, i.e. any pickle planted in a checkpoint folder would run on resume, and it swallows a failed
RNG restore (the run then continues, no longer exact). Single-process and DDP runs (CPU or GPU) are supported;
DeepSpeed / FSDP / Megatron shard their state and are refused up front.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_model, save_model

from ..video_io import atomic_path
from .state_files import load_state_tree, save_state_tree, state_tree_files

__all__ = ["CheckpointError", "Checkpointer", "checkpoint_problem", "list_checkpoints", "latest_checkpoint"]

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
TRAINER_STATE = "trainer_state.json"
MODEL_FILE = "model.safetensors"
_NAME = re.compile(r"^checkpoint-(\d+)$")


class CheckpointError(ValueError):
    """A checkpoint folder is incomplete or corrupt (missing, truncated or unreadable file)."""


def list_checkpoints(root) -> List[Path]:
    """``checkpoint-<step>`` folders under ``root``, oldest first (complete or not)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def checkpoint_problem(path) -> Optional[str]:
    """Why ``path`` cannot be resumed from (incomplete or corrupt), or ``None`` when it is intact.

    Checks that ``trainer_state.json`` is readable, that every file it lists exists with the listed size, and that
    every JSON file parses and every safetensors header reads. (Weights are not hashed: a flipped bit inside a
    tensor is not detected.)"""
    path = Path(path)
    state_file = path / TRAINER_STATE
    if not state_file.is_file():
        return f"no {TRAINER_STATE} (the save did not finish)"
    try:
        state = json.loads(state_file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return f"unreadable {TRAINER_STATE} ({e})"
    if not isinstance(state, dict) or not isinstance(state.get("global_step"), int):
        return f"{TRAINER_STATE} has no integer global_step"
    files = state.get("files")
    if state.get("format") != CHECKPOINT_FORMAT or not isinstance(files, dict):
        return f"written by an older version of the training scripts (no file list in {TRAINER_STATE}; format " \
               f"{state.get('format')!r}, expected {CHECKPOINT_FORMAT})"
    for name, size in files.items():
        f = path / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != size:
            return f"{name} is {f.stat().st_size} bytes, {size} expected (truncated or overwritten)"
        try:
            if name.endswith(".json"):
                json.loads(f.read_text())
            elif name.endswith(".safetensors"):
                with safe_open(str(f), framework="pt") as st:
                    st.keys()
        except Exception as e:  # any parse failure means a corrupt file
            return f"{name} is corrupt ({type(e).__name__}: {e})"
    return None


def latest_checkpoint(root) -> Optional[Path]:
    """The intact ``checkpoint-<step>`` with the highest step; newer incomplete/corrupt ones are skipped with a
    warning (a run killed while saving, a truncated copy)."""
    for path in reversed(list_checkpoints(root)):
        problem = checkpoint_problem(path)
        if problem is None:
            return path
        warnings.warn(f"skipping checkpoint {str(path)!r}: {problem}; trying the next older one", stacklevel=2)
        logger.warning("skipping checkpoint %s: %s", path, problem)
    return None


def _numpy_state() -> dict:
    s = np.random.get_state(legacy=False)
    return {**s, "state": {"key": s["state"]["key"].tolist(), "pos": int(s["state"]["pos"])}}


def _set_numpy_state(s: dict) -> None:
    np.random.set_state({**s, "state": {"key": np.asarray(s["state"]["key"], dtype=np.uint32), "pos": s["state"]["pos"]}})


class Checkpointer:
    """Saves and restores everything one run needs to continue exactly where it stopped.

    Args:
        accelerator: the run's ``Accelerator``.
        output_dir: checkpoints go to ``output_dir/checkpoints``.
        model: the prepared model (or objective module) whose weights train.
        optimizer: the prepared optimizer.
        lr_scheduler: an LR scheduler (prepared or not), or ``None``.
        generators: named ``torch.Generator``\\ s of this process drawn from during training (restored per process).
    """

    def __init__(self, accelerator, output_dir, model, optimizer, lr_scheduler=None,
                 generators: Optional[Dict[str, torch.Generator]] = None):
        kind = str(getattr(accelerator, "distributed_type", "NO"))
        if any(s in kind.upper() for s in ("DEEPSPEED", "FSDP", "MEGATRON")):
            raise ValueError(f"checkpointing supports single-process and DDP runs, not {kind}: launch without a "
                             "DeepSpeed/FSDP/Megatron accelerate config")
        self.accelerator, self.model, self.optimizer, self.lr_scheduler = accelerator, model, optimizer, lr_scheduler
        self.generators = dict(generators or {})
        self.root = Path(output_dir) / "checkpoints"

    # -- saving ---------------------------------------------------------------------------------------------------
    def _stateful(self) -> Dict[str, object]:
        out = {"optimizer": self.optimizer}
        if self.lr_scheduler is not None:
            out["scheduler"] = self.lr_scheduler
        if getattr(self.accelerator, "scaler", None) is not None:
            out["scaler"] = self.accelerator.scaler
        return out

    def _rng_state(self) -> dict:
        state = {"python": random.getstate(), "numpy": _numpy_state(), "torch": torch.get_rng_state(),
                 "accelerator_step": int(getattr(self.accelerator, "step", 0)),
                 "generators": {k: g.get_state() for k, g in self.generators.items()}}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def save(self, step: int, keep: int) -> Path:
        """Write ``checkpoint-<step>`` (all processes must call it); only the ``keep`` newest are kept (0: all)."""
        acc = self.accelerator
        path = self.root / f"checkpoint-{step}"
        acc.wait_for_everyone()
        if acc.is_main_process:
            path.mkdir(parents=True, exist_ok=True)
            (path / TRAINER_STATE).unlink(missing_ok=True)  # our own marker: the folder is incomplete until rewritten
        acc.wait_for_everyone()
        if acc.is_main_process:
            with atomic_path(path / MODEL_FILE) as tmp:
                save_model(acc.unwrap_model(self.model), tmp)
            for name, obj in self._stateful().items():
                save_state_tree(obj.state_dict(), str(path / name))
        save_state_tree(self._rng_state(), str(path / f"random_states_{acc.process_index}"))
        acc.wait_for_everyone()
        if acc.is_main_process:
            names = [MODEL_FILE] + [f for n in self._stateful() for f in state_tree_files(n)]
            names += [f for r in range(acc.num_processes) for f in state_tree_files(f"random_states_{r}")]
            state = {"format": CHECKPOINT_FORMAT, "global_step": int(step), "num_processes": acc.num_processes,
                     "files": {n: (path / n).stat().st_size for n in names}}
            with atomic_path(path / TRAINER_STATE) as tmp, open(tmp, "w") as fh:
                json.dump(state, fh, indent=2)
            for old in list_checkpoints(self.root)[:-keep] if keep > 0 else []:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        return path

    # -- loading --------------------------------------------------------------------------------------------------
    def load(self, path) -> int:
        """Restore the state saved in ``path``; returns its step. Raises :class:`CheckpointError` if it is not intact,
        ``ValueError`` if it does not fit this model/optimizer."""
        path = Path(path)
        problem = checkpoint_problem(path)
        if problem is not None:
            raise CheckpointError(f"checkpoint {str(path)!r} is not a complete checkpoint: {problem}")
        acc = self.accelerator
        state = json.loads((path / TRAINER_STATE).read_text())
        try:
            load_model(acc.unwrap_model(self.model), str(path / MODEL_FILE), strict=True, device=str(acc.device))
            for name, obj in self._stateful().items():
                if f"{name}.json" not in state["files"]:
                    raise ValueError(f"it has no {name} state")
                obj.load_state_dict(load_state_tree(str(path / name)))
        except (RuntimeError, KeyError, ValueError) as e:
            raise ValueError(f"checkpoint {str(path)!r} does not fit this run's model/optimizer: {e}") from e
        stem = f"random_states_{acc.process_index}"
        if f"{stem}.json" in state["files"]:
            self._set_rng_state(load_state_tree(str(path / stem)))
            if state.get("num_processes") != acc.num_processes:
                warnings.warn(f"checkpoint {str(path)!r} was written by {state.get('num_processes')} processes, this run "
                              f"has {acc.num_processes}: it continues, but not bit for bit", stacklevel=2)
        else:
            warnings.warn(f"checkpoint {str(path)!r} has no random states for process {acc.process_index} (written by "
                          f"{state.get('num_processes')} processes): the run continues, but not bit for bit", stacklevel=2)
        return int(state["global_step"])

    def _set_rng_state(self, s: dict) -> None:
        random.setstate(s["python"])
        _set_numpy_state(s["numpy"])
        torch.set_rng_state(s["torch"])
        if "cuda" in s and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(s["cuda"])
        self.accelerator.step = s["accelerator_step"]
        missing = sorted(set(self.generators) - set(s["generators"]))
        if missing:
            raise ValueError(f"checkpoint has no state for the generator(s) {missing}")
        for name, g in self.generators.items():
            g.set_state(s["generators"][name])

    def resume(self, spec: Optional[str]) -> int:
        """Resume from ``spec`` (a checkpoint folder, or ``"latest"``: the newest intact one under
        ``output_dir/checkpoints``); returns the step to continue from (0: from scratch).

        Trackers that can (:class:`~trajloom_hf.training.csv_tracker.CSVTracker`) then drop what an earlier run
        logged after that step, so ``metrics.csv`` holds every step once."""
        step = 0
        if spec == "latest":
            path = latest_checkpoint(self.root)
            if path is None:
                logger.info("no intact checkpoint under %s: starting from scratch", self.root)
            else:
                step = self.load(path)
        elif spec:
            path = Path(spec)
            if not path.is_dir():
                raise FileNotFoundError(f"--resume_from_checkpoint {spec!r}: no such checkpoint folder")
            step = self.load(path)
        if spec and step:
            logger.info("resumed from %s at step %d", path, step)
        for tracker in getattr(self.accelerator, "trackers", []):
            if callable(getattr(tracker, "rewind", None)):
                tracker.rewind(step)
        return step
