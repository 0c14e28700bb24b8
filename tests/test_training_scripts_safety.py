"""The training scripts on bad input and faults: planted pickles in a checkpoint never run and the resume stays
exact, a corrupt newest checkpoint falls back to the newest intact one, metrics.csv holds every step once after a
resume, a batch larger than the data is refused (it used to loop forever), missing inputs are named."""

import csv
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

from tests.test_training_checkpointing import plant_pickles
from tests.script_loading import load_script

ROOT = Path(__file__).resolve().parents[1]
VAE = ROOT / "examples" / "train_autoencoder_traj.py"
FLOW = ROOT / "examples" / "train_trajloom_flow.py"
TINY = ["--preset", "tiny", "--height", "64", "--width", "96", "--stride", "16", "--num_frames", "9",
        "--num_train_clips", "6", "--num_val_clips", "2", "--train_batch_size", "2", "--learning_rate", "1e-3",
        "--lr_warmup_steps", "1", "--validation_steps", "2"]


def run(script, args, ok=True, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, str(script)] + args, capture_output=True, text=True, env=env, timeout=timeout)
    if ok:
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def vae(out_dir, cache, *extra, **kw):
    return run(VAE, TINY + ["--output_dir", str(out_dir), "--cache_dir", str(cache), *extra], **kw)


def weights(folder):
    return load_file(str(Path(folder) / "diffusion_pytorch_model.safetensors"))


def assert_same_weights(a, b):
    a, b = weights(a), weights(b)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """An uninterrupted 6-step VAE run."""
    root = tmp_path_factory.mktemp("vae_full")
    vae(root / "full", root / "clips", "--max_train_steps", "6", "--checkpointing_steps", "3")
    return root


def test_planted_pickles_never_run_and_resume_stays_exact(full_run, tmp_path):
    part = tmp_path / "part"
    vae(part, full_run / "clips", "--max_train_steps", "3", "--checkpointing_steps", "3")
    marker = tmp_path / "marker"
    plant_pickles(part / "checkpoints" / "checkpoint-3", marker)
    vae(part, full_run / "clips", "--max_train_steps", "6", "--checkpointing_steps", "3", "--resume_from_checkpoint", "latest")
    assert not marker.exists()
    assert_same_weights(full_run / "full", part)


def test_corrupt_latest_falls_back_and_metrics_hold_each_step_once(full_run, tmp_path):
    part = tmp_path / "part"
    vae(part, full_run / "clips", "--max_train_steps", "3", "--checkpointing_steps", "2")  # checkpoints 2 and 3
    weights_file = part / "checkpoints" / "checkpoint-3" / "model.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[: weights_file.stat().st_size // 2])  # a truncated copy
    out = vae(part, full_run / "clips", "--max_train_steps", "6", "--checkpointing_steps", "2", "--resume_from_checkpoint", "latest")
    assert "skipping checkpoint" in out.stderr and "checkpoint-3" in out.stderr
    assert_same_weights(full_run / "full", part)  # resumed at step 2, still exact
    with open(part / "logs" / "train_autoencoder_traj" / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["step"] for r in rows if r["loss"]] == ["1", "2", "3", "4", "5", "6"]
    assert [r["step"] for r in rows if r["val_vepe_px"]] == ["2", "4", "6"]


def test_batch_larger_than_the_data_is_refused(tmp_path):
    out = vae(tmp_path / "v", tmp_path / "clips", "--train_batch_size", "64", "--max_train_steps", "2", ok=False, timeout=120)
    assert out.returncode != 0
    assert "12 training segments cannot fill one batch of --train_batch_size 64" in out.stderr


def test_missing_vae_folder_is_named_not_a_network_problem(tmp_path):
    out = run(FLOW, ["--vae_path", str(tmp_path / "no_vae"), "--output_dir", str(tmp_path / "f")], ok=False, timeout=120)
    assert out.returncode != 0
    assert f"--vae_path '{tmp_path / 'no_vae'}': the folder does not exist" in out.stderr
    assert "huggingface.co" not in out.stderr and "internet" not in out.stderr
    assert not (tmp_path / "f").exists()  # checked before any work


@pytest.mark.parametrize("flag, value, message", [
    ("--train_batch_size", "0", "argument --train_batch_size: expected an integer >= 1, got '0'"),
    ("--learning_rate", "-1", "argument --learning_rate: expected a finite number > 0, got '-1'"),
    ("--offset_scale", "abc", "argument --offset_scale: expected 'grid' or a number > 0, got 'abc'"),
    ("--lr_scheduler", "cosnie", "argument --lr_scheduler: invalid choice: 'cosnie'"),
    ("--max_grad_norm", "nan", "argument --max_grad_norm: expected a finite number >= 0, got 'nan'"),
    ("--adam_beta2", "1.0", "argument --adam_beta2: expected a number in [0, 1), got 1.0"),
])
def test_bad_vae_arguments_are_refused_at_parse_time(tmp_path, capsys, flag, value, message):
    script = _load_script(VAE, "train_autoencoder_traj")
    with pytest.raises(SystemExit) as exit_info:
        script.parse_args(["--output_dir", str(tmp_path / "v"), flag, value])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("flag, value, message", [
    ("--caption_dropout", "1.5", "argument --caption_dropout: expected a number in [0, 1], got '1.5'"),
    ("--on_policy_steps", "0", "argument --on_policy_steps: expected an integer >= 1, got '0'"),
    ("--tube_sigma", "nan", "argument --tube_sigma: expected a finite number >= 0, got 'nan'"),
    ("--learning_rate", "0", "argument --learning_rate: expected a finite number > 0, got '0'"),
])
def test_bad_flow_arguments_are_refused_at_parse_time(tmp_path, capsys, flag, value, message):
    script = _load_script(FLOW, "train_trajloom_flow")
    with pytest.raises(SystemExit) as exit_info:
        script.parse_args(["--vae_path", "v", "--output_dir", str(tmp_path / "f"), flag, value])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_on_policy_needs_two_steps(tmp_path, capsys):
    script = _load_script(FLOW, "train_trajloom_flow")
    with pytest.raises(SystemExit):
        script.parse_args(["--vae_path", "v", "--output_dir", str(tmp_path / "f"), "--on_policy", "--on_policy_steps", "1"])
    assert "--on_policy_steps must be >= 2" in capsys.readouterr().err


def test_unknown_tracker_is_refused_before_work(tmp_path):
    from trajloom_hf.training.accelerator_setup import make_accelerator

    args = SimpleNamespace(output_dir=str(tmp_path / "o"), gradient_accumulation_steps=1, mixed_precision="no", report_to="csvv")
    with pytest.raises(ValueError, match="--report_to must be 'csv', 'none', 'all' or one of"):
        make_accelerator(args, "run")


def _load_script(path, name):
    return load_script(path, f"_safety_{name}")
