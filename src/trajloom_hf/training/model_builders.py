"""The models a training run starts from: an ``AutoencoderTraj`` of a named size, a ``TrajFlowTransformer`` whose
latent grid is the frozen VAE's (and whose video/text widths are the frozen encoders')."""

from __future__ import annotations

from typing import Any, Dict, Optional

from ..json_files import read_json_object
from ..models.autoencoder_traj import AutoencoderTraj
from ..models.transformer_traj_flow import TrajFlowTransformer
from .pretrained_folders import check_pretrained_folder

__all__ = ["AUTOENCODER_PRESETS", "build_autoencoder", "build_flow_transformer"]

# AutoencoderTraj sizes. "paper" is the published config (reference §2.1); the others fit a CPU.
AUTOENCODER_PRESETS: Dict[str, Dict[str, Any]] = {
    "tiny": dict(hidden_size=32, num_heads=4, encoder_depth=4, decoder_depth=4, latent_channels=4, pos_embed_dim=8),
    "cpu": dict(hidden_size=128, num_heads=4, encoder_depth=4, decoder_depth=4, latent_channels=16, pos_embed_dim=32),
    "paper": dict(),
}


def _construct(cls, kwargs: Dict[str, Any], source: str):
    """``cls(**kwargs)``; an unknown argument names where it came from (a typo in a JSON config)."""
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise TypeError(f"{source}: {e}") from None


def build_autoencoder(preset: str = "cpu", config_path: Optional[str] = None, **overrides) -> AutoencoderTraj:
    """``AutoencoderTraj`` of ``preset`` size, or of the arguments in the JSON file ``config_path`` (replaces the
    preset), with ``overrides`` (frame size, stride, window length, loss weights) on top."""
    if preset not in AUTOENCODER_PRESETS:
        raise ValueError(f"preset must be one of {sorted(AUTOENCODER_PRESETS)}, got {preset!r}")
    kwargs = read_json_object(config_path, "--model_config", "model arguments") if config_path else dict(AUTOENCODER_PRESETS[preset])
    kwargs.update(overrides)
    return _construct(AutoencoderTraj, kwargs, f"--model_config {config_path!r}" if config_path else "the model arguments")


def build_flow_transformer(encoders, init_from: Optional[str] = None, config_path: Optional[str] = None,
                           frame_channels: Optional[int] = None, **config_overrides) -> TrajFlowTransformer:
    """The flow transformer of a run: loaded from ``init_from`` (the on-policy stage starts from the stage-1 model), or
    new from the JSON arguments in ``config_path`` (default: the paper's) updated with ``config_overrides``
    (e.g. ``num_layers=2, hidden_size=64``), with the latent grid (K, H_g x W_g, C,
    frame positions) of ``encoders.vae`` and, when they are loaded, the video/text widths of the frozen encoders
    (``frame_channels``: a trainable ``FrameEncoder`` of that width fills the video input instead of a video VAE).

    Raises ``ValueError`` when the transformer's latent shape is not the VAE's."""
    if init_from:
        if config_path or config_overrides:
            raise ValueError("a transformer loaded from --init_transformer keeps its config: drop --transformer_config")
        check_pretrained_folder(init_from, "--init_transformer")
        model = TrajFlowTransformer.from_pretrained(init_from, use_safetensors=True)
    else:
        config = {**(read_json_object(config_path, "--transformer_config", "model arguments") if config_path else {}),
                  **config_overrides}
        vae = encoders.vae
        config.update(
            num_latent_frames=vae.num_latent_frames,
            grid_size=tuple(vae.grid_hw),
            latent_channels=int(vae.config.latent_channels),
            history_num_frames=encoders.num_frames,
            temporal_stride=encoders.temporal_stride,
        )
        config.setdefault("use_text_cond", encoders.text_encoder is not None)
        if frame_channels is not None:  # the frame encoder's features are the token-aligned video input
            config["use_video_cond"] = True
            config["video_latent_channels"] = int(frame_channels)
        config.setdefault("use_video_cond", encoders.video_vae is not None)
        if config["use_video_cond"] and encoders.video_vae is not None:  # Wan2.1: 16 channels, Wan2.2: 48
            config.setdefault("video_latent_channels", int(encoders.video_vae.config.z_dim))
        if config["use_text_cond"] and encoders.text_encoder is not None:
            config.setdefault("text_embed_dim", int(encoders.text_encoder.config.d_model))
        model = _construct(TrajFlowTransformer, config,
                           f"--transformer_config {config_path!r}" if config_path else "the transformer arguments")
    expected = encoders.latent_shape()
    if tuple(model.latent_shape) != tuple(expected):
        raise ValueError(f"transformer latent shape {tuple(model.latent_shape)} does not match the VAE's {tuple(expected)}")
    for key, vae_value in (("history_num_frames", encoders.num_frames), ("temporal_stride", encoders.temporal_stride)):
        if int(model.config[key]) != int(vae_value):
            raise ValueError(f"transformer {key}={model.config[key]} does not match the VAE's {vae_value}")
    if frame_channels is not None and (not model.config.use_video_cond or model.config.video_latent_channels != frame_channels):
        raise ValueError(f"the transformer's video input (use_video_cond={model.config.use_video_cond}, video_latent_channels="
                         f"{model.config.video_latent_channels}) does not take the frame encoder's {frame_channels} channels")
    for name, needed, have in (("video", model.config.use_video_cond, encoders.video_vae is not None or frame_channels is not None),
                               ("text", model.config.use_text_cond, encoders.text_encoder is not None)):
        if needed and not have:
            raise ValueError(f"the transformer is {name}-conditioned (use_{name}_cond=True) but no "
                             f"--{'video_vae_path' if name == 'video' else 'text_encoder_path'} was given")
    return model
