"""The optional conditioning streams of a flow training step, assembled in one place: history visibility, video
latents and pooled caption embeddings (with the camera-motion phrase of App. E.2 appended and caption dropout,
reference §3.10)."""

from __future__ import annotations

import random
from typing import Dict, List, Optional, Tuple

import torch

__all__ = ["camera_motion_captions", "drop_captions", "flow_conditioning"]


def camera_motion_captions(batch: Dict, height: int, width: int) -> List[str]:
    """The batch's captions with the camera phrase estimated from each window's tracks appended (App. E.2, "append
    the resulting phrase to the original caption during training"); captions that already hold a vocabulary phrase
    (the synthetic generator's) are kept. The phrase describes the whole window: ``history_tracks`` then
    ``future_tracks`` ``[B, T, N, 2]`` px with their visibility."""
    from ..camera_motion import caption_with_camera_motion

    tracks = torch.cat([batch["history_tracks"], batch["future_tracks"]], dim=1).cpu().numpy()
    vis = torch.cat([batch["history_visibility"], batch["future_visibility"]], dim=1).cpu().numpy()
    return [caption_with_camera_motion(c or "", tracks[i], vis[i], height, width) for i, c in enumerate(batch["caption"])]


def drop_captions(captions: List[str], prob: float, seed: int) -> List[str]:
    """Caption dropout (reference §3.10, 0.1): each caption becomes "" (the empty prompt) with probability ``prob``."""
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"caption dropout probability must be in [0, 1], got {prob}")
    rng = random.Random(seed)
    return ["" if rng.random() < prob else c for c in captions]


def flow_conditioning(batch: Dict, lat: Dict[str, torch.Tensor], encoders, model_config, *, use_history_visibility: bool = True,
                      caption_dropout: float = 0.0, seed: Optional[int] = None,
                      camera_captions: bool = False) -> Tuple[Optional[torch.Tensor], ...]:
    """``(hist_vis, video, text)`` for the transformer, each ``None`` when the model does not take it.

    ``hist_vis``: history token visibility ``[B, K, N]``; ``video``: cached/encoded video tokens ``[B, K, N, C_v]``;
    ``text``: pooled caption embeddings ``[B, D_text]``, captions dropped with ``caption_dropout`` when ``seed`` is
    given (training), kept as they are when ``seed`` is ``None`` (validation). ``camera_captions`` appends the
    estimated camera phrase first (:func:`camera_motion_captions`; the dropped captions stay empty)."""
    hist_vis = lat["history_token_visibility"] if model_config.use_hist_vis_cond and use_history_visibility else None
    video = lat.get("video_latents") if model_config.use_video_cond else None
    text = None
    if model_config.use_text_cond:
        captions = [c or "" for c in batch["caption"]]
        if camera_captions:
            captions = camera_motion_captions(batch, encoders.height, encoders.width)
        if seed is not None:
            captions = drop_captions(captions, caption_dropout, seed)
        text = encoders.encode_text(captions)
    return hist_vis, video, text
