#!/usr/bin/env python
"""Train TrajLoom-Flow (paper §3.3, App. A.2) and fine-tune it on-policy (eqs. 10–14, App. A.3) with Accelerate.

Stage 1, flow matching (eq. 9)::

    accelerate launch examples/train_trajloom_flow.py --vae_path out/vae --output_dir out/flow \\
        --latent_cache_dir out/latents --learning_rate 6e-5 --max_train_steps 100000   [--bench BENCH_DIR]

Stage 2, on-policy K-step fine-tuning from the stage-1 model (K = 8 logit-spaced steps, w1 = 1, w0 = 0.5,
gamma = 0.1, lambda = 0.1 on a sub-batch of 8, lr 1e-5)::

    accelerate launch examples/train_trajloom_flow.py ... --init_transformer out/flow/transformer --on_policy

Per step: history/future windows are encoded with the frozen TrajLoom-VAE (posterior mean, eq. 6; once per clip
with ``--latent_cache_dir``) and normalised with the VAE's latent statistics; ``t`` is drawn from the App. A.2
mixture, ``z_0`` is the boundary-anchored source (eq. 7), ``z_t`` carries tube noise 0.05 (eq. 8), and the loss is
the visibility-weighted velocity MSE (invisible tokens weight 0.01). Captions are dropped with probability 0.1.
Checkpoints (``checkpoint-<step>``) hold the full training state; ``--resume_from_checkpoint latest`` continues
bit-for-bit (per-step random draws are seeded by the step). Validation samples futures with the Euler scheduler,
decodes them and reports visibility-masked endpoint errors in pixels against the ground truth (logged with the
CSV tracker to ``output_dir/logs/train_trajloom_flow/metrics.csv``). Data: procedural synthetic clips (default,
sized by the VAE config) or a TrajLoomBench folder. The final model is saved as ``transformer/`` and
``scheduler/`` under ``--output_dir`` (diffusers ``from_pretrained`` folders).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import shutil
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
import torch.nn as nn
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed

from trajloom_hf import encoding
from trajloom_hf.csv_tracker import CSVTracker
from trajloom_hf.data.synthetic import SceneConfig
from trajloom_hf.data.track_windows import TrackWindowDataset, hf_dataset_clips, synthetic_clips
from trajloom_hf.flow_losses import flow_matching_loss, on_policy_losses, token_weights
from trajloom_hf.models.autoencoder_traj import AutoencoderTraj
from trajloom_hf.models.transformer_traj_flow import TrajFlowTransformer
from trajloom_hf.schedulers import FlowMatchTrajScheduler
from trajloom_hf.text_conditioning import encode_pooled_text
from trajloom_hf.video_conditioning import encode_video_latents

logger = logging.getLogger("train_trajloom_flow")

CACHE_FORMAT_VERSION = 1


# ----------------------------------------------------------------------------------------------------------------
# arguments


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """Data, VAE, cache, optimisation and checkpointing arguments shared with ``train_visibility_predictor.py``."""
    g = parser.add_argument_group("data (window size, frame size and grid come from the VAE config)")
    g.add_argument("--vae_path", required=True, help="trained AutoencoderTraj folder (from_pretrained, with latent statistics)")
    g.add_argument("--bench", default=None, help="TrajLoomBench dataset folder; default: procedural synthetic clips")
    g.add_argument("--bench_config", default="synthetic")
    g.add_argument("--num_train_clips", type=int, default=256, help="synthetic training clips")
    g.add_argument("--num_val_clips", type=int, default=16, help="synthetic validation clips")
    g.add_argument("--cache_dir", default=None, help="where synthetic clips are cached (default: output_dir/cache)")
    g.add_argument("--latent_cache_dir", default=None, help="on-disk cache of the frozen encoders' latents (one file per window)")
    g.add_argument("--dataloader_num_workers", type=int, default=0)
    g = parser.add_argument_group("optimisation")
    g.add_argument("--output_dir", required=True)
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--train_batch_size", type=int, default=4, help="per process")
    g.add_argument("--gradient_accumulation_steps", type=int, default=1)
    g.add_argument("--max_train_steps", type=int, default=1000, help="optimizer steps")
    g.add_argument("--adam_weight_decay", type=float, default=0.0)
    g.add_argument("--max_grad_norm", type=float, default=1.0)
    g.add_argument("--mixed_precision", default="no", choices=["no", "fp16", "bf16"])
    g.add_argument("--gradient_checkpointing", action="store_true")
    g = parser.add_argument_group("checkpointing, logging and validation")
    g.add_argument("--checkpointing_steps", type=int, default=1000)
    g.add_argument("--checkpoints_total_limit", type=int, default=2)
    g.add_argument("--resume_from_checkpoint", default=None, help='a checkpoint folder or "latest"')
    g.add_argument("--validation_steps", type=int, default=1000, help="validate every N steps and at the end (0: never)")
    g.add_argument("--num_validation_windows", type=int, default=4)
    g.add_argument("--report_to", default="csv", help='"csv" (output_dir/logs/<run>/metrics.csv), "tensorboard" or "none"')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    g = parser.add_argument_group("model")
    g.add_argument("--transformer_config", default=None, help="JSON file of TrajFlowTransformer arguments (default: paper)")
    g.add_argument("--init_transformer", default=None, help="start from this TrajFlowTransformer folder (on-policy stage)")
    g.add_argument("--text_encoder_path", default=None, help="UMT5/T5 encoder + tokenizer folder; without it no text conditioning")
    g.add_argument("--text_max_length", type=int, default=128)
    g.add_argument("--video_vae_path", default=None, help="diffusers AutoencoderKLWan folder; without it no video conditioning")
    g = parser.add_argument_group("flow matching (App. A.2)")
    g.add_argument("--learning_rate", type=float, default=None, help="default 6e-5, or 1e-5 with --on_policy")
    g.add_argument("--invisible_weight", type=float, default=0.01)
    g.add_argument("--caption_dropout", type=float, default=0.1)
    g.add_argument("--tube_sigma", type=float, default=0.05)
    g.add_argument("--t_small_prob", type=float, default=0.2)
    g.add_argument("--t_small_max", type=float, default=0.1)
    g.add_argument("--anchor_noise_std", type=float, default=0.1)
    g.add_argument("--no_anchor", action="store_true", help="pure-noise source z_0 ('w/o anchoring' ablation)")
    g.add_argument("--no_history_visibility", action="store_true", help="do not feed the history visibility")
    g.add_argument("--history_mode", default="tracks", choices=["tracks", "first_frame"],
                   help="'first_frame': condition on the first frame held still (WHN-style image-only baseline)")
    g = parser.add_argument_group("on-policy K-step fine-tuning (eqs. 10–14, App. A.3)")
    g.add_argument("--on_policy", action="store_true")
    g.add_argument("--on_policy_steps", type=int, default=8)
    g.add_argument("--on_policy_batch_size", type=int, default=8, help="sub-batch per process")
    g.add_argument("--on_policy_weight", type=float, default=0.1, help="lambda_k-step")
    g.add_argument("--on_policy_gamma", type=float, default=0.1)
    g.add_argument("--on_policy_w1", type=float, default=1.0)
    g.add_argument("--on_policy_w0", type=float, default=0.5)
    g = parser.add_argument_group("validation sampling")
    g.add_argument("--num_validation_samples", type=int, default=2, help="futures sampled per validation window")
    g.add_argument("--validation_inference_steps", type=int, default=10)
    args = parser.parse_args(argv)
    if args.learning_rate is None:
        args.learning_rate = 1e-5 if args.on_policy else 6e-5
    return args


# ----------------------------------------------------------------------------------------------------------------
# data: windows -> normalised latents (optionally cached)


def collate_windows(samples: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Stack tensors, keep strings (captions) and cache keys as lists."""
    out: Dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        out[key] = torch.stack(values) if all(isinstance(v, torch.Tensor) for v in values) else values
    return out


class KeyedWindows(torch.utils.data.Dataset):
    """A :class:`TrackWindowDataset` whose items carry ``key`` (``"<split>_<index>"``, the latent-cache key)."""

    def __init__(self, windows: TrackWindowDataset, split: str):
        self.windows, self.split = windows, split

    def __len__(self) -> int:
        return len(self.windows)

    def key(self, i: int) -> str:
        return f"{self.split}_{i:08d}"

    def __getitem__(self, i: int) -> Dict[str, Any]:
        return {**self.windows[i], "key": self.key(i)}


def build_windows(args, vae_config, with_frames: bool):
    """Train / validation windows of ``T = vae.num_frames`` history + ``T`` future frames: synthetic clips (the same
    seeds and clip cache as ``train_autoencoder_traj.py``) or the TrajLoomBench ``train`` / ``validation`` splits."""
    t = int(vae_config.num_frames)
    if args.bench:
        from trajloom_hf.data.trajloombench import load_trajloombench

        train = hf_dataset_clips(load_trajloombench(args.bench, args.bench_config, "train", numpy=False), with_video=with_frames)
        val = hf_dataset_clips(load_trajloombench(args.bench, args.bench_config, "validation", numpy=False), with_video=with_frames)
    else:
        cfg = SceneConfig(height=int(vae_config.height), width=int(vae_config.width), num_frames=2 * t,
                          stride=int(vae_config.patch_size), grid_origin=vae_config.grid_origin, render=with_frames)
        cache = args.cache_dir or os.path.join(args.output_dir, "cache")
        train = synthetic_clips(range(args.num_train_clips), cfg, cache_dir=cache, progress=False)
        val = synthetic_clips(range(10_000_000, 10_000_000 + args.num_val_clips), cfg, cache_dir=cache, progress=False)
    return (KeyedWindows(TrackWindowDataset(train, t, t, with_frames=with_frames), "train"),
            KeyedWindows(TrackWindowDataset(val, t, t, with_frames=with_frames), "val"))


class EpochShardSampler(torch.utils.data.Sampler):
    """Deterministic per-epoch permutation, sharded over processes, resumable mid-epoch.

    Epoch ``e`` uses ``randperm(n, seed + e)`` truncated to whole global batches; process ``r`` of ``w`` takes
    every ``w``-th index. ``set_epoch(e, skip_batches)`` starts after ``skip_batches`` local batches.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.epoch, self.skip = 0, 0
        self.batches_per_epoch = n // (batch_size * world)
        if self.batches_per_epoch == 0:
            raise ValueError(f"{n} windows cannot fill one global batch of {batch_size} x {world} processes")

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip = epoch, skip_batches

    def __iter__(self):
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        order = order[: self.batches_per_epoch * self.batch_size * self.world][self.rank :: self.world]
        return iter(order[self.skip * self.batch_size :])

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.skip) * self.batch_size


def vae_fingerprint(vae) -> str:
    """Hash of the VAE config and weights: a latent cache is valid only for the VAE that wrote it."""
    h = hashlib.sha256(json.dumps(dict(vae.config), sort_keys=True, default=str).encode())
    for name, p in sorted(vae.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().flatten()[:1024].float().cpu().numpy().tobytes())
        h.update(str(float(p.detach().float().sum())).encode())
    return h.hexdigest()[:16]


class LatentCache:
    """One ``.pt`` file per window: raw (unnormalised) posterior means of history/future, token visibilities and,
    with video conditioning, the token-aligned video latents. Files are written atomically."""

    def __init__(self, root: str, fingerprint: str, video_key: Optional[str] = None):
        self.root = root
        os.makedirs(root, exist_ok=True)
        meta_path = os.path.join(root, "cache_meta.json")
        meta = {"format": CACHE_FORMAT_VERSION, "vae": fingerprint, "video": video_key}
        if os.path.exists(meta_path):
            with open(meta_path) as f:
                found = json.load(f)
            if found.get("vae") != fingerprint or found.get("format") != CACHE_FORMAT_VERSION:
                raise ValueError(f"latent cache {root!r} was written by another VAE/format ({found}); use a new --latent_cache_dir")
            self.meta = found
        else:
            _atomic_json(meta_path, meta)
            self.meta = meta
        self.video_key = video_key

    def path(self, key: str) -> str:
        return os.path.join(self.root, f"{key}.pt")

    def has(self, key: str) -> bool:
        if not os.path.exists(self.path(key)):
            return False
        return self.video_key is None or "video_latents" in self.get(key)

    def get(self, key: str) -> Dict[str, torch.Tensor]:
        return torch.load(self.path(key), map_location="cpu", weights_only=True)

    def put(self, key: str, entry: Dict[str, torch.Tensor]) -> None:
        tmp = self.path(key) + f".tmp{os.getpid()}"
        torch.save({k: v.detach().cpu().contiguous() for k, v in entry.items()}, tmp)
        os.replace(tmp, self.path(key))


def _atomic_json(path: str, obj) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


class FrozenEncoders:
    """The frozen encoders of one run: TrajLoom-VAE (tracks), optional Wan VAE (video) and text encoder."""

    def __init__(self, args, device, weight_dtype=torch.float32):
        self.device = device
        self.vae = AutoencoderTraj.from_pretrained(args.vae_path).to(device).eval().requires_grad_(False)
        cfg = self.vae.config
        self.height, self.width = int(cfg.height), int(cfg.width)
        self.stride = int(cfg.patch_size)
        self.temporal_stride = int(cfg.temporal_stride)
        self.num_frames = int(cfg.num_frames)
        self.history_mode = getattr(args, "history_mode", "tracks")
        self.video_vae = None
        if getattr(args, "video_vae_path", None):
            from diffusers import AutoencoderKLWan

            self.video_vae = AutoencoderKLWan.from_pretrained(args.video_vae_path).to(device).eval().requires_grad_(False)
        self.text_encoder = self.tokenizer = None
        if getattr(args, "text_encoder_path", None):
            from transformers import AutoModel, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(args.text_encoder_path)
            model = AutoModel.from_pretrained(args.text_encoder_path)
            self.text_encoder = (model.get_encoder() if hasattr(model, "get_encoder") else model).to(device).eval().requires_grad_(False)
            self.text_max_length = args.text_max_length

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
        return self.vae.scale_latents(raw.float()).float()

    # -- video and text ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """History frames ``[B, T, H, W, 3]`` uint8 -> normalised Wan latents as tokens ``[B, K, N, C_v]`` (reference §3.9).

        The same function as ``TrajLoomPipeline`` at inference, so training and sampling see identical video tokens."""
        return encode_video_latents(self.video_vae, frames, (self.height, self.width), tuple(self.vae.grid_hw),
                                    int(frames.shape[1]), batch_size=int(frames.shape[0]), device=self.device)

    @torch.no_grad()
    def encode_text(self, captions: List[str]) -> torch.Tensor:
        """Masked mean over valid tokens of the text encoder's last hidden state, ``[B, D_text]`` (reference §3.10);
        the pipeline's own function."""
        return encode_pooled_text(self.text_encoder, self.tokenizer, list(captions), device=self.device,
                                  max_length=self.text_max_length)

    # -- one batch of windows ---------------------------------------------------------------------------------
    def encode_windows(self, batch: Dict[str, Any]) -> Dict[str, torch.Tensor]:
        """Raw latents and token visibilities of a collated batch of windows (cache entry layout)."""
        if self.history_mode == "first_frame":  # WHN-style: no motion history, only the first frame
            batch = dict(batch)
            batch["history_tracks"], batch["history_visibility"] = encoding.first_frame_history(
                batch["history_tracks"], batch["history_visibility"])
        out = {
            "history_latents": self.encode_tracks(batch["history_tracks"]),
            "future_latents": self.encode_tracks(batch["future_tracks"]),
            "history_token_visibility": encoding.latent_visibility(batch["history_visibility"].bool(), self.temporal_stride),
            "future_token_visibility": encoding.latent_visibility(batch["future_visibility"].bool(), self.temporal_stride),
        }
        if self.video_vae is not None:
            out["video_latents"] = self.encode_video(batch["history_frames"])
        return out


def fill_latent_cache(encoders: FrozenEncoders, cache: LatentCache, dataset: KeyedWindows, accelerator, batch_size: int) -> None:
    """Encode every window missing from the cache once (sharded over processes), then synchronise."""
    missing = [i for i in range(len(dataset)) if not cache.has(dataset.key(i))]
    mine = missing[accelerator.process_index :: accelerator.num_processes]
    for start in range(0, len(mine), batch_size):
        batch = collate_windows([dataset[i] for i in mine[start : start + batch_size]])
        entries = encoders.encode_windows(batch)
        for j, key in enumerate(batch["key"]):
            cache.put(key, {k: v[j] for k, v in entries.items()})
    if mine:
        logger.info("process %d cached %d windows", accelerator.process_index, len(mine))
    accelerator.wait_for_everyone()


def batch_latents(batch, encoders: FrozenEncoders, cache: Optional[LatentCache], device) -> Dict[str, torch.Tensor]:
    """Normalised latents + token visibilities for a collated batch, from the cache or encoded now."""
    if cache is not None:
        entries = [cache.get(key) for key in batch["key"]]
        raw = {k: torch.stack([e[k] for e in entries]).to(device) for k in entries[0]}
    else:
        raw = {k: v.to(device) for k, v in encoders.encode_windows(batch).items()}
    raw["history_latents"] = encoders.normalise(raw["history_latents"])
    raw["future_latents"] = encoders.normalise(raw["future_latents"])
    return raw


# ----------------------------------------------------------------------------------------------------------------
# the objective (one module so that DDP sees exactly one forward per backward)


class FlowObjective(nn.Module):
    """Flow-matching loss (eq. 9) plus, with ``on_policy``, ``lambda (L_k-step + gamma L_cons)`` (eq. 14)."""

    def __init__(self, transformer: TrajFlowTransformer, scheduler: FlowMatchTrajScheduler, args):
        super().__init__()
        self.transformer = transformer
        self.scheduler = scheduler
        self.args = args

    def forward(self, hist, fut, fut_vis, hist_vis=None, video=None, text=None, seed: int = 0):
        a = self.args
        b = fut.shape[0]
        gen = torch.Generator().manual_seed(seed)  # CPU draws: identical on every device, resumable
        t = self.scheduler.sample_training_timesteps(b, generator=gen).to(fut.device)
        z0 = self.scheduler.sample_source(hist, generator=gen)
        zt = self.scheduler.interpolate(z0, fut, t, generator=gen)
        weights = token_weights(fut_vis, invisible_weight=a.invisible_weight)
        v = self.transformer(zt, t, hist, hist_vis, video, text).sample
        fm = flow_matching_loss(v, self.scheduler.velocity_target(z0, fut), weights)
        out = {"loss": fm, "fm": fm.detach()}
        if a.on_policy:
            s = min(a.on_policy_batch_size, b)
            sub = lambda x: None if x is None else x[:s]  # noqa: E731
            context = self.transformer.prepare_context(hist[:s], sub(hist_vis), sub(video), sub(text))
            op = on_policy_losses(
                lambda z, tt: self.transformer(z, tt, context=context).sample,
                z0[:s], fut[:s], weights[:s],
                num_steps=a.on_policy_steps, w1=a.on_policy_w1, w0=a.on_policy_w0, gamma=a.on_policy_gamma,
                t_eps=self.scheduler.config.t_eps,
            )
            out["loss"] = fm + a.on_policy_weight * op.total
            out["k_step"], out["consistency"] = op.k_step.detach(), op.consistency.detach()
        return out


def drop_captions(captions: List[str], prob: float, seed: int) -> List[str]:
    """Caption dropout (reference §3.10, 0.1): each caption becomes "" (the empty prompt) with probability ``prob``."""
    rng = random.Random(seed)
    return ["" if rng.random() < prob else c for c in captions]


def conditioning(batch, lat, encoders: FrozenEncoders, model_cfg, args, seed: Optional[int]):
    """Optional streams for the transformer: history visibility, video latents and pooled text."""
    hist_vis = lat["history_token_visibility"] if model_cfg.use_hist_vis_cond and not args.no_history_visibility else None
    video = lat.get("video_latents") if model_cfg.use_video_cond else None
    text = None
    if model_cfg.use_text_cond:
        captions = [c or "" for c in batch["caption"]]
        if seed is not None:
            captions = drop_captions(captions, args.caption_dropout, seed)
        text = encoders.encode_text(captions)
    return hist_vis, video, text


# ----------------------------------------------------------------------------------------------------------------
# validation


@torch.no_grad()
def validate(transformer, scheduler, encoders, val_set, cache, args, device) -> Dict[str, float]:
    """Sample ``num_validation_samples`` futures per window (Euler, ``validation_inference_steps``), decode them and
    compare with the ground-truth future on its visible points, in pixels, pooled over all points (like VEPE,
    eq. 17): ``val_epe_px`` over every sample, ``val_best_epe_px`` with the best sample per window,
    ``val_final_epe_px`` on the last frame; plus ``val_fm_loss`` (eq. 9 at t = 0.25, 0.5, 0.75, fixed noise)."""
    transformer.eval()
    n = min(args.num_validation_windows, len(val_set))
    s = args.num_validation_samples
    err_sum = best_sum = final_sum = vis_sum = final_vis = 0.0
    fm_sum = 0.0
    for start in range(0, n, args.train_batch_size):
        batch = collate_windows([val_set[i] for i in range(start, min(n, start + args.train_batch_size))])
        lat = batch_latents(batch, encoders, cache, device)
        hist_vis, video, text = conditioning(batch, lat, encoders, transformer.config, args, None)
        hist = lat["history_latents"]
        b = hist.shape[0]
        context = transformer.prepare_context(hist, hist_vis, video, text)
        gens = [torch.Generator().manual_seed(args.seed + 1000 * (start + i) + j) for i in range(b) for j in range(s)]
        z0 = scheduler.sample_source(hist.repeat_interleave(s, 0), generator=gens)
        several = context.repeat_interleave(s)
        z1 = scheduler.sample(lambda z, t: transformer(z.to(transformer.dtype), t, context=several).sample, z0,
                              args.validation_inference_steps, solver="euler").sample
        gt = batch["future_tracks"].to(device).float()
        pred = encoders.decode_tracks(z1).reshape(b, s, *gt.shape[1:])  # [B, S, T, N, 2]
        vis = batch["future_visibility"].to(device).float()[:, None]  # [B, 1, T, N]
        err = (pred - gt[:, None]).norm(dim=-1) * vis  # [B, S, T, N]
        per_sample = err.sum(dim=(2, 3))  # [B, S]
        err_sum += float(per_sample.sum()) / s
        best_sum += float(per_sample.min(dim=1).values.sum())
        final_sum += float(err[:, :, -1].sum()) / s
        vis_sum += float(vis.sum())
        final_vis += float(vis[:, :, -1].sum())
        w = token_weights(lat["future_token_visibility"], invisible_weight=args.invisible_weight)
        src = scheduler.sample_source(hist, generator=torch.Generator().manual_seed(args.seed + start))
        for tv in (0.25, 0.5, 0.75):
            tt = torch.full((b,), tv, device=device)
            zt = scheduler.interpolate(src, lat["future_latents"], tt, noise=torch.zeros_like(src))
            v = transformer(zt.to(transformer.dtype), tt, context=context).sample
            fm_sum += float(flow_matching_loss(v, lat["future_latents"] - src, w)) * b / 3
    transformer.train()
    return {
        "val_epe_px": err_sum / max(vis_sum, 1.0),
        "val_best_epe_px": best_sum / max(vis_sum, 1.0),
        "val_final_epe_px": final_sum / max(final_vis, 1.0),
        "val_fm_loss": fm_sum / max(n, 1),
    }


# ----------------------------------------------------------------------------------------------------------------
# checkpoints


def latest_checkpoint(root: Path) -> Optional[Path]:
    """The ``checkpoint-<step>`` folder with the highest step that finished writing (has trainer_state.json)."""
    done = [p for p in root.glob("checkpoint-*") if (p / "trainer_state.json").exists()] if root.exists() else []
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


def resume_state(accelerator, args) -> int:
    """Load ``--resume_from_checkpoint`` (a folder or "latest" under output_dir/checkpoints); returns the step."""
    if not args.resume_from_checkpoint:
        return 0
    root = Path(args.output_dir) / "checkpoints"
    path = latest_checkpoint(root) if args.resume_from_checkpoint == "latest" else Path(args.resume_from_checkpoint)
    if path is None:
        logger.info("no checkpoint found under %s: starting from scratch", root)
        return 0
    if not (path / "trainer_state.json").exists():
        raise ValueError(f"--resume_from_checkpoint {str(path)!r} is not a complete checkpoint (no trainer_state.json)")
    accelerator.load_state(str(path))
    step = json.loads((path / "trainer_state.json").read_text())["global_step"]
    logger.info("resumed from %s at step %d", path, step)
    return step


def save_checkpoint(accelerator, output_dir: str, step: int, keep: int) -> None:
    """``accelerator.save_state`` to ``output_dir/checkpoints/checkpoint-<step>``; trainer_state.json is written
    last and marks the checkpoint complete; only the ``keep`` newest are kept."""
    root = Path(output_dir) / "checkpoints"
    accelerator.wait_for_everyone()
    path = root / f"checkpoint-{step}"
    accelerator.save_state(str(path))
    if accelerator.is_main_process:
        _atomic_json(str(path / "trainer_state.json"), {"global_step": step})
        done = sorted(root.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
        for old in done[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def make_accelerator(args, run_name: str) -> Accelerator:
    project = ProjectConfiguration(project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, "logs"))
    trackers = {"csv": [CSVTracker(run_name, project.logging_dir)], "none": None}.get(args.report_to, args.report_to)
    return Accelerator(gradient_accumulation_steps=args.gradient_accumulation_steps, mixed_precision=args.mixed_precision,
                       log_with=trackers, project_config=project)


def log_metrics(accelerator, step: int, metrics: Dict[str, float]) -> None:
    accelerator.log(metrics, step=step)
    if accelerator.is_main_process:
        logger.info("step %d: %s", step, ", ".join(f"{k}={v:.4g}" for k, v in metrics.items()))


# ----------------------------------------------------------------------------------------------------------------


def build_transformer(args, encoders: FrozenEncoders) -> TrajFlowTransformer:
    if args.init_transformer:
        return TrajFlowTransformer.from_pretrained(args.init_transformer)
    config: Dict[str, Any] = {}
    if args.transformer_config:
        with open(args.transformer_config) as f:
            config = json.load(f)
    vae = encoders.vae
    # the latent grid is the VAE's: K latent steps, H_g x W_g tokens, C channels, frame positions
    config.update(
        num_latent_frames=vae.num_latent_frames,
        grid_size=tuple(vae.grid_hw),
        latent_channels=int(vae.config.latent_channels),
        history_num_frames=encoders.num_frames,
        temporal_stride=encoders.temporal_stride,
    )
    config.setdefault("use_text_cond", encoders.text_encoder is not None)
    config.setdefault("use_video_cond", encoders.video_vae is not None)
    if config["use_video_cond"] and encoders.video_vae is not None:  # Wan2.1: 16 channels, Wan2.2: 48
        config.setdefault("video_latent_channels", int(encoders.video_vae.config.z_dim))
    if config["use_text_cond"] and encoders.text_encoder is not None:
        config.setdefault("text_embed_dim", int(encoders.text_encoder.config.d_model))
    return TrajFlowTransformer(**config)


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    accelerator = make_accelerator(args, "train_trajloom_flow")
    set_seed(args.seed)
    if accelerator.is_main_process:
        os.makedirs(args.output_dir, exist_ok=True)
        _atomic_json(os.path.join(args.output_dir, "train_args.json"), vars(args))
    device = accelerator.device

    # 1. frozen encoders and data (built on the main process first so the synthetic clip cache is written once)
    encoders = FrozenEncoders(args, device)
    with accelerator.main_process_first():
        train_set, val_set = build_windows(args, encoders.vae.config, with_frames=encoders.video_vae is not None)
    cache = None
    if args.latent_cache_dir:
        fingerprint = vae_fingerprint(encoders.vae) + ("" if args.history_mode == "tracks" else f"-{args.history_mode}")
        cache = LatentCache(args.latent_cache_dir, fingerprint, "wan" if encoders.video_vae is not None else None)
        fill_latent_cache(encoders, cache, train_set, accelerator, args.train_batch_size)
        fill_latent_cache(encoders, cache, val_set, accelerator, args.train_batch_size)

    # 2. model, scheduler (source distribution and flow-time mixture), objective, optimiser
    transformer = build_transformer(args, encoders)
    expected = (encoders.vae.num_latent_frames, encoders.vae.grid_hw[0] * encoders.vae.grid_hw[1], int(encoders.vae.config.latent_channels))
    if transformer.latent_shape != expected:
        raise ValueError(f"transformer latent shape {transformer.latent_shape} does not match the VAE's {expected}")
    if args.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    scheduler = FlowMatchTrajScheduler(
        anchor_first=not args.no_anchor, anchor_noise_std=args.anchor_noise_std, tube_sigma=args.tube_sigma,
        t_small_prob=args.t_small_prob, t_small_max=args.t_small_max, num_inference_steps=args.validation_inference_steps,
    )
    objective = FlowObjective(transformer, scheduler, args)
    optimizer = torch.optim.AdamW(transformer.parameters(), lr=args.learning_rate, betas=(0.9, 0.999), weight_decay=args.adam_weight_decay)
    objective, optimizer = accelerator.prepare(objective, optimizer)
    if accelerator.is_main_process:
        accelerator.init_trackers("train_trajloom_flow", config={k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))})

    sampler = EpochShardSampler(len(train_set), args.train_batch_size, args.seed, accelerator.process_index, accelerator.num_processes)
    loader = torch.utils.data.DataLoader(train_set, batch_size=args.train_batch_size, sampler=sampler,
                                         collate_fn=collate_windows, num_workers=args.dataloader_num_workers)

    # 3. resume (model, optimiser, RNG); the data order and per-step draws are functions of the step
    global_step = resume_state(accelerator, args)
    raw_model = accelerator.unwrap_model(objective).transformer
    micro = global_step * args.gradient_accumulation_steps
    while global_step < args.max_train_steps:
        epoch, skip = divmod(micro, sampler.batches_per_epoch)
        sampler.set_epoch(epoch, skip)
        for batch in loader:
            with accelerator.accumulate(objective):
                seed = args.seed * 1_000_003 + micro * 7919 + accelerator.process_index
                lat = batch_latents(batch, encoders, cache, device)
                hist_vis, video, text = conditioning(batch, lat, encoders, raw_model.config, args, seed)
                with accelerator.autocast():
                    out = objective(lat["history_latents"], lat["future_latents"], lat["future_token_visibility"],
                                    hist_vis, video, text, seed=seed)
                accelerator.backward(out["loss"])
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(objective.parameters(), args.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            micro += 1
            if not accelerator.sync_gradients:
                continue
            global_step += 1
            log_metrics(accelerator, global_step, {k: float(accelerator.reduce(v.detach().float(), "mean")) for k, v in out.items()})
            if args.validation_steps and (global_step % args.validation_steps == 0 or global_step == args.max_train_steps):
                if accelerator.is_main_process and len(val_set):
                    log_metrics(accelerator, global_step, validate(raw_model, scheduler, encoders, val_set, cache, args, device))
                accelerator.wait_for_everyone()
            if global_step % args.checkpointing_steps == 0 or global_step == args.max_train_steps:
                save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
            if global_step >= args.max_train_steps:
                break

    # 4. the model in the pipeline layout
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        raw_model.save_pretrained(os.path.join(args.output_dir, "transformer"))
        scheduler.save_pretrained(os.path.join(args.output_dir, "scheduler"))
        logger.info("saved transformer/ and scheduler/ to %s", args.output_dir)
    accelerator.end_training()


if __name__ == "__main__":
    main(sys.argv[1:])
