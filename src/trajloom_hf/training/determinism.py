"""Seeding a training run, and optionally torch's deterministic kernels (``--deterministic``).

On a CPU, a run is reproducible bit for bit given its seed and its thread count (fp32 reductions and matrix products
split their work by thread count: fix ``OMP_NUM_THREADS``, as the quickstart does for every stage). On CUDA some
kernels (atomic adds in scatter/index backward passes, cuBLAS workspaces) are nondeterministic too;
``deterministic=True`` selects torch's deterministic implementations where they exist and warns where they do not.
"""

from __future__ import annotations

import os

import torch
from accelerate.utils import set_seed

__all__ = ["seed_everything"]

# cuBLAS needs a fixed workspace for deterministic results (CUDA >= 10.2; read when the first handle is created)
CUBLAS_WORKSPACE = ":4096:8"


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (every device) with ``seed``; with ``deterministic`` also switch torch to its
    deterministic kernels (``warn_only``: an op without one warns instead of failing) and turn off cuDNN autotuning."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    set_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
