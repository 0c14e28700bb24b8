"""One reader for JSON-object files (``trajloom_hf.json_files``): every caller names the file, what it expected and
what it found."""

import argparse
import json

import pytest

from trajloom_hf.json_files import json_type_name, read_json_object


def test_read_json_object_returns_the_object_and_names_every_failure(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"a": 1, "b": [2, 3]}))
    assert read_json_object(good, "--model_config") == {"a": 1, "b": [2, 3]}
    with pytest.raises(FileNotFoundError, match=r"--model_config '.*nope.json': the file does not exist"):
        read_json_object(tmp_path / "nope.json", "--model_config")
    with pytest.raises(FileNotFoundError, match=r"--model_config '.*': the file is a folder, not a file"):
        read_json_object(tmp_path, "--model_config")
    (tmp_path / "bad.json").write_text('{"a": ')
    with pytest.raises(ValueError, match=r"pipeline index '.*bad.json' is not valid JSON \(Expecting value: line 1"):
        read_json_object(tmp_path / "bad.json", "pipeline index")
    (tmp_path / "latin1.json").write_bytes(b'{"a": "\xe9"}')
    with pytest.raises(ValueError, match=r"'.*latin1.json' is not valid JSON \(not UTF-8 text"):
        read_json_object(tmp_path / "latin1.json", "--model_config")
    for value, kind in (([1, 2], "array"), ("x", "string"), (3, "number"), (2.5, "number"), (True, "boolean"),
                        (None, "null")):
        (tmp_path / "other.json").write_text(json.dumps(value))
        assert json_type_name(value) == kind
        with pytest.raises(ValueError, match=rf"--model_config '.*other.json' must hold a JSON object of model "
                                             rf"arguments \(\{{...\}}\), got a JSON {kind}$"):
            read_json_object(tmp_path / "other.json", "--model_config", "model arguments")
    with pytest.raises(ValueError, match=r"must hold a JSON object \(\{...\}\), got a JSON null$"):
        read_json_object(tmp_path / "other.json", "x")


def test_training_config_readers_share_the_wording(tmp_path):
    from trajloom_hf.training.model_builders import build_autoencoder

    (tmp_path / "list.json").write_text("[16, 4]")
    with pytest.raises(ValueError, match=r"--model_config '.*list.json' must hold a JSON object of model arguments "
                                         r"\(\{...\}\), got a JSON array"):
        build_autoencoder("tiny", config_path=str(tmp_path / "list.json"))


def test_latent_cache_with_corrupt_metadata_is_named(tmp_path):
    from trajloom_hf.training.latent_cache import LatentCache

    root = tmp_path / "latents"
    cache = LatentCache(str(root), "fp")  # writes cache_meta.json
    assert cache.meta["vae"] == "fp" and LatentCache(str(root), "fp").meta == cache.meta
    (root / "cache_meta.json").write_text("")
    with pytest.raises(ValueError, match=r"latent cache metadata '.*cache_meta.json' is not valid JSON"):
        LatentCache(str(root), "fp")
    (root / "cache_meta.json").write_text("[]")
    with pytest.raises(ValueError, match=r"cache_meta.json' must hold a JSON object .*got a JSON array"):
        LatentCache(str(root), "fp")


def test_model_card_results_must_be_an_object(tmp_path):
    from trajloom_hf.model_card import model_card

    (tmp_path / "results.json").write_text('["TrajLoom"]')
    with pytest.raises(ValueError, match=r"`results_json` '.*results.json' must hold a JSON object of trajloom "
                                         r"evaluate results .*got a JSON array"):
        model_card("visibility", model_name="m", config={}, num_parameters=1, results_json=tmp_path / "results.json",
                   record={}, method="TrajLoom", stage_names=[])


def test_convert_official_config_flags_are_named_before_anything_is_written(tmp_path):
    from trajloom_hf.convert.cli import add_cli

    parser = argparse.ArgumentParser(prog="trajloom")
    add_cli(parser.add_subparsers(dest="command"))
    (tmp_path / "vae.pt").write_bytes(b"never read")
    (tmp_path / "cfg.json").write_text('[{"num_heads": 8}]')
    out = tmp_path / "out"
    for flag, found, err, match in (
            ("--vae-config", "cfg.json", ValueError, r"`--vae-config` '.*cfg.json' must hold a JSON object of official "
                                                     r"config values .*got a JSON array"),
            ("--latent-stats", "missing.json", FileNotFoundError, r"`--latent-stats` '.*missing.json': the file does "
                                                                  r"not exist")):
        args = parser.parse_args(["convert-official", "--vae", str(tmp_path / "vae.pt"), flag, str(tmp_path / found),
                                  "--out", str(out)])
        with pytest.raises(err, match=match):
            args.func(args)
    assert not out.exists() and not list(tmp_path.glob(".out*"))
