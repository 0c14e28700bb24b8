"""What a person sees when a `trajloom` command is given bad input: one line on stderr, exit code 2, at once."""

import os
import subprocess
import sys
import time

import pytest

from trajloom_hf.cli import main
from trajloom_hf.data.trajloombench import BenchSettings, build_trajloombench

SMALL = BenchSettings(height=64, width=96, history_frames=3, future_frames=3, stride=16, fps=8, shard_size=4)


@pytest.fixture
def person(monkeypatch):
    monkeypatch.delenv("TRAJLOOM_DEBUG", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def _err(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


def test_errors_are_one_line_with_exit_code_2_and_debug_shows_the_traceback(tmp_path, person, capsys, monkeypatch):
    assert main(["synth", "--out", str(tmp_path / "s"), "--fps", "0"]) == 2
    assert "`--fps` must be a positive number, got 0.0" in _err(capsys)
    assert not (tmp_path / "s").exists()  # checked before the first file is written
    argv = ["bench", "build", "--source", "synthetic", "--out", str(tmp_path / "b"), "--config", "syn",
            "--height", "64", "--width", "96", "--stride", "16", "--history-frames", "3", "--future-frames", "3"]
    assert main(argv + ["--fps", "nan"]) == 2 and "`fps` must be a positive finite number" in _err(capsys)
    assert main(argv + ["--num-train", "-3"]) == 2 and "got -3" in _err(capsys)
    assert not (tmp_path / "b").exists()
    with pytest.raises(ValueError, match="`--fps`"):
        main(["--debug", "synth", "--out", str(tmp_path / "s"), "--fps", "-1"])
    monkeypatch.setenv("TRAJLOOM_DEBUG", "1")
    with pytest.raises(ValueError, match="`--fps`"):
        main(["synth", "--out", str(tmp_path / "s"), "--fps", "-1"])


def test_evaluate_defaults_to_the_only_config_and_lists_configs(tmp_path, person, capsys):
    bench = tmp_path / "bench"
    build_trajloombench("synthetic", str(bench), "synthetic_tracked", settings=SMALL, counts={"test": 2}, progress=False)
    missing = ["evaluate", "--pipeline", str(tmp_path / "nope"), "--bench", str(bench), "--out", str(tmp_path / "r")]
    assert main(missing) == 2
    assert "`--pipeline` folder" in (e := _err(capsys)) and "does not exist" in e  # the only config was accepted
    assert main(missing + ["--config", "synthetic"]) == 2
    assert "`--config` 'synthetic' is not in" in (e := _err(capsys)) and "synthetic_tracked" in e
    build_trajloombench("synthetic", str(bench), "other", settings=SMALL, counts={"test": 2}, progress=False)
    assert main(missing) == 2 and "several configs: pass --config (one of other, synthetic_tracked)" in _err(capsys)
    # --out is checked before any model is loaded or clip scored (this "pipeline" has no weights at all)
    fake = tmp_path / "fake_pipe"
    fake.mkdir()
    (fake / "model_index.json").write_text("{}")
    (tmp_path / "r.txt").write_text("a file")
    assert main(["evaluate", "--pipeline", str(fake), "--bench", str(bench), "--config", "other",
                 "--out", str(tmp_path / "r.txt")]) == 2
    assert "`--out`" in (e := _err(capsys)) and "is not a folder" in e
    assert main(["evaluate", "--pipeline", str(fake), "--bench", str(tmp_path / "no_bench")]) == 2
    assert "`--bench` folder" in _err(capsys)


def test_help_and_argument_errors_answer_at_once(tmp_path):
    """`trajloom --help` builds every subcommand's parser without importing torch or diffusers."""
    code = ("import sys, time; t = time.perf_counter(); from trajloom_hf.cli import build_parser; build_parser(); "
            "print(time.perf_counter() - t); print(sorted(m for m in ('torch', 'diffusers', 'datasets', 'cv2') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ).stdout
    assert out.splitlines()[1] == "[]"
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "trajloom_hf.cli", "evaluate", "--num-samples", "x"],
                         capture_output=True, text=True, env={**os.environ, "TRAJLOOM_DEBUG": ""})
    assert res.returncode == 2 and "invalid int value: 'x'" in res.stderr
    assert time.perf_counter() - t < 20  # no heavy import at all (measured 0.2 s; generous for a loaded machine)
    res = subprocess.run([sys.executable, "-m", "trajloom_hf.cli", "convert-official", "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, env={**os.environ, "TRAJLOOM_DEBUG": ""})
    assert res.returncode == 2 and res.stderr.startswith("trajloom convert-official: error: nothing to convert")
    assert "Traceback" not in res.stderr
