"""Learning-rate schedules not in ``diffusers.optimization``."""

from __future__ import annotations

import math

import torch

__all__ = ["warmup_cosine", "warmup_cosine_scheduler"]


def warmup_cosine(step: int, warmup: int, total: int, lr: float, min_lr: float) -> float:
    """Learning-rate factor: linear warm-up, then cosine from ``lr`` to ``min_lr`` at ``total`` (the official
    visibility-head schedule: 500 warm-up steps, 3e-4 down to 3e-5)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return (min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * progress))) / lr


def warmup_cosine_scheduler(optimizer, warmup: int, total: int, lr: float, min_lr: float) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` following :func:`warmup_cosine`, to be stepped once per optimizer step."""
    if not 0 < min_lr <= lr:
        raise ValueError(f"need 0 < min_learning_rate <= learning_rate, got {min_lr} and {lr}")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: warmup_cosine(s, warmup, total, lr, min_lr))
