"""Frames -> the generator's appearance conditioning, shared by :class:`TrajLoomPipeline` and flow training.

Which frames a model sees follows its history mode: TrajLoom (``"tracks"``) one frame per history latent step,
the WHN-style baseline (``"last_frame"``) only the frame at the forecast start. :class:`FrameEncoder` turns them
into token-aligned features, the transformer's ``video_latents`` ``[B, K, N, C]``.
"""

from __future__ import annotations

import torch

from .models.frame_encoder import FrameEncoder


def conditioning_frames(video, history_frames: int, temporal_stride: int, history_mode: str) -> torch.Tensor:
    """The frames the generator is conditioned on, from a history video ``[B, T, H, W, 3]`` (the last
    ``history_frames`` frames are the history): ``"tracks"`` -> one frame per latent step, ``[B, K, H, W, 3]``
    (frames ``0, s, 2s, ...`` of the history, the frame each latent step's absolute-time embedding names);
    ``"last_frame"`` -> the forecast start only, ``[B, 1, H, W, 3]`` (WHN-style: appearance, no motion)."""
    if history_mode not in ("tracks", "last_frame"):
        raise ValueError(f"frame conditioning needs history_mode 'tracks' or 'last_frame', got {history_mode!r}")
    if video.ndim != 5:
        raise ValueError(f"`video` must have shape [B, T, H, W, 3], got {list(video.shape)}")
    if video.shape[1] < history_frames:
        raise ValueError(f"`video` has {video.shape[1]} frames, the history needs {history_frames}")
    hist = video[:, video.shape[1] - history_frames:]
    if history_mode == "last_frame":
        return hist[:, -1:]
    return hist[:, ::temporal_stride]


def frame_tokens(encoder: FrameEncoder, frames: torch.Tensor, num_latent_frames: int) -> torch.Tensor:
    """Encoder features of :func:`conditioning_frames` as the transformer's ``video_latents`` ``[B, K, N, C]`` (a
    single frame is held over the K history steps, like the WHN-style track history)."""
    feats = encoder(frames).features
    if feats.shape[1] == 1:
        return feats.expand(-1, num_latent_frames, -1, -1)
    if feats.shape[1] != num_latent_frames:
        raise ValueError(f"got features of {feats.shape[1]} frames, the transformer has {num_latent_frames} latent steps")
    return feats

