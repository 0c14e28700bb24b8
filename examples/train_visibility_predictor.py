#!/usr/bin/env python
"""Train the TrajLoom visibility head (paper App. E.3; reference §4) on frozen TrajLoom-VAE latents with Accelerate.

    accelerate launch examples/train_visibility_predictor.py --vae_path out/vae --output_dir out/vis \\
        --latent_cache_dir out/latents --max_train_steps 20000   [--bench BENCH_DIR]

Inputs are the normalised (generator-space) latents of both the history and the future window of each clip
(official: trained on "hist" and "fut" segments); targets are the per-frame visibility max-pooled to the token
grid; loss: BCE with logits. Official optimisation: AdamW lr 3e-4, weight decay 0.01, cosine schedule with 500
warm-up steps down to 3e-5, batch 4, 20k steps. Validation on future windows reports token accuracy /
precision / recall / F1 at threshold 0.5 and the per-frame accuracy after upsampling and the in-frame check.
The latent cache, checkpointing and resuming are shared with ``train_trajloom_flow.py``.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from typing import Dict

import torch
from accelerate.utils import set_seed

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_trajloom_flow import (  # noqa: E402  (shared example plumbing)
    EpochShardSampler,
    FrozenEncoders,
    LatentCache,
    _atomic_json,
    add_common_args,
    batch_latents,
    build_windows,
    collate_windows,
    fill_latent_cache,
    log_metrics,
    make_accelerator,
    resume_state,
    save_checkpoint,
)

from trajloom_hf.flow_losses import visibility_bce_loss  # noqa: E402
from trajloom_hf.models.visibility_predictor import VisibilityPredictor, visibility_from_logits  # noqa: E402
from train_trajloom_flow import vae_fingerprint  # noqa: E402

logger = logging.getLogger("train_visibility_predictor")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    g = parser.add_argument_group("visibility head")
    g.add_argument("--hidden_size", type=int, default=64)
    g.add_argument("--depth", type=int, default=3)
    g.add_argument("--kernel_size", type=int, default=3)
    g.add_argument("--threshold", type=float, default=0.5)
    g.add_argument("--pos_weight", type=float, default=0.0, help="BCE weight of the visible class (0: off, official)")
    g.add_argument("--segments", default="history,future", help="latent segments trained on (official: both)")
    g.add_argument("--learning_rate", type=float, default=3e-4)
    g.add_argument("--min_learning_rate", type=float, default=3e-5)
    g.add_argument("--lr_warmup_steps", type=int, default=500)
    parser.set_defaults(adam_weight_decay=0.01)
    args = parser.parse_args(argv)
    segs = [s.strip() for s in args.segments.split(",") if s.strip()]
    if not segs or any(s not in ("history", "future") for s in segs):
        parser.error(f"--segments must list 'history' and/or 'future', got {args.segments!r}")
    args.segments = segs
    return args


def warmup_cosine(step: int, warmup: int, total: int, lr: float, min_lr: float) -> float:
    """Learning-rate factor: linear warm-up, then cosine from ``lr`` to ``min_lr`` at ``total``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return (min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))) / lr


def segment_batch(lat: Dict[str, torch.Tensor], segments) -> tuple:
    """Stack the requested latent segments along the batch: ``[S*B, K, N, C]`` latents and ``[S*B, K, N]`` targets."""
    latents = torch.cat([lat[f"{s}_latents"] for s in segments])
    targets = torch.cat([lat[f"{s}_token_visibility"] for s in segments])
    return latents, targets


@torch.no_grad()
def validate(model, encoders, val_set, cache, args, device) -> Dict[str, float]:
    model.eval()
    tp = fp = fn = tn = 0.0
    frame_correct = frame_total = 0.0
    n = min(args.num_validation_windows, len(val_set))
    for start in range(0, n, args.train_batch_size):
        batch = collate_windows([val_set[i] for i in range(start, min(n, start + args.train_batch_size))])
        lat = batch_latents(batch, encoders, cache, device)
        logits = model(lat["future_latents"]).logits
        pred = torch.sigmoid(logits) > args.threshold
        tgt = lat["future_token_visibility"].bool()
        tp += float((pred & tgt).sum())
        fp += float((pred & ~tgt).sum())
        fn += float((~pred & tgt).sum())
        tn += float((~pred & ~tgt).sum())
        tracks = batch["future_tracks"].to(device).float()
        frames = visibility_from_logits(logits, tracks, encoders.height, encoders.width, tracks.shape[1],
                                        threshold=args.threshold, temporal_stride=encoders.temporal_stride)
        frame_correct += float((frames == batch["future_visibility"].to(device).bool()).sum())
        frame_total += frames.numel()
    model.train()
    precision = tp / max(tp + fp, 1.0)
    recall = tp / max(tp + fn, 1.0)
    return {
        "val_token_accuracy": (tp + tn) / max(tp + tn + fp + fn, 1.0),
        "val_precision": precision,
        "val_recall": recall,
        "val_f1": 2 * precision * recall / max(precision + recall, 1e-12),
        "val_frame_accuracy": frame_correct / max(frame_total, 1.0),
    }


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    accelerator = make_accelerator(args, "train_visibility_predictor")
    set_seed(args.seed)
    if accelerator.is_main_process:
        os.makedirs(args.output_dir, exist_ok=True)
        _atomic_json(os.path.join(args.output_dir, "train_args.json"), vars(args))
    device = accelerator.device

    encoders = FrozenEncoders(args, device)
    with accelerator.main_process_first():
        train_set, val_set = build_windows(args, encoders.vae.config, with_frames=False)
    cache = None
    if args.latent_cache_dir:
        cache = LatentCache(args.latent_cache_dir, vae_fingerprint(encoders.vae))
        fill_latent_cache(encoders, cache, train_set, accelerator, args.train_batch_size)
        fill_latent_cache(encoders, cache, val_set, accelerator, args.train_batch_size)

    model = VisibilityPredictor(
        latent_channels=int(encoders.vae.config.latent_channels), hidden_size=args.hidden_size, depth=args.depth,
        kernel_size=args.kernel_size, temporal_stride=encoders.temporal_stride, threshold=args.threshold,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.adam_weight_decay)
    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, args.lr_warmup_steps, args.max_train_steps, args.learning_rate, args.min_learning_rate)
    )
    # stepped by hand once per optimizer step (accelerate's wrapper would step it once per process)
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(lr_scheduler)
    if accelerator.is_main_process:
        accelerator.init_trackers("train_visibility_predictor", config={k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool))})

    sampler = EpochShardSampler(len(train_set), args.train_batch_size, args.seed, accelerator.process_index, accelerator.num_processes)
    loader = torch.utils.data.DataLoader(train_set, batch_size=args.train_batch_size, sampler=sampler,
                                         collate_fn=collate_windows, num_workers=args.dataloader_num_workers)
    global_step = resume_state(accelerator, args)
    raw_model = accelerator.unwrap_model(model)
    micro = global_step * args.gradient_accumulation_steps
    while global_step < args.max_train_steps:
        epoch, skip = divmod(micro, sampler.batches_per_epoch)
        sampler.set_epoch(epoch, skip)
        for batch in loader:
            with accelerator.accumulate(model):
                lat = batch_latents(batch, encoders, cache, device)
                latents, targets = segment_batch(lat, args.segments)
                with accelerator.autocast():
                    loss = visibility_bce_loss(model(latents).logits, targets, pos_weight=args.pos_weight or None)
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                if accelerator.sync_gradients:
                    lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            micro += 1
            if not accelerator.sync_gradients:
                continue
            global_step += 1
            log_metrics(accelerator, global_step, {"bce": float(accelerator.reduce(loss.detach().float(), "mean")),
                                                   "lr": lr_scheduler.get_last_lr()[0]})
            if args.validation_steps and (global_step % args.validation_steps == 0 or global_step == args.max_train_steps):
                if accelerator.is_main_process and len(val_set):
                    log_metrics(accelerator, global_step, validate(raw_model, encoders, val_set, cache, args, device))
                accelerator.wait_for_everyone()
            if global_step % args.checkpointing_steps == 0 or global_step == args.max_train_steps:
                save_checkpoint(accelerator, args.output_dir, global_step, args.checkpoints_total_limit)
            if global_step >= args.max_train_steps:
                break

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        raw_model.save_pretrained(os.path.join(args.output_dir, "visibility_predictor"))
        logger.info("saved visibility_predictor/ to %s", args.output_dir)
    accelerator.end_training()


if __name__ == "__main__":
    main(sys.argv[1:])
