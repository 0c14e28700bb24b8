"""Unit tests of the reusable training pieces in ``trajloom_hf.training``: argument types, the resumable sampler,
the flow objective (over ``flow_losses``), conditioning assembly, model builders, pretrained-folder checks, the data
guard, the LR schedule, the CSV tracker, lazy exports."""

import argparse
import json
import math
from types import SimpleNamespace

import pytest
import torch

import trajloom_hf
from trajloom_hf.flow_losses import flow_matching_loss, on_policy_losses, token_weights
from trajloom_hf.models.autoencoder_traj import AutoencoderTraj
from trajloom_hf.models.transformer_traj_flow import TrajFlowTransformer
from trajloom_hf.schedulers import FlowMatchTrajScheduler
from trajloom_hf.training import arguments
from trajloom_hf.training.conditioning import flow_conditioning
from trajloom_hf.training.csv_tracker import CSVTracker
from trajloom_hf.training.frozen_encoders import FrozenEncoders
from trajloom_hf.training.lr_schedules import warmup_cosine, warmup_cosine_scheduler
from trajloom_hf.training.model_builders import build_autoencoder, build_flow_transformer
from trajloom_hf.training.objectives import FlowObjective, FlowObjectiveConfig
from trajloom_hf.training.pretrained_folders import check_pretrained_folder
from trajloom_hf.training.samplers import EpochShardSampler
from trajloom_hf.training.window_datasets import require_batches


@pytest.fixture(scope="module")
def vae_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("vae")
    torch.manual_seed(0)
    AutoencoderTraj(height=64, width=96, patch_size=16, num_frames=9, hidden_size=32, num_heads=4, encoder_depth=4,
                    decoder_depth=4, latent_channels=4, pos_embed_dim=8, latents_mean=[0.0] * 4,
                    latents_std=[1.0] * 4).save_pretrained(root)
    return root


def test_argument_types_name_the_expected_range():
    assert arguments.positive_int("3") == 3 and arguments.fraction("0.25") == 0.25
    for fn, bad in ((arguments.positive_int, "0"), (arguments.positive_int, "1.5"), (arguments.non_negative_int, "-1"),
                    (arguments.positive_float, "0"), (arguments.positive_float, "inf"), (arguments.fraction, "1.5"),
                    (arguments.fraction, "nan"), (arguments.non_negative_float, "x")):
        with pytest.raises(argparse.ArgumentTypeError, match="expected"):
            fn(bad)
    parser = argparse.ArgumentParser()
    arguments.add_latent_training_args(parser)
    args = parser.parse_args(["--vae_path", "v", "--output_dir", "o"])
    assert (args.train_batch_size, args.checkpointing_steps, args.validation_steps, args.report_to) == (4, 1000, 1000, "csv")
    assert arguments.data_options(args)["cache_dir"].endswith("o/cache")


def test_check_paths_reports_missing_inputs_and_bad_json(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(FileNotFoundError, match="--bench '.*nope': the folder does not exist"):
        arguments.check_paths(SimpleNamespace(bench=str(tmp_path / "nope")), folders=("bench",))
    with pytest.raises(FileNotFoundError, match="--model_config .*: the file does not exist"):
        arguments.check_paths(SimpleNamespace(model_config=str(tmp_path / "x.json")), files=("model_config",))
    with pytest.raises(ValueError, match=r"--model_config '.*bad.json' is not valid JSON \(Expecting"):
        arguments.check_paths(SimpleNamespace(model_config=str(tmp_path / "bad.json")), files=("model_config",))
    with pytest.raises(ValueError, match=r"--model_config '.*list.json' must hold a JSON object of model arguments "
                                         r"\(\{...\}\), got a JSON array"):
        arguments.check_paths(SimpleNamespace(model_config=str(tmp_path / "list.json")), files=("model_config",))
    arguments.check_paths(SimpleNamespace(bench=None, model_config=None), folders=("bench",), files=("model_config",))
    with pytest.raises(FileExistsError, match="--output_dir .* is a file"):
        arguments.check_paths(SimpleNamespace(output_dir=str(tmp_path / "bad.json")))
    with pytest.raises(FileNotFoundError, match="--resume_from_checkpoint .*nope': no such checkpoint folder"):
        arguments.check_paths(SimpleNamespace(output_dir=str(tmp_path), resume_from_checkpoint=str(tmp_path / "nope")))
    arguments.check_paths(SimpleNamespace(output_dir=str(tmp_path / "new"), resume_from_checkpoint="latest"))


def test_pretrained_folder_checks_name_what_is_missing(tmp_path, vae_dir):
    check_pretrained_folder(str(vae_dir), "--vae_path")
    with pytest.raises(FileNotFoundError, match="--vae_path '.*missing': the folder does not exist"):
        check_pretrained_folder(str(tmp_path / "missing"), "--vae_path")
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text((vae_dir / "config.json").read_text())
    (tmp_path / "noweights" / "diffusion_pytorch_model.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"has no weights file diffusion_pytorch_model.safetensors \(found: "
                                                r"config.json, diffusion_pytorch_model.bin\)"):
        FrozenEncoders(SimpleNamespace(vae_path=str(tmp_path / "noweights")), torch.device("cpu"))
    AutoencoderTraj(height=64, width=96, patch_size=16, num_frames=9, hidden_size=32, num_heads=4, encoder_depth=4,
                    decoder_depth=4, latent_channels=4, pos_embed_dim=8).save_pretrained(tmp_path / "nostats")
    with pytest.raises(ValueError, match="has no latent statistics"):
        FrozenEncoders.load(str(tmp_path / "nostats"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no config.json"):
        check_pretrained_folder(str(tmp_path / "empty"), "--init_transformer")
    check_pretrained_folder("org/model", "--video_vae_path", hub_ok=True)  # a Hub id is left to from_pretrained
    with pytest.raises(FileNotFoundError):
        check_pretrained_folder("org/model", "--vae_path")


def test_sampler_batches_from_resumes_mid_epoch():
    s = EpochShardSampler(10, 3, seed=1)
    loader = torch.utils.data.DataLoader(range(10), batch_size=3, sampler=s)
    it = s.batches_from(loader, 0)
    first = [next(it).tolist() for _ in range(7)]  # 3 batches per epoch: crosses two epoch boundaries
    resumed = s.batches_from(loader, 4)
    assert [next(resumed).tolist() for _ in range(3)] == first[4:7]
    assert first[0] != first[3]  # a new permutation each epoch
    with pytest.raises(ValueError, match="cannot fill one global batch"):
        EpochShardSampler(5, 3, seed=0, rank=0, world=2)
    with pytest.raises(ValueError, match="rank"):
        EpochShardSampler(10, 2, seed=0, rank=2, world=2)


def test_require_batches():
    require_batches(8, 4, 2)
    with pytest.raises(ValueError, match="7 training segments cannot fill one batch of --train_batch_size 4 x 2"):
        require_batches(7, 4, 2)


def _tiny_transformer(**kw):
    torch.manual_seed(0)
    return TrajFlowTransformer(num_latent_frames=3, grid_size=(2, 3), latent_channels=4, num_layers=2, hidden_size=32,
                               num_heads=4, history_num_frames=9, temporal_stride=4, **kw)


def test_flow_objective_is_flow_losses_with_the_schedulers_draws():
    transformer, scheduler = _tiny_transformer(), FlowMatchTrajScheduler()
    g = torch.Generator().manual_seed(0)
    hist, fut = torch.randn(3, 3, 6, 4, generator=g), torch.randn(3, 3, 6, 4, generator=g)
    vis = torch.rand(3, 3, 6, generator=g) > 0.3
    cfg = FlowObjectiveConfig(on_policy=True, on_policy_steps=2, on_policy_batch_size=2)
    out = FlowObjective(transformer, scheduler, cfg)(hist, fut, vis, seed=11)
    # by hand, with the same seeded draws
    gen = torch.Generator().manual_seed(11)
    t = scheduler.sample_training_timesteps(3, generator=gen)
    z0 = scheduler.sample_source(hist, generator=gen)
    zt = scheduler.interpolate(z0, fut, t, generator=gen)
    w = token_weights(vis, invisible_weight=0.01)
    fm = flow_matching_loss(transformer(zt, t, hist).sample, scheduler.velocity_target(z0, fut), w)
    ctx = transformer.prepare_context(hist[:2])
    op = on_policy_losses(lambda z, tt: transformer(z, tt, context=ctx).sample, z0[:2], fut[:2], w[:2], num_steps=2,
                          w1=1.0, w0=0.5, gamma=0.1, t_eps=scheduler.config.t_eps)
    torch.testing.assert_close(out["fm"], fm.detach())
    torch.testing.assert_close(out["loss"], fm + 0.1 * op.total)
    torch.testing.assert_close(out["k_step"], op.k_step.detach())
    assert FlowObjectiveConfig.from_args(SimpleNamespace(on_policy=True, invisible_weight=0.5, other=1)) == \
        FlowObjectiveConfig(on_policy=True, invisible_weight=0.5)


def test_flow_conditioning_streams():
    lat = {"history_token_visibility": torch.ones(2, 3, 6, dtype=torch.bool), "video_latents": torch.zeros(2, 3, 6, 4)}
    cfg = SimpleNamespace(use_hist_vis_cond=True, use_video_cond=False, use_text_cond=True)
    enc = SimpleNamespace(encode_text=lambda caps: caps)
    hv, video, text = flow_conditioning({"caption": ["a", None]}, lat, enc, cfg, caption_dropout=1.0, seed=0)
    assert hv is lat["history_token_visibility"] and video is None and text == ["", ""]
    hv, _, text = flow_conditioning({"caption": ["a", None]}, lat, enc, cfg, use_history_visibility=False, caption_dropout=1.0)
    assert hv is None and text == ["a", ""]  # no dropout without a seed (validation)


def test_camera_phrases_reach_training_captions():
    """App. E.2: with camera_captions the phrase estimated from each window's tracks (history + future) is appended
    before caption dropout; captions that carry one already are kept."""
    import numpy as np

    rng = np.random.default_rng(0)
    pts = rng.uniform([0, 0], [159, 95], size=(24, 2))
    t = np.arange(20)[:, None, None]
    pan = torch.from_numpy(pts[None] + t * np.array([-1.2, 0.0])).float()  # content moves left: camera pans right
    still = torch.from_numpy(np.repeat(pts[None], 20, 0)).float()
    tracks = torch.stack([pan, still])
    vis = torch.ones(2, 20, 24, dtype=torch.bool)
    batch = {"caption": ["a ball rolls.", "a dog, camera zooms in slowly"], "history_tracks": tracks[:, :9],
             "future_tracks": tracks[:, 9:], "history_visibility": vis[:, :9], "future_visibility": vis[:, 9:]}
    cfg = SimpleNamespace(use_hist_vis_cond=False, use_video_cond=False, use_text_cond=True)
    enc = SimpleNamespace(encode_text=lambda caps: caps, height=96, width=160)
    lat = {"history_token_visibility": torch.ones(2, 3, 24, dtype=torch.bool)}
    _, _, text = flow_conditioning(batch, lat, enc, cfg, camera_captions=True)
    assert text == ["a ball rolls, camera pans right moderately", "a dog, camera zooms in slowly"]
    _, _, text = flow_conditioning(batch, lat, enc, cfg)  # off: captions as stored
    assert text == batch["caption"]
    _, _, text = flow_conditioning(batch, lat, enc, cfg, camera_captions=True, caption_dropout=1.0, seed=0)
    assert text == ["", ""]  # dropout still empties the whole caption


def test_on_policy_options_reach_the_loss(monkeypatch):
    from trajloom_hf.training import objectives

    seen = {}
    real = objectives.on_policy_losses

    def spy(*a, **k):
        seen.update(k)
        return real(*a, **k)

    torch.manual_seed(0)
    transformer = TrajFlowTransformer(latent_channels=4, num_latent_frames=3, grid_size=(2, 3), hidden_size=16, num_heads=2,
                                      num_layers=2, use_text_cond=False, use_video_cond=False, history_num_frames=9)
    hist, fut = torch.randn(2, 3, 6, 4), torch.randn(2, 3, 6, 4)
    vis = torch.ones(2, 3, 6, dtype=torch.bool)
    cfg = FlowObjectiveConfig(on_policy=True, on_policy_steps=3, on_policy_spacing="logit_uniform", on_policy_source_term_start=0)
    monkeypatch.setattr(objectives, "on_policy_losses", spy)
    out = FlowObjective(transformer, FlowMatchTrajScheduler(), cfg)(hist, fut, vis, seed=1)
    assert torch.isfinite(out["k_step"])
    assert seen["spacing"] == "logit_uniform" and seen["source_term_start"] == 0
    assert FlowObjectiveConfig().on_policy_spacing == "logit" and FlowObjectiveConfig().on_policy_source_term_start == 1
    with pytest.raises(ValueError, match="on_policy_spacing"):
        FlowObjectiveConfig(on_policy_spacing="linear")
    with pytest.raises(ValueError, match="on_policy_source_term_start"):
        FlowObjectiveConfig(on_policy_source_term_start=2)


def test_model_builders(vae_dir, tmp_path):
    enc = FrozenEncoders.load(str(vae_dir))
    model = build_flow_transformer(enc, num_layers=2, hidden_size=32, num_heads=4)
    assert model.latent_shape == enc.latent_shape() == (3, 24, 4)
    assert model.config.history_num_frames == 9 and not model.config.use_text_cond
    with pytest.raises(ValueError, match="text-conditioned .* no --text_encoder_path"):
        build_flow_transformer(enc, num_layers=2, hidden_size=32, num_heads=4, use_text_cond=True, text_embed_dim=8)
    _tiny_transformer().save_pretrained(tmp_path / "t")  # a 2x3 grid: not the VAE's 4x6
    with pytest.raises(ValueError, match="does not match the VAE's"):
        build_flow_transformer(enc, init_from=str(tmp_path / "t"))
    with pytest.raises(ValueError, match="keeps its config"):
        build_flow_transformer(enc, init_from=str(tmp_path / "t"), num_layers=4)
    (tmp_path / "typo.json").write_text(json.dumps({"num_layer": 2}))
    with pytest.raises(TypeError, match="--transformer_config '.*typo.json': .*num_layer"):
        build_flow_transformer(enc, config_path=str(tmp_path / "typo.json"))
    assert build_autoencoder("tiny", height=64, width=96, patch_size=16, num_frames=9).config.hidden_size == 32
    with pytest.raises(ValueError, match="num_frames"):  # before any data is generated
        build_autoencoder("tiny", height=64, width=96, patch_size=16, num_frames=10)
    with pytest.raises(ValueError, match="preset must be one of"):
        build_autoencoder("huge")


def test_warmup_cosine_scheduler():
    assert warmup_cosine(0, 10, 100, 1e-3, 1e-4) == pytest.approx(0.1)
    assert warmup_cosine(100, 10, 100, 1e-3, 1e-4) == pytest.approx(0.1)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-2)
    sched = warmup_cosine_scheduler(opt, 0, 4, 1e-2, 1e-3)
    for _ in range(4):
        opt.step(), sched.step()
    assert sched.get_last_lr()[0] == pytest.approx(1e-3)
    with pytest.raises(ValueError, match="min_learning_rate"):
        warmup_cosine_scheduler(opt, 0, 4, 1e-3, 1e-2)


def test_csv_tracker_appends_adds_columns_and_drops_a_cut_row(tmp_path):
    t = CSVTracker("run", str(tmp_path))
    t.log({"loss": 1.0}, step=1)
    t.log({"loss": 0.5}, step=2)
    t.log({"val": 0.25}, step=2)
    path = tmp_path / "run" / "metrics.csv"
    assert path.read_text().splitlines() == ["step,loss,val", "1,1.0,", "2,0.5,", "2,,0.25"]
    with open(path, "a") as fh:
        fh.write("3,0.1")  # a kill in the middle of a row
    again = CSVTracker("run", str(tmp_path))
    assert path.read_text().endswith("3,0.1")  # building a tracker writes nothing (every process builds one)
    again.log({"loss": 0.2}, step=3)
    assert path.read_text().splitlines()[-2:] == ["2,,0.25", "3,0.2,"]
    again.rewind(1)
    assert path.read_text().splitlines() == ["step,loss,val", "1,1.0,"]
    t.store_init_configuration({"lr": 1e-3})
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == {"lr": 1e-3}


def test_lazy_exports():
    import trajloom_hf.training as training

    assert trajloom_hf.training is training
    assert training.Checkpointer.__module__ == "trajloom_hf.training.checkpointing"
    assert training.FlowObjective is FlowObjective and "LatentCache" in dir(training)
    with pytest.raises(AttributeError):
        training.nothing_here
    assert math.isfinite(training.warmup_cosine(1, 1, 2, 1.0, 0.5))


def test_bench_geometry_must_match_the_vae(tmp_path, vae_dir):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from trajloom_hf.training.window_datasets import build_windows, frame_size

    folder = tmp_path / "bench" / "data" / "mine"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"height": [96], "width": [160], "stride": [16]}), folder / "train-00000-of-00001.parquet")
    bench = str(tmp_path / "bench")
    assert frame_size(bench, "mine", (1, 1), stride=16) == (96, 160) and frame_size(None, "mine", (64, 96)) == (64, 96)
    with pytest.raises(ValueError, match="tracks a stride-16 grid, but --stride is 8"):
        frame_size(bench, "mine", (1, 1), stride=8)
    vae_config = AutoencoderTraj.from_pretrained(vae_dir).config  # 64 x 96 px, stride 16
    with pytest.raises(ValueError, match=r"has 96x160 px clips on a stride-16 grid, the VAE was trained on 64x96 px"):
        build_windows(vae_config, bench=bench, bench_config="mine")


def test_vae_fingerprint_is_the_vae_not_the_folder_it_was_loaded_from(tmp_path):
    """A latent cache written next to a VAE loaded as ``run/vae`` must be valid for the same VAE loaded as
    ``/abs/run/vae`` or from a copied folder (the config's ``_name_or_path`` is not part of it); other weights or
    another config are another VAE."""
    import shutil

    from trajloom_hf.training.latent_cache import vae_fingerprint

    torch.manual_seed(0)
    vae = AutoencoderTraj(hidden_size=16, num_heads=2, encoder_depth=4, decoder_depth=4, latent_channels=4,
                          pos_embed_dim=4, num_frames=5, height=32, width=32, patch_size=16)
    vae.save_pretrained(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    one, two = AutoencoderTraj.from_pretrained(tmp_path / "a"), AutoencoderTraj.from_pretrained(tmp_path / "b")
    assert one.config._name_or_path != two.config._name_or_path
    assert vae_fingerprint(one) == vae_fingerprint(two) == vae_fingerprint(vae)
    with torch.no_grad():
        next(two.parameters()).add_(1.0)
    assert vae_fingerprint(two) != vae_fingerprint(one)
    other = AutoencoderTraj(hidden_size=16, num_heads=2, encoder_depth=4, decoder_depth=4, latent_channels=4,
                            pos_embed_dim=4, num_frames=5, height=32, width=32, patch_size=16, lambda_temporal=0.5)
    other.load_state_dict(vae.state_dict())
    assert vae_fingerprint(other) != vae_fingerprint(vae)
