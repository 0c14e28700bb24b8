"""seed_everything: seeds every generator, and with ``deterministic`` switches torch to its deterministic kernels."""

import random

import numpy as np
import pytest
import torch

from trajloom_hf.training.arguments import add_run_args
from trajloom_hf.training.determinism import seed_everything


@pytest.fixture
def restore_torch_flags(monkeypatch):
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    yield
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[2], before[3]


def test_same_seed_same_draws():
    draws = []
    for _ in range(2):
        seed_everything(7)
        draws.append((random.random(), float(np.random.rand()), torch.rand(3).tolist()))
    assert draws[0] == draws[1]
    seed_everything(8)
    assert torch.rand(3).tolist() != draws[0][2]


def test_deterministic_switches_torch_kernels(restore_torch_flags):
    import os

    seed_everything(0, deterministic=False)
    assert not torch.are_deterministic_algorithms_enabled() or torch.is_deterministic_algorithms_warn_only_enabled()
    seed_everything(0, deterministic=True)
    assert torch.are_deterministic_algorithms_enabled() and torch.is_deterministic_algorithms_warn_only_enabled()
    assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"


def test_bad_seed_and_flag():
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)
    import argparse

    parser = argparse.ArgumentParser()
    add_run_args(parser)
    assert parser.parse_args(["--output_dir", "x", "--deterministic"]).deterministic
    assert not parser.parse_args(["--output_dir", "x"]).deterministic
    with pytest.raises(SystemExit):
        parser.parse_args(["--output_dir", "x", "--seed", "-3"])
