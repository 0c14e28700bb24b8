"""Data sources: procedural synthetic scenes, TAP-Vid files, training windows and the TrajLoomBench dataset
builder/loader.

The synthetic generator is imported eagerly (numpy only); the torch / `datasets` parts load on first use.
"""

from .synthetic import OBJECT_MOTIONS, SceneConfig, SyntheticClip, generate_clip, generate_clips

_LAZY = {
    "BenchSettings": "trajloombench", "build_trajloombench": "trajloombench", "load_trajloombench": "trajloombench",
    "TrackClip": "track_windows", "TrackWindowDataset": "track_windows", "TrackSegmentDataset": "track_windows",
    "synthetic_clips": "track_windows", "hf_dataset_clips": "track_windows",
    "read_tapvid_npz": "tapvid", "tapvid_arrays": "tapvid",
}

__all__ = ["OBJECT_MOTIONS", "SceneConfig", "SyntheticClip", "generate_clip", "generate_clips", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
