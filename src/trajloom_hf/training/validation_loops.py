"""Validation during training: the numbers each training script logs at ``--validation_steps``.

Each function runs under ``torch.random.fork_rng`` and draws only from its own seeded generators, so validating
never changes the training randomness (a resumed run matches an uninterrupted one whatever the schedule).
"""

from __future__ import annotations

from typing import Dict

import torch

from ..encoding import denormalize_tracks, normalize_tracks
from ..flow_losses import flow_matching_loss, token_weights
from ..frame_conditioning import frame_tokens
from ..metrics.endpoint import vepe
from ..models.visibility_predictor import visibility_from_logits
from .conditioning import flow_conditioning
from .objectives import visibility_logits
from .latent_cache import batch_latents
from .window_datasets import collate_windows

__all__ = ["validate_autoencoder", "validate_flow", "validate_visibility"]


def _val_batches(val_set, n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield start, collate_windows([val_set[i] for i in range(start, min(n, start + batch_size))])


@torch.no_grad()
def validate_flow(transformer, scheduler, encoders, val_set, cache, *, num_windows: int, num_samples: int, batch_size: int,
                  inference_steps: int, seed: int, invisible_weight: float, use_history_visibility: bool = True,
                  frames=None) -> Dict[str, float]:
    """Sample ``num_samples`` futures per window (Euler, ``inference_steps``), decode them and compare with the
    ground-truth future on its visible points, in pixels, pooled over all points (like VEPE, eq. 17):
    ``val_epe_px`` over every sample, ``val_best_epe_px`` with the best sample per window, ``val_final_epe_px`` on
    the last frame; plus ``val_fm_loss`` (eq. 9 at t = 0.25, 0.5, 0.75, fixed noise). ``frames``: ``(frame_encoder,
    frame_cache)`` of a frame-conditioned run (the video tokens of each window, encoder in eval mode)."""
    device = transformer.device
    was_training = transformer.training
    transformer.eval()
    n, s = min(num_windows, len(val_set)), num_samples
    err_sum = best_sum = final_sum = vis_sum = final_vis = fm_sum = 0.0
    with torch.random.fork_rng(devices=[]):
        for start, batch in _val_batches(val_set, n, batch_size):
            lat = batch_latents(batch, encoders, cache, device)
            if frames is not None:
                frame_encoder, frame_cache = frames
                lat["video_latents"] = frame_tokens(frame_encoder, frame_cache.batch(batch["key"], device),
                                                    lat["history_latents"].shape[1])
            hist_vis, video, text = flow_conditioning(batch, lat, encoders, transformer.config,
                                                      use_history_visibility=use_history_visibility)
            hist = lat["history_latents"]
            b = hist.shape[0]
            context = transformer.prepare_context(hist, hist_vis, video, text)
            gens = [torch.Generator().manual_seed(seed + 1000 * (start + i) + j) for i in range(b) for j in range(s)]
            z0 = scheduler.sample_source(hist.repeat_interleave(s, 0), generator=gens)
            # the S samples of a window share its context (broadcast by the transformer, not repeated)
            z1 = scheduler.sample(lambda z, t: transformer(z.to(transformer.dtype), t, context=context).sample, z0,
                                  inference_steps, solver="euler").sample
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
            w = token_weights(lat["future_token_visibility"], invisible_weight=invisible_weight)
            src = scheduler.sample_source(hist, generator=torch.Generator().manual_seed(seed + start))
            for tv in (0.25, 0.5, 0.75):
                tt = torch.full((b,), tv, device=device)
                zt = scheduler.interpolate(src, lat["future_latents"], tt, noise=torch.zeros_like(src))
                v = transformer(zt.to(transformer.dtype), tt, context=context).sample
                fm_sum += float(flow_matching_loss(v, lat["future_latents"] - src, w)) * b / 3
    transformer.train(was_training)
    return {
        "val_epe_px": err_sum / max(vis_sum, 1.0),
        "val_best_epe_px": best_sum / max(vis_sum, 1.0),
        "val_final_epe_px": final_sum / max(final_vis, 1.0),
        "val_fm_loss": fm_sum / max(n, 1),
    }


@torch.no_grad()
def validate_visibility(model, encoders, val_set, cache, *, num_windows: int, batch_size: int, threshold: float) -> Dict[str, float]:
    """Future-window token accuracy / precision / recall / F1 of the visibility head at ``threshold``, and the
    per-frame accuracy after upsampling and the in-frame check (``visibility_from_logits``)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    tp = fp = fn = tn = frame_correct = frame_total = 0.0
    for _, batch in _val_batches(val_set, min(num_windows, len(val_set)), batch_size):
        lat = batch_latents(batch, encoders, cache, device)
        logits = visibility_logits(model, lat, batch, encoders.height, encoders.width)
        pred = torch.sigmoid(logits) > threshold
        tgt = lat["future_token_visibility"].bool()
        tp += float((pred & tgt).sum())
        fp += float((pred & ~tgt).sum())
        fn += float((~pred & tgt).sum())
        tn += float((~pred & ~tgt).sum())
        tracks = batch["future_tracks"].to(device).float()
        frames = visibility_from_logits(logits, tracks, encoders.height, encoders.width, tracks.shape[1],
                                        threshold=threshold, temporal_stride=encoders.temporal_stride)
        frame_correct += float((frames == batch["future_visibility"].to(device).bool()).sum())
        frame_total += frames.numel()
    model.train(was_training)
    precision = tp / max(tp + fp, 1.0)
    recall = tp / max(tp + fn, 1.0)
    return {
        "val_token_accuracy": (tp + tn) / max(tp + tn + fp + fn, 1.0),
        "val_precision": precision,
        "val_recall": recall,
        "val_f1": 2 * precision * recall / max(precision + recall, 1e-12),
        "val_frame_accuracy": frame_correct / max(frame_total, 1.0),
    }


@torch.no_grad()
def validate_autoencoder(model, loader, accelerator, height: int, width: int) -> float:
    """VEPE in pixels (eq. 17) of posterior-mean reconstructions, pooled over all processes.

    Runs under ``fork_rng`` so that validating (a DataLoader iterator draws a seed) never changes the training
    randomness."""
    with torch.random.fork_rng():
        model.eval()
        preds, refs, vis = [], [], []
        for batch in loader:
            x = normalize_tracks(batch["tracks"], height, width)
            rec = model.decode(model.encode(x).latent_dist.mode(), clamp=True).sample
            p, r, v = accelerator.gather_for_metrics((denormalize_tracks(rec, height, width), batch["tracks"], batch["visibility"]))
            preds.append(p.cpu()), refs.append(r.cpu()), vis.append(v.cpu())
        model.train()
    return vepe(torch.cat(preds).numpy(), torch.cat(refs).numpy(), torch.cat(vis).numpy())
