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
import json
import logging
import math
import os
import shutil
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from diffusers.optimization import get_scheduler
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from trajloom_hf.csv_tracker import CSVTracker
from trajloom_hf.data.synthetic import SceneConfig
from trajloom_hf.data.trajloombench import load_trajloombench
from trajloom_hf.data.track_windows import TrackSegmentDataset, TrackWindowDataset, hf_dataset_clips, synthetic_clips
from trajloom_hf.encoding import denormalize_tracks, normalize_tracks
from trajloom_hf.latent_statistics import RunningLatentStatistics, set_latent_statistics
from trajloom_hf.metrics.endpoint import vepe
from trajloom_hf.models.autoencoder_traj import AutoencoderTraj
from trajloom_hf.vae_losses import vae_loss

logger = get_logger(__name__)

# Model sizes. "paper" is the published config (reference §2.1); the others fit a CPU.
PRESETS = {
    "tiny": dict(hidden_size=32, num_heads=4, encoder_depth=4, decoder_depth=4, latent_channels=4, pos_embed_dim=8),
    "cpu": dict(hidden_size=128, num_heads=4, encoder_depth=4, decoder_depth=4, latent_channels=16, pos_embed_dim=32),
    "paper": dict(),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output_dir", required=True)
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="model size")
    p.add_argument("--model_config", default=None, help="JSON file of AutoencoderTraj arguments (overrides --preset)")
    # data
    p.add_argument("--bench", default=None, help="TrajLoomBench folder; default: synthetic clips")
    p.add_argument("--bench_config", default="synthetic")
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--width", type=int, default=416)
    p.add_argument("--stride", type=int, default=16)
    p.add_argument("--num_frames", type=int, default=81, help="segment length T (history = future = T)")
    p.add_argument("--num_train_clips", type=int, default=256)
    p.add_argument("--num_val_clips", type=int, default=16)
    p.add_argument("--cache_dir", default=None, help="where synthetic clips are cached (default: output_dir/cache)")
    # loss ablations (paper Table 4)
    p.add_argument("--no_offsets", action="store_true", help="absolute coordinates instead of Grid-Anchor offsets")
    p.add_argument("--offset_scale", default="grid", help='"grid" (offsets in grid cells) or a number (1 = official)')
    p.add_argument("--lambda_temporal", type=float, default=0.1)
    p.add_argument("--lambda_spatial", type=float, default=0.2)
    p.add_argument("--beta", type=float, default=5e-5)
    # optimisation (paper App. A.1: AdamW lr 2e-5, betas 0.9/0.999, wd 0, clip 1.0)
    p.add_argument("--learning_rate", type=float, default=2e-5)
    p.add_argument("--adam_beta1", type=float, default=0.9)
    p.add_argument("--adam_beta2", type=float, default=0.999)
    p.add_argument("--weight_decay", type=float, default=0.0)
    p.add_argument("--lr_scheduler", default="constant_with_warmup")
    p.add_argument("--lr_warmup_steps", type=int, default=100)
    p.add_argument("--max_train_steps", type=int, default=1000)
    p.add_argument("--train_batch_size", type=int, default=4)
    p.add_argument("--gradient_accumulation_steps", type=int, default=1)
    p.add_argument("--max_grad_norm", type=float, default=1.0)
    p.add_argument("--mixed_precision", choices=["no", "fp16", "bf16"], default="no")
    p.add_argument("--gradient_checkpointing", action="store_true")
    # bookkeeping
    p.add_argument("--checkpointing_steps", type=int, default=200)
    p.add_argument("--checkpoints_total_limit", type=int, default=2)
    p.add_argument("--resume_from_checkpoint", default=None, help='a checkpoint folder or "latest"')
    p.add_argument("--validation_steps", type=int, default=200)
    p.add_argument("--report_to", default="csv", help='"csv", "tensorboard" or "none"')
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--dataloader_num_workers", type=int, default=0)
    return p.parse_args(argv)


def build_datasets(args):
    if args.bench:
        train = hf_dataset_clips(load_trajloombench(args.bench, args.bench_config, "train", numpy=False))
        val = hf_dataset_clips(load_trajloombench(args.bench, args.bench_config, "validation", numpy=False))
    else:
        cfg = SceneConfig(height=args.height, width=args.width, num_frames=2 * args.num_frames, stride=args.stride, render=False)
        cache = args.cache_dir or os.path.join(args.output_dir, "cache")
        train = synthetic_clips(range(args.num_train_clips), cfg, cache_dir=cache)
        val = synthetic_clips(range(10_000_000, 10_000_000 + args.num_val_clips), cfg, cache_dir=cache)
    t = args.num_frames
    return TrackSegmentDataset(TrackWindowDataset(train, t, t)), TrackSegmentDataset(TrackWindowDataset(val, t, t))


def _scale(value: str):
    return value if value == "grid" else float(value)


def build_model(args, height, width):
    kwargs = dict(PRESETS[args.preset])
    if args.model_config:
        kwargs = json.loads(Path(args.model_config).read_text())
    kwargs.update(height=height, width=width, patch_size=args.stride, num_frames=args.num_frames,
                  use_offsets=not args.no_offsets, offset_scale=_scale(args.offset_scale), lambda_temporal=args.lambda_temporal,
                  lambda_spatial=args.lambda_spatial, beta=args.beta)
    return AutoencoderTraj(**kwargs)


class NoiseGenerator:
    """The generator of the posterior samples, checkpointed with the run.

    Its own stream (not the global RNG, which DataLoader iterators also draw from) makes a resumed run draw exactly the
    noise an uninterrupted run would.
    """

    def __init__(self, seed: int, device):
        self.generator = torch.Generator(device=device).manual_seed(seed)

    def state_dict(self):
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state):
        self.generator.set_state(state["state"])


def latest_checkpoint(root: Path):
    """The ``checkpoint-<step>`` folder with the highest step that finished writing (has trainer_state.json)."""
    done = [p for p in root.glob("checkpoint-*") if (p / "trainer_state.json").exists()] if root.exists() else []
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


def save_checkpoint(accelerator, root: Path, global_step: int, keep: int):
    """``accelerator.save_state`` to ``root/checkpoint-<step>``; trainer_state.json is written last (marks it complete)."""
    accelerator.wait_for_everyone()
    path = root / f"checkpoint-{global_step}"
    accelerator.save_state(str(path))
    if accelerator.is_main_process:
        tmp = path / ".trainer_state.json.tmp"
        tmp.write_text(json.dumps({"global_step": global_step}))
        os.replace(tmp, path / "trainer_state.json")
        old = sorted(root.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))[:-keep] if keep > 0 else []
        for p in old:
            shutil.rmtree(p, ignore_errors=True)
    accelerator.wait_for_everyone()


@torch.no_grad()
def validate(model, loader, accelerator, height, width):
    """VEPE in pixels (eq. 17) of posterior-mean reconstructions, pooled over all processes.

    Runs under ``fork_rng`` so that validating (a DataLoader iterator draws a seed) never changes the training
    randomness: a resumed run then matches an uninterrupted one whatever the validation schedule.
    """
    with torch.random.fork_rng():
        return _validate(model, loader, accelerator, height, width)


def _validate(model, loader, accelerator, height, width):
    model.eval()
    preds, refs, vis = [], [], []
    for batch in loader:
        x = normalize_tracks(batch["tracks"], height, width)
        rec = model.decode(model.encode(x).latent_dist.mode(), clamp=True).sample
        p, r, v = accelerator.gather_for_metrics((denormalize_tracks(rec, height, width), batch["tracks"], batch["visibility"]))
        preds.append(p.cpu()), refs.append(r.cpu()), vis.append(v.cpu())
    model.train()
    return vepe(torch.cat(preds).numpy(), torch.cat(refs).numpy(), torch.cat(vis).numpy())


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(message)s", level=logging.INFO)
    project = ProjectConfiguration(project_dir=args.output_dir, logging_dir=os.path.join(args.output_dir, "logs"))
    trackers = {"csv": [CSVTracker("train_autoencoder_traj", project.logging_dir)], "none": None}.get(args.report_to, args.report_to)
    accelerator = Accelerator(gradient_accumulation_steps=args.gradient_accumulation_steps, mixed_precision=args.mixed_precision,
                              log_with=trackers, project_config=project,
                              dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True))
    set_seed(args.seed)

    # 1. data (built on the main process first so the synthetic cache is written once)
    with accelerator.main_process_first():
        train_ds, val_ds = build_datasets(args)
    first = train_ds[0]["tracks"]
    height, width = (args.height, args.width)
    if args.bench:
        row = load_trajloombench(args.bench, args.bench_config, "train")[0]
        height, width = int(row["height"]), int(row["width"])
    logger.info(f"{len(train_ds)} training segments of {list(first.shape)}, {len(val_ds)} validation segments")
    train_loader = DataLoader(train_ds, batch_size=args.train_batch_size, shuffle=True, drop_last=True,
                              num_workers=args.dataloader_num_workers)
    val_loader = DataLoader(val_ds, batch_size=args.train_batch_size)

    # 2. model, optimiser, schedule
    model = build_model(args, height, width)
    if args.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, betas=(args.adam_beta1, args.adam_beta2),
                                  weight_decay=args.weight_decay)
    lr_scheduler = get_scheduler(args.lr_scheduler, optimizer, num_warmup_steps=args.lr_warmup_steps * accelerator.num_processes,
                                 num_training_steps=args.max_train_steps * accelerator.num_processes)
    model, optimizer, train_loader, val_loader, lr_scheduler = accelerator.prepare(model, optimizer, train_loader, val_loader, lr_scheduler)
    noise = NoiseGenerator(args.seed + accelerator.process_index, accelerator.device)
    accelerator.register_for_checkpointing(noise)
    if accelerator.is_main_process:
        accelerator.init_trackers("train_autoencoder_traj", config={k: v for k, v in vars(args).items() if v is not None})

    # 3. resume: restore model/optimiser/scheduler/RNG and skip the batches already seen in this epoch
    updates_per_epoch = math.ceil(len(train_loader) / args.gradient_accumulation_steps)
    global_step, first_epoch, skip_batches = 0, 0, 0
    if args.resume_from_checkpoint:
        ckpt_root = Path(args.output_dir) / "checkpoints"
        path = Path(args.resume_from_checkpoint)
        if args.resume_from_checkpoint == "latest":
            path = latest_checkpoint(ckpt_root)
        if path is None:
            logger.info("no checkpoint found: starting from scratch")
        else:
            accelerator.load_state(str(path))
            global_step = json.loads((path / "trainer_state.json").read_text())["global_step"]
            first_epoch = global_step // updates_per_epoch
            skip_batches = (global_step % updates_per_epoch) * args.gradient_accumulation_steps
            logger.info(f"resumed from {path} at step {global_step}")

    # 4. train
    unwrapped = accelerator.unwrap_model(model)
    grid_hw = unwrapped.grid_hw
    progress = tqdm(range(args.max_train_steps), initial=global_step, desc="train VAE", disable=not accelerator.is_local_main_process)
    model.train()
    for epoch in range(first_epoch, 10**9):
        if global_step >= args.max_train_steps:
            break
        train_loader.set_epoch(epoch)
        loader = accelerator.skip_first_batches(train_loader, skip_batches) if skip_batches else train_loader
        skip_batches = 0
        for batch in loader:
            with accelerator.accumulate(model):
                x = normalize_tracks(batch["tracks"], height, width)  # fp32 coordinates
                out = model(x, sample_posterior=True, generator=noise.generator)
                cfg = unwrapped.config
                losses = vae_loss(out.sample, x, batch["visibility"], out.latent_dist.kl(), grid_hw=grid_hw, beta=cfg.beta,
                                  lambda_temporal=cfg.lambda_temporal, lambda_spatial=cfg.lambda_spatial,
                                  huber_delta=cfg.huber_delta, hops=cfg.spatial_hops)
                accelerator.backward(losses.loss)
                if accelerator.sync_gradients:
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
            if global_step % args.validation_steps == 0 or global_step == args.max_train_steps:
                val = validate(model, val_loader, accelerator, height, width)
                accelerator.log({"val_vepe_px": val}, step=global_step)
                logger.info(f"step {global_step}: validation VEPE {val:.3f} px")
            if global_step % args.checkpointing_steps == 0 or global_step == args.max_train_steps:
                save_checkpoint(accelerator, Path(args.output_dir) / "checkpoints", global_step, args.checkpoints_total_limit)
            if global_step >= args.max_train_steps:
                break

    # 5. latent statistics over the training set (posterior means, eq. 6), then save_pretrained
    accelerator.wait_for_everyone()
    running = RunningLatentStatistics(unwrapped.config.latent_channels)
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
