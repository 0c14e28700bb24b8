import json
import pickle

import numpy as np
import pytest

from trajloom_hf.data.synthetic import SceneConfig, generate_clip
from trajloom_hf.data.trajloombench import BenchSettings, build_trajloombench
from trajloom_hf.video_io import decode_mp4_bytes, write_video

S = BenchSettings(height=64, width=96, history_frames=5, future_frames=5, stride=16, fps=8, shard_size=2)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def load(path, config, split):
    from datasets import load_dataset

    return load_dataset(str(path), config, split=split).with_format("numpy")


def test_synthetic_build_load_round_trip_and_parent_folder(tmp_path, monkeypatch):
    out = tmp_path / "trajloombench"
    m = build_trajloombench("synthetic", str(out), "synthetic", settings=S, counts={"train": 3, "test": 2}, progress=False)
    assert m["counts"] == {"train": 3, "test": 2}
    ds = load(out, "synthetic", "train")
    assert len(ds) == 3
    clip = generate_clip(0, SceneConfig(height=64, width=96, num_frames=10, stride=16))
    row = ds[0]
    assert row["clip_id"] == "synthetic-00000000" and row["stride"] == 16 and row["height"] == 64
    np.testing.assert_array_equal(row["tracks"], clip.tracks)  # bit-exact
    np.testing.assert_array_equal(row["visibility"], clip.visibility)
    assert row["tracks"].dtype == np.float32 and row["visibility"].dtype == bool
    frames = decode_mp4_bytes(bytes(row["video"]))
    assert frames.shape == (10, 64, 96, 3) and np.abs(frames.astype(float) - clip.frames).mean() < 6
    # test split seeds are disjoint from train seeds
    assert load(out, "synthetic", "test")[0]["clip_id"] == "synthetic-02000000"
    card = (out / "README.md").read_text()
    assert "config_name: synthetic" in card and "split: test" in card
    monkeypatch.chdir(tmp_path)
    from datasets import load_dataset

    assert len(load_dataset("trajloombench", "synthetic", split="test")) == 2


def test_resume_rebuilds_only_missing_shards(tmp_path):
    out = tmp_path / "b"
    m = build_trajloombench("synthetic", str(out), "syn", settings=S, counts={"train": 5}, progress=False)
    shards = [s["file"] for s in m["shards"]["train"]]
    assert len(shards) == 3  # 2 + 2 + 1
    cdir = out / "data" / "syn"
    mtimes = {f: (cdir / f).stat().st_mtime_ns for f in shards}
    # simulate a crash that lost the last shard (and its manifest entry)
    (cdir / shards[-1]).unlink()
    man = json.loads((cdir / "manifest.json").read_text())
    man["shards"]["train"] = man["shards"]["train"][:-1]
    (cdir / "manifest.json").write_text(json.dumps(man))
    m2 = build_trajloombench("synthetic", str(out), "syn", settings=S, counts={"train": 5}, progress=False)
    assert [s["file"] for s in m2["shards"]["train"]] == shards
    for f in shards[:-1]:
        assert (cdir / f).stat().st_mtime_ns == mtimes[f]  # finished shards untouched
    assert len(load(out, "syn", "train")) == 5
    with pytest.raises(ValueError, match="other settings"):
        build_trajloombench("synthetic", str(out), "syn", settings=BenchSettings(height=64, width=96, history_frames=4,
                            future_frames=4, stride=16), counts={"train": 1}, progress=False)


def _official_fixture(folder, n=2):
    folder.mkdir()
    clips = []
    for i in range(n):
        c = generate_clip(10 + i, SceneConfig(height=64, width=96, num_frames=12, stride=16))
        write_video(folder / f"vid{i}.mp4", c.frames, 8)
        np.savez(folder / f"vid{i}.npz", trajectories=c.tracks.transpose(1, 0, 2)[..., ::-1], vis=c.visibility.T)
        clips.append(c)
    (folder / "corrupt.mp4").write_bytes(b"\x00garbage" * 100)
    np.savez(folder / "corrupt.npz", trajectories=np.zeros((24, 12, 2)))
    return clips


def test_trajloom_official_source_with_explicit_axis_order(tmp_path):
    clips = _official_fixture(tmp_path / "official")
    out = tmp_path / "b"
    m = build_trajloombench("trajloom-official", str(out), "kubric", settings=S, input_path=str(tmp_path / "official"),
                            source_kwargs={"axis_order": "yx"}, progress=False)
    assert m["counts"] == {"test": 2}
    assert "official-corrupt" in m["skipped"] and "could not be decoded" in m["skipped"]["official-corrupt"]
    ds = load(out, "kubric", "test")
    np.testing.assert_allclose(ds[0]["tracks"], clips[0].tracks[:10], atol=1e-4)
    np.testing.assert_array_equal(ds[1]["visibility"], clips[1].visibility[:10])


def test_tapvid_source_sparse_points_and_rescaling(tmp_path):
    rng = np.random.default_rng(0)
    video = rng.integers(0, 255, (12, 32, 48, 3), dtype=np.uint8)
    pts = rng.uniform(0.1, 0.9, (7, 12, 2))  # normalised [0, 1], raster convention
    occ = rng.random((7, 12)) < 0.2
    with open(tmp_path / "davis.pkl", "wb") as fh:
        pickle.dump({"bear": {"video": video, "points": pts, "occluded": occ},
                     "short": {"video": video[:4], "points": pts[:, :4], "occluded": occ[:, :4]}}, fh)
    out = tmp_path / "b"
    m = build_trajloombench("tapvid", str(out), "davis", settings=S, input_path=str(tmp_path / "davis.pkl"), progress=False)
    assert m["counts"] == {"test": 1} and "tapvid-short" in m["skipped"]
    row = load(out, "davis", "test")[0]
    expected = pts.transpose(1, 0, 2)[:10] * np.array([96, 64]) - 0.5  # resized 48x32 -> 96x64
    np.testing.assert_allclose(np.asarray(row["tracks"], float), expected, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(row["visibility"]), ~occ.T[:10])
    assert row["stride"] == 0


def test_videos_source_tracks_with_the_embedded_tracker(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    clip = generate_clip(3, SceneConfig(height=64, width=96, num_frames=12, stride=16, camera_motion="pan_left",
                                        camera_speed="moderately", num_objects=(0, 0)))
    write_video(folder / "a.mp4", clip.frames, 8)
    (folder / "b.mp4").write_bytes(b"not a video")
    out = tmp_path / "b"
    m = build_trajloombench("videos", str(out), "mine", settings=S, input_path=str(folder), progress=False)
    assert m["counts"] == {"test": 1} and "video-b" in m["skipped"]
    row = load(out, "mine", "test")[0]
    err = np.linalg.norm(row["tracks"] - clip.tracks[:10], axis=-1)[clip.visibility[:10]]
    assert np.median(err) < 1.0
    assert "camera pans left" in row["caption"]


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="`source`"):
        build_trajloombench("kinetics", str(tmp_path), "x", settings=S)
    with pytest.raises(ValueError, match="needs `input_path`"):
        build_trajloombench("videos", str(tmp_path), "x", settings=S)
    with pytest.raises(FileNotFoundError, match="`input`"):
        build_trajloombench("videos", str(tmp_path), "x", settings=S, input_path=str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="divisible by the grid stride"):
        build_trajloombench("synthetic", str(tmp_path), "x", settings=BenchSettings(height=70, width=96, stride=16))
    with pytest.raises(ValueError, match="`config_name`"):
        build_trajloombench("synthetic", str(tmp_path), "../x", settings=S)


def test_rebuilt_in_place_bench_is_never_read_from_a_stale_cache(tmp_path):
    import shutil

    from trajloom_hf.data.trajloombench import load_trajloombench

    out = tmp_path / "bench"
    build_trajloombench("synthetic", str(out), "syn", settings=S, counts={"test": 2}, progress=False)
    assert load_trajloombench(str(out), "syn", "test")[0]["tracks"].shape == (10, 24, 2)
    load(out, "syn", "test")  # populate the datasets cache
    shutil.rmtree(out)
    bigger = BenchSettings(height=80, width=96, history_frames=5, future_frames=5, stride=16, fps=8, shard_size=2)
    build_trajloombench("synthetic", str(out), "syn", settings=bigger, counts={"test": 2}, progress=False)
    assert load_trajloombench(str(out), "syn", "test")[0]["tracks"].shape == (10, 30, 2)
    with pytest.raises(ValueError, match="no 'train' shards"):
        load_trajloombench(str(out), "syn", "train")
