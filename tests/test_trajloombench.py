import json
import os
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
    # no placeholder links in the card (it once linked to a bare https://github.com/)
    assert "](https://github.com/)" not in card and "trajloom bench build" in card
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


def _rows(path, config, split, cached=True):
    from trajloom_hf.data.trajloombench import load_trajloombench

    # load_dataset may serve a folder rebuilt in place from its cache; load_trajloombench reads the shards themselves
    ds = load(path, config, split) if cached else load_trajloombench(str(path), config, split)
    return [(r["clip_id"], r["tracks"], r["visibility"], r["query_xy"], bytes(r["video"])) for r in ds]


def _assert_same_rows(a, b):
    assert [r[0] for r in a] == [r[0] for r in b]
    for ra, rb in zip(a, b):
        for xa, xb in zip(ra[1:4], rb[1:4]):
            np.testing.assert_array_equal(xa, xb)
        assert ra[4] == rb[4]


def test_resume_repairs_deleted_truncated_and_unrecorded_shards(tmp_path):
    from trajloom_hf.data.trajloombench import load_trajloombench

    out = tmp_path / "b"
    m = build_trajloombench("synthetic", str(out), "syn", settings=S, counts={"train": 5}, progress=False)
    files = [s["file"] for s in m["shards"]["train"]]
    cdir = out / "data" / "syn"
    # read the shards directly: `load_dataset` may answer from a cache keyed on the path (another run's tmp folder)
    reference = _rows(out, "syn", "train", cached=False)
    mtimes = {f: (cdir / f).stat().st_mtime_ns for f in files}
    # a shard lost after it was recorded (manifest intact): rebuilt under its own name, the others untouched
    (cdir / files[1]).unlink()
    m2 = build_trajloombench("synthetic", str(out), "syn", settings=S, counts={"train": 5}, progress=False)
    assert [s["file"] for s in m2["shards"]["train"]] == files and m2["counts"] == {"train": 5}
    assert all((cdir / f).stat().st_mtime_ns == mtimes[f] for f in (files[0], files[2]))
    assert len(load_trajloombench(str(out), "syn", "train")) == 5
    # a truncated shard and a shard file no record names (crash between writing and recording it)
    (cdir / files[0]).write_bytes((cdir / files[0]).read_bytes()[:64])
    (cdir / "train-00007-deadbeef.parquet").write_bytes((cdir / files[2]).read_bytes())
    build_trajloombench("synthetic", str(out), "syn", settings=S, counts={"train": 5}, progress=False)
    assert sorted(p.name for p in cdir.glob("*.parquet")) == sorted(files)
    _assert_same_rows(_rows(out, "syn", "train", cached=False), reference)  # bit-identical to the first build


def test_config_keeps_its_source_seed_and_clip_count(tmp_path):
    out = tmp_path / "b"
    build_trajloombench("synthetic", str(out), "syn", settings=S, counts={"test": 2}, progress=False)
    with pytest.raises(ValueError, match="seed=0, not 7"):
        build_trajloombench("synthetic", str(out), "syn", settings=S, counts={"test": 2}, seed=7, progress=False)
    with pytest.raises(ValueError, match="more than the 1 asked"):
        build_trajloombench("synthetic", str(out), "syn", settings=S, counts={"test": 1}, progress=False)
    (tmp_path / "v").mkdir()
    with pytest.raises(ValueError, match="source='synthetic', not 'videos'"):
        build_trajloombench("videos", str(out), "syn", settings=S, input_path=str(tmp_path / "v"), progress=False)
    m = build_trajloombench("synthetic", str(out), "syn", settings=S, counts={"test": 3}, progress=False)  # growing is fine
    assert m["counts"] == {"test": 3} and len(load(out, "syn", "test")) == 3


def test_official_source_skips_bad_track_files_and_masks_out_of_frame_points(tmp_path):
    import io

    folder = tmp_path / "official"
    folder.mkdir()
    c = generate_clip(21, SceneConfig(height=64, width=96, num_frames=12, stride=16))
    for name in ("good", "truncated", "nokey", "outside"):
        write_video(folder / f"{name}.mp4", c.frames, 8)
    tracks_nt = c.tracks.transpose(1, 0, 2)
    np.savez(folder / "good.npz", tracks=tracks_nt, visibility=c.visibility.T)
    buf = io.BytesIO()
    np.savez(buf, tracks=tracks_nt, visibility=c.visibility.T)
    (folder / "truncated.npz").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    np.savez(folder / "nokey.npz", tracks=tracks_nt)  # explicit --visibility-key missing: never "all visible"
    shifted = tracks_nt.copy()
    shifted[:, 6:, 0] += 200.0  # leaves the 96 px frame from frame 6 on
    np.savez(folder / "outside.npz", tracks=shifted, visibility=np.ones_like(c.visibility.T))
    m = build_trajloombench("trajloom-official", str(tmp_path / "b"), "k", settings=S, input_path=str(folder),
                            source_kwargs={"visibility_key": "visibility"}, progress=False)
    assert m["counts"] == {"test": 2}
    assert "unreadable track file" in m["skipped"]["official-truncated"]
    assert "no visibility key 'visibility'" in m["skipped"]["official-nokey"]
    rows = {r["clip_id"]: r for r in load(tmp_path / "b", "k", "test")}
    np.testing.assert_array_equal(rows["official-good"]["tracks"], c.tracks[:10])
    np.testing.assert_array_equal(rows["official-good"]["visibility"], c.visibility[:10])
    vis = rows["official-outside"]["visibility"]
    assert vis[:6].all() and not vis[6:].any()


def test_split_name_is_checked(tmp_path):
    (tmp_path / "v").mkdir()
    with pytest.raises(ValueError, match="`split`"):
        build_trajloombench("videos", str(tmp_path / "b"), "x", settings=S, input_path=str(tmp_path / "v"), split="my-test")


def test_cli_build_records_a_command_that_reproduces_the_build(tmp_path, monkeypatch, capsys):
    import shlex

    from trajloom_hf.cli import main

    monkeypatch.chdir(tmp_path)
    argv = ["bench", "build", "--source", "synthetic", "--out", "trajloombench", "--config", "syn", "--height", "64",
            "--width", "96", "--stride", "16", "--history-frames", "3", "--future-frames", "3", "--shard-size", "2",
            "--num-train", "1", "--num-validation", "0", "--num-test", "2"]
    assert main(argv) == 0
    man = json.loads((tmp_path / "trajloombench" / "data" / "syn" / "manifest.json").read_text())
    assert man["counts"] == {"train": 1, "test": 2}
    cmd = shlex.split(man["command"])
    assert cmd[:3] == ["trajloom", "bench", "build"] and "--history-frames" in cmd
    assert man["command"] in (tmp_path / "trajloombench" / "README.md").read_text()
    shards = sorted(p.name for p in (tmp_path / "trajloombench" / "data" / "syn").glob("*.parquet"))
    assert main(cmd[1:]) == 0  # the recorded command is complete: same settings and seed, nothing to rebuild
    assert sorted(p.name for p in (tmp_path / "trajloombench" / "data" / "syn").glob("*.parquet")) == shards
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.mp4").write_bytes(b"\x00garbage" * 10)
    assert main(["bench", "build", "--source", "videos", "--input", "junk", "--out", "trajloombench", "--config", "v",
                 "--height", "64", "--width", "96", "--stride", "16", "--history-frames", "3", "--future-frames", "3"]) == 1
    assert "skipped video-x" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["bench", "build", "--source", "kinetics", "--out", "x", "--config", "y"])


def test_synthetic_source_tracked_with_the_embedded_tracker(tmp_path):
    """The paper's protocol (§4.1.2): tracks come from a tracker run on the frames, synthetic data included."""
    out = tmp_path / "b"
    m = build_trajloombench("synthetic", str(out), "tracked", settings=S, counts={"test": 2},
                            source_kwargs={"tracks": "optical_flow"}, progress=False)
    assert m["source_options"] == {"tracks": "optical_flow"}
    rows = load(out, "tracked", "test")
    clip = generate_clip(2_000_000, SceneConfig(height=64, width=96, num_frames=10, stride=16))
    tracked = rows[0]["tracks"]
    assert tracked.shape == clip.tracks.shape and not np.array_equal(tracked, clip.tracks)  # really tracked
    np.testing.assert_array_equal(tracked[0], clip.tracks[0])  # queried on the grid at frame 0
    err = np.linalg.norm(tracked - clip.tracks, axis=-1)[clip.visibility & rows[0]["visibility"]]
    assert np.median(err) < 1.5  # a tracker, not noise
    assert "`optical_flow` tracker run on the rendered frames" in (out / "README.md").read_text()
    with pytest.raises(ValueError, match="source_options"):  # a config never mixes analytic and tracked clips
        build_trajloombench("synthetic", str(out), "tracked", settings=S, counts={"test": 3}, progress=False)
    with pytest.raises(ValueError, match="`tracks` must be 'analytic' or one of"):
        build_trajloombench("synthetic", str(out), "x", settings=S, counts={"test": 1}, source_kwargs={"tracks": "raft"},
                            progress=False)


def _tapvid_pickle(path, payload=None):
    rng = np.random.default_rng(0)
    item = {"video": rng.integers(0, 255, (12, 32, 48, 3), dtype=np.uint8), "points": rng.uniform(0.1, 0.9, (7, 12, 2)),
            "occluded": rng.random((7, 12)) < 0.2}
    if payload is not None:
        item["extra"] = payload
    with open(path, "wb") as fh:
        pickle.dump({"bear": item}, fh)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_tapvid_pickle_with_code_is_refused_unless_trusted(tmp_path, capsys, monkeypatch):
    from trajloom_hf.cli import main

    monkeypatch.delenv("TRAJLOOM_DEBUG")  # what a person sees: one line, exit code 2
    from trajloom_hf.safe_unpickle import UntrustedPickleError

    marker = tmp_path / "ran"
    _tapvid_pickle(tmp_path / "evil.pkl", _RunsCode(marker))
    with pytest.raises(UntrustedPickleError, match="--trust-pickle"):
        build_trajloombench("tapvid", str(tmp_path / "b"), "davis", settings=S, input_path=str(tmp_path / "evil.pkl"),
                            progress=False)
    assert not marker.exists() and not list((tmp_path / "b" / "data" / "davis").glob("*.parquet"))
    argv = ["bench", "build", "--source", "tapvid", "--input", str(tmp_path / "evil.pkl"), "--out", str(tmp_path / "c"),
            "--config", "davis", "--height", "64", "--width", "96", "--stride", "16", "--history-frames", "5",
            "--future-frames", "5"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--trust-pickle" in err and "Traceback" not in err and not marker.exists()
    # the explicit opt-in loads it (and so runs what it names); the recorded command says so and stays runnable
    assert main(argv + ["--trust-pickle"]) == 0 and marker.exists()
    man = json.loads((tmp_path / "c" / "data" / "davis" / "manifest.json").read_text())
    assert man["command"].endswith("--trust-pickle") and "trust_pickle" not in man["source_options"]
    # a plain TAP-Vid pickle needs no trust
    _tapvid_pickle(tmp_path / "davis.pkl")
    m = build_trajloombench("tapvid", str(tmp_path / "d"), "davis", settings=S, input_path=str(tmp_path / "davis.pkl"),
                            progress=False)
    assert m["counts"] == {"test": 1}


def test_build_never_deletes_or_rewrites_files_it_did_not_write(tmp_path):
    out = tmp_path / "project"
    (out / "data" / "default").mkdir(parents=True)
    theirs = out / "data" / "default" / "train-00000-of-00001.parquet"
    theirs.write_bytes(b"their data")
    with pytest.raises(ValueError, match="holds files no TrajLoomBench build wrote"):
        build_trajloombench("synthetic", str(out), "default", settings=S, counts={"test": 2}, progress=False)
    assert theirs.read_bytes() == b"their data"
    (out / "README.md").write_text("# my project\n")
    with pytest.raises(ValueError, match="not a TrajLoomBench dataset card"):
        build_trajloombench("synthetic", str(out), "syn", settings=S, counts={"test": 2}, progress=False)
    assert (out / "README.md").read_text() == "# my project\n" and not (out / "data" / "syn").exists()
    # a file of theirs inside one of our config folders is refused as well, not pruned
    ours = tmp_path / "b"
    build_trajloombench("synthetic", str(ours), "syn", settings=S, counts={"test": 2}, progress=False)
    note = ours / "data" / "syn" / "notes.txt"
    note.write_text("keep me")
    with pytest.raises(ValueError, match="notes.txt"):
        build_trajloombench("synthetic", str(ours), "syn", settings=S, counts={"test": 2}, progress=False)
    assert note.read_text() == "keep me"
    note.unlink()
    mode = (ours / "data" / "syn").stat().st_mode
    build_trajloombench("synthetic", str(ours), "syn", settings=S, counts={"test": 3}, progress=False)
    assert (ours / "data" / "syn").stat().st_mode == mode  # folder permissions untouched


def test_corrupt_manifest_and_bad_settings_are_named_before_any_work(tmp_path):
    out = tmp_path / "b"
    build_trajloombench("synthetic", str(out), "syn", settings=S, counts={"test": 2}, progress=False)
    (out / "data" / "syn" / "manifest.json").write_text('{"shards": ')
    with pytest.raises(ValueError, match=r"manifest .*manifest.json' is not valid JSON .*: the manifest is corrupt"):
        build_trajloombench("synthetic", str(out), "syn", settings=S, counts={"test": 2}, progress=False)
    fresh = tmp_path / "fresh"
    for bad, match in ((dict(fps=0.0), "`fps`"), (dict(fps=float("nan")), "`fps`"), (dict(history_frames=2.5), "history_frames")):
        with pytest.raises((ValueError, TypeError), match=match):
            build_trajloombench("synthetic", str(fresh), "syn", settings=BenchSettings(**{**S.__dict__, **bad}),
                                counts={"test": 2}, progress=False)
    with pytest.raises(ValueError, match=r"--num-train\) must be a non-negative integer, got -3"):
        build_trajloombench("synthetic", str(fresh), "syn", settings=S, counts={"train": -3}, progress=False)
    assert not fresh.exists()  # refused before anything was written


def test_swapped_axes_and_invisible_clips_are_skipped_with_the_reason(tmp_path):
    folder = tmp_path / "official"
    folder.mkdir()
    c = generate_clip(21, SceneConfig(height=64, width=96, num_frames=12, stride=16))
    for name in ("good", "yx", "hidden"):
        write_video(folder / f"{name}.mp4", c.frames, 8)
    np.savez(folder / "good.npz", tracks=c.tracks.transpose(1, 0, 2), visibility=c.visibility.T)
    np.savez(folder / "yx.npz", tracks=c.tracks[..., ::-1].transpose(1, 0, 2), visibility=c.visibility.T)  # (y, x)
    np.savez(folder / "hidden.npz", tracks=c.tracks.transpose(1, 0, 2), visibility=np.zeros_like(c.visibility.T))
    m = build_trajloombench("trajloom-official", str(tmp_path / "b"), "k", settings=S, input_path=str(folder),
                            progress=False)
    assert m["counts"] == {"test": 1}
    assert "off the stride-16 query grid" in m["skipped"]["official-yx"]
    assert "no point is visible in any frame" in m["skipped"]["official-hidden"]
    # read with the right axis order, the same file is accepted
    m = build_trajloombench("trajloom-official", str(tmp_path / "c"), "k", settings=S, input_path=str(folder),
                            source_kwargs={"axis_order": "yx"}, progress=False)
    assert "official-yx" in {cid for s in m["shards"]["test"] for cid in s["clip_ids"]}
