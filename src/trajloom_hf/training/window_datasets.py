"""The training and validation data of a run: history/future windows of clips (flow, visibility head) or single
segments (VAE), from procedural synthetic clips or a TrajLoomBench folder, plus their collate function.

Synthetic clips use fixed seeds (training ``0 ..``, validation ``10_000_000 ..``) and the same clip cache in every
script, so the VAE, flow and visibility stages of one run train on the same clips.

``window_start="random"`` trains on windows that start anywhere in a clip (every start of
:class:`~trajloom_hf.data.track_windows.TrackWindowDataset` is an item; the training split only: validation stays at
frame 0, so its numbers compare with runs on fixed windows). The items then carry the start in their key
(``train_00000003_s0012``), so a latent cache (``--latent_cache_dir``) holds one entry per (clip, start): it is
filled once for every start, and a cache of fixed windows is never mixed in. ``window_start_stride`` thins the starts
(and the cache). Synthetic clips are ``2 T`` frames, so random starts need a TrajLoomBench folder of longer clips.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import torch

from ..data.synthetic import SceneConfig
from ..data.track_windows import TrackSegmentDataset, TrackWindowDataset, hf_dataset_clips, synthetic_clips

__all__ = ["KeyedWindows", "build_segment_datasets", "build_windows", "bench_geometry", "collate_windows", "frame_size", "require_batches"]

VAL_SEED_OFFSET = 10_000_000


def collate_windows(samples: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Stack tensors, keep strings (captions) and cache keys as lists."""
    out: Dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        out[key] = torch.stack(values) if all(isinstance(v, torch.Tensor) for v in values) else values
    return out


class KeyedWindows(torch.utils.data.Dataset):
    """A :class:`TrackWindowDataset` whose items carry ``key``, the latent-cache key: ``"<split>_<index>"`` for
    windows at frame 0, ``"<split>_<clip>_s<start>"`` for windows starting anywhere (``window_start="random"``)."""

    def __init__(self, windows: TrackWindowDataset, split: str):
        self.windows, self.split = windows, split

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def layout(self) -> str:
        """How the windows are cut: ``"first"`` or ``"random/<stride>"`` (part of cache keys that hold all windows)."""
        w = self.windows
        return "first" if w.window_start == "first" else f"{w.window_start}/{w.window_start_stride}"

    def key(self, i: int) -> str:
        if self.windows.window_start == "first":
            return f"{self.split}_{i:08d}"
        clip, start = self.windows.windows[i]
        return f"{self.split}_{clip:08d}_s{start:04d}"

    def __getitem__(self, i: int) -> Dict[str, Any]:
        return {**self.windows[i], "key": self.key(i)}


def _clips(scene: SceneConfig, bench: Optional[str], bench_config: str, num_train_clips: int, num_val_clips: int,
           cache_dir: Optional[str], with_video: bool, progress: bool) -> Tuple[list, list]:
    """Train / validation clips: the TrajLoomBench ``train`` / ``validation`` splits or synthetic clips."""
    if bench:
        from ..data.trajloombench import load_trajloombench

        return tuple(hf_dataset_clips(load_trajloombench(bench, bench_config, split, numpy=False), with_video=with_video)
                     for split in ("train", "validation"))
    train = synthetic_clips(range(num_train_clips), scene, cache_dir=cache_dir, progress=progress)
    val = synthetic_clips(range(VAL_SEED_OFFSET, VAL_SEED_OFFSET + num_val_clips), scene, cache_dir=cache_dir, progress=progress)
    return train, val


def build_windows(vae_config, *, bench: Optional[str] = None, bench_config: str = "synthetic", num_train_clips: int = 256,
                  num_val_clips: int = 16, cache_dir: Optional[str] = None, with_frames: bool = False,
                  window_start: str = "first", window_start_stride: int = 1) -> Tuple[KeyedWindows, KeyedWindows]:
    """Train / validation windows of ``T = vae_config.num_frames`` history + ``T`` future frames, from the
    TrajLoomBench folder ``bench`` (its ``train`` / ``validation`` splits) or synthetic clips sized by the VAE config
    (cached as ``.npz`` under ``cache_dir``); ``with_frames`` adds the history video frames (video conditioning);
    ``window_start`` / ``window_start_stride``: where the training windows start (module docstring)."""
    t = int(vae_config.num_frames)
    if bench:  # the VAE normalises by its own frame size and grid: clips of another geometry would be quietly wrong
        found = bench_geometry(bench, bench_config)
        expected = (int(vae_config.height), int(vae_config.width), int(vae_config.patch_size))
        if found != expected:
            raise ValueError(f"--bench {bench!r} ({bench_config}) has {found[0]}x{found[1]} px clips on a stride-{found[2]} "
                             f"grid, the VAE was trained on {expected[0]}x{expected[1]} px, stride {expected[2]}")
    scene = SceneConfig(height=int(vae_config.height), width=int(vae_config.width), num_frames=2 * t,
                        stride=int(vae_config.patch_size), grid_origin=vae_config.grid_origin, render=with_frames)
    train, val = _clips(scene, bench, bench_config, num_train_clips, num_val_clips, cache_dir, with_frames, progress=False)
    return (KeyedWindows(TrackWindowDataset(train, t, t, with_frames=with_frames, window_start=window_start,
                                            window_start_stride=window_start_stride), "train"),
            KeyedWindows(TrackWindowDataset(val, t, t, with_frames=with_frames), "val"))


def build_segment_datasets(*, height: int, width: int, stride: int, num_frames: int, bench: Optional[str] = None,
                           bench_config: str = "synthetic", num_train_clips: int = 256, num_val_clips: int = 16,
                           cache_dir: Optional[str] = None, window_start: str = "first", window_start_stride: int = 1
                           ) -> Tuple[TrackSegmentDataset, TrackSegmentDataset]:
    """VAE data: every history and every future window of ``num_frames`` frames is one segment (train, validation);
    synthetic clips are ``height`` x ``width`` px with a ``stride`` query grid; ``window_start="random"``: the
    training windows start anywhere in a clip (so do its segments)."""
    scene = SceneConfig(height=height, width=width, num_frames=2 * num_frames, stride=stride, render=False)
    train, val = _clips(scene, bench, bench_config, num_train_clips, num_val_clips, cache_dir, False, progress=True)
    t = num_frames
    return (TrackSegmentDataset(TrackWindowDataset(train, t, t, window_start=window_start,
                                                   window_start_stride=window_start_stride)),
            TrackSegmentDataset(TrackWindowDataset(val, t, t)))


def bench_geometry(bench: str, bench_config: str) -> Tuple[int, int, int]:
    """``(H, W, stride)`` of a TrajLoomBench config (its first training row)."""
    from ..data.trajloombench import load_trajloombench

    row = load_trajloombench(bench, bench_config, "train")[0]
    return int(row["height"]), int(row["width"]), int(row["stride"])


def frame_size(bench: Optional[str], bench_config: str, default: Tuple[int, int], stride: Optional[int] = None) -> Tuple[int, int]:
    """``(H, W)`` px of the clips: the TrajLoomBench's, or ``default`` for synthetic clips. With ``stride``, a bench
    whose query grid has another stride is refused (its tracks would not fit the model's grid)."""
    if not bench:
        return tuple(default)
    h, w, s = bench_geometry(bench, bench_config)
    if stride is not None and s != stride:
        raise ValueError(f"--bench {bench!r} ({bench_config}) tracks a stride-{s} grid, but --stride is {stride}")
    return h, w


def require_batches(num_items: int, batch_size: int, num_processes: int, what: str = "training segments") -> None:
    """Refuse a run whose data cannot fill one global batch (with ``drop_last`` it would never take a step)."""
    if num_items < batch_size * num_processes:
        raise ValueError(f"{num_items} {what} cannot fill one batch of --train_batch_size {batch_size} x {num_processes} "
                         f"process(es): lower --train_batch_size or add data")
