"""Conversion of the official ``trajloom_vae.pt`` to :class:`~trajloom_hf.models.autoencoder_traj.AutoencoderTraj`.

Most keys are renames-free. Two official tensors act on the dense ``[T, H, W, 2]`` field and are folded into
their exact grid equivalents (derivation in :mod:`trajloom_hf.models.autoencoder_traj`):

* ``x_embedder.proj`` ``Conv2d(2, D, s, s)`` -> ``x_embedder`` ``Linear(2, D)`` with ``weight = sum_{r,q} W`` and
  ``bias = b - sum_{r,q} W[:, :, r, q] (2 (q - q0) / W_px, 2 (r - r0) / H_px)``;
* ``final_layer`` ``Linear(D, s*s*2)`` -> ``Linear(D, 2)``: rows ``(r0 s + q0) * 2 + {0, 1}`` of the query pixel.

Fixed tables (``pos_embed``, ``temp_embed_in``, ``offset_anchor_grid``) are recomputed from the config; they are
checked against the checkpoint so a mismatching config cannot load silently. ``norm2`` (unused officially) is
dropped. Files are read with ``weights_only=True``.
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, Mapping, Optional, Sequence

import torch

from ..encoding import dense_anchor_field, patch_query_offset
from ..models.autoencoder_traj import AutoencoderTraj
from .flow import CheckpointLike, _load_checked, load_checkpoint_state_dict

VAE_WRAPPER_KEYS = ("vae", "model_state_dict", "state_dict", "model")
_FIXED_TABLES = ("pos_embed", "temp_embed_in")


# where the official JSON files keep the VAE config (reference §2.1: ``trajloom_vae.config`` in all three files)
VAE_CONFIG_SECTIONS = (("trajloom_vae", "config"), ("trajloom_vae",), ("vae", "config"), ("vae",), ("config",), ())
# sizes that cannot be read off the tensors: a config that does not give them is refused, not guessed
_REQUIRED_VAE_KEYS = ("num_heads",)


def vae_config_from_official(official: Mapping[str, Any]) -> Dict[str, Any]:
    """Map the official ``trajloom_vae_config.json`` to :class:`AutoencoderTraj` arguments (reference §2.1).

    The VAE section is ``trajloom_vae.config`` (the official layout; ``trajloom_vae``, ``vae``(``.config``),
    ``config`` or the top level are also read). Legacy keys are ignored. A file with no section giving
    ``num_heads`` is a ``ValueError`` (the head count cannot be read from the weights; the other sizes can).
    """
    if not isinstance(official, Mapping):
        raise TypeError(f"the VAE config must be a JSON object, got {type(official).__name__}")
    cfg = None
    for path in VAE_CONFIG_SECTIONS:
        node = official
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping) and all(k in node for k in _REQUIRED_VAE_KEYS):
            cfg = node
            break
    if cfg is None:
        raise ValueError(
            f"cannot read the VAE config: no section ({', '.join('.'.join(p) or 'top level' for p in VAE_CONFIG_SECTIONS)}) "
            f"gives {' and '.join(_REQUIRED_VAE_KEYS)} (top-level keys: {sorted(official)[:8]}); the official "
            "trajloom_vae_config.json nests them under trajloom_vae.config")
    mapping = {
        "encoder_depth": "encoder_depth", "decoder_depth": "decoder_depth", "hidden_size": "hidden_size",
        "num_heads": "num_heads", "mlp_ratio": "mlp_ratio", "patch_size": "patch_size", "in_channels": "in_channels",
        "latent_channels": "latent_channels", "input_height": "height", "input_width": "width",
        "num_frames_in": "num_frames", "temp_stride": "temporal_stride", "use_offsets": "use_offsets", "beta": "beta",
        "pos_embed_dim": "pos_embed_dim",
    }
    out = {ours: cfg[theirs] for theirs, ours in mapping.items() if theirs in cfg}
    ints = ("encoder_depth", "decoder_depth", "hidden_size", "num_heads", "patch_size", "in_channels", "latent_channels",
            "height", "width", "num_frames", "temporal_stride", "pos_embed_dim")
    for key in ints:
        if key in out and (isinstance(out[key], bool) or not isinstance(out[key], int) or out[key] <= 0):
            raise ValueError(f"VAE config `{key}` must be a positive integer, got {out[key]!r}")
    if "hidden_size" in out and out["hidden_size"] % out["num_heads"]:
        raise ValueError(f"VAE config hidden_size {out['hidden_size']} is not divisible by num_heads {out['num_heads']}")
    return out


def infer_vae_config(sd: Mapping[str, torch.Tensor]) -> Dict[str, Any]:
    """Read the sizes off the official tensors; ``num_heads`` (which they do not determine) is a 64-dim-head
    stand-in value that :func:`convert_trajloom_vae` replaces by the config's or refuses."""
    w = sd["x_embedder.proj.weight"]
    hidden, in_ch, s, _ = w.shape
    depth = lambda prefix: 1 + max(int(k.split(".")[1]) for k in sd if k.startswith(prefix + "."))  # noqa: E731
    config = dict(
        hidden_size=int(hidden), in_channels=int(in_ch), patch_size=int(s),
        latent_channels=int(sd["from_latents.weight"].shape[1]),
        encoder_depth=depth("encoder_blocks"), decoder_depth=depth("decoder_blocks"),
        num_heads=max(1, int(hidden) // 64), pos_embed_dim=int(sd["patch_pos_proj.weight"].shape[1]),
        mlp_ratio=float(sd["encoder_blocks.0.mlp.fc1.weight"].shape[0]) / float(hidden),
        temporal_stride=(int(sd["temp_compressor.conv.weight"].shape[-1]) + 1) // 2,
    )
    if "offset_anchor_grid" in sd:
        config["height"], config["width"] = (int(v) for v in sd["offset_anchor_grid"].shape[-2:])
    if "temp_embed_in" in sd:
        config["num_frames"] = int(sd["temp_embed_in"].shape[1])
    return config


def convert_vae_state_dict(
    sd: Mapping[str, torch.Tensor], config: Mapping[str, Any], offset_scale: Sequence[float] = (1.0, 1.0)
) -> Dict[str, torch.Tensor]:
    """Official VAE tensors -> :class:`AutoencoderTraj` state dict for ``config`` (height, width, patch_size, origin,
    use_offsets).

    ``offset_scale`` ``(s_x, s_y)``: the model's input/output offset scaling (``AutoencoderTraj._offset_scale``), folded
    into the embedding columns and the output rows so that any ``offset_scale`` computes the official function.
    """
    h_px, w_px, s = config["height"], config["width"], config["patch_size"]
    off = patch_query_offset(s, config.get("grid_origin", "topleft"))
    use_offsets = config.get("use_offsets", True)
    out: Dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key.startswith("x_embedder.proj.") or key.startswith("final_layer.") or key == "offset_anchor_grid":
            continue
        if key in _FIXED_TABLES or ".norm2." in key:
            continue
        out[key] = value
    conv_w = sd["x_embedder.proj.weight"].double()  # [D, 2, s, s]
    conv_b = sd["x_embedder.proj.bias"].double()
    q = torch.arange(s, dtype=torch.float64)
    ramp_x = (2.0 * (q - off) / w_px)[None, :].expand(s, s)  # depends on the column q
    ramp_y = (2.0 * (q - off) / h_px)[:, None].expand(s, s)  # depends on the row r
    # the anchor ramp R exists only when the official model subtracts the dense anchor field (use_offsets)
    ramp = (conv_w[:, 0] * ramp_x).sum((1, 2)) + (conv_w[:, 1] * ramp_y).sum((1, 2)) if use_offsets else 0.0
    # our encoder feeds scale * offsets and our decoder divides its output by scale (absolute coordinates: no scale)
    scale = torch.tensor(offset_scale if use_offsets else (1.0, 1.0), dtype=torch.float64)
    out["x_embedder.weight"] = (conv_w.sum((2, 3)) / scale).to(sd["x_embedder.proj.weight"].dtype)
    out["x_embedder.bias"] = (conv_b - ramp).to(sd["x_embedder.proj.bias"].dtype)
    rows = [(off * s + off) * 2, (off * s + off) * 2 + 1]
    out["final_layer.weight"] = (sd["final_layer.weight"][rows].double() * scale[:, None]).to(sd["final_layer.weight"].dtype)
    out["final_layer.bias"] = (sd["final_layer.bias"][rows].double() * scale).to(sd["final_layer.bias"].dtype)
    return out


def _check_fixed_tables(model: AutoencoderTraj, sd: Mapping[str, torch.Tensor], saved_dtype: torch.dtype = torch.float32) -> None:
    """The fixed tables must be the ones this config computes, to the precision the file was saved in (values lie in
    [-1, 1], so a bf16/fp16 table is off by up to half an ulp at 1: eps / 2)."""
    tol = max(1e-4, torch.finfo(saved_dtype).eps)
    for name in _FIXED_TABLES:
        if name in sd:
            ours = getattr(model, name)
            theirs = sd[name]
            if theirs.numel() != ours.numel():
                raise ValueError(f"checkpoint `{name}` has shape {tuple(theirs.shape)}, this config computes "
                                 f"{tuple(ours.shape)}: the config's height/width/patch_size/num_frames/hidden_size are "
                                 "not the file's")
            err = float((ours - theirs.reshape(ours.shape).to(ours.dtype)).abs().max())
            if err > tol:
                raise ValueError(f"checkpoint `{name}` differs from the table this config computes by {err:.3g} "
                                 f"(> {tol:.1g}): the config's height/width/patch_size/num_frames/hidden_size are not "
                                 "the file's")
    if "offset_anchor_grid" in sd:
        g = sd["offset_anchor_grid"].double().reshape(2, *sd["offset_anchor_grid"].shape[-2:]).permute(1, 2, 0)
        ref = torch.as_tensor(dense_anchor_field(model.config.height, model.config.width))
        if g.shape != ref.shape or (g - ref).abs().max() > max(1e-3, torch.finfo(saved_dtype).eps):
            raise ValueError("checkpoint `offset_anchor_grid` does not match the pixel-centre anchors of this config")


def convert_trajloom_vae(
    checkpoint: CheckpointLike,
    official_config: Optional[Mapping[str, Any]] = None,
    *,
    weights_only: bool = True,
    **config_overrides,
) -> AutoencoderTraj:
    """Build an :class:`AutoencoderTraj` from ``trajloom_vae.pt`` (a path or a loaded dict).

    Args:
        checkpoint: file or dict; weights under ``vae``/``model_state_dict``/... or at the top level.
        official_config: contents of the official ``trajloom_vae_config.json`` (else inferred from shapes).
        config_overrides: extra :class:`AutoencoderTraj` arguments, e.g. ``latents_mean``/``latents_std``.
    """
    sd = load_checkpoint_state_dict(checkpoint, VAE_WRAPPER_KEYS, weights_only=weights_only)
    if "x_embedder.proj.weight" not in sd:
        raise ValueError("this is not an official TrajLoom-VAE state dict: `x_embedder.proj.weight` is missing")
    saved = {v.dtype for v in sd.values() if v.is_floating_point()}
    low = sorted(str(d).replace("torch.", "") for d in saved if d in (torch.bfloat16, torch.float16))
    saved_dtype = torch.bfloat16 if torch.bfloat16 in saved else torch.float16 if torch.float16 in saved else torch.float32
    if low:  # the official loader accepts these; the converted model keeps fp32 weights (coordinates stay fp32)
        warnings.warn(f"the VAE checkpoint holds {'/'.join(low)} tensors: read as float32 (values unchanged; the "
                      "converted weights are saved in float32)", UserWarning, stacklevel=2)
        sd = {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}
    config = infer_vae_config(sd)
    if official_config is not None:
        config.update(vae_config_from_official(official_config))
    elif "num_heads" not in config_overrides:
        raise ValueError("the VAE head count cannot be read from the weights: give the official config "
                         "(--vae-config trajloom_vae_config.json) or num_heads (--num-heads)")
    config.update(config_overrides)
    model = AutoencoderTraj(**config)
    _check_fixed_tables(model, sd, saved_dtype)
    scale = tuple(float(v) for v in model._offset_scale)
    _load_checked(model, convert_vae_state_dict(sd, dict(model.config), scale), "VAE")
    return model.eval()


def latent_stats_from_official(stats_json: Mapping[str, Any], key: str = "z_all") -> Dict[str, list]:
    """``latents_mean``/``latents_std`` from the official ``vae_latent_stats.json`` (the generator uses ``z_all``)."""
    if key not in stats_json:
        raise ValueError(f"`key` {key!r} not in the statistics file (has {sorted(stats_json)})")
    per = stats_json[key]["per_channel"]
    return {"latents_mean": [float(v) for v in per["mean"]], "latents_std": [float(v) for v in per["std"]]}
