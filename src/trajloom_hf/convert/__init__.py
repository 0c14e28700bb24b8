"""Conversion of the official TrajLoom checkpoints (``trajloom_vae.pt``, ``trajloom_generator.pt``,
``visibility_predictor.pt``) to diffusers-style model folders. ``.pt`` files are read with ``weights_only=True``.

Names load on first use (torch and diffusers are heavy), so ``trajloom convert-official --help`` answers at once.
"""

_LAZY = {
    "convert_trajloom_vae": "autoencoder", "latent_stats_from_official": "autoencoder",
    "vae_config_from_official": "autoencoder", "convert_trajloom_generator": "flow",
    "convert_visibility_predictor": "flow", "load_checkpoint_state_dict": "flow",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
