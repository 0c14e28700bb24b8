"""The flow and visibility training scripts run top to bottom on tiny configs: flow matching with a latent cache,
validation metrics, checkpoints, an exact resume, the on-policy stage, two processes, and the visibility head."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from tests.script_loading import load_script

ROOT = Path(__file__).resolve().parents[1]
FLOW = ROOT / "examples" / "train_trajloom_flow.py"
VIS = ROOT / "examples" / "train_visibility_predictor.py"


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A random tiny AutoencoderTraj (64x96 frames, stride 16 -> 24 tracks, 9 frames -> 3 latent steps, C = 4) with
    latent statistics, a tiny transformer config and a shared synthetic-clip cache."""
    from trajloom_hf.models.autoencoder_traj import AutoencoderTraj

    root = tmp_path_factory.mktemp("flow_assets")
    torch.manual_seed(0)
    vae = AutoencoderTraj(height=64, width=96, patch_size=16, num_frames=9, hidden_size=32, num_heads=4, encoder_depth=4,
                          decoder_depth=4, latent_channels=4, pos_embed_dim=8, latents_mean=[0.1, -0.2, 0.0, 0.3],
                          latents_std=[1.5, 0.5, 1.0, 2.0])
    with torch.no_grad():  # a non-trivial decoder so that sampled futures differ from the anchors
        vae.final_layer.weight.normal_(0, 0.02)
    vae.save_pretrained(root / "vae")
    (root / "transformer.json").write_text(json.dumps({"num_layers": 2, "hidden_size": 32, "num_heads": 4}))
    return root


def common(assets, out, *extra):
    return ["--vae_path", str(assets / "vae"), "--output_dir", str(out), "--cache_dir", str(assets / "clips"),
            "--num_train_clips", "6", "--num_val_clips", "2", "--train_batch_size", "2", "--num_validation_windows", "2",
            *extra]


def run(script, args, launcher=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    out = subprocess.run((launcher or [sys.executable]) + [str(script)] + args, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def metrics(out_dir, run_name):
    with open(Path(out_dir) / "logs" / run_name / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_flow_matching_trains_caches_validates_and_saves(assets, tmp_path):
    out = tmp_path / "flow"
    run(FLOW, common(assets, out, "--transformer_config", str(assets / "transformer.json"), "--latent_cache_dir",
                     str(tmp_path / "latents"), "--max_train_steps", "3", "--checkpointing_steps", "2", "--validation_steps", "3"))
    rows = metrics(out, "train_trajloom_flow")
    train = [r for r in rows if r["fm"]]
    val = [r for r in rows if r["val_epe_px"]]
    assert [r["step"] for r in train] == ["1", "2", "3"] and len(val) == 1
    assert all(float(r["loss"]) == pytest.approx(float(r["fm"])) for r in train)  # no on-policy term
    assert 0 < float(val[0]["val_best_epe_px"]) <= float(val[0]["val_epe_px"]) < 50
    # the frozen VAE ran once per window: 6 train + 2 val cache entries
    assert sorted(p.name for p in (tmp_path / "latents").glob("*.pt")) == [f"train_{i:08d}.pt" for i in range(6)] + [
        f"val_{i:08d}.pt" for i in range(2)]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-3"]
    from trajloom_hf.models.transformer_traj_flow import TrajFlowTransformer
    from trajloom_hf.schedulers import FlowMatchTrajScheduler

    model = TrajFlowTransformer.from_pretrained(out / "transformer")
    assert model.latent_shape == (3, 24, 4) and model.config.num_layers == 2 and not model.config.use_text_cond
    assert FlowMatchTrajScheduler.from_pretrained(out / "scheduler").config.anchor_first


def test_resume_continues_exactly(assets, tmp_path):
    cache = ["--latent_cache_dir", str(tmp_path / "latents"), "--transformer_config", str(assets / "transformer.json"),
             "--validation_steps", "0", "--checkpointing_steps", "2"]
    full, part = tmp_path / "full", tmp_path / "part"
    run(FLOW, common(assets, full, *cache, "--max_train_steps", "5"))
    run(FLOW, common(assets, part, *cache, "--max_train_steps", "2"))  # "killed" after step 2
    run(FLOW, common(assets, part, *cache, "--max_train_steps", "5", "--resume_from_checkpoint", "latest"))
    a = load_file(str(full / "transformer" / "diffusion_pytorch_model.safetensors"))
    b = load_file(str(part / "transformer" / "diffusion_pytorch_model.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)
    losses = [float(r["loss"]) for r in metrics(full, "train_trajloom_flow")]
    resumed = [float(r["loss"]) for r in metrics(part, "train_trajloom_flow")]
    assert resumed[-3:] == pytest.approx(losses[-3:], rel=1e-5)


def test_on_policy_stage_and_two_processes(assets, tmp_path):
    base = tmp_path / "base"
    run(FLOW, common(assets, base, "--transformer_config", str(assets / "transformer.json"), "--max_train_steps", "1",
                     "--validation_steps", "0"))
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--cpu", "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no"]
    out = tmp_path / "onpolicy"
    run(FLOW, common(assets, out, "--init_transformer", str(base / "transformer"), "--on_policy", "--on_policy_steps", "3",
                     "--on_policy_batch_size", "1", "--max_train_steps", "2", "--validation_steps", "2"), launcher=launcher)
    rows = metrics(out, "train_trajloom_flow")
    train = [r for r in rows if r["fm"]]
    assert len(train) == 2
    for r in train:
        k, c, fm = float(r["k_step"]), float(r["consistency"]), float(r["fm"])
        assert k > 0 and c >= 0
        assert float(r["loss"]) == pytest.approx(fm + 0.1 * (k + 0.1 * c), rel=1e-4)  # eq. 14, lambda = gamma = 0.1
    assert json.loads((out / "train_args.json").read_text())["learning_rate"] == 1e-5  # the App. A.3 default
    assert (out / "transformer" / "config.json").exists()
    assert (out / "checkpoints" / "checkpoint-2" / "trainer_state.json").exists()


def test_visibility_predictor_script(assets, tmp_path):
    out = tmp_path / "vis"
    run(VIS, common(assets, out, "--latent_cache_dir", str(tmp_path / "latents"), "--max_train_steps", "4",
                    "--validation_steps", "4", "--checkpointing_steps", "2", "--lr_warmup_steps", "1", "--hidden_size", "8",
                    "--depth", "2", "--learning_rate", "1e-2", "--min_learning_rate", "1e-3"))
    rows = metrics(out, "train_visibility_predictor")
    train = [r for r in rows if r["bce"]]
    assert len(train) == 4 and float(train[-1]["lr"]) == pytest.approx(1e-3)  # cosine down to the floor
    val = [r for r in rows if r["val_f1"]][0]
    for key in ("val_token_accuracy", "val_precision", "val_recall", "val_f1", "val_frame_accuracy"):
        assert 0.0 <= float(val[key]) <= 1.0
    from trajloom_hf.models.visibility_predictor import VisibilityPredictor

    model = VisibilityPredictor.from_pretrained(out / "visibility_predictor")
    assert model.config.latent_channels == 4 and model.config.hidden_size == 8
    # the default design is the history-residual head on the VAE's token grid; it moved away from hold-last
    assert model.config.design == "history_residual" and list(model.config.grid_size) == [4, 6]
    assert model.config.spatial_kernel == 3 and any(float(p.detach().abs().sum()) > 0 for p in model.correction_out.parameters())
    # resuming at the end is a no-op that keeps the weights
    before = load_file(str(out / "visibility_predictor" / "diffusion_pytorch_model.safetensors"))
    run(VIS, common(assets, out, "--latent_cache_dir", str(tmp_path / "latents"), "--max_train_steps", "4",
                    "--resume_from_checkpoint", "latest", "--hidden_size", "8", "--depth", "2"))
    after = load_file(str(out / "visibility_predictor" / "diffusion_pytorch_model.safetensors"))
    for k in before:
        torch.testing.assert_close(before[k], after[k])


def test_visibility_predictor_script_official_design(assets, tmp_path):
    out = tmp_path / "vis_official"
    run(VIS, common(assets, out, "--latent_cache_dir", str(tmp_path / "latents"), "--max_train_steps", "2",
                    "--validation_steps", "2", "--checkpointing_steps", "2", "--lr_warmup_steps", "1", "--hidden_size", "8",
                    "--depth", "2", "--design", "official"))
    from trajloom_hf.models.visibility_predictor import VisibilityPredictor

    model = VisibilityPredictor.from_pretrained(out / "visibility_predictor")
    assert model.config.design == "official" and not model.uses_history and hasattr(model, "temporal_net")
    bad = subprocess.run([sys.executable, str(VIS), *common(assets, tmp_path / "bad", "--segments", "history,future")],
                         capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
    assert bad.returncode != 0 and "future windows only" in bad.stderr


def _load_script(path, name):
    return load_script(path, name, add_parent_to_path=True)


def test_script_helpers():
    flow = _load_script(FLOW, "train_trajloom_flow")
    # caption dropout: deterministic per seed, about the requested rate
    caps = [f"c{i}" for i in range(2000)]
    dropped = flow.drop_captions(caps, 0.1, seed=3)
    assert dropped == flow.drop_captions(caps, 0.1, seed=3)
    assert 0.08 < sum(c == "" for c in dropped) / len(caps) < 0.12
    # sharded epochs: disjoint shards covering whole global batches, resumable mid-epoch
    s0, s1 = flow.EpochShardSampler(11, 2, seed=5, rank=0, world=2), flow.EpochShardSampler(11, 2, seed=5, rank=1, world=2)
    a, b = list(s0), list(s1)
    assert len(a) == len(b) == 4 and not set(a) & set(b)
    s0.set_epoch(0, skip_batches=1)
    assert list(s0) == a[2:]
    s0.set_epoch(1)
    assert list(s0) != a
    vis = _load_script(VIS, "train_visibility_predictor")
    assert vis.warmup_cosine(0, 10, 100, 1e-3, 1e-4) == pytest.approx(0.1)
    assert vis.warmup_cosine(100, 10, 100, 1e-3, 1e-4) == pytest.approx(0.1)
    assert vis.warmup_cosine(10, 10, 100, 1e-3, 1e-4) == pytest.approx(1.0)


def test_latent_cache_refuses_another_vae(tmp_path):
    flow = _load_script(FLOW, "train_trajloom_flow")
    cache = flow.LatentCache(str(tmp_path), "aaaa")
    cache.put("train_00000000", {"x": torch.ones(2)})
    assert cache.has("train_00000000") and not cache.has("train_00000001")
    torch.testing.assert_close(cache.get("train_00000000")["x"], torch.ones(2))
    with pytest.raises(ValueError, match="another VAE"):
        flow.LatentCache(str(tmp_path), "bbbb")


def test_flow_training_with_video_and_caption_encoders(assets, tmp_path):
    """--video_vae_path / --text_encoder_path: a tiny random AutoencoderKLWan (4 latent channels) and T5 encoder saved
    with save_pretrained; the transformer takes its video/text widths from them and the encoders are the pipeline's."""
    from tests.test_conditioning import tiny_text, tiny_wan

    wan = tiny_wan()
    wan.save_pretrained(tmp_path / "wan")
    enc, tok = tiny_text()
    enc.save_pretrained(tmp_path / "t5")
    tok.save_pretrained(tmp_path / "t5")
    out = tmp_path / "flow"
    run(FLOW, common(assets, out, "--transformer_config", str(assets / "transformer.json"), "--max_train_steps", "2",
                     "--validation_steps", "2", "--num_validation_samples", "1", "--video_vae_path", str(tmp_path / "wan"),
                     "--text_encoder_path", str(tmp_path / "t5"), "--cache_dir", str(tmp_path / "clips")))
    from trajloom_hf.models.transformer_traj_flow import TrajFlowTransformer

    model = TrajFlowTransformer.from_pretrained(out / "transformer")
    cfg = model.config
    assert cfg.use_video_cond and cfg.video_latent_channels == 4 and cfg.use_text_cond and cfg.text_embed_dim == 16
    val = [r for r in metrics(out, "train_trajloom_flow") if r["val_epe_px"]]
    assert len(val) == 1 and float(val[0]["val_epe_px"]) > 0

    # the script's frozen encoders give exactly the pipeline's conditioning
    flow = _load_script(FLOW, "train_trajloom_flow")
    from trajloom_hf.text_conditioning import encode_pooled_text
    from trajloom_hf.video_conditioning import encode_video_latents

    args = flow.parse_args(common(assets, tmp_path / "x", "--video_vae_path", str(tmp_path / "wan"),
                                  "--text_encoder_path", str(tmp_path / "t5")))
    encoders = flow.FrozenEncoders(args, torch.device("cpu"))
    frames = torch.randint(0, 255, (2, 9, 64, 96, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(encoders.encode_video(frames),
                               encode_video_latents(wan, frames, (64, 96), (4, 6), 9, batch_size=2))
    caps = ["a cat", "camera pans left"]
    torch.testing.assert_close(encoders.encode_text(caps), encode_pooled_text(encoders.text_encoder, tok, caps))


def test_frame_encoder_trains_jointly_and_is_saved(assets, tmp_path):
    """WHN-style run (last frame, frame encoder): the encoder's weights get gradients and change, its input frames are
    cached once in the latent-cache folder, and the saved parts assemble into a pipeline that reads the video."""
    import numpy as np

    from trajloom_hf.models import AutoencoderTraj, FrameEncoder, TrajFlowTransformer
    from trajloom_hf.pipelines import TrajLoomPipeline
    from trajloom_hf.schedulers import FlowMatchTrajScheduler

    torch.manual_seed(0)
    start = FrameEncoder(height=64, width=96, grid_stride=16, out_channels=6, hidden_channels=8, cell_px=4)
    start.save_pretrained(tmp_path / "enc0")
    out = tmp_path / "flow"
    run(FLOW, common(assets, out, "--transformer_config", str(assets / "transformer.json"), "--latent_cache_dir",
                     str(tmp_path / "latents"), "--max_train_steps", "3", "--validation_steps", "3", "--learning_rate", "1e-2",
                     "--history_mode", "last_frame", "--no_anchor", "--init_frame_encoder", str(tmp_path / "enc0")))
    enc = FrameEncoder.from_pretrained(out / "frame_encoder")
    before, after = start.state_dict(), enc.state_dict()
    assert set(before) == set(after)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert "proj.weight" in changed and "stem.0.0.weight" in changed  # the first conv got gradients too
    assert len(list((tmp_path / "latents").glob("frames_*.pt"))) == 1
    tr = TrajFlowTransformer.from_pretrained(out / "transformer")
    assert tr.config.use_video_cond and tr.config.video_latent_channels == 6
    rows = metrics(out, "train_trajloom_flow")
    assert any(r["val_epe_px"] for r in rows)
    pipe = TrajLoomPipeline(vae=AutoencoderTraj.from_pretrained(assets / "vae"), transformer=tr,
                            scheduler=FlowMatchTrajScheduler.from_pretrained(out / "scheduler"), frame_encoder=enc,
                            history_mode="last_frame")
    from trajloom_hf.data.synthetic import SceneConfig, generate_clip

    clip = generate_clip(0, SceneConfig(height=64, width=96, num_frames=18, stride=16))
    res = pipe(clip.tracks[:9], clip.visibility[:9], video=clip.frames[:9], num_inference_steps=2)
    assert res.future_tracks.shape == (1, 1, 9, 24, 2) and np.isfinite(res.future_tracks).all()
