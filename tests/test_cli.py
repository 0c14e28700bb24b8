import subprocess
import sys

import pytest

from trajloom_hf.cli import build_parser, main


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
    import numpy as np

    args = ["synth", "--out", str(tmp_path), "--num-clips", "2", "--frames", "9", "--height", "64", "--width", "96"]
    assert main(args) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [f"clip_00000{i}{s}" for i in range(2) for s in (".mp4", ".npz", "_montage.png", "_tracks.gif")]
    data = np.load(tmp_path / "clip_000001.npz")
    assert data["tracks"].shape == (9, 24, 2) and data["visibility"].dtype == bool
    mtime = (tmp_path / "clip_000000.mp4").stat().st_mtime_ns
    assert main(args) == 0  # resume: complete clips are skipped
    assert (tmp_path / "clip_000000.mp4").stat().st_mtime_ns == mtime


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
