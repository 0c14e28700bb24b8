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
sized by the VAE config) or a TrajLoomBench folder; ``--window_start random`` trains on windows that start anywhere in
the bench's (longer) clips, for rollouts past one window (the latent cache then holds one entry per clip and start). The final model is saved as ``transformer/`` and
``scheduler/`` under ``--output_dir`` (diffusers ``from_pretrained`` folders).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

import torch

from trajloom_hf.schedulers import FlowMatchTrajScheduler
from trajloom_hf.training.accelerator_setup import log_metrics, make_accelerator, start_run
from trajloom_hf.training.arguments import (add_latent_training_args, check_paths, data_options, fraction,
                                            non_negative_float, positive_float, positive_int)
from trajloom_hf.training.checkpointing import Checkpointer
from trajloom_hf.training.determinism import seed_everything
from trajloom_hf.training.conditioning import drop_captions, flow_conditioning  # noqa: F401  (drop_captions: public here too)
from trajloom_hf.training.frame_training import FrameCache, build_frame_encoder, frame_encoder_parameters
from trajloom_hf.training.frozen_encoders import FrozenEncoders
from trajloom_hf.training.latent_cache import LatentCache, batch_latents, open_latent_cache  # noqa: F401
from trajloom_hf.training.model_builders import build_flow_transformer
from trajloom_hf.training.objectives import FlowObjective, FlowObjectiveConfig
from trajloom_hf.training.samplers import EpochShardSampler
from trajloom_hf.training.validation_loops import validate_flow
from trajloom_hf.training.window_datasets import build_windows, collate_windows

logger = logging.getLogger("train_trajloom_flow")
RUN = "train_trajloom_flow"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_latent_training_args(parser)
    g = parser.add_argument_group("model")
    g.add_argument("--transformer_config", default=None, help="JSON file of TrajFlowTransformer arguments (default: paper)")
    g.add_argument("--init_transformer", default=None, help="start from this TrajFlowTransformer folder (on-policy stage)")
    g.add_argument("--text_encoder_path", default=None, help="UMT5/T5 encoder + tokenizer folder; without it no text conditioning")
    g.add_argument("--text_max_length", type=positive_int, default=128)
    g.add_argument("--video_vae_path", default=None, help="diffusers AutoencoderKLWan folder; without it no video conditioning")
    g.add_argument("--frame_encoder_config", default=None,
                   help="JSON file of FrameEncoder arguments: condition on the frames through a FrameEncoder trained "
                        "jointly with the transformer (saved as frame_encoder/)")
    g.add_argument("--frame_encoder_backbone", default=None,
                   help="a transformers vision model folder (e.g. DINOv2): the frozen backbone of the FrameEncoder")
    g.add_argument("--init_frame_encoder", default=None, help="start from this FrameEncoder folder (on-policy stage)")
    g = parser.add_argument_group("flow matching (App. A.2)")
    g.add_argument("--learning_rate", type=positive_float, default=None, help="default 6e-5, or 1e-5 with --on_policy")
    g.add_argument("--invisible_weight", type=fraction, default=0.01)
    g.add_argument("--caption_dropout", type=fraction, default=0.1)
    g.add_argument("--no_camera_captions", action="store_true", help="do not append the camera-motion phrase "
                   "estimated from each window's tracks to its caption (App. E.2; only with a text encoder)")
    g.add_argument("--tube_sigma", type=non_negative_float, default=0.05)
    g.add_argument("--t_small_prob", type=fraction, default=0.2)
    g.add_argument("--t_small_max", type=fraction, default=0.1)
    g.add_argument("--anchor_noise_std", type=non_negative_float, default=0.1)
    g.add_argument("--no_anchor", action="store_true", help="pure-noise source z_0 ('w/o anchoring' ablation)")
    g.add_argument("--no_history_visibility", action="store_true", help="do not feed the history visibility")
    g.add_argument("--history_mode", default="tracks", choices=["tracks", "last_frame", "first_frame"],
                   help="'last_frame': the WHN-style image baseline (the forecast-start frame held still, with a frame "
                        "encoder its image only); 'first_frame': frame 0 held still (the query grid on tracked clips)")
    g = parser.add_argument_group("on-policy K-step fine-tuning (eqs. 10–14, App. A.3)")
    g.add_argument("--on_policy", action="store_true")
    g.add_argument("--on_policy_steps", type=positive_int, default=8)
    g.add_argument("--on_policy_batch_size", type=positive_int, default=8, help="sub-batch per process")
    g.add_argument("--on_policy_weight", type=non_negative_float, default=0.1, help="lambda_k-step")
    g.add_argument("--on_policy_gamma", type=non_negative_float, default=0.1)
    g.add_argument("--on_policy_w1", type=non_negative_float, default=1.0)
    g.add_argument("--on_policy_w0", type=non_negative_float, default=0.5)
    g.add_argument("--on_policy_spacing", default="logit", choices=["logit", "logit_uniform", "uniform"],
                   help="rollout time grid: i/K quantiles of sigmoid(N(0,1)) (default) or uniform in logit (literal)")
    g.add_argument("--on_policy_source_term_start", type=int, default=1, choices=[0, 1],
                   help="first rollout step of eq. 12's source term: 1 (default; at i = 0 its target is 0) or 0 (literal)")
    g = parser.add_argument_group("validation sampling")
    g.add_argument("--num_validation_samples", type=positive_int, default=2, help="futures sampled per validation window")
    g.add_argument("--validation_inference_steps", type=positive_int, default=10)
    args = parser.parse_args(argv)
    if args.learning_rate is None:
        args.learning_rate = 1e-5 if args.on_policy else 6e-5
    try:
        FlowObjectiveConfig.from_args(args)  # the objective's own checks, before any work
    except ValueError as e:
        parser.error(str(e))
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    check_paths(args, folders=("bench",), files=("transformer_config",))
    accelerator = make_accelerator(args, RUN)
    seed_everything(args.seed, args.deterministic)
    device = accelerator.device

    # 1. frozen encoders and the model (checked against the VAE before any data is encoded)
    encoders = FrozenEncoders(args, device)
    # frame conditioning: a FrameEncoder trained jointly with the transformer (its features are the video input)
    frame_encoder = frame_cache = None
    if args.frame_encoder_config or args.frame_encoder_backbone or args.init_frame_encoder:
        if encoders.video_vae is not None:
            raise ValueError("give either --video_vae_path or a frame encoder (both fill the transformer's video input)")
        if args.history_mode == "first_frame":
            raise ValueError("a frame encoder needs --history_mode tracks or last_frame")
        check_paths(args, folders=("init_frame_encoder", "frame_encoder_backbone"), files=("frame_encoder_config",))
        frame_encoder = build_frame_encoder(encoders.vae.config, init_from=args.init_frame_encoder,
                                            config_path=args.frame_encoder_config, backbone_path=args.frame_encoder_backbone)
        frame_encoder.to(device).train()
    transformer = build_flow_transformer(encoders, args.init_transformer, args.transformer_config,
                                         frame_encoder.config.out_channels if frame_encoder is not None else None)

    # 2. data (built on the main process first so the synthetic clip cache is written once), latent cache
    with accelerator.main_process_first():
        train_set, val_set = build_windows(encoders.vae.config, with_frames=encoders.video_vae is not None, **data_options(args))
    sampler = EpochShardSampler(len(train_set), args.train_batch_size, args.seed, accelerator.process_index, accelerator.num_processes)
    cache = open_latent_cache(encoders, args.latent_cache_dir, (train_set, val_set), accelerator, args.train_batch_size)

    if frame_encoder is not None:  # its input frames, decoded once and cached (the latent cache cannot hold its features)
        with accelerator.main_process_first():
            framed = build_windows(encoders.vae.config, **data_options(args), with_frames=True)
            frame_cache = FrameCache.build(framed, frame_encoder, history_frames=encoders.num_frames,
                                           temporal_stride=encoders.temporal_stride, history_mode=args.history_mode,
                                           root=args.latent_cache_dir, progress=accelerator.is_main_process)

    # 3. scheduler (source distribution and flow-time mixture), objective, optimiser
    if args.gradient_checkpointing:
        transformer.enable_gradient_checkpointing()
    scheduler = FlowMatchTrajScheduler(
        anchor_first=not args.no_anchor, anchor_noise_std=args.anchor_noise_std, tube_sigma=args.tube_sigma,
        t_small_prob=args.t_small_prob, t_small_max=args.t_small_max, num_inference_steps=args.validation_inference_steps,
    )
    objective = FlowObjective(transformer, scheduler, args, frame_encoder)
    params = list(transformer.parameters()) + (frame_encoder_parameters(frame_encoder) if frame_encoder is not None else [])
    optimizer = torch.optim.AdamW(params, lr=args.learning_rate, betas=(0.9, 0.999), weight_decay=args.adam_weight_decay)
    objective, optimizer = accelerator.prepare(objective, optimizer)
    start_run(accelerator, args, RUN)
    loader = torch.utils.data.DataLoader(train_set, batch_size=args.train_batch_size, sampler=sampler,
                                         collate_fn=collate_windows, num_workers=args.dataloader_num_workers)

    # 4. resume (model, optimiser, RNG); the data order and per-step draws are functions of the step
    checkpointer = Checkpointer(accelerator, args.output_dir, objective, optimizer)
    global_step = checkpointer.resume(args.resume_from_checkpoint)
    raw_model = accelerator.unwrap_model(objective).transformer
    raw_frame_encoder = accelerator.unwrap_model(objective).frame_encoder
    micro = global_step * args.gradient_accumulation_steps

    # 5. the loop
    for batch in sampler.batches_from(loader, micro):
        if global_step >= args.max_train_steps:
            break
        with accelerator.accumulate(objective):
            seed = args.seed * 1_000_003 + micro * 7919 + accelerator.process_index
            lat = batch_latents(batch, encoders, cache, device)
            hist_vis, video, text = flow_conditioning(batch, lat, encoders, raw_model.config, seed=seed,
                                                      use_history_visibility=not args.no_history_visibility,
                                                      caption_dropout=args.caption_dropout,
                                                      camera_captions=not args.no_camera_captions)
            frames = frame_cache.batch(batch["key"], device) if frame_cache is not None else None
            with accelerator.autocast():
                out = objective(lat["history_latents"], lat["future_latents"], lat["future_token_visibility"],
                                hist_vis, video, text, seed=seed, frames=frames)
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
                log_metrics(accelerator, global_step, validate_flow(
                    raw_model, scheduler, encoders, val_set, cache, num_windows=args.num_validation_windows,
                    num_samples=args.num_validation_samples, batch_size=args.train_batch_size,
                    inference_steps=args.validation_inference_steps, seed=args.seed, invisible_weight=args.invisible_weight,
                    use_history_visibility=not args.no_history_visibility,
                    frames=(raw_frame_encoder.eval(), frame_cache) if frame_cache is not None else None))
                if raw_frame_encoder is not None:
                    raw_frame_encoder.train()
            accelerator.wait_for_everyone()
        if global_step % args.checkpointing_steps == 0 or global_step == args.max_train_steps:
            checkpointer.save(global_step, args.checkpoints_total_limit)

    # 6. the model in the pipeline layout
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        raw_model.save_pretrained(os.path.join(args.output_dir, "transformer"))
        scheduler.save_pretrained(os.path.join(args.output_dir, "scheduler"))
        if raw_frame_encoder is not None:
            raw_frame_encoder.save_pretrained(os.path.join(args.output_dir, "frame_encoder"))
        logger.info("saved transformer/, scheduler/%s to %s", " and frame_encoder/" if raw_frame_encoder is not None else "",
                    args.output_dir)
    accelerator.end_training()


if __name__ == "__main__":
    main(sys.argv[1:])
