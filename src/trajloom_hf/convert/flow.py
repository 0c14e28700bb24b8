"""Conversion of the official TrajLoom-Flow generator and visibility-predictor checkpoints (reference §3, §4, App. A).

``trajloom_generator.pt`` -> :class:`~trajloom_hf.models.transformer_traj_flow.TrajFlowTransformer` and
``visibility_predictor.pt`` -> :class:`~trajloom_hf.models.visibility_predictor.VisibilityPredictor`. Our key
names equal the official ones, so conversion unwraps the checkpoint, drops the official non-persistent/debug
tensors, maps the official JSON config (or infers it from the tensor shapes) and checks every key and shape.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch

from ..models.transformer_traj_flow import TrajFlowTransformer
from ..models.visibility_predictor import VisibilityPredictor

GENERATOR_WRAPPER_KEYS = ("generator", "model", "state_dict", "model_state_dict")
VIS_PREDICTOR_WRAPPER_KEYS = ("model", "predictor", "state_dict", "model_state_dict")
# tensors the official code may have saved that are not model weights
_GENERATOR_DROP_SUFFIXES = ("last_gate_xattn_mean",)
_GENERATOR_DROP_KEYS = ("abs_time_embed_hist", "abs_time_embed_fut")
_STRIP_PREFIXES = ("module.", "_orig_mod.")

CheckpointLike = Union[str, os.PathLike, Mapping[str, Any]]


def load_checkpoint_state_dict(
    checkpoint: CheckpointLike, wrapper_keys: Sequence[str], *, weights_only: bool = True
) -> Dict[str, torch.Tensor]:
    """Read an official ``.pt`` file (or an already loaded dict) and return its flat tensor state dict.

    The weights are looked up under the first of ``wrapper_keys`` present (else the dict itself); DDP ``module.`` and
    ``torch.compile`` ``_orig_mod.`` prefixes are stripped. ``weights_only=False`` allows pickled non-tensor objects
    (only for files you trust). A tensor holding NaN or inf (a corrupt or bit-flipped file) is a ``ValueError``.
    """
    if isinstance(checkpoint, (str, os.PathLike)):
        path = os.fspath(checkpoint)
        try:
            obj = torch.load(path, map_location="cpu", weights_only=weights_only)
        except Exception as err:  # torch raises UnpicklingError subclasses with long messages
            raise _load_error(path, err, weights_only) from None
    elif isinstance(checkpoint, Mapping):
        obj = checkpoint
    else:
        raise TypeError(f"`checkpoint` must be a path or a state dict, got {type(checkpoint).__name__}")
    for key in wrapper_keys:
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"no tensor state dict found in the checkpoint (looked under {list(wrapper_keys)} and the top level)")
    out = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            continue
        for prefix in _STRIP_PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix):]
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ValueError(f"checkpoint tensor {key!r} holds NaN or inf: the file is corrupt (re-download it)")
        out[key] = value
    return out


def _load_error(path: str, err: Exception, weights_only: bool) -> ValueError:
    """What is actually wrong with a ``.pt`` file ``torch.load`` refused (its own advice points to the unsafe path)."""
    text = str(err)
    if weights_only and "Unsupported global" in text:  # a real pickle of objects (other failures: not a checkpoint)
        import re

        names = sorted(set(re.findall(r"GLOBAL ([\w.]+)", text)))
        what = f" ({', '.join(names)})" if names else ""
        return ValueError(f"{path!r} holds pickled Python objects besides tensors{what}, which run code when loaded: "
                          "refused. If you trust the file, pass --trust-pickle (weights_only=False)")
    if isinstance(err, (FileNotFoundError, IsADirectoryError, PermissionError)):
        return ValueError(f"cannot read {path!r}: {err}")
    return ValueError(f"{path!r} is not a PyTorch checkpoint (or it is truncated): {type(err).__name__}: "
                      f"{text.splitlines()[0] if text else ''}")


# ----------------------------------------------------------------------------------------------------------------
# generator


def generator_config_from_official(official: Mapping[str, Any]) -> Dict[str, Any]:
    """Map the official ``trajloom_generator_config.json`` (its ``generator`` section, or the whole file) to
    :class:`TrajFlowTransformer` keyword arguments (reference §3.1)."""
    cfg = official.get("generator", official)
    out: Dict[str, Any] = {}
    direct = {
        "latent_channels": "latent_channels",
        "num_frames_latent": "num_latent_frames",
        "hidden_size": "hidden_size",
        "num_heads": "num_heads",
        "depth": "num_layers",
        "mlp_ratio": "mlp_ratio",
        "video_latent_channels": "video_latent_channels",
        "use_video_cond": "use_video_cond",
        "text_embed_dim": "text_embed_dim",
        "use_text_cond": "use_text_cond",
        "num_frames_in": "history_num_frames",
        "latent_time_stride": "temporal_stride",
        "use_overlap": "use_overlap",
        "temporal_first": "temporal_first",
        "spatial_ctx_mode": "spatial_ctx_mode",
        "spatial_ctx_pool": "spatial_ctx_pool",
        "spatial_ctx_last_k": "spatial_ctx_last_k",
        "spatial_ctx_include_video": "spatial_ctx_include_video",
        "video_ctx_mode": "video_ctx_mode",
        "track_fusion_scale_init": "fusion_scale_init",
        "track_fusion_use_time_gate": "fusion_time_gate",
        "use_hist_vis_cond": "use_hist_vis_cond",
        "hist_vis_scale_init": "hist_vis_scale_init",
    }
    for src, dst in direct.items():
        if src in cfg:
            out[dst] = cfg[src]
    if all(k in cfg for k in ("input_height", "input_width", "patch_size")):
        p = int(cfg["patch_size"])
        out["grid_size"] = (int(cfg["input_height"]) // p, int(cfg["input_width"]) // p)
    fusion = cfg.get("track_fusion")
    if fusion is not None:
        if fusion not in ("none", "add_last", "add_last_plus_vel"):
            raise ValueError(f"unsupported official track_fusion {fusion!r}")
        out["use_history_fusion"] = fusion != "none"
        out["fusion_velocity_term"] = fusion == "add_last_plus_vel"
    if cfg.get("video_fusion", "none") != "none":
        raise ValueError(f"unsupported official video_fusion {cfg['video_fusion']!r} (only 'none' is released)")
    return out


def infer_generator_config(state_dict: Mapping[str, torch.Tensor], grid_size: Optional[Tuple[int, int]] = None) -> Dict[str, Any]:
    """Config read off the tensor shapes (sizes and which conditioning streams exist).

    Not recoverable from shapes, hence the official defaults: ``num_heads = hidden / 64``, the fusion velocity
    term, context modes, frame positions. ``grid_size`` defaults to (15, 26) when N = 390.
    """
    def shape(key):
        if key not in state_dict:
            raise ValueError(f"official generator state dict lacks {key!r}")
        return tuple(state_dict[key].shape)

    _, n, d = shape("pos_embed")
    if grid_size is None:
        if n != 390:
            raise ValueError(f"cannot infer the token grid from N={n}; pass grid_size=(H_g, W_g)")
        grid_size = (15, 26)
    if grid_size[0] * grid_size[1] != n:
        raise ValueError(f"grid_size {tuple(grid_size)} does not give N={n} tokens")
    layers = 1 + max(int(k.split(".")[1]) for k in state_dict if k.startswith("blocks."))
    cfg: Dict[str, Any] = {
        "hidden_size": d,
        "num_heads": max(1, d // 64),
        "latent_channels": shape("in_proj.weight")[1],
        "num_layers": layers,
        "mlp_ratio": shape("blocks.0.mlp.fc1.weight")[0] / d,
        "grid_size": tuple(grid_size),
        "use_text_cond": "text_proj.weight" in state_dict,
        "use_video_cond": "hist_video_proj.weight" in state_dict,
        "use_hist_vis_cond": "hist_vis_proj.weight" in state_dict,
        "use_history_fusion": "track_fusion_scale" in state_dict,
        "fusion_time_gate": "track_fusion_gate_logit" in state_dict,
    }
    if cfg["use_text_cond"]:
        cfg["text_embed_dim"] = shape("text_proj.weight")[1]
    if cfg["use_video_cond"]:
        cfg["video_latent_channels"] = shape("hist_video_proj.weight")[1]
    if cfg["fusion_time_gate"]:
        cfg["num_latent_frames"] = shape("track_fusion_gate_logit")[0]
    return cfg


def convert_generator_state_dict(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Official generator keys -> ours: identical names; the non-persistent time tables and debug buffers go."""
    out = {}
    for key, value in state_dict.items():
        if key in _GENERATOR_DROP_KEYS or key.endswith(_GENERATOR_DROP_SUFFIXES):
            continue
        out[key] = value
    return out


def _load_checked(model: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], what: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong = [f"{k}: {tuple(state_dict[k].shape)} != {tuple(expected[k].shape)}" for k in expected if k in state_dict and state_dict[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{what} checkpoint does not match the model config: missing {missing[:8]}{'...' if len(missing) > 8 else ''}, "
            f"unexpected {unexpected[:8]}{'...' if len(unexpected) > 8 else ''}, wrong shapes {wrong[:8]}"
        )
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state_dict.items()}, strict=True)


def convert_trajloom_generator(
    checkpoint: CheckpointLike,
    official_config: Optional[Mapping[str, Any]] = None,
    *,
    grid_size: Optional[Tuple[int, int]] = None,
    weights_only: bool = True,
    **config_overrides,
) -> TrajFlowTransformer:
    """Build a :class:`TrajFlowTransformer` from ``trajloom_generator.pt`` (path or loaded dict).

    Args:
        checkpoint: the file or a dict holding the weights (under ``generator``/``model``/... or at the top level).
        official_config: the official ``trajloom_generator_config.json`` contents (recommended); otherwise the
            config is inferred from the shapes (:func:`infer_generator_config`).
        config_overrides: extra :class:`TrajFlowTransformer` arguments (win over both).
    """
    sd = convert_generator_state_dict(load_checkpoint_state_dict(checkpoint, GENERATOR_WRAPPER_KEYS, weights_only=weights_only))
    config = infer_generator_config(sd, grid_size)
    if official_config is not None:
        config.update(generator_config_from_official(official_config))
    config.update(config_overrides)
    model = TrajFlowTransformer(**config)
    _load_checked(model, sd, "generator")
    return model.eval()


# ----------------------------------------------------------------------------------------------------------------
# visibility predictor


def vis_predictor_config_from_official(official: Mapping[str, Any]) -> Dict[str, Any]:
    """Map ``vis_predictor_config.json`` (``predictor`` section + top-level ``temp_stride``) to
    :class:`VisibilityPredictor` arguments; the disabled ``use_hist_last`` variants are rejected."""
    cfg = official.get("predictor", official)
    for flag in ("use_hist_last", "use_delta_to_hist"):
        if cfg.get(flag, False):
            raise ValueError(f"official `{flag}=true` variants are not supported (the released predictor has it off)")
    out = {k: cfg[k] for k in ("latent_channels", "depth", "kernel_size") if k in cfg}
    if "hidden" in cfg:
        out["hidden_size"] = cfg["hidden"]
    if "temp_stride" in official:
        out["temporal_stride"] = official["temp_stride"]
    return out


def infer_vis_predictor_config(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, Any]:
    """Config from the shapes: ``in_proj [hidden, C]``, ``temporal_net.{2i}`` convs ``[hidden, hidden, k]``."""
    if "in_proj.weight" not in state_dict:
        raise ValueError("official visibility-predictor state dict lacks 'in_proj.weight'")
    hidden, channels = state_dict["in_proj.weight"].shape
    convs = sorted({int(k.split(".")[1]) for k in state_dict if k.startswith("temporal_net.") and k.endswith(".weight")})
    kernel = state_dict[f"temporal_net.{convs[0]}.weight"].shape[-1] if convs else 3
    return {"latent_channels": int(channels), "hidden_size": int(hidden), "depth": len(convs), "kernel_size": int(kernel)}


def convert_visibility_predictor(
    checkpoint: CheckpointLike,
    official_config: Optional[Mapping[str, Any]] = None,
    *,
    weights_only: bool = True,
    **config_overrides,
) -> VisibilityPredictor:
    """Build a :class:`VisibilityPredictor` from ``visibility_predictor.pt`` (path or loaded dict); keys are identical."""
    sd = load_checkpoint_state_dict(checkpoint, VIS_PREDICTOR_WRAPPER_KEYS, weights_only=weights_only)
    config = infer_vis_predictor_config(sd)
    if official_config is not None:
        config.update(vis_predictor_config_from_official(official_config))
    config.update(config_overrides)
    model = VisibilityPredictor(**config)
    _load_checked(model, sd, "visibility predictor")
    return model.eval()
