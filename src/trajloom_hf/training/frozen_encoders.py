"""The frozen encoders of a latent training run: TrajLoom-VAE (tracks), optional Wan VAE (video), optional text
encoder. Video and text go through the pipeline's own functions, so training and sampling see identical inputs."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Dict, List

import torch

from .. import encoding
from ..models.autoencoder_traj import AutoencoderTraj
from ..text_conditioning import encode_pooled_text
from ..video_conditioning import encode_video_latents
from .pretrained_folders import check_pretrained_folder

__all__ = ["FrozenEncoders"]


class FrozenEncoders:
    """Loads and runs the frozen encoders of one run.

    ``args`` is anything with the attributes ``vae_path`` and optionally ``video_vae_path`` (diffusers
    ``AutoencoderKLWan`` folder), ``text_encoder_path`` (transformers T5/UMT5 folder with tokenizer),
    ``text_max_length`` (128) and ``history_mode`` (``"tracks"``; ``"last_frame"``: the WHN-style baseline conditions on
    the forecast-start frame held still; ``"first_frame"``: frame 0 held still): a training script's parsed arguments, or use :meth:`load`.
    """

    def __init__(self, args, device):
        self.device = device
        self.history_mode = getattr(args, "history_mode", "tracks")
        if self.history_mode not in ("tracks", "last_frame", "first_frame"):
            raise ValueError(f"history_mode must be 'tracks', 'last_frame' or 'first_frame', got {self.history_mode!r}")
        video_path, text_path = getattr(args, "video_vae_path", None), getattr(args, "text_encoder_path", None)
        check_pretrained_folder(args.vae_path, "--vae_path")  # before loading anything
        if video_path:
            check_pretrained_folder(video_path, "--video_vae_path", hub_ok=True)
        if text_path:
            check_pretrained_folder(text_path, "--text_encoder_path", weights=None, hub_ok=True)
        self.vae = AutoencoderTraj.from_pretrained(args.vae_path, use_safetensors=True).to(device).eval().requires_grad_(False)
        cfg = self.vae.config
        if cfg.latents_mean is None or cfg.latents_std is None:  # needed to normalise every latent (reference §2.10)
            raise ValueError(f"--vae_path {args.vae_path!r} has no latent statistics (latents_mean/latents_std): train it "
                             "to the end with train_autoencoder_traj.py, or set them with trajloom_hf.latent_statistics")
        self.height, self.width = int(cfg.height), int(cfg.width)
        self.stride = int(cfg.patch_size)
        self.temporal_stride = int(cfg.temporal_stride)
        self.num_frames = int(cfg.num_frames)
        self.video_vae = None
        if video_path:
            from diffusers import AutoencoderKLWan

            self.video_vae = AutoencoderKLWan.from_pretrained(video_path).to(device).eval().requires_grad_(False)
        self.text_encoder = self.tokenizer = None
        if text_path:
            from transformers import AutoModel, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(text_path)
            model = AutoModel.from_pretrained(text_path)
            self.text_encoder = (model.get_encoder() if hasattr(model, "get_encoder") else model).to(device).eval().requires_grad_(False)
            self.text_max_length = int(getattr(args, "text_max_length", 128))

    @classmethod
    def load(cls, vae_path: str, device="cpu", **options) -> "FrozenEncoders":
        """``FrozenEncoders.load("out/vae", "cuda", video_vae_path=..., text_encoder_path=...)``."""
        return cls(SimpleNamespace(vae_path=vae_path, **options), torch.device(device))

    # -- tracks ----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_tracks(self, tracks_px: torch.Tensor) -> torch.Tensor:
        """Pixel tracks ``[B, T, N, 2]`` -> raw posterior mean ``[B, K, N, C]`` float32 (eq. 6)."""
        norm = encoding.normalize_tracks(tracks_px.float(), self.height, self.width).to(self.device)
        return self.vae.encode(norm).latent_dist.mean.float()

    @torch.no_grad()
    def decode_tracks(self, latents_normalised: torch.Tensor) -> torch.Tensor:
        """Generator-space latents ``[B, K, N, C]`` -> pixel tracks ``[B, T, N, 2]`` float32 (clamped to [-1, 1])."""
        raw = self.vae.unscale_latents(latents_normalised.float())
        return encoding.denormalize_tracks(self.vae.decode(raw, clamp=True).sample, self.height, self.width)

    def normalise(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw posterior means -> the generator's normalised latent space (the VAE's latent statistics)."""
        return self.vae.scale_latents(raw.float()).float()

    # -- video and text ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """History frames ``[B, T, H, W, 3]`` uint8 -> normalised Wan latents as tokens ``[B, K, N, C_v]`` (reference §3.9)."""
        return encode_video_latents(self.video_vae, frames, (self.height, self.width), tuple(self.vae.grid_hw),
                                    int(frames.shape[1]), batch_size=int(frames.shape[0]), device=self.device)

    @torch.no_grad()
    def encode_text(self, captions: List[str]) -> torch.Tensor:
        """Masked mean over valid tokens of the text encoder's last hidden state, ``[B, D_text]`` (reference §3.10)."""
        return encode_pooled_text(self.text_encoder, self.tokenizer, list(captions), device=self.device,
                                  max_length=self.text_max_length)

    # -- one batch of windows ---------------------------------------------------------------------------------
    def encode_windows(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """Raw latents ``[B, K, N, C]`` and token visibilities ``[B, K, N]`` of a collated batch of windows (the latent
        cache's entry layout), plus ``video_latents`` with a video VAE."""
        if self.history_mode in ("first_frame", "last_frame"):  # no motion history: one frame held still
            batch = dict(batch)
            still = encoding.first_frame_history if self.history_mode == "first_frame" else encoding.last_frame_history
            batch["history_tracks"], batch["history_visibility"] = still(batch["history_tracks"], batch["history_visibility"])
        out = {
            "history_latents": self.encode_tracks(batch["history_tracks"]),
            "future_latents": self.encode_tracks(batch["future_tracks"]),
            "history_token_visibility": encoding.latent_visibility(batch["history_visibility"].bool(), self.temporal_stride),
            "future_token_visibility": encoding.latent_visibility(batch["future_visibility"].bool(), self.temporal_stride),
        }
        if self.video_vae is not None:
            out["video_latents"] = self.encode_video(batch["history_frames"])
        return out

    def latent_shape(self) -> tuple:
        """``(K, N, C)`` of the VAE's latent grid (what a flow transformer must produce)."""
        return (self.vae.num_latent_frames, self.vae.grid_hw[0] * self.vae.grid_hw[1], int(self.vae.config.latent_channels))
