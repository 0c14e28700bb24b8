"""Per-channel latent statistics of an AutoencoderTraj (paper App. A.2 "Latent normalization"; reference §2.10).

The generator works on ``(z - mean_c) / std_c``. The statistics are streamed in float64 over a dataset (posterior
means, as the generator is trained on ``E[q(z|x)]``, eq. 6) and stored in the VAE config as ``latents_mean`` /
``latents_std``, like diffusers' ``AutoencoderKLWan``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List

import torch
from tqdm.auto import tqdm


@dataclass
class LatentStatistics:
    """``mean``/``std`` per channel (population std) and the number of C-vectors they were computed from."""

    mean: List[float]
    std: List[float]
    count: int


class RunningLatentStatistics:
    """Streaming per-channel sums in float64; ``update(z [..., C])`` then ``compute()``."""

    def __init__(self, channels: int):
        self.sum = torch.zeros(channels, dtype=torch.float64)
        self.sumsq = torch.zeros(channels, dtype=torch.float64)
        self.count = 0

    def update(self, z: torch.Tensor) -> None:
        flat = z.detach().reshape(-1, z.shape[-1]).to("cpu", torch.float64)
        self.sum += flat.sum(0)
        self.sumsq += (flat**2).sum(0)
        self.count += flat.shape[0]

    def merge(self, other: "RunningLatentStatistics") -> None:
        self.sum += other.sum
        self.sumsq += other.sumsq
        self.count += other.count

    def compute(self) -> LatentStatistics:
        if self.count == 0:
            raise ValueError("no latents were accumulated: the dataset is empty")
        mean = self.sum / self.count
        var = (self.sumsq / self.count - mean**2).clamp_min(0.0)
        return LatentStatistics(mean.tolist(), var.sqrt().tolist(), self.count)


@torch.no_grad()
def compute_latent_statistics(vae, batches: Iterable[torch.Tensor], *, progress: bool = True) -> LatentStatistics:
    """Statistics of ``vae.encode(x).latent_dist.mean`` over ``batches`` of normalised tracks ``[B, T, N, 2]``."""
    running = RunningLatentStatistics(vae.config.latent_channels)
    device = next(vae.parameters()).device
    for tracks in tqdm(batches, desc="latent statistics", disable=not progress):
        running.update(vae.encode(tracks.to(device)).latent_dist.mean)
    return running.compute()


def set_latent_statistics(vae, stats: LatentStatistics) -> None:
    """Store the statistics in the VAE config (saved by ``save_pretrained``)."""
    c = vae.config.latent_channels
    if len(stats.mean) != c or len(stats.std) != c:
        raise ValueError(f"`stats` must have {c} channels, got {len(stats.mean)} / {len(stats.std)}")
    vae.register_to_config(latents_mean=[float(v) for v in stats.mean], latents_std=[float(v) for v in stats.std])
