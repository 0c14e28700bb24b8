"""Saved pipeline folders in diffusers' remote-code layout: they load through TrajLoomPipeline (package installed,
no trust needed for our own entry points), through DiffusionPipeline(trust_remote_code=True) and diffusers.AutoModel
in a fresh process, and foreign code is never run without the caller's trust."""

import json
import os
import subprocess
import sys

import pytest
import torch

from tests.test_pipeline_trajloom import tiny_pipeline
from trajloom_hf.pipelines import TrajLoomPipeline
from trajloom_hf.pipelines.hub_layout import entry_point_source, has_remote_code, is_own_layout


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hub") / "pipe"
    tiny_pipeline().save_pretrained(folder)
    return folder


def test_layout_files(saved):
    index = json.loads((saved / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline_trajloom", "TrajLoomPipeline"]
    assert index["vae"] == ["autoencoder_traj", "AutoencoderTraj"]
    assert index["scheduler"] == ["scheduling_flow_match_traj", "FlowMatchTrajScheduler"]
    assert index["video_vae"] == [None, None]  # absent optional components stay as diffusers writes them
    assert (saved / "pipeline_trajloom.py").read_text() == entry_point_source("TrajLoomPipeline")
    assert "from trajloom_hf.models.autoencoder_traj import AutoencoderTraj" in (saved / "vae" / "autoencoder_traj.py").read_text()
    for name, ref in (("vae", "autoencoder_traj.AutoencoderTraj"), ("transformer", "transformer_traj_flow.TrajFlowTransformer"),
                      ("visibility_predictor", "visibility_predictor.VisibilityPredictor")):
        assert json.loads((saved / name / "config.json").read_text())["auto_map"] == {"AutoModel": ref}
    assert is_own_layout(saved) and has_remote_code(saved)


def test_loads_with_the_package_without_trust_and_matches(saved):
    pipe = tiny_pipeline()
    loaded = TrajLoomPipeline.from_pretrained(saved)
    assert type(loaded) is TrajLoomPipeline and type(loaded.vae) is type(pipe.vae)
    for a, b in zip(pipe.transformer.state_dict().values(), loaded.transformer.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert "auto_map" not in loaded.vae.config  # loading metadata, not a constructor argument (and no warning)


def test_foreign_code_needs_explicit_trust(saved, tmp_path):
    import shutil

    other = tmp_path / "pipe"
    shutil.copytree(saved, other)
    (other / "vae" / "autoencoder_traj.py").write_text("raise SystemExit('ran foreign code')\n")
    assert not is_own_layout(other)
    with pytest.raises(ValueError, match="trust_remote_code"):
        TrajLoomPipeline.from_pretrained(other)


def test_old_layout_folders_still_load(saved, tmp_path):
    """Folders saved before the remote-code layout (module paths in model_index.json) load as before."""
    import shutil

    old = tmp_path / "old"
    shutil.copytree(saved, old)
    index = json.loads((old / "model_index.json").read_text())
    index.update(_class_name="TrajLoomPipeline", vae=["trajloom_hf.models.autoencoder_traj", "AutoencoderTraj"],
                 transformer=["trajloom_hf.models.transformer_traj_flow", "TrajFlowTransformer"],
                 visibility_predictor=["trajloom_hf.models.visibility_predictor", "VisibilityPredictor"],
                 scheduler=["trajloom_hf.schedulers.scheduling_flow_match_traj", "FlowMatchTrajScheduler"])
    (old / "model_index.json").write_text(json.dumps(index))
    for p in old.rglob("*.py"):
        p.unlink()
    assert not is_own_layout(old) and not has_remote_code(old)
    assert type(TrajLoomPipeline.from_pretrained(old).vae).__name__ == "AutoencoderTraj"


def test_hub_repo_id_is_fetched_then_read_as_a_folder(saved, monkeypatch):
    import huggingface_hub

    asked = {}

    def fake_snapshot(repo_id, **kwargs):
        asked.update(repo_id=repo_id, **kwargs)
        return str(saved)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    pipe = TrajLoomPipeline.from_pretrained("someone/trajloom-tiny", revision="v1")
    assert asked["repo_id"] == "someone/trajloom-tiny" and asked["revision"] == "v1"
    assert type(pipe) is TrajLoomPipeline


def test_plain_diffusers_in_a_fresh_process(saved, tmp_path):
    """DiffusionPipeline / AutoModel with trust_remote_code, in a process that never imports trajloom_hf itself."""
    script = f"""
import sys
from diffusers import AutoModel, DiffusionPipeline
pipe = DiffusionPipeline.from_pretrained({str(saved)!r}, trust_remote_code=True)
assert "trajloom_hf" in sys.modules  # pulled in by the folder's entry points
vae = AutoModel.from_pretrained({str(saved / "vae")!r}, trust_remote_code=True)
try:
    DiffusionPipeline.from_pretrained({str(saved)!r})
except ValueError as e:
    assert "trust_remote_code" in str(e)
else:
    raise AssertionError("loaded custom code without trust_remote_code")
import numpy as np, torch
print(type(pipe).__name__, type(pipe.vae).__name__, type(pipe.scheduler).__name__, type(vae).__name__,
      float(sum(p.double().sum() for p in vae.parameters())))
"""
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    names = out.stdout.split()
    assert names[:4] == ["TrajLoomPipeline", "AutoencoderTraj", "FlowMatchTrajScheduler", "AutoencoderTraj"]
    expected = float(sum(p.detach().double().sum() for p in tiny_pipeline().vae.parameters()))
    assert float(names[4]) == pytest.approx(expected, rel=1e-12, abs=1e-9)
