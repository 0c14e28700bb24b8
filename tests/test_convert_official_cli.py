"""``trajloom convert-official`` turns random official-shaped checkpoints into a loadable TrajLoomPipeline folder."""

import argparse
import json

import numpy as np
import pytest
import torch

from tests.test_convert_autoencoder import HEADS, official_state_dict as official_vae_state_dict
from tests.test_convert_flow import _random_official_generator
from trajloom_hf.convert.cli import add_cli, run

# the tiny VAE of test_convert_autoencoder: 64x96 px, stride 16 (4x6 grid), 9 frames -> K = 3, C = 4
GEN_SIZES = dict(d=32, c=4, k=3, n=24, text=7, video=3, layers=4)


def parse(argv):
    parser = argparse.ArgumentParser(prog="trajloom")
    add_cli(parser.add_subparsers(dest="command"))
    return parser.parse_args(["convert-official"] + argv)


@pytest.fixture(scope="module")
def official_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("official")
    torch.save({"vae": official_vae_state_dict(), "epoch": 1}, d / "trajloom_vae.pt")
    torch.save({"generator": _random_official_generator(**GEN_SIZES)}, d / "trajloom_generator.pt")
    (d / "trajloom_vae_config.json").write_text(json.dumps(  # the official layout (reference §2.1)
        {"trajloom_vae": {"config": {"num_heads": HEADS, "input_height": 64, "input_width": 96}}, "train": {}}))
    (d / "trajloom_generator_config.json").write_text(json.dumps({"generator": {
        "num_heads": 4, "input_height": 64, "input_width": 96, "patch_size": 16, "num_frames_in": 9, "latent_time_stride": 4}}))
    stats = {"z_all": {"per_channel": {"mean": [0.1, 0.2, 0.3, 0.4], "std": [1.0, 2.0, 3.0, 4.0]}}}
    (d / "vae_latent_stats.json").write_text(json.dumps(stats))
    return d


def test_convert_official_writes_a_loadable_pipeline(official_files, tmp_path):
    from trajloom_hf.convert.autoencoder import convert_trajloom_vae
    from trajloom_hf.pipelines import TrajLoomPipeline

    d, out = official_files, tmp_path / "pipe"
    args = parse(["--vae", str(d / "trajloom_vae.pt"), "--vae-config", str(d / "trajloom_vae_config.json"),
                  "--latent-stats", str(d / "vae_latent_stats.json"), "--generator", str(d / "trajloom_generator.pt"),
                  "--generator-config", str(d / "trajloom_generator_config.json"), "--pipeline", "--out", str(out)])
    assert args.func is run
    assert args.func(args) == 0
    assert not list(tmp_path.glob(".pipe.tmp-*"))  # the temporary folder is gone
    pipe = TrajLoomPipeline.from_pretrained(out)
    assert pipe.vae.config.latents_std == [1.0, 2.0, 3.0, 4.0] and pipe.vae.config.num_heads == HEADS
    assert pipe.transformer.config.num_heads == 4 and pipe.transformer.config.history_num_frames == 9
    # the saved VAE computes what the in-memory conversion computes
    ref = convert_trajloom_vae(d / "trajloom_vae.pt", num_heads=HEADS)
    x = torch.rand(1, 9, 24, 2) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(pipe.vae.encode(x).latent_dist.mean, ref.encode(x).latent_dist.mean)
    np.testing.assert_array_equal(sorted(p.name for p in out.iterdir()),
                                  ["model_index.json", "pipeline_trajloom.py", "scheduler", "transformer", "vae"])


def test_components_only_and_refusals(official_files, tmp_path):
    d = official_files
    out = tmp_path / "vae_only"
    run(parse(["--vae", str(d / "trajloom_vae.pt"), "--num-heads", str(HEADS), "--out", str(out)]))
    assert (out / "vae" / "config.json").exists() and not (out / "model_index.json").exists()
    with pytest.raises(ValueError, match="exists and is not empty"):
        run(parse(["--vae", str(d / "trajloom_vae.pt"), "--num-heads", str(HEADS), "--out", str(out)]))
    run(parse(["--vae", str(d / "trajloom_vae.pt"), "--num-heads", str(HEADS), "--out", str(out), "--overwrite"]))
    with pytest.raises(ValueError, match="nothing to convert"):
        run(parse(["--out", str(tmp_path / "x")]))
    with pytest.raises(ValueError, match="`--pipeline` needs"):
        run(parse(["--vae", str(d / "trajloom_vae.pt"), "--pipeline", "--out", str(tmp_path / "y")]))
    with pytest.raises(ValueError, match="`--vae` file not found"):
        run(parse(["--vae", str(d / "missing.pt"), "--out", str(tmp_path / "z")]))
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists() and not (tmp_path / "z").exists()


def test_overwrite_replaces_only_its_own_output_and_keeps_the_folder_mode(official_files, tmp_path):
    d = official_files
    argv = ["--vae", str(d / "trajloom_vae.pt"), "--num-heads", str(HEADS)]
    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"holds files this command did not write \(notes.txt\)"):
        run(parse(argv + ["--out", str(project), "--overwrite"]))
    assert sorted(p.name for p in project.iterdir()) == ["notes.txt"]
    empty = tmp_path / "shared"
    empty.mkdir()
    empty.chmod(0o750)
    run(parse(argv + ["--out", str(empty)]))
    assert (empty / "vae" / "config.json").exists() and (empty.stat().st_mode & 0o777) == 0o750
    run(parse(argv + ["--out", str(empty), "--overwrite"]))  # an earlier output of this command: replaced
    assert (empty.stat().st_mode & 0o777) == 0o750
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left behind
