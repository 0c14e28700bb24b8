"""Checkpoints are data, not code: a run saved with ``Checkpointer`` resumes bit for bit (model, optimizer, LR
scheduler, Python/NumPy/torch RNG, the run's own generators), pickles planted in the folder never run, and a corrupt
newest checkpoint falls back to the newest intact one with a warning."""

import json
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator

from trajloom_hf.training.checkpointing import CheckpointError, Checkpointer, checkpoint_problem, latest_checkpoint, list_checkpoints
from trajloom_hf.training.csv_tracker import CSVTracker
from trajloom_hf.training.state_files import load_state_tree, save_state_tree


class Planted:
    """A pickle whose loading creates ``marker`` (what an attacker's payload would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def plant_pickles(folder: Path, marker: Path) -> None:
    """Every file name Accelerate's ``load_state`` would unpickle (custom objects, RNG, optimizer, scheduler, model)."""
    for name in ("custom_checkpoint_0.pkl", "random_states_0.pkl", "optimizer.bin", "scheduler.bin", "pytorch_model.bin",
                 "sampler.bin", "scaler.pt"):
        with open(folder / name, "wb") as fh:
            pickle.dump({"state": Planted(marker)}, fh)
    with open(folder / "planted.bin", "wb") as fh:  # also the torch.save container format
        torch.save({"x": Planted(marker)}, fh)
    assert not marker.exists()


def make_run(out, seed=0):
    torch.manual_seed(seed)
    acc = Accelerator(cpu=True)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    model, opt = acc.prepare(model, opt)
    gen = torch.Generator().manual_seed(123)
    return model, opt, sched, gen, Checkpointer(acc, out, model, opt, sched, generators={"noise": gen})


def step(model, opt, sched, gen) -> float:
    """One update drawing from the run's generator and the global torch / Python / NumPy RNGs."""
    x = torch.randn(5, 4, generator=gen) + 0.1 * torch.randn(5, 4)
    target = random.random() + float(np.random.rand())
    loss = (model(x) - target).pow(2).mean()
    loss.backward()
    opt.step()
    sched.step()
    opt.zero_grad()
    return float(loss.detach())


def test_resume_is_exact_and_planted_pickles_never_run(tmp_path):
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"
    model, opt, sched, gen, ck = make_run(full_dir)
    random.seed(1), np.random.seed(1)
    losses = [step(model, opt, sched, gen) for _ in range(2)]
    saved = ck.save(2, keep=0)
    losses += [step(model, opt, sched, gen) for _ in range(3)]
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    # a fresh process state (other init, other RNG positions) resumes from the copy with planted pickles
    import shutil

    shutil.copytree(saved, part_dir / "checkpoints" / "checkpoint-2")
    marker = tmp_path / "marker"
    plant_pickles(part_dir / "checkpoints" / "checkpoint-2", marker)
    model2, opt2, sched2, gen2, ck2 = make_run(part_dir, seed=5)
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    assert ck2.resume("latest") == 2
    resumed = [step(model2, opt2, sched2, gen2) for _ in range(3)]
    assert not marker.exists()
    assert resumed == losses[2:]  # bit for bit
    for k, v in model2.state_dict().items():
        torch.testing.assert_close(v, expected[k], rtol=0, atol=0)
    assert sched2.get_last_lr() == sched.get_last_lr()


def test_corrupt_latest_falls_back_with_a_warning(tmp_path):
    model, opt, sched, gen, ck = make_run(tmp_path)
    ck.save(1, keep=0)
    step(model, opt, sched, gen)
    ck.save(2, keep=0)
    step(model, opt, sched, gen)
    ck.save(3, keep=0)
    root = tmp_path / "checkpoints"
    assert [p.name for p in list_checkpoints(root)] == ["checkpoint-1", "checkpoint-2", "checkpoint-3"]
    assert checkpoint_problem(root / "checkpoint-3") is None
    # 3: truncated weights, 2: a missing optimizer file -> 1
    weights = root / "checkpoint-3" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])
    (root / "checkpoint-2" / "optimizer.safetensors").unlink()
    assert "truncated" in checkpoint_problem(root / "checkpoint-3")
    assert "optimizer.safetensors is missing" in checkpoint_problem(root / "checkpoint-2")
    with pytest.warns(UserWarning, match="skipping checkpoint") as record:
        assert latest_checkpoint(root) == root / "checkpoint-1"
    assert len(record) == 2
    with pytest.warns(UserWarning, match="skipping checkpoint"):
        assert ck.resume("latest") == 1
    # an explicitly named corrupt checkpoint is an error, not a silent fallback
    with pytest.raises(CheckpointError, match="not a complete checkpoint.*truncated"):
        ck.resume(str(root / "checkpoint-3"))
    with pytest.raises(FileNotFoundError, match="no such checkpoint folder"):
        ck.resume(str(root / "checkpoint-9"))
    # a corrupt header of the right size is caught too
    (root / "checkpoint-1" / "scheduler.json").write_text("{" + " " * (len((root / "checkpoint-1" / "scheduler.json").read_text()) - 1))
    assert "scheduler.json is corrupt" in checkpoint_problem(root / "checkpoint-1")
    with pytest.warns(UserWarning):
        assert ck.resume("latest") == 0  # nothing intact: from scratch


def test_incompatible_checkpoint_is_an_error_not_a_fallback(tmp_path):
    model, opt, sched, gen, ck = make_run(tmp_path)
    ck.save(4, keep=0)
    acc = Accelerator(cpu=True)
    other = torch.nn.Linear(4, 3)
    other_opt = torch.optim.AdamW(other.parameters())
    with pytest.raises(ValueError, match="does not fit this run"):
        Checkpointer(acc, tmp_path, other, other_opt).resume("latest")


def test_save_keeps_the_newest_and_marks_completion_last(tmp_path):
    model, opt, sched, gen, ck = make_run(tmp_path)
    (tmp_path / "checkpoints" / "checkpoint-notes").mkdir(parents=True)  # not ours: never deleted
    for s in (1, 2, 3):
        ck.save(s, keep=2)
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["checkpoint-2", "checkpoint-3", "checkpoint-notes"]
    state = json.loads((root / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3 and state["num_processes"] == 1
    assert set(state["files"]) == {"model.safetensors", "optimizer.json", "optimizer.safetensors", "scheduler.json",
                                   "scheduler.safetensors", "random_states_0.json", "random_states_0.safetensors"}
    # no pickle anywhere
    for f in (root / "checkpoint-3").iterdir():
        assert f.suffix in (".json", ".safetensors"), f.name


def test_resume_rewinds_the_csv_tracker(tmp_path):
    tracker = CSVTracker("run", str(tmp_path / "logs"))
    for s in (1, 2, 3):
        tracker.log({"loss": 1.0 / s}, step=s)
    tracker.log({"val": 0.5}, step=3)
    model, opt, sched, gen, ck = make_run(tmp_path)
    ck.save(2, keep=0)
    ck.accelerator.trackers = [tracker]
    assert ck.resume("latest") == 2
    tracker.log({"loss": 0.3}, step=3)
    rows = (tmp_path / "logs" / "run" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["step", "1", "2", "3"]


def test_state_tree_roundtrip_is_exact_and_refuses_objects(tmp_path):
    tree = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(2, 3)}, 7: {}},
            "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": float("inf"), "foreach": None, "params": [0, 7]}],
            "python": random.getstate(), "bytes": torch.get_rng_state(), "name": "x", "flag": True}
    save_state_tree(tree, str(tmp_path / "s"))
    back = load_state_tree(str(tmp_path / "s"))
    assert back["state"][0]["step"].item() == 3.0 and list(back["state"]) == [0, 7]
    torch.testing.assert_close(back["state"][0]["exp_avg"], tree["state"][0]["exp_avg"], rtol=0, atol=0)
    assert back["param_groups"][0]["betas"] == (0.9, 0.999) and back["param_groups"][0]["eps"] == float("inf")
    assert back["python"] == tree["python"] and back["flag"] is True and back["param_groups"][0]["foreach"] is None
    assert torch.equal(back["bytes"], tree["bytes"])
    with pytest.raises(TypeError, match="cannot store a Planted"):
        save_state_tree({"x": Planted(tmp_path / "m")}, str(tmp_path / "bad"))
    with pytest.raises(FileNotFoundError, match="missing"):
        load_state_tree(str(tmp_path / "nothing"))
