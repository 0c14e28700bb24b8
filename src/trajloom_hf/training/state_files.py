"""Training state (optimizer, LR scheduler, RNG and generator states) stored as data, never as a pickle.

A ``state_dict`` is a tree of dicts, lists, tuples, numbers, strings, ``None`` and tensors. :func:`save_state_tree`
writes the tensors to ``<stem>.safetensors`` and the rest of the tree to ``<stem>.json`` (tensors replaced by their
name); :func:`load_state_tree` rebuilds it. Neither step can run code, unlike ``torch.load(weights_only=False)`` of
the ``.bin``/``.pkl`` files that ``accelerator.save_state`` writes for optimizers and registered objects.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, Tuple

import torch
from safetensors.torch import load_file, save_file

from ..video_io import atomic_path

__all__ = ["load_state_tree", "save_state_tree", "state_tree_files"]

_TENSOR, _TUPLE, _DICT, _FLOAT = "__tensor__", "__tuple__", "__dict__", "__float__"


def _encode(obj: Any, tensors: Dict[str, torch.Tensor], path: str) -> Any:
    if isinstance(obj, torch.Tensor):
        name = path or "root"
        tensors[name] = obj.detach().cpu().contiguous()
        return {_TENSOR: name}
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):  # JSON has no inf/nan
        return obj if math.isfinite(obj) else {_FLOAT: repr(obj)}
    if isinstance(obj, tuple):
        return {_TUPLE: [_encode(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{path}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, dict):  # keys may be ints (optimizer state is keyed by parameter index)
        for k in obj:
            if not isinstance(k, (str, int)) or isinstance(k, bool):
                raise TypeError(f"state key {k!r} at {path or 'root'!r} must be a str or an int, got {type(k).__name__}")
        return {_DICT: [[k, _encode(v, tensors, f"{path}.{k}")] for k, v in obj.items()]}
    if hasattr(obj, "item") and hasattr(obj, "dtype"):  # numpy scalar
        return _encode(obj.item(), tensors, path)
    raise TypeError(f"cannot store a {type(obj).__name__} at {path or 'root'!r} as training state (tensors, numbers, "
                    "strings, lists, tuples and dicts only)")


def _decode(obj: Any, tensors: Dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if set(obj) == {_TENSOR}:
            return tensors[obj[_TENSOR]]
        if set(obj) == {_TUPLE}:
            return tuple(_decode(v, tensors) for v in obj[_TUPLE])
        if set(obj) == {_FLOAT}:
            return float(obj[_FLOAT])
        if set(obj) == {_DICT}:
            return {k: _decode(v, tensors) for k, v in obj[_DICT]}
        raise ValueError(f"not a training-state tree node: {sorted(obj)}")
    return obj


def state_tree_files(stem: str) -> Tuple[str, str]:
    """The two files of a state tree: ``(<stem>.json, <stem>.safetensors)``."""
    return f"{stem}.json", f"{stem}.safetensors"


def save_state_tree(obj: Any, stem: str) -> None:
    """Write ``obj`` (a ``state_dict``-like tree) as ``<stem>.json`` + ``<stem>.safetensors``, each atomically."""
    tensors: Dict[str, torch.Tensor] = {}
    tree = _encode(obj, tensors, "")
    json_path, st_path = state_tree_files(stem)
    with atomic_path(st_path) as tmp:
        save_file(tensors, tmp)
    with atomic_path(json_path) as tmp, open(tmp, "w") as fh:
        json.dump(tree, fh)


def load_state_tree(stem: str) -> Any:
    """Read what :func:`save_state_tree` wrote (safetensors + JSON: loading runs no code)."""
    json_path, st_path = state_tree_files(stem)
    for p in (json_path, st_path):
        if not os.path.isfile(p):
            raise FileNotFoundError(f"training state file {p!r} is missing")
    with open(json_path) as fh:
        tree = json.load(fh)
    return _decode(tree, load_file(st_path))
