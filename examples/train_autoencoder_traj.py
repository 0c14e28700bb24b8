"""Train AutoencoderTraj (TrajLoom-VAE, paper §3.2 and App. A.1) with Accelerate.

One process:      python examples/train_autoencoder_traj.py --output_dir out/vae --preset cpu
Several (GPUs or CPU processes):
                  accelerate launch --num_processes 2 examples/train_autoencoder_traj.py --output_dir out/vae
Resume a killed run exactly where it stopped:
                  python examples/train_autoencoder_traj.py --output_dir out/vae --resume_from_checkpoint latest

Data: procedural synthetic clips (default) or a TrajLoomBench dataset folder (``--bench``). Every history and every
future window is a training segment. The loss is eq. 5 (masked Huber + spatiotemporal regulariser + beta KL) with
the weights stored in the model config. Validation reports VEPE in pixels (eq. 17) on held-out clips. At the end
the latent statistics are computed on the training set and the model is saved with ``save_pretrained``.
"""

import argparse
import logging
import math

import torch
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration
from diffusers.optimization import SchedulerType, get_scheduler
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from trajloom_hf.encoding import normalize_tracks
from trajloom_hf.latent_statistics import RunningLatentStatistics, set_latent_statistics
from trajloom_hf.training.accelerator_setup import make_accelerator, start_run
from trajloom_hf.training.arguments import (add_checkpointing_args, add_run_args, add_window_start_args, check_paths,
                                            data_options, non_negative_float, non_negative_int, positive_float,
                                            positive_int)
from trajloom_hf.training.checkpointing import Checkpointer
from trajloom_hf.training.determinism import seed_everything
from trajloom_hf.training.model_builders import AUTOENCODER_PRESETS, build_autoencoder
from trajloom_hf.training.validation_loops import validate_autoencoder
from trajloom_hf.training.window_datasets import build_segment_datasets, frame_size, require_batches
from trajloom_hf.vae_losses import vae_loss

logger = get_logger(__name__)
RUN = "train_autoencoder_traj"
PRESETS = AUTOENCODER_PRESETS


def offset_scale(text: str):
    """``--offset_scale``: "grid" or a positive number."""
    if text == "grid":
        return text
    try:
        return positive_float(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected 'grid' or a number > 0, got {text!r}") from None


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="model size")
    p.add_argument("--model_config", default=None, help="JSON file of AutoencoderTraj arguments (overrides --preset)")
    g = p.add_argument_group("data")
    g.add_argument("--bench", default=None, help="TrajLoomBench folder; default: synthetic clips")
    g.add_argument("--bench_config", default="synthetic")
    g.add_argument("--height", type=positive_int, default=240)
    g.add_argument("--width", type=positive_int, default=416)
    g.add_argument("--stride", type=positive_int, default=16)
    g.add_argument("--num_frames", type=positive_int, default=81, help="segment length T (history = future = T)")
    g.add_argument("--num_train_clips", type=positive_int, default=256)
    g.add_argument("--num_val_clips", type=positive_int, default=16)
    g.add_argument("--cache_dir", default=None, help="where synthetic clips are cached (default: output_dir/cache)")
    add_window_start_args(g)
    g = p.add_argument_group("loss ablations (paper Table 4)")
    g.add_argument("--no_offsets", action="store_true", help="absolute coordinates instead of Grid-Anchor offsets")
    g.add_argument("--offset_scale", type=offset_scale, default="grid", help='"grid" (offsets in grid cells) or a number (1 = official)')
    g.add_argument("--lambda_temporal", type=non_negative_float, default=0.1)
    g.add_argument("--lambda_spatial", type=non_negative_float, default=0.2)
    g.add_argument("--beta", type=non_negative_float, default=5e-5)
    g = p.add_argument_group("optimisation (paper App. A.1: AdamW lr 2e-5, betas 0.9/0.999, wd 0, clip 1.0)")
    add_run_args(g)
    g.add_argument("--learning_rate", type=positive_float, default=2e-5)
    g.add_argument("--adam_beta1", type=non_negative_float, default=0.9)
    g.add_argument("--adam_beta2", type=non_negative_float, default=0.999)
    g.add_argument("--weight_decay", type=non_negative_float, default=0.0)
    g.add_argument("--lr_scheduler", default="constant_with_warmup", choices=[s.value for s in SchedulerType])
    g.add_argument("--lr_warmup_steps", type=non_negative_int, default=100)
    g.add_argument("--max_train_steps", type=positive_int, default=1000)
    g.add_argument("--train_batch_size", type=positive_int, default=4)
    g = p.add_argument_group("bookkeeping")
    add_checkpointing_args(g, checkpointing_steps=200, validation_steps=200)
    args = p.parse_args(argv)
    for beta in ("adam_beta1", "adam_beta2"):
        if not getattr(args, beta) < 1:
            p.error(f"argument --{beta}: expected a number in [0, 1), got {getattr(args, beta)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", level=logging.INFO)
    check_paths(args, folders=("bench",), files=("model_config",))
    accelerator = make_accelerator(args, RUN, dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))
    seed_everything(args.seed, args.deterministic)

    # 1. model (its geometry checks run before any data is generated)
    height, width = frame_size(args.bench, args.bench_config, (args.height, args.width), stride=args.stride)
    model = build_autoencoder(args.preset, args.model_config, height=height, width=width, patch_size=args.stride,
                              num_frames=args.num_frames, use_offsets=not args.no_offsets, offset_scale=args.offset_scale,
                              lambda_temporal=args.lambda_temporal, lambda_spatial=args.lambda_spatial, beta=args.beta)

    # 2. data (built on the main process first so the synthetic cache is written once)
    with accelerator.main_process_first():
        train_ds, val_ds = build_segment_datasets(height=args.height, width=args.width, stride=args.stride,
                                                  num_frames=args.num_frames, **data_options(args))
    require_batches(len(train_ds), args.train_batch_size, accelerator.num_processes)  # drop_last: else no step, ever
    logger.info(f"{len(train_ds)} training segments of {list(train_ds[0]['tracks'].shape)}, {len(val_ds)} validation segments")
    train_loader = DataLoader(train_ds, batch_size=args.train_batch_size, shuffle=True, drop_last=True,
                              num_workers=args.dataloader_num_workers)
    val_loader = DataLoader(val_ds, batch_size=args.train_batch_size)

    # 3. optimiser, schedule
    if args.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                  weight_decay=args.weight_decay)
    lr_scheduler = get_scheduler(args.lr_scheduler, optimizer, num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
                                 num_training_steps=args.max_train_steps * accelerator.num_processes)
    model, optimizer, train_loader, val_loader, lr_scheduler = accelerator.prepare(model, optimizer, train_loader, val_loader, lr_scheduler)
    # the posterior noise has its own stream (not the global RNG, which DataLoader iterators also draw from), saved
    # with every checkpoint, so a resumed run draws exactly the noise an uninterrupted run would
    noise = torch.Generator(device=accelerator.device).manual_seed(args.seed + accelerator.process_index)
    start_run(accelerator, args, RUN)

    # 4. resume: restore model/optimiser/scheduler/RNG/noise and skip the batches already seen in this epoch
    checkpointer = Checkpointer(accelerator, args.output_dir, model, optimizer, lr_scheduler, generators={"noise": noise})
    global_step = checkpointer.resume(args.resume_from_checkpoint)
    updates_per_epoch = math.ceil(len(train_loader) / args.gradient_accumulation_steps)
    first_epoch = global_step // updates_per_epoch
    skip_batches = (global_step % updates_per_epoch) * args.gradient_accumulation_steps

    # 5. train
    unwrapped = accelerator.unwrap_model(model)
    cfg = unwrapped.config
    progress = tqdm(range(args.max_train_steps), initial=global_step, desc="train VAE", disable=not accelerator.is_local_main_process)
    model.train()
    epoch = first_epoch
    while global_step < args.max_train_steps:
        train_loader.set_epoch(epoch)
        loader = accelerator.skip_first_batches(train_loader, skip_batches) if skip_batches else train_loader
        skip_batches, epoch = 0, epoch + 1
        for batch in loader:
            with accelerator.accumulate(model):
                x = normalize_tracks(batch["tracks"], height, width)  # fp32 coordinates
                out = model(x, sample_posterior=True, generator=noise)
                losses = vae_loss(out.sample, x, batch["visibility"], out.latent_dist.kl(), grid_hw=unwrapped.grid_hw, beta=cfg.beta,
                                  lambda_temporal=cfg.lambda_temporal, lambda_spatial=cfg.lambda_spatial,
                                  huber_delta=cfg.huber_delta, hops=cfg.spatial_hops)
                accelerator.backward(losses.loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            if not accelerator.sync_gradients:
                continue
            global_step += 1
            progress.update(1)
            logs = {"loss": losses.loss.item(), "rec": losses.reconstruction.item(), "temporal": losses.temporal.item(),
                    "spatial": losses.spatial.item(), "kl": losses.kl.item(), "lr": lr_scheduler.get_last_lr()[0]}
            progress.set_postfix(loss=f"{logs['loss']:.4g}")
            accelerator.log(logs, step=global_step)
            if args.validation_steps and (global_step % args.validation_steps == 0 or global_step == args.max_train_steps):
                val = validate_autoencoder(model, val_loader, accelerator, height, width)
                accelerator.log({"val_vepe_px": val}, step=global_step)
                logger.info(f"step {global_step}: validation VEPE {val:.3f} px")
            if global_step % args.checkpointing_steps == 0 or global_step == args.max_train_steps:
                checkpointer.save(global_step, args.checkpoints_total_limit)
            if global_step >= args.max_train_steps:
                break

    # 6. latent statistics over the training set (posterior means, eq. 6), then save_pretrained
    accelerator.wait_for_everyone()
    running = RunningLatentStatistics(cfg.latent_channels)
    model.eval()
    with torch.no_grad():
        stats_loader = accelerator.prepare(DataLoader(train_ds, batch_size=args.train_batch_size))
        for batch in tqdm(stats_loader, desc="latent statistics", disable=not accelerator.is_local_main_process):
            z = unwrapped.encode(normalize_tracks(batch["tracks"], height, width)).latent_dist.mean
            running.update(accelerator.gather_for_metrics(z))
    if accelerator.is_main_process:
        set_latent_statistics(unwrapped, running.compute())
        unwrapped.save_pretrained(args.output_dir)
        logger.info(f"saved AutoencoderTraj to {args.output_dir}")
    accelerator.end_training()


if __name__ == "__main__":
    main()
