"""The VAE training script runs top to bottom: one process, two processes (accelerate launch, gloo on CPU), and a
killed run resumed from its latest checkpoint ends exactly where an uninterrupted run does."""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "examples" / "train_autoencoder_traj.py"
TINY = ["--preset", "tiny", "--height", "64", "--width", "96", "--stride", "16", "--num_frames", "9",
        "--num_train_clips", "6", "--num_val_clips", "2", "--train_batch_size", "2", "--learning_rate", "1e-3",
        "--lr_warmup_steps", "1", "--validation_steps", "2", "--report_to", "csv"]


def run(args, launcher=None, cache=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = (launcher or [sys.executable]) + [str(SCRIPT)] + TINY + (["--cache_dir", str(cache)] if cache else []) + args
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def weights(folder):
    return load_file(str(Path(folder) / "diffusion_pytorch_model.safetensors"))


def test_single_process_trains_saves_and_logs(tmp_path):
    out_dir = tmp_path / "vae"
    run(["--output_dir", str(out_dir), "--max_train_steps", "4", "--checkpointing_steps", "2"], cache=tmp_path / "cache")
    config = json.loads((out_dir / "config.json").read_text())
    assert config["_class_name"] == "AutoencoderTraj" and len(config["latents_mean"]) == 4
    assert all(s > 0 for s in config["latents_std"])
    metrics = (out_dir / "logs" / "train_autoencoder_traj" / "metrics.csv").read_text().splitlines()
    assert metrics[0].startswith("step") and "val_vepe_px" in metrics[0] and len(metrics) >= 5
    assert sorted(p.name for p in (out_dir / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-4"]
    from trajloom_hf.models.autoencoder_traj import AutoencoderTraj

    assert AutoencoderTraj.from_pretrained(out_dir).config.num_frames == 9


def test_resume_continues_exactly(tmp_path):
    cache = tmp_path / "cache"
    full, part = tmp_path / "full", tmp_path / "part"
    run(["--output_dir", str(full), "--max_train_steps", "6", "--checkpointing_steps", "3"], cache=cache)
    # "killed" after step 3: a run that stops there, then a resumed run to step 6
    run(["--output_dir", str(part), "--max_train_steps", "3", "--checkpointing_steps", "3"], cache=cache)
    run(["--output_dir", str(part), "--max_train_steps", "6", "--checkpointing_steps", "3",
         "--resume_from_checkpoint", "latest"], cache=cache)
    a, b = weights(full), weights(part)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_two_processes_with_accelerate_launch(tmp_path):
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--cpu",
                "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"]
    out_dir = tmp_path / "ddp"
    run(["--output_dir", str(out_dir), "--max_train_steps", "2", "--checkpointing_steps", "2"], launcher=launcher,
        cache=tmp_path / "cache")
    assert (out_dir / "diffusion_pytorch_model.safetensors").exists()
    assert (out_dir / "checkpoints" / "checkpoint-2" / "trainer_state.json").exists()
