"""Hub-ready folders without the network: eval-results files of `trajloom evaluate`, the bench card's configs, and
`trajloom push` / save_pretrained(push_to_hub=True) against a stand-in HfApi."""

import json

import pytest
import yaml

from trajloom_hf.cli import main
from trajloom_hf.data.trajloombench import BenchSettings, build_trajloombench
from trajloom_hf.eval_results import MARK, eval_results_path, write_eval_results

SETTINGS = BenchSettings(height=80, width=96, history_frames=9, future_frames=9, stride=16, fps=8)


@pytest.fixture
def hub(monkeypatch):
    """HfApi.create_repo / upload_folder replaced by recorders (what would be sent, and the folder's files then)."""
    import huggingface_hub

    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        from pathlib import Path

        files = sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file())
        calls.append(("upload_folder", repo_id, {**kwargs, "files": files}))
        return "https://huggingface.co/fake/commit/0"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    return calls


def test_eval_results_file_parses_as_the_hub_format(tmp_path):
    from huggingface_hub._eval_results import parse_eval_result_entries

    path = write_eval_results(tmp_path, {"fvmd": 12.5, "ade": float("nan"), "min_ade": 3, "extra": 1.0},
                              dataset_id="me/trajloombench", config="synthetic", split="test", notes="K=4",
                              metrics={"fvmd", "ade", "min_ade"}, date="2026-01-02T03:04:05Z")
    assert path == tmp_path / ".eval_results" / "trajloombench-synthetic-test.yaml"
    text = path.read_text()
    assert text.startswith(MARK)
    entries = parse_eval_result_entries(yaml.safe_load(text))
    assert [(e.dataset_id, e.task_id, e.value, e.notes, e.date) for e in entries] == [
        ("me/trajloombench", "fvmd", 12.5, "K=4", "2026-01-02T03:04:05Z"),
        ("me/trajloombench", "min_ade", 3.0, "K=4", "2026-01-02T03:04:05Z")]  # NaN and unlisted keys left out
    write_eval_results(tmp_path, {"fvmd": 1.0}, dataset_id="me/b", config="synthetic", split="test")  # own file: rewritten
    assert yaml.safe_load(path.read_text())[0]["value"] == 1.0
    path.write_text("- something: else\n")  # a file someone else wrote is never overwritten
    with pytest.raises(ValueError, match="not written by trajloom evaluate"):
        write_eval_results(tmp_path, {"fvmd": 1.0}, dataset_id="me/b", config="synthetic", split="test")
    with pytest.raises(ValueError, match="no finite score"):
        write_eval_results(tmp_path / "m", {"fvmd": float("inf")}, dataset_id="me/b", config="c", split="s")


def test_bench_card_lists_every_config_with_its_splits(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    from datasets import load_dataset
    from huggingface_hub import DatasetCard

    bench = tmp_path / "bench"
    build_trajloombench("synthetic", str(bench), "synthetic", progress=False, counts={"train": 2, "test": 2}, settings=SETTINGS)
    build_trajloombench("synthetic", str(bench), "second", progress=False, counts={"test": 3}, settings=SETTINGS)
    configs = {c["config_name"]: c["data_files"] for c in DatasetCard.load(bench / "README.md").data.configs}
    assert configs == {"second": [{"split": "test", "path": "data/second/test-*.parquet"}],
                       "synthetic": [{"split": "train", "path": "data/synthetic/train-*.parquet"},
                                     {"split": "test", "path": "data/synthetic/test-*.parquet"}]}
    assert len(load_dataset(str(bench), "second", split="test")) == 3  # the card alone tells datasets the layout
    assert set(load_dataset(str(bench), "synthetic")) == {"train", "test"}


def test_evaluate_writes_eval_results_into_each_pipeline_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    from tests.test_pipeline_trajloom import tiny_pipeline

    bench = tmp_path / "bench"
    build_trajloombench("synthetic", str(bench), "synthetic", progress=False, counts={"test": 3}, settings=SETTINGS)
    tiny_pipeline(height=80).save_pretrained(tmp_path / "pipe")
    args = ["evaluate", "--pipeline", str(tmp_path / "pipe"), "--bench", str(bench), "--num-samples", "1", "--steps",
            "1", "--out", str(tmp_path / "res"), "--bench-repo-id", "me/trajloombench"]
    blocker = eval_results_path(tmp_path / "pipe", "synthetic", "test")
    blocker.parent.mkdir()
    blocker.write_text("mine\n")
    with pytest.raises(ValueError, match="not written by trajloom evaluate"):  # refused before any scoring
        main(args)
    assert not (tmp_path / "res").exists()
    blocker.unlink()
    assert main(args) == 0
    res = json.loads((tmp_path / "res" / "results.json").read_text())["results"]["TrajLoom"]
    entries = yaml.safe_load(blocker.read_text())
    values = {e["dataset"]["task_id"]: e["value"] for e in entries}
    assert {e["dataset"]["id"] for e in entries} == {"me/trajloombench"}
    assert values["fvmd"] == pytest.approx(res["fvmd"]) and values["mvd"] == pytest.approx(res["mvd"])
    assert "num_samples" not in values and "1 samples, euler x 1 steps" in entries[0]["notes"]
    # the folder with its eval results is still a loadable, pushable pipeline folder
    from trajloom_hf.hub import folder_kind

    assert folder_kind(tmp_path / "pipe") == "model"


def test_push_pipeline_and_bench(tmp_path, hub):
    from tests.test_pipeline_trajloom import tiny_pipeline

    tiny_pipeline().save_pretrained(tmp_path / "pipe")
    assert main(["push", str(tmp_path / "pipe"), "--repo-id", "me/trajloom-tiny", "--private"]) == 0
    (_, repo, create), (_, repo2, upload) = hub
    assert repo == repo2 == "me/trajloom-tiny" and create["repo_type"] == "model" and create["private"] is True
    assert create["exist_ok"] is True and upload["repo_type"] == "model"
    assert {"model_index.json", "pipeline_trajloom.py", "vae/autoencoder_traj.py",
            "vae/diffusion_pytorch_model.safetensors"} <= set(upload["files"])
    hub.clear()
    bench = tmp_path / "bench"
    build_trajloombench("synthetic", str(bench), "synthetic", progress=False, counts={"test": 2}, settings=SETTINGS)
    assert main(["push", str(bench), "--repo-id", "me/trajloombench", "--create-pr"]) == 0
    assert hub[0][2]["repo_type"] == "dataset" and hub[1][2]["repo_type"] == "dataset" and hub[1][2]["create_pr"] is True
    assert "README.md" in hub[1][2]["files"]


def test_save_pretrained_push_to_hub_uploads_the_finished_folder(tmp_path, hub):
    from tests.test_pipeline_trajloom import tiny_pipeline

    tiny_pipeline().save_pretrained(tmp_path / "p", push_to_hub=True, repo_id="me/tiny", commit_message="first")
    assert hub[1][0] == "upload_folder" and "pipeline_trajloom.py" in hub[1][2]["files"]
    assert hub[1][2]["commit_message"] == "first"
    with pytest.raises(ValueError, match="repo_id"):
        tiny_pipeline().save_pretrained(tmp_path / "q", push_to_hub=True)


def test_push_refuses_what_it_cannot_upload_as_it_is(tmp_path, hub):
    (tmp_path / "junk").mkdir()
    with pytest.raises(ValueError, match="neither a TrajLoomPipeline folder"):
        main(["push", str(tmp_path / "junk"), "--repo-id", "me/x"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        main(["push", str(tmp_path / "nope"), "--repo-id", "me/x"])
    from tests.test_pipeline_trajloom import tiny_pipeline

    tiny_pipeline().save_pretrained(tmp_path / "pipe")
    with pytest.raises(ValueError, match="owner/name"):
        main(["push", str(tmp_path / "pipe"), "--repo-id", "trajloom"])
    (tmp_path / "pipe" / "pipeline_trajloom.py").write_text("import os\n")  # not the entry point this version writes
    with pytest.raises(ValueError, match="remote-code layout"):
        main(["push", str(tmp_path / "pipe"), "--repo-id", "me/x"])
    assert hub == []  # nothing was created or uploaded
