"""History/future windows of track clips as a torch ``Dataset`` (shared by the VAE, flow and visibility training).

A clip of ``T >= T_h + T_f`` frames gives one sample: history frames ``[0, T_h)`` and future frames
``[T_h, T_h + T_f)`` (the official ``use_overlap = false`` layout, reference §1.2). Tracks are queried once, at
frame 0 of the clip, so future offsets are displacements from the frame-0 grid.

``window_start="random"`` (for models that roll forecasts out past one window, ``TrajLoomPipeline(num_windows=k)``)
makes every start ``s`` in ``[0, T - T_h - T_f]`` (every ``window_start_stride``-th) its own item: history
``[s, s + T_h)``, future ``[s + T_h, s + T_h + T_f)``, the tracks still queried at frame 0 of the clip, so such a
history no longer starts on the query grid, as the histories of later rollout windows do not. A shuffled sampler
over the items then draws windows at random starts, and the order stays a pure function of (seed, epoch): runs
repeat and resume exactly.

Sources: procedural synthetic clips (generated once and cached as ``.npz``) or a Hugging Face ``datasets.Dataset``
with the TrajLoomBench columns ``tracks`` ``[T, N, 2]``, ``visibility`` ``[T, N]``, ``caption`` and ``video``
(mp4 bytes, decoded only when frames are requested).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..validation import check_tracks, check_visibility


@dataclass
class TrackClip:
    """One clip: ``tracks [T, N, 2]`` float32 px, ``visibility [T, N]`` bool, a caption, optional frames or video bytes."""

    tracks: np.ndarray
    visibility: np.ndarray
    caption: str = ""
    frames: Optional[np.ndarray] = None
    video_bytes: Optional[bytes] = None


def synthetic_clips(
    seeds: Sequence[int], config, *, cache_dir: Optional[str] = None, progress: bool = True
) -> List[TrackClip]:
    """Generate (or load from ``cache_dir``) synthetic clips for ``seeds`` with a :class:`SceneConfig`.

    The cache key holds the scene config, so clips of another size are never mixed in. Frames are generated and
    cached only when ``config.render`` is True.
    """
    from .synthetic import generate_clip

    cache = None
    if cache_dir is not None:
        # every SceneConfig field is part of the key (a short hash of them all), so a clip is never reused for a
        # scene with another camera motion, object count or size
        fields = json.dumps(dataclasses.asdict(config), sort_keys=True, default=str)
        digest = hashlib.sha1(fields.encode()).hexdigest()[:10]
        key = f"{config.height}x{config.width}_T{config.num_frames}_s{config.stride}_{config.grid_origin}_r{int(config.render)}_{digest}"
        cache = Path(cache_dir) / key
        cache.mkdir(parents=True, exist_ok=True)
    clips = []
    for seed in tqdm(list(seeds), desc="synthetic clips", disable=not progress):
        path = cache / f"{seed:08d}.npz" if cache is not None else None
        if path is not None and path.exists():
            with np.load(path) as f:
                clips.append(TrackClip(f["tracks"], f["visibility"], str(f["caption"]), f["frames"] if "frames" in f else None))
            continue
        clip = generate_clip(int(seed), config)
        clips.append(TrackClip(clip.tracks, clip.visibility, clip.caption, clip.frames))
        if path is not None:
            tmp = path.with_name(f".{path.name}.tmp")
            arrays = dict(tracks=clip.tracks, visibility=clip.visibility, caption=np.array(clip.caption))
            if clip.frames is not None:
                arrays["frames"] = clip.frames
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, path)
    return clips


def hf_dataset_clips(dataset, *, with_video: bool = False) -> List[TrackClip]:
    """Clips from a ``datasets.Dataset`` with TrajLoomBench columns (``tracks``, ``visibility``, ``caption``, ``video``)."""
    for col in ("tracks", "visibility"):
        if col not in dataset.column_names:
            raise ValueError(f"`dataset` needs a {col!r} column, has {dataset.column_names}")
    ds = dataset.with_format("numpy", columns=["tracks", "visibility"], output_all_columns=True)
    clips = []
    for row in ds:
        clips.append(TrackClip(
            np.asarray(row["tracks"], np.float32),
            np.asarray(row["visibility"]).astype(bool),
            str(row.get("caption", "") or ""),
            None,
            row.get("video") if with_video else None,
        ))
    return clips


WINDOW_STARTS = ("first", "random")


class TrackWindowDataset(Dataset):
    """``(history, future)`` windows of clips: one per clip at frame 0 (``window_start="first"``, the default) or one
    per start ``s`` in ``range(0, T - T_h - T_f + 1, window_start_stride)`` of each clip (``"random"``; see the module
    docstring). :attr:`windows` lists the ``(clip index, start frame)`` of every item. Each item is a dict:

    * ``history_tracks`` ``[T_h, N, 2]`` float32 px, ``history_visibility`` ``[T_h, N]`` bool,
    * ``future_tracks`` ``[T_f, N, 2]``, ``future_visibility`` ``[T_f, N]``,
    * ``caption`` str, and ``history_frames`` ``[T_h, H, W, 3]`` uint8 when ``with_frames`` (else absent).
    """

    def __init__(self, clips: Sequence[TrackClip], history_frames: int, future_frames: int, *, with_frames: bool = False,
                 window_start: str = "first", window_start_stride: int = 1):
        if history_frames < 1 or future_frames < 0:
            raise ValueError(f"`history_frames` must be >= 1 and `future_frames` >= 0, got {history_frames}, {future_frames}")
        if window_start not in WINDOW_STARTS:
            raise ValueError(f"`window_start` must be one of {WINDOW_STARTS}, got {window_start!r}")
        if isinstance(window_start_stride, bool) or not isinstance(window_start_stride, (int, np.integer)) \
                or window_start_stride < 1:
            raise ValueError(f"`window_start_stride` must be a positive integer, got {window_start_stride!r}")
        need = history_frames + future_frames
        for i, clip in enumerate(clips):
            check_tracks(clip.tracks, f"clips[{i}].tracks", min_ndim=3, max_ndim=3)
            check_visibility(clip.visibility, clip.tracks.shape, f"clips[{i}].visibility")
            if clip.tracks.shape[0] < need:
                raise ValueError(f"`clips[{i}]` has {clip.tracks.shape[0]} frames, needs history + future = {need}")
            if with_frames and clip.frames is None and clip.video_bytes is None:
                raise ValueError(f"`clips[{i}]` has no frames or video but `with_frames` is True")
        self.clips = list(clips)
        self.history_frames, self.future_frames, self.with_frames = history_frames, future_frames, with_frames
        self.window_start, self.window_start_stride = window_start, int(window_start_stride)
        if window_start == "first":
            self.windows = [(i, 0) for i in range(len(self.clips))]
        else:
            self.windows = [(i, s) for i, clip in enumerate(self.clips)
                            for s in range(0, clip.tracks.shape[0] - need + 1, self.window_start_stride)]
            if self.clips and len(self.windows) == len(self.clips):
                longest = max(clip.tracks.shape[0] for clip in self.clips)
                raise ValueError(
                    f"`window_start='random'` needs clips longer than history + future = {need} frames (with "
                    f"`window_start_stride` {self.window_start_stride}: at least {need + self.window_start_stride}); "
                    f"the longest clip has {longest}, so every window would start at frame 0. Build longer clips: "
                    f"`trajloom bench build ... --history-frames {history_frames} --future-frames {3 * future_frames}` "
                    f"gives windows starting anywhere in frames 0..{2 * future_frames}")

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, idx: int) -> Dict[str, object]:
        c, s = self.windows[idx]
        clip = self.clips[c]
        th, tf = self.history_frames, self.future_frames
        item = {
            "history_tracks": torch.from_numpy(np.ascontiguousarray(clip.tracks[s : s + th], np.float32)),
            "history_visibility": torch.from_numpy(np.ascontiguousarray(clip.visibility[s : s + th])),
            "future_tracks": torch.from_numpy(np.ascontiguousarray(clip.tracks[s + th : s + th + tf], np.float32)),
            "future_visibility": torch.from_numpy(np.ascontiguousarray(clip.visibility[s + th : s + th + tf])),
            "caption": clip.caption,
        }
        if self.with_frames:
            frames = clip.frames
            if frames is None:
                from ..video_io import decode_mp4_bytes

                frames = decode_mp4_bytes(clip.video_bytes, max_frames=s + th)
            item["history_frames"] = torch.from_numpy(np.ascontiguousarray(frames[s : s + th]))
        return item


class TrackSegmentDataset(Dataset):
    """Every history and every future window as a separate VAE training segment: ``tracks [T, N, 2]``, ``visibility``.

    ``windows.future_frames`` must equal ``windows.history_frames`` (the VAE has one segment length).
    """

    def __init__(self, windows: TrackWindowDataset):
        if windows.future_frames not in (0, windows.history_frames):
            raise ValueError(
                f"history ({windows.history_frames}) and future ({windows.future_frames}) windows must have the same length"
            )
        self.windows = windows
        self.parts = ("history", "future") if windows.future_frames else ("history",)

    def __len__(self) -> int:
        return len(self.windows) * len(self.parts)

    def __getitem__(self, idx: int) -> Dict[str, torch.Tensor]:
        item = self.windows[idx // len(self.parts)]
        part = self.parts[idx % len(self.parts)]
        return {"tracks": item[f"{part}_tracks"], "visibility": item[f"{part}_visibility"]}
