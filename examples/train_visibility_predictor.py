#!/usr/bin/env python
"""Train the TrajLoom visibility head (paper App. E.3; reference §4) on frozen TrajLoom-VAE latents with Accelerate.

    accelerate launch examples/train_visibility_predictor.py --vae_path out/vae --output_dir out/vis \\
        --latent_cache_dir out/latents --max_train_steps 20000   [--bench BENCH_DIR]

Two designs (``--design``; :class:`~trajloom_hf.models.visibility_predictor.VisibilityPredictor`):
``history_residual`` (default) is trained on the future window of each clip given its history latents and history
visibility, starting from "hold each point's last history visibility" and learning corrections; ``official`` sees
the normalised (generator-space) latents of one segment only and is trained on both the history and the future window
of each clip (official: "hist" and "fut" segments). Targets are the per-frame visibility max-pooled to the token
grid; loss: BCE with logits. Official optimisation: AdamW lr 3e-4, weight decay 0.01, cosine schedule with 500
warm-up steps down to 3e-5, batch 4, 20k steps. Validation on future windows reports token accuracy /
precision / recall / F1 at threshold 0.5 and the per-frame accuracy after upsampling and the in-frame check.
The data, latent cache, checkpointing and resuming are ``trajloom_hf.training``'s, as in ``train_trajloom_flow.py``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Dict

import torch

from trajloom_hf.flow_losses import visibility_bce_loss
from trajloom_hf.models.visibility_predictor import VisibilityPredictor
from trajloom_hf.training.accelerator_setup import log_metrics, make_accelerator, start_run
from trajloom_hf.training.arguments import (add_latent_training_args, check_paths, data_options, fraction,
                                            non_negative_float, non_negative_int, positive_float, positive_int)
from trajloom_hf.training.checkpointing import Checkpointer
from trajloom_hf.training.determinism import seed_everything
from trajloom_hf.training.frozen_encoders import FrozenEncoders
from trajloom_hf.training.latent_cache import batch_latents, open_latent_cache
from trajloom_hf.training.objectives import visibility_logits
from trajloom_hf.training.lr_schedules import warmup_cosine, warmup_cosine_scheduler  # noqa: F401  (warmup_cosine: public here too)
from trajloom_hf.training.samplers import EpochShardSampler
from trajloom_hf.training.validation_loops import validate_visibility
from trajloom_hf.training.window_datasets import build_windows, collate_windows

logger = logging.getLogger("train_visibility_predictor")
RUN = "train_visibility_predictor"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_latent_training_args(parser)
    g = parser.add_argument_group("visibility head")
    g.add_argument("--hidden_size", type=positive_int, default=64)
    g.add_argument("--depth", type=positive_int, default=3)
    g.add_argument("--kernel_size", type=positive_int, default=3)
    g.add_argument("--threshold", type=fraction, default=0.5)
    g.add_argument("--pos_weight", type=non_negative_float, default=0.0, help="BCE weight of the visible class (0: off, official)")
    g.add_argument("--design", default="history_residual", choices=["history_residual", "official"],
                   help="history_residual: hold-last prior + learnt correction from the history (beats hold-last); "
                   "official: future latents only (reference §4)")
    g.add_argument("--spatial_kernel", type=non_negative_int, default=3,
                   help="history_residual: Conv2d kernel over the token grid in each block (0: tokens independent)")
    g.add_argument("--prior_logit", type=positive_float, default=3.0, help="history_residual: initial hold-last logit")
    g.add_argument("--segments", default=None, help="latent segments trained on (default: history,future for the "
                   "official design, future for history_residual, which needs each window's history)")
    g.add_argument("--learning_rate", type=positive_float, default=3e-4)
    g.add_argument("--min_learning_rate", type=positive_float, default=3e-5)
    g.add_argument("--lr_warmup_steps", type=non_negative_int, default=500)
    parser.set_defaults(adam_weight_decay=0.01)
    args = parser.parse_args(argv)
    if args.segments is None:
        args.segments = "history,future" if args.design == "official" else "future"
    segs = [s.strip() for s in args.segments.split(",") if s.strip()]
    if not segs or any(s not in ("history", "future") for s in segs):
        parser.error(f"--segments must list 'history' and/or 'future', got {args.segments!r}")
    if args.design == "history_residual" and segs != ["future"]:
        parser.error(f"--design history_residual is trained on future windows only (--segments future), got {args.segments!r}")
    if args.design == "history_residual" and args.spatial_kernel and args.spatial_kernel % 2 == 0:
        parser.error(f"--spatial_kernel must be 0 or odd, got {args.spatial_kernel}")
    args.segments = segs
    if args.min_learning_rate > args.learning_rate:
        parser.error(f"--min_learning_rate {args.min_learning_rate} must not exceed --learning_rate {args.learning_rate}")
    return args


def segment_batch(lat: Dict[str, torch.Tensor], segments) -> tuple:
    """Stack the requested latent segments along the batch: ``[S*B, K, N, C]`` latents and ``[S*B, K, N]`` targets."""
    latents = torch.cat([lat[f"{s}_latents"] for s in segments])
    targets = torch.cat([lat[f"{s}_token_visibility"] for s in segments])
    return latents, targets


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    check_paths(args, folders=("bench",))
    accelerator = make_accelerator(args, RUN)
    seed_everything(args.seed, args.deterministic)
    device = accelerator.device

    # 1. frozen VAE, the head, data
    encoders = FrozenEncoders(args, device)
    model = VisibilityPredictor(
        latent_channels=int(encoders.vae.config.latent_channels), hidden_size=args.hidden_size, depth=args.depth,
        kernel_size=args.kernel_size, temporal_stride=encoders.temporal_stride, threshold=args.threshold,
        **({} if args.design == "official" else dict(
            design=args.design, grid_size=list(encoders.vae.grid_hw), spatial_kernel=args.spatial_kernel,
            prior_logit=args.prior_logit)),
    )
    with accelerator.main_process_first():
        train_set, val_set = build_windows(encoders.vae.config, **data_options(args))
    sampler = EpochShardSampler(len(train_set), args.train_batch_size, args.seed, accelerator.process_index, accelerator.num_processes)
    cache = open_latent_cache(encoders, args.latent_cache_dir, (train_set, val_set), accelerator, args.train_batch_size)

    # 2. optimiser, schedule (stepped by hand once per optimizer step: accelerate's wrapper would step it once per
    # process)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=args.adam_weight_decay)
    lr_scheduler = warmup_cosine_scheduler(optimizer, args.lr_warmup_steps, args.max_train_steps, args.learning_rate, args.min_learning_rate)
    model, optimizer = accelerator.prepare(model, optimizer)
    start_run(accelerator, args, RUN)
    loader = torch.utils.data.DataLoader(train_set, batch_size=args.train_batch_size, sampler=sampler,
                                         collate_fn=collate_windows, num_workers=args.dataloader_num_workers)

    # 3. resume
    checkpointer = Checkpointer(accelerator, args.output_dir, model, optimizer, lr_scheduler)
    global_step = checkpointer.resume(args.resume_from_checkpoint)
    raw_model = accelerator.unwrap_model(model)
    micro = global_step * args.gradient_accumulation_steps

    # 4. the loop
    for batch in sampler.batches_from(loader, micro):
        if global_step >= args.max_train_steps:
            break
        with accelerator.accumulate(model):
            lat = batch_latents(batch, encoders, cache, device)
            latents, targets = segment_batch(lat, args.segments)
            with accelerator.autocast():  # through the (DDP-)wrapped model, with the pipeline's inputs
                logits = visibility_logits(model, lat, batch, encoders.height, encoders.width, latents=latents,
                                           uses_history=raw_model.uses_history)
                loss = visibility_bce_loss(logits, targets, pos_weight=args.pos_weight or None)
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
                log_metrics(accelerator, global_step, validate_visibility(
                    raw_model, encoders, val_set, cache, num_windows=args.num_validation_windows,
                    batch_size=args.train_batch_size, threshold=args.threshold))
            accelerator.wait_for_everyone()
        if global_step % args.checkpointing_steps == 0 or global_step == args.max_train_steps:
            checkpointer.save(global_step, args.checkpoints_total_limit)

    # 5. save
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        raw_model.save_pretrained(os.path.join(args.output_dir, "visibility_predictor"))
        logger.info("saved visibility_predictor/ to %s", args.output_dir)
    accelerator.end_training()


if __name__ == "__main__":
    main(sys.argv[1:])
