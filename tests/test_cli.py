import subprocess
import sys

import pytest

from trajloom_hf.cli import main


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "analyze-offsets" in capsys.readouterr().out


def test_analyze_offsets_prints_fig3b_table(capsys):
    assert main(["analyze-offsets", "--num-clips", "4", "--height", "96", "--width", "160", "--frames", "24"]) == 0
    out = capsys.readouterr().out
    rows = {tuple(c.strip() for c in line.split("|")[1:3]): float(line.split("|")[3]) for line in out.splitlines()
            if line.startswith("| absolute") or line.startswith("| offset")}
    assert rows[("absolute", "x")] > 60 and rows[("offset", "x")] < rows[("absolute", "x")] / 3


def test_analyze_offsets_rejects_bad_count():
    with pytest.raises(ValueError, match="--num-clips"):
        main(["analyze-offsets", "--num-clips", "0"])


def test_console_entry_point_runs():
    out = subprocess.run([sys.executable, "-m", "trajloom_hf.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "trajloom" in out.stdout


def test_synth_writes_clips_and_resumes(tmp_path):
    import json

    import numpy as np

    args = ["synth", "--out", str(tmp_path), "--num-clips", "2", "--frames", "9", "--height", "64", "--width", "96"]
    assert main(args) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    clip_files = [f"clip_00000{i}{s}" for i in range(2) for s in (".mp4", ".npz", "_montage.png", "_tracks.gif")]
    assert names == clip_files + ["synth_manifest.json"]  # the staging folder is gone
    manifest = json.loads((tmp_path / "synth_manifest.json").read_text())
    assert manifest["written_by"] == "trajloom synth" and sorted(manifest["files"]) == names
    assert manifest["clips"]["clip_000001"] == dict(height=64, width=96, frames=9, stride=16, camera_motion="random",
                                                    fps=16.0)
    data = np.load(tmp_path / "clip_000001.npz")
    assert data["tracks"].shape == (9, 24, 2) and data["visibility"].dtype == bool
    mtime = (tmp_path / "clip_000000.mp4").stat().st_mtime_ns
    assert main(args) == 0  # resume: complete clips are skipped
    assert (tmp_path / "clip_000000.mp4").stat().st_mtime_ns == mtime
    # a clip whose files are not all there (an interrupted run) is regenerated, the complete one kept
    (tmp_path / "clip_000001_montage.png").unlink()
    assert main(args) == 0
    assert (tmp_path / "clip_000001_montage.png").is_file() and (tmp_path / "clip_000000.mp4").stat().st_mtime_ns == mtime
    # other settings replace synth's own clips; more seeds add to the folder and keep what is listed
    assert main(args[:-4] + ["--height", "32", "--width", "48", "--num-clips", "3"]) == 0
    assert np.load(tmp_path / "clip_000000.npz")["tracks"].shape == (9, 6, 2)
    manifest = json.loads((tmp_path / "synth_manifest.json").read_text())
    assert sorted(manifest["clips"]) == ["clip_000000", "clip_000001", "clip_000002"] and len(manifest["files"]) == 13


def test_synth_refuses_clip_files_it_did_not_write(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TRAJLOOM_DEBUG")  # what a person sees: one line, exit code 2
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "clip_000001.mp4").write_bytes(b"my own video")
    (mine / "notes.txt").write_text("keep me")
    args = ["synth", "--out", str(mine), "--num-clips", "2", "--frames", "9", "--height", "64", "--width", "96"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already holds clip_000001.mp4, which this command did not write" in err and "synth_manifest.json" in err
    assert sorted(p.name for p in mine.iterdir()) == ["clip_000001.mp4", "notes.txt"]  # nothing written
    assert (mine / "clip_000001.mp4").read_bytes() == b"my own video"
    # a manifest another command wrote does not make the files synth's
    (mine / "synth_manifest.json").write_text('{"written_by": "someone else", "files": ["clip_000001.mp4"]}')
    assert main(args) == 2 and "clip_000001.mp4" in capsys.readouterr().err
    (mine / "synth_manifest.json").unlink()
    # seeds whose files are not there are fine: synth writes beside the user's files and leaves them alone
    assert main(args[:-6] + ["--seed", "2", "--num-clips", "1"] + args[-6:]) == 0
    assert (mine / "clip_000001.mp4").read_bytes() == b"my own video" and (mine / "notes.txt").read_text() == "keep me"
    assert (mine / "clip_000002_montage.png").is_file()
    # a folder from synth before the manifest existed is refused too (its files are not listed)
    assert main(args[:-6] + ["--seed", "2", "--num-clips", "1"] + args[-6:]) == 0  # its own: resumed
    (mine / "synth_manifest.json").unlink()
    assert main(args[:-6] + ["--seed", "2", "--num-clips", "1"] + args[-6:]) == 2
    assert "already holds clip_000002.mp4, clip_000002.npz, clip_000002_montage.png" in capsys.readouterr().err


def test_bench_build_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    args = ["bench", "build", "--source", "synthetic", "--out", str(tmp_path / "tb"), "--config", "tiny", "--num-train", "1",
            "--num-validation", "0", "--num-test", "1", "--height", "64", "--width", "96", "--stride", "16",
            "--history-frames", "4", "--future-frames", "4"]
    assert main(args) == 0
    assert "train=1, test=1 clips" in capsys.readouterr().out
    from datasets import load_dataset

    assert load_dataset(str(tmp_path / "tb"), "tiny", split="test").with_format("numpy")[0]["tracks"].shape == (8, 24, 2)


def test_top_level_lazy_exports():
    import trajloom_hf

    assert trajloom_hf.TrajLoomPipeline.__name__ == "TrajLoomPipeline"
    assert trajloom_hf.AutoencoderTraj.__name__ == "AutoencoderTraj"
    assert callable(trajloom_hf.metrics.fvmd)
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        trajloom_hf.Nope
