"""A data order that is a pure function of (seed, epoch): sharded over processes and resumable mid-epoch."""

from __future__ import annotations

from typing import Iterator

import torch

__all__ = ["EpochShardSampler"]


class EpochShardSampler(torch.utils.data.Sampler):
    """Deterministic per-epoch permutation, sharded over processes, resumable mid-epoch.

    Epoch ``e`` uses ``randperm(n, seed + e)`` truncated to whole global batches; process ``r`` of ``w`` takes
    every ``w``-th index. ``set_epoch(e, skip_batches)`` starts after ``skip_batches`` local batches.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        if batch_size < 1 or world < 1 or not 0 <= rank < world:
            raise ValueError(f"need batch_size >= 1 and 0 <= rank < world, got batch_size={batch_size}, rank={rank}, world={world}")
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.epoch, self.skip = 0, 0
        self.batches_per_epoch = n // (batch_size * world)
        if self.batches_per_epoch == 0:
            raise ValueError(f"{n} windows cannot fill one global batch of {batch_size} x {world} processes "
                             "(lower --train_batch_size or add data)")

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip = epoch, skip_batches

    def __iter__(self):
        order = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        order = order[: self.batches_per_epoch * self.batch_size * self.world][self.rank :: self.world]
        return iter(order[self.skip * self.batch_size :])

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.skip) * self.batch_size

    def batches_from(self, loader, micro_step: int) -> Iterator:
        """Every batch of ``loader`` (built on this sampler) from local micro-batch ``micro_step`` on, epoch after
        epoch, forever: a run resumed at micro-step ``m`` sees exactly the batches an uninterrupted run saw."""
        while True:
            epoch, skip = divmod(micro_step, self.batches_per_epoch)
            self.set_epoch(epoch, skip)
            for batch in loader:
                yield batch
                micro_step += 1
