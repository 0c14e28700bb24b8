"""The remote-code layout of a saved pipeline folder, so that it loads through plain diffusers as well as through
:class:`TrajLoomPipeline` (diffusers' custom-pipeline / custom-component layout, as resolved by diffusers 0.42's
``_resolve_custom_pipeline_and_cls`` and ``get_class_obj_and_candidates``):

* ``model_index.json``: ``"_class_name": ["pipeline_trajloom", "TrajLoomPipeline"]`` with ``pipeline_trajloom.py``
  at the folder root, and each of this package's components as ``[<module file>, <class>]`` with
  ``<component>/<module file>.py`` in its folder;
* each model component's ``config.json`` carries ``"auto_map": {"AutoModel": "<module file>.<class>"}`` for
  ``diffusers.AutoModel.from_pretrained(f"{folder}/<component>", trust_remote_code=True)``.

The code files are entry points: each imports its class from the installed ``trajloom-hf`` package (the weights
need its models), so ``DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)`` works in a fresh
process that never imported ``trajloom_hf``. :func:`is_own_layout` tells whether a folder's code files are exactly
the ones written here: :meth:`TrajLoomPipeline.from_pretrained` then runs them without ``trust_remote_code``
(they only import this package); any other code needs the caller's explicit ``trust_remote_code=True``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Tuple

PIPELINE_MODULE = "pipeline_trajloom"
# class name -> (module file written into the component folder, the package module it imports from)
COMPONENT_MODULES: Dict[str, Tuple[str, str]] = {
    "AutoencoderTraj": ("autoencoder_traj", "trajloom_hf.models.autoencoder_traj"),
    "TrajFlowTransformer": ("transformer_traj_flow", "trajloom_hf.models.transformer_traj_flow"),
    "VisibilityPredictor": ("visibility_predictor", "trajloom_hf.models.visibility_predictor"),
    "FrameEncoder": ("frame_encoder", "trajloom_hf.models.frame_encoder"),
    "FlowMatchTrajScheduler": ("scheduling_flow_match_traj", "trajloom_hf.schedulers.scheduling_flow_match_traj"),
}
MODEL_CLASSES = ("AutoencoderTraj", "TrajFlowTransformer", "VisibilityPredictor", "FrameEncoder")


def entry_point_source(class_name: str) -> str:
    """The text of the code file that exposes ``class_name`` (a component class or ``"TrajLoomPipeline"``)."""
    module = "trajloom_hf.pipelines.pipeline_trajloom" if class_name == "TrajLoomPipeline" else COMPONENT_MODULES[class_name][1]
    return (f'"""{class_name} for diffusers remote-code loading (``trust_remote_code=True``). The class lives in the\n'
            f'trajloom-hf package (``pip install trajloom-hf``); this file, written by its save_pretrained, only imports it."""\n\n'
            f"from {module} import {class_name}  # noqa: F401\n")


def _write(path: Path, text: str) -> None:
    from ..video_io import atomic_path

    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def _code_files(folder: Path, index: dict) -> Dict[Path, str]:
    """Every code file the layout of ``index`` names -> the text it must hold."""
    files = {}
    name = index.get("_class_name")
    if isinstance(name, list) and len(name) == 2:
        files[folder / f"{name[0]}.py"] = entry_point_source(name[1]) if name == [PIPELINE_MODULE, "TrajLoomPipeline"] else None
    for component, value in index.items():
        if component.startswith("_") or not isinstance(value, list) or len(value) != 2 or value[0] is None:
            continue
        path = folder / component / f"{value[0]}.py"
        if path.is_file() or value[1] in COMPONENT_MODULES:
            own = COMPONENT_MODULES.get(value[1], (None,))[0] == value[0]
            files[path] = entry_point_source(value[1]) if own else None
    return files


def write_hub_layout(folder) -> None:
    """Turn a ``save_pretrained`` folder into the remote-code layout (module docstring), in place and atomically per
    file. Components of other libraries (diffusers, transformers) keep their entries."""
    folder = Path(folder)
    index_path = folder / "model_index.json"
    index = json.loads(index_path.read_text())
    index["_class_name"] = [PIPELINE_MODULE, "TrajLoomPipeline"]
    for component, value in list(index.items()):
        if component.startswith("_") or not isinstance(value, list) or len(value) != 2 or value[1] not in COMPONENT_MODULES:
            continue
        module = COMPONENT_MODULES[value[1]][0]
        index[component] = [module, value[1]]
        if value[1] in MODEL_CLASSES:
            cfg_path = folder / component / "config.json"
            cfg = json.loads(cfg_path.read_text())
            cfg["auto_map"] = {"AutoModel": f"{module}.{value[1]}"}
            _write(cfg_path, json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    for path, text in _code_files(folder, index).items():
        _write(path, text)
    _write(index_path, json.dumps(index, indent=2, sort_keys=True) + "\n")


def is_own_layout(folder) -> bool:
    """Whether ``folder`` uses the remote-code layout and every code file it names holds exactly what
    :func:`write_hub_layout` writes (so loading it runs nothing but imports of this package)."""
    folder = Path(folder)
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError):
        return False
    if index.get("_class_name") != [PIPELINE_MODULE, "TrajLoomPipeline"]:
        return False
    for path, text in _code_files(folder, index).items():
        if text is None or not path.is_file() or path.read_text() != text:
            return False
    return True


def has_remote_code(folder) -> bool:
    """Whether diffusers would execute code from ``folder`` (a list ``_class_name`` or a component code file)."""
    try:
        index = json.loads((Path(folder) / "model_index.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(index.get("_class_name"), list) or any(p.is_file() for p in _code_files(Path(folder), index))


__all__ = ["COMPONENT_MODULES", "PIPELINE_MODULE", "entry_point_source", "has_remote_code", "is_own_layout",
           "write_hub_layout"]
