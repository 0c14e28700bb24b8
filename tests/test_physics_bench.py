"""`trajloom bench build --source physics`: Parquet round trip, the card, both track protocols, no GL -> no files."""

import json

import numpy as np
import pytest

from trajloom_hf.data.physics import GLUnavailableError, PhysicsSceneConfig, generate_physics_clip
from trajloom_hf.data.physics import gl as physics_gl
from trajloom_hf.data.trajloombench import BenchSettings, build_trajloombench, load_trajloombench
from trajloom_hf.video_io import decode_mp4_bytes

S = BenchSettings(height=64, width=96, history_frames=5, future_frames=5, stride=16, fps=16, shard_size=2)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_physics_build_load_round_trip_card_and_resume(tmp_path):
    from datasets import load_dataset

    out = tmp_path / "bench"
    m = build_trajloombench("physics", str(out), "physics", settings=S, counts={"train": 3, "test": 1}, progress=False)
    assert m["counts"] == {"train": 3, "test": 1} and m["source"] == "physics" and m["renderers"]
    ds = load_dataset(str(out), "physics", split="train").with_format("numpy")
    assert len(ds) == 3 and ds[0]["clip_id"] == "physics-00000000" and ds[0]["source"] == "physics"
    # the rows are the generator's clips, rebuilt from the manifest's generator config and the seed
    gen = json.loads((out / "data" / "physics" / "manifest.json").read_text())["generator"]
    cfg = PhysicsSceneConfig(**gen["config"], height=64, width=96, num_frames=10, stride=16)
    clip = generate_physics_clip(1, cfg)
    row = ds[1]
    np.testing.assert_array_equal(row["tracks"], clip.tracks)
    np.testing.assert_array_equal(row["visibility"], clip.visibility)
    assert row["caption"] == clip.caption
    frames = decode_mp4_bytes(bytes(row["video"]))
    assert frames.shape == (10, 64, 96, 3) and np.abs(frames.astype(float) - clip.frames).mean() < 6
    assert load_dataset(str(out), "physics", split="test").with_format("numpy")[0]["clip_id"] == "physics-02000000"
    card = (out / "README.md").read_text()
    for text in ("Generator of `physics`", "MuJoCo", "rubber: friction 0.8", "metal: friction 0.4", "elevation 40-65 deg",
                 "physics-<s>", "renderers used", "generate_physics_clip"):
        assert text in card, text
    # a re-run resumes (nothing rebuilt) and refuses another camera under the same config name
    files = sorted(p.name for p in (out / "data" / "physics").glob("*.parquet"))
    build_trajloombench("physics", str(out), "physics", settings=S, counts={"train": 3, "test": 1}, progress=False)
    assert sorted(p.name for p in (out / "data" / "physics").glob("*.parquet")) == files
    with pytest.raises(ValueError, match="camera"):
        build_trajloombench("physics", str(out), "physics", settings=S, counts={"train": 3}, progress=False,
                            source_kwargs={"camera": "moving"})
    # ... and another MuJoCo release (its simulation differs: the clips would not be the same clip set)
    import mujoco

    manifest_path = out / "data" / "physics" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["mujoco"] == mujoco.__version__ and f"MuJoCo {mujoco.__version__}" in card
    manifest_path.write_text(json.dumps({**manifest, "mujoco": "3.3.7"}))
    with pytest.raises(ValueError, match=r"mujoco='3\.3\.7'"):
        build_trajloombench("physics", str(out), "physics", settings=S, counts={"train": 4, "test": 1}, progress=False)
    assert sorted(p.name for p in (out / "data" / "physics").glob("*.parquet")) == files  # nothing written


def test_physics_moving_camera_tracked_with_the_embedded_tracker(tmp_path):
    """Both protocols: the exact tracks and the tracker run on the rendered frames (paper §4.1.2)."""
    out = tmp_path / "bench"
    m = build_trajloombench("physics", str(out), "physics_camera_tracked", settings=S, counts={"test": 2}, progress=False,
                            source_kwargs={"camera": "moving", "tracks": "optical_flow"})
    assert m["source_options"] == {"camera": "moving", "tracks": "optical_flow"}
    tracked = load_trajloombench(str(out), "physics_camera_tracked", "test")
    build_trajloombench("physics", str(out), "physics_camera", settings=S, counts={"test": 2}, progress=False,
                        source_kwargs={"camera": "moving"})
    exact = load_trajloombench(str(out), "physics_camera", "test")
    a, b = np.stack(tracked["tracks"]), np.stack(exact["tracks"])
    np.testing.assert_array_equal(a[:, 0], b[:, 0])  # both queried on the same grid at frame 0
    assert not np.array_equal(a, b)  # the tracker's tracks are not the exact ones ...
    vis = np.stack(exact["visibility"]) & np.stack(tracked["visibility"])
    assert np.median(np.linalg.norm(a - b, axis=-1)[vis]) < 2.0  # ... but follow them
    card = (out / "README.md").read_text()
    assert "the `optical_flow` tracker run on the rendered frames" in card and "moving camera, MOVi-E style" in card
    with pytest.raises(ValueError, match="tracks"):
        build_trajloombench("physics", str(out), "x", settings=S, counts={"test": 1}, progress=False,
                            source_kwargs={"tracks": "raft"})


def test_no_gl_context_fails_at_once_and_writes_nothing(tmp_path, monkeypatch, capsys):
    def no_egl():
        raise OSError("libEGL.so.1: cannot open shared object file")

    monkeypatch.setattr(physics_gl, "_CONTEXT", None)
    monkeypatch.setattr(physics_gl, "_CONTEXT_ERROR", None)
    monkeypatch.setattr(physics_gl, "_create_context", no_egl)
    out = tmp_path / "bench"
    with pytest.raises(GLUnavailableError, match=r"apt-get install libegl1 libgl1-mesa-dri.*libosmesa6.*MUJOCO_GL"):
        build_trajloombench("physics", str(out), "physics", settings=S, counts={"test": 1}, progress=False)
    assert not out.exists()
    from trajloom_hf.cli import main

    rc = main(["bench", "build", "--source", "physics", "--out", str(out), "--config", "physics", "--height", "64",
               "--width", "96", "--stride", "16", "--history-frames", "2", "--future-frames", "2", "--num-test", "1"])
    assert rc == 1 and "libEGL.so.1" in capsys.readouterr().err and not out.exists()
    # the other sources do not need GL
    build_trajloombench("synthetic", str(out), "syn", settings=S, counts={"test": 1}, progress=False)
    assert (out / "data" / "syn").is_dir()


def test_cli_camera_option_is_physics_only(tmp_path, capsys):
    from trajloom_hf.cli import main

    rc = main(["bench", "build", "--source", "synthetic", "--camera", "moving", "--out", str(tmp_path / "b"),
               "--config", "x"])
    assert rc == 2 and "--camera" in capsys.readouterr().err and not (tmp_path / "b").exists()


def test_a_launch_config_pushes_at_the_forecast_start_and_says_so_in_its_card(tmp_path):
    from datasets import load_dataset

    out = tmp_path / "bench"
    m = build_trajloombench("physics", str(out), "launch", settings=S, counts={"train": 2}, progress=False,
                            source_kwargs={"launch": True})
    assert m["source_options"] == {"launch": True}
    gen = m["generator"]
    assert gen["config"]["launch_frame"] == S.history_frames and gen["launch"]["palette"]
    cfg = PhysicsSceneConfig(**gen["config"], height=64, width=96, num_frames=10, stride=16)
    row = load_dataset(str(out), "launch", split="train").with_format("numpy")[1]
    np.testing.assert_array_equal(row["tracks"], generate_physics_clip(1, cfg).tracks)
    assert np.abs(row["tracks"][:S.history_frames] - row["tracks"][0]).max() < 0.05  # a still history
    card = (out / "README.md").read_text()
    assert "launch scene" in card and f"still until frame {S.history_frames}" in card
    # the thrown scene's record has no launch fields (configs built before launch scenes existed still resume)
    thrown = build_trajloombench("physics", str(out), "thrown", settings=S, counts={"train": 1}, progress=False)
    assert "launch_frame" not in thrown["generator"]["config"] and "launch" not in thrown["generator"]
    with pytest.raises(ValueError, match="launch"):
        build_trajloombench("physics", str(out), "thrown", settings=S, counts={"train": 1}, progress=False,
                            source_kwargs={"launch": True})


def test_cli_launch_option_is_physics_only(tmp_path, capsys):
    from trajloom_hf.cli import main

    rc = main(["bench", "build", "--source", "synthetic", "--launch", "--out", str(tmp_path / "b"), "--config", "x"])
    assert rc == 2 and "--launch" in capsys.readouterr().err and not (tmp_path / "b").exists()
