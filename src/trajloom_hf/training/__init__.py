"""Building blocks of the TrajLoom training scripts, for training from your own script.

One concept per module: :mod:`.arguments` (shared flags and their checks), :mod:`.accelerator_setup` (the
Accelerator and trackers), :mod:`.csv_tracker`, :mod:`.window_datasets` (train/validation data),
:mod:`.samplers` (a resumable sharded order), :mod:`.frozen_encoders`, :mod:`.latent_cache`,
:mod:`.model_builders`, :mod:`.determinism` (seeding, deterministic kernels), :mod:`.conditioning`,
:mod:`.objectives` (flow matching + on-policy, over :mod:`trajloom_hf.flow_losses`), :mod:`.frame_training` (the
jointly trained frame encoder and its cached input frames), :mod:`.lr_schedules`, :mod:`.validation_loops`,
:mod:`.checkpointing` (data-only
checkpoints, exact resume) with :mod:`.state_files`, :mod:`.pretrained_folders`.

Names are imported lazily, as in :mod:`trajloom_hf`.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "CSVTracker": "csv_tracker",
    "CheckpointError": "checkpointing",
    "Checkpointer": "checkpointing",
    "checkpoint_problem": "checkpointing",
    "latest_checkpoint": "checkpointing",
    "list_checkpoints": "checkpointing",
    "load_state_tree": "state_files",
    "save_state_tree": "state_files",
    "make_accelerator": "accelerator_setup",
    "seed_everything": "determinism",
    "start_run": "accelerator_setup",
    "log_metrics": "accelerator_setup",
    "tracker_config": "accelerator_setup",
    "write_json": "accelerator_setup",
    "add_latent_training_args": "arguments",
    "add_run_args": "arguments",
    "add_checkpointing_args": "arguments",
    "check_paths": "arguments",
    "KeyedWindows": "window_datasets",
    "build_windows": "window_datasets",
    "build_segment_datasets": "window_datasets",
    "collate_windows": "window_datasets",
    "require_batches": "window_datasets",
    "EpochShardSampler": "samplers",
    "FrozenEncoders": "frozen_encoders",
    "LatentCache": "latent_cache",
    "batch_latents": "latent_cache",
    "fill_latent_cache": "latent_cache",
    "open_latent_cache": "latent_cache",
    "vae_fingerprint": "latent_cache",
    "AUTOENCODER_PRESETS": "model_builders",
    "build_autoencoder": "model_builders",
    "build_flow_transformer": "model_builders",
    "camera_motion_captions": "conditioning",
    "drop_captions": "conditioning",
    "flow_conditioning": "conditioning",
    "FlowObjective": "objectives",
    "FrameCache": "frame_training",
    "build_frame_encoder": "frame_training",
    "frame_encoder_parameters": "frame_training",
    "FlowObjectiveConfig": "objectives",
    "visibility_logits": "objectives",
    "warmup_cosine": "lr_schedules",
    "warmup_cosine_scheduler": "lr_schedules",
    "validate_autoencoder": "validation_loops",
    "validate_flow": "validation_loops",
    "validate_visibility": "validation_loops",
    "check_pretrained_folder": "pretrained_folders",
}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'trajloom_hf.training' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__():
    return sorted(list(globals()) + list(_LAZY))


__all__ = sorted(_LAZY)
