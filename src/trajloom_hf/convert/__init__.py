"""Conversion of the official TrajLoom checkpoints (``trajloom_vae.pt``, ``trajloom_generator.pt``,
``visibility_predictor.pt``) to diffusers-style model folders. ``.pt`` files are read with ``weights_only=True``."""

from .autoencoder import convert_trajloom_vae, latent_stats_from_official, vae_config_from_official
from .flow import convert_trajloom_generator, convert_visibility_predictor, load_checkpoint_state_dict

__all__ = [
    "convert_trajloom_vae",
    "convert_trajloom_generator",
    "convert_visibility_predictor",
    "latent_stats_from_official",
    "load_checkpoint_state_dict",
    "vae_config_from_official",
]
