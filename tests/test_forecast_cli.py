import json
import os
import stat

import numpy as np
import pytest

from tests.test_pipeline_trajloom import H, S, T, W, tiny_pipeline
from trajloom_hf.cli import main
from trajloom_hf.data.synthetic import SceneConfig, generate_clip
from trajloom_hf.track_files import read_track_file
from trajloom_hf.video_io import write_video


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("fc")
    clip = generate_clip(4, SceneConfig(height=H, width=W, num_frames=12, stride=S))
    write_video(d / "clip.mp4", clip.frames, 8)
    np.savez(d / "tracks.npz", tracks=clip.tracks, vis=clip.visibility)  # [T, N, 2] layout
    tiny_pipeline().save_pretrained(d / "pipe")
    return d, clip


def test_forecast_with_tracks_file_and_official_layout(setup):
    d, clip = setup
    out = d / "out"
    assert main(["forecast", str(d / "clip.mp4"), "--pipeline", str(d / "pipe"), "--tracks", str(d / "tracks.npz"),
                 "--layout", "TN", "--num-samples", "2", "--steps", "2", "--out", str(out), "--official-layout"]) == 0
    f = np.load(out / "forecast.npz")
    assert f["future_tracks"].shape == (2, T, 24, 2) and f["future_visibility"].dtype == bool
    np.testing.assert_allclose(f["history_tracks"], clip.tracks[:T], atol=1e-5)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["history_frames"] == T and meta["history_tracks_from"].startswith("file")
    for name in ("forecast.mp4", "forecast.gif", "forecast_montage.png", "official/pred_tracks.npy", "official/meta.json"):
        assert (out / name).is_file(), name
    # the file has 12 frames: 9 history + 3 ground-truth future frames, so the official files hold pred_len = 3
    off = out / "official"
    assert np.load(off / "pred_tracks.npy").shape == (3, 24, 2) and np.load(off / "pred_visibility.npy").dtype == np.uint8
    np.testing.assert_allclose(np.load(off / "pred_tracks.npy"), f["future_tracks"][0, :3])
    np.testing.assert_allclose(np.load(off / "gt_tracks.npy"), clip.tracks[T:], atol=1e-5)
    inb = ((clip.tracks[T:] >= 0) & (clip.tracks[T:] <= (W - 1, H - 1))).all(-1)
    np.testing.assert_array_equal(np.load(off / "gt_visibility.npy"), clip.visibility[T:] & inb)
    q = np.load(off / "query_xy.npy")
    assert q.dtype == np.int64 and (q[1] == (S, 0)).all()
    np.testing.assert_array_equal(np.load(off / "grid_idx.npy"), q[:, 1] * W + q[:, 0])
    om = json.loads((off / "meta.json").read_text())
    assert (om["H"], om["W"], om["cond_index"], om["pred_len"], om["grid_stride"]) == (H, W, T, 3, S)
    np.testing.assert_allclose(f["gt_future_tracks"], clip.tracks[T:], atol=1e-5)
    # running again replaces the previous output
    assert main(["forecast", str(d / "clip.mp4"), "--pipeline", str(d / "pipe"), "--tracks", str(d / "tracks.npz"),
                 "--layout", "TN", "--steps", "1", "--out", str(out)]) == 0
    assert np.load(out / "forecast.npz")["future_tracks"].shape == (1, T, 24, 2) and not (out / "official").exists()


def test_forecast_tracks_the_video_when_no_tracks_are_given(setup):
    d, _ = setup
    assert main(["forecast", str(d / "clip.mp4"), "--pipeline", str(d / "pipe"), "--steps", "1", "--out", str(d / "o2")]) == 0
    assert "tracker" in json.loads((d / "o2" / "meta.json").read_text())["history_tracks_from"]


def test_errors_leave_no_partial_output(setup):
    d, _ = setup
    with pytest.raises(FileNotFoundError, match="nope' does not exist"):  # not "has no model_index.json"
        main(["forecast", str(d / "clip.mp4"), "--pipeline", str(d / "nope"), "--out", str(d / "bad")])
    with pytest.raises(ValueError, match="could not be decoded"):
        (d / "junk.mp4").write_bytes(b"junk" * 50)
        main(["forecast", str(d / "junk.mp4"), "--pipeline", str(d / "pipe"), "--out", str(d / "bad")])
    with pytest.raises(ValueError, match="`tracks_key`"):
        main(["forecast", str(d / "clip.mp4"), "--pipeline", str(d / "pipe"), "--tracks", str(d / "tracks.npz"),
              "--tracks-key", "traj", "--out", str(d / "bad")])
    assert not (d / "bad").exists()
    assert not [p for p in d.iterdir() if p.name.startswith(".bad")]


def test_read_track_file_official_layout(tmp_path):
    tr = np.random.default_rng(0).uniform(0, 50, (6, 4, 2))
    np.savez(tmp_path / "a.npz", trajectories=tr, occluded=np.zeros((6, 4), bool))
    t, v = read_track_file(tmp_path / "a.npz", visibility_key="occluded", axis_order="yx")
    assert t.shape == (4, 6, 2) and v.all()  # occlusion flags inverted
    np.testing.assert_allclose(t[:, 0], tr[0][:, ::-1], atol=1e-5)


def test_tracks_of_another_frame_size_need_tracks_size(setup):
    d, clip = setup
    np.savez(d / "big.npz", trajectory=(clip.tracks * 2).transpose(1, 0, 2), visibility=clip.visibility.T)  # official NT
    args = ["forecast", str(d / "clip.mp4"), "--pipeline", str(d / "pipe"), "--tracks", str(d / "big.npz"), "--steps", "1"]
    with pytest.raises(ValueError, match="off the stride-16 query grid.*--tracks-size 64x96"):
        main(args + ["--out", str(d / "bad_size")])
    assert main(args + ["--tracks-size", f"{2 * H}x{2 * W}", "--out", str(d / "big")]) == 0
    np.testing.assert_allclose(np.load(d / "big" / "forecast.npz")["history_tracks"], clip.tracks[:T], atol=1e-4)
    with pytest.raises(ValueError, match="axis order"):  # swapped coordinates are caught the same way
        main(args + ["--tracks-size", f"{2 * H}x{2 * W}", "--axis-order", "yx", "--out", str(d / "bad_axis")])
    assert not (d / "bad_size").exists() and not (d / "bad_axis").exists()


def test_bad_arguments_name_themselves_and_leave_nothing(setup, tmp_path):
    import shutil

    d, _ = setup
    base = [str(d / "clip.mp4"), "--tracks", str(d / "tracks.npz"), "--layout", "TN", "--steps", "1"]
    keep = tmp_path / "keep"
    keep.mkdir()
    (keep / "forecast.npz").write_text("mine")  # a file of the same name that no forecast wrote
    with pytest.raises(ValueError, match="`--out`.*already holds forecast.npz, which this command did not write"):
        main(["forecast", *base, "--pipeline", str(d / "pipe"), "--out", str(keep)])
    assert (keep / "forecast.npz").read_text() == "mine" and sorted(p.name for p in keep.iterdir()) == ["forecast.npz"]
    shutil.copytree(d / "pipe", tmp_path / "pipe")
    shutil.rmtree(tmp_path / "pipe" / "transformer")
    with pytest.raises(FileNotFoundError, match="`--pipeline`.*`transformer`"):
        main(["forecast", *base, "--pipeline", str(tmp_path / "pipe"), "--out", str(tmp_path / "o")])
    with pytest.raises(ValueError, match="`--history-frames` 5 is shorter"):
        main(["forecast", *base, "--pipeline", str(d / "pipe"), "--history-frames", "5", "--out", str(tmp_path / "o")])
    with pytest.raises(ValueError, match="`video` has 12 frames, the history needs 20"):
        main(["forecast", *base, "--pipeline", str(d / "pipe"), "--history-frames", "20", "--out", str(tmp_path / "o")])
    with pytest.raises(FileNotFoundError, match="`video`"):
        main(["forecast", str(tmp_path / "none.mp4"), "--pipeline", str(d / "pipe"), "--out", str(tmp_path / "o")])
    with pytest.raises(ValueError, match="`--num-samples`"):
        main(["forecast", *base, "--pipeline", str(d / "pipe"), "--num-samples", "0", "--out", str(tmp_path / "o")])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep", "pipe"]


def test_read_track_file_npy_and_trailing_visibility_axis(tmp_path):
    tr = np.random.default_rng(1).uniform(0, 50, (5, 7, 2)).astype(np.float32)  # [N, T, 2]
    np.save(tmp_path / "t.npy", tr)
    t, v = read_track_file(tmp_path / "t.npy")
    assert t.shape == (7, 5, 2) and v.all()
    vis = np.ones((5, 7, 1), np.float32)
    vis[2, 3] = 0
    tr[1, 4] = np.nan
    np.savez(tmp_path / "v.npz", tracks=tr, visibilities=vis)
    t, v = read_track_file(tmp_path / "v.npz")
    assert not v[3, 2] and not v[4, 1] and v.sum() == 33 and np.isfinite(t).all()
    with pytest.raises(ValueError, match="`tracks_key`"):
        read_track_file(tmp_path / "t.npy", tracks_key="x")


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_forecast_into_a_user_folder_touches_only_its_own_files(setup, tmp_path, monkeypatch):
    """Issue 15 §1: `--out .` in a project folder must not delete the folder's other files nor change its mode."""
    d, _ = setup
    proj = tmp_path / "project"
    (proj / "src").mkdir(parents=True)
    (proj / "notes.txt").write_text("mine")
    (proj / "src" / "code.py").write_text("x = 1")
    proj.chmod(0o751)
    base = ["forecast", str(d / "clip.mp4"), "--pipeline", str(d / "pipe"), "--tracks", str(d / "tracks.npz"),
            "--layout", "TN", "--steps", "1"]
    monkeypatch.chdir(proj)
    assert main(base + ["--out", ".", "--official-layout"]) == 0
    meta = json.loads((proj / "meta.json").read_text())
    assert meta["written_by"] == "trajloom forecast"
    assert "forecast.npz" in meta["files"] and "official/pred_tracks.npy" in meta["files"]
    file_mode = 0o666 & ~_umask()
    for name in meta["files"]:
        assert stat.S_IMODE((proj / name).stat().st_mode) == file_mode, name
    assert stat.S_IMODE(proj.stat().st_mode) == 0o751
    (proj / "official" / "my_notes.txt").write_text("also mine")  # a user file inside our subfolder
    # a second forecast over it, without the official files: they go, everything of the user's stays
    assert main(base + ["--out", str(proj)]) == 0
    assert (proj / "notes.txt").read_text() == "mine" and (proj / "src" / "code.py").read_text() == "x = 1"
    assert stat.S_IMODE(proj.stat().st_mode) == 0o751
    assert sorted(p.name for p in (proj / "official").iterdir()) == ["my_notes.txt"]
    assert sorted(p.name for p in proj.iterdir()) == ["forecast.gif", "forecast.mp4", "forecast.npz",
                                                     "forecast_montage.png", "meta.json", "notes.txt", "official", "src"]
    assert json.loads((proj / "meta.json").read_text())["num_samples"] == 1


def test_a_forged_manifest_cannot_delete_files_outside_the_folder(setup, tmp_path):
    d, _ = setup
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (out / "meta.json").write_text(json.dumps({"written_by": "trajloom forecast",
                                               "files": ["../victim.txt", str(victim), "meta.json"]}))
    assert main(["forecast", str(d / "clip.mp4"), "--pipeline", str(d / "pipe"), "--tracks", str(d / "tracks.npz"),
                 "--layout", "TN", "--steps", "1", "--out", str(out)]) == 0
    assert victim.read_text() == "keep me"
    assert "../victim.txt" not in json.loads((out / "meta.json").read_text())["files"]


def test_a_wide_video_keeps_its_aspect_ratio_and_tracks_come_back_in_its_pixels(setup, tmp_path):
    """Issue 18: a video of another aspect ratio was squashed to the model frame and the tracks came back only in
    model pixels. Default (tracked here): centre crop; the tracks also in the video's own pixels."""
    d, clip = setup
    wide = np.zeros((12, H, 2 * W, 3), np.uint8)  # the clip in the middle, black sides: a 3:1 video
    wide[:, :, W // 2 : W // 2 + W] = clip.frames
    write_video(tmp_path / "wide.mp4", wide, 8)
    base = ["forecast", str(tmp_path / "wide.mp4"), "--pipeline", str(d / "pipe"), "--steps", "1"]
    assert main(base + ["--out", str(tmp_path / "crop")]) == 0
    meta = json.loads((tmp_path / "crop" / "meta.json").read_text())
    assert meta["frame_fit"]["fit"] == "crop" and meta["frame_fit"]["view_box_xywh"] == [W // 2, 0, W, H]
    f = np.load(tmp_path / "crop" / "forecast.npz")
    np.testing.assert_allclose(f["history_tracks_input_px"], f["history_tracks"] + (W // 2, 0), atol=1e-4)
    np.testing.assert_allclose(f["future_tracks_input_px"], f["future_tracks"] + (W // 2, 0), atol=1e-4)
    # the cropped view is the clip itself: the tracker follows the clip's own points
    vis = f["history_visibility"] & clip.visibility[:T]
    assert np.median(np.linalg.norm(f["history_tracks"] - clip.tracks[:T], axis=-1)[vis]) < 1.0
    assert main(base + ["--fit", "pad", "--out", str(tmp_path / "pad")]) == 0
    fit = json.loads((tmp_path / "pad" / "meta.json").read_text())["frame_fit"]
    assert fit["view_box_xywh"] == [0, -H // 2, 2 * W, 2 * H] and fit["scale_xy"] == [0.5, 0.5]
    f = np.load(tmp_path / "pad" / "forecast.npz")
    np.testing.assert_allclose(f["future_tracks_input_px"], (f["future_tracks"] - (0, H // 4)) * 2, atol=1e-4)


def test_a_scene_cut_in_the_history_warns_and_start_frame_skips_it(setup, tmp_path):
    d, clip = setup
    other = 255 - generate_clip(7, SceneConfig(height=H, width=W, num_frames=12, stride=S)).frames
    write_video(tmp_path / "cut.mp4", np.concatenate([clip.frames[:5], other]), 8)  # a cut at frame 5
    base = ["forecast", str(tmp_path / "cut.mp4"), "--pipeline", str(d / "pipe"), "--steps", "1"]
    with pytest.warns(UserWarning, match=r"scene cut at history frame 5 .*`--start-frame 5`"):
        assert main(base + ["--out", str(tmp_path / "a")]) == 0
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert [c["history_frame"] for c in meta["history_scene_cuts"]] == [5]
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*scene cut.*")
        assert main(base + ["--start-frame", "5", "--out", str(tmp_path / "b")]) == 0
    meta = json.loads((tmp_path / "b" / "meta.json").read_text())
    assert meta["start_frame"] == 5 and meta["history_scene_cuts"] == [] and meta["history_track_loss"] == []
    with pytest.raises(ValueError, match="`video` has 12 frames from `--start-frame` 5, the history needs 13"):
        main(base + ["--start-frame", "5", "--history-frames", "13", "--out", str(tmp_path / "c")])
    with pytest.raises(ValueError, match="`--start-frame` must be >= 0"):
        main(base + ["--start-frame", "-1", "--out", str(tmp_path / "c")])
    assert not (tmp_path / "c").exists()


def test_a_text_file_is_not_a_video(setup, tmp_path):
    d, _ = setup
    (tmp_path / "notes.txt").write_text("\n".join(f"line {i} of a text file" for i in range(300)))
    with pytest.raises(ValueError, match="is a text file, not a video"):
        main(["forecast", str(tmp_path / "notes.txt"), "--pipeline", str(d / "pipe"), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def test_wan_move_export_layout(setup, tmp_path):
    """Issue 16 §2: per sample, [1, 81, N, 2] float32 px and [1, 81, N] bool as Wan-Move's generate.py reads them
    (--image, --track, --track_visibility), history + forecast on one time axis, frame 0 = the query grid."""
    from PIL import Image

    from trajloom_hf.track_export import wan_move_frame_for, wan_move_frame_size

    d, clip = setup
    base = ["forecast", str(d / "clip.mp4"), "--pipeline", str(d / "pipe"), "--tracks", str(d / "tracks.npz"),
            "--layout", "TN", "--steps", "1", "--num-samples", "2", "--export", "wan-move"]
    assert main(base + ["--out", str(tmp_path / "w")]) == 0
    out = tmp_path / "w"
    f = np.load(out / "forecast.npz")
    meta = json.loads((out / "meta.json").read_text())["wan_move"]
    gh, gw = meta["frame_size"]
    # Wan-Move's own rule turns a 480x832 image into a 464x832 video; the export is made at that frame
    assert (gh, gw) == (464, 832) == wan_move_frame_size((gh, gw)) == wan_move_frame_for((480, 832))
    with Image.open(out / "wan-move" / "first_frame.png") as im:
        assert im.size == (gw, gh)
    scale = np.array([gw / W, gh / H])  # --tracks: the whole frame is stretched (the file's grid covers it)
    for k in range(2):
        tr = np.load(out / "wan-move" / f"sample_{k + 1}_tracks.npy")
        vi = np.load(out / "wan-move" / f"sample_{k + 1}_visibility.npy")
        assert tr.shape == (1, 81, 24, 2) and tr.dtype == np.float32
        assert vi.shape == (1, 81, 24) and vi.dtype == bool
        np.testing.assert_allclose(tr[0, 0], f["query_xy"] * scale, atol=1e-3)  # frame 0: the query points
        np.testing.assert_allclose(tr[0, T : 2 * T], f["future_tracks"][k] * scale, atol=1e-3)
        assert vi[0, 0].all() and not vi[0, 2 * T :].any()  # 9 + 9 real frames, then uncontrolled
        inside = (tr[0, :2 * T] >= 0).all(-1) & (tr[0, :2 * T] < (gw, gh)).all(-1)
        np.testing.assert_array_equal(vi[0, :2 * T], np.concatenate([f["history_visibility"],
                                                                      f["future_visibility"][k]]) & inside)
    assert meta["frames_from_tracks"] == 2 * T and "--track wan-move/sample_1_tracks.npy" in meta["command"]
    # from the last observed frame, at another size and length
    assert main(base + ["--wan-move-from", "last", "--wan-move-size", "832x480", "--wan-move-frames", "5",
                        "--out", str(tmp_path / "last")]) == 0
    tr = np.load(tmp_path / "last" / "wan-move" / "sample_1_tracks.npy")
    m = json.loads((tmp_path / "last" / "meta.json").read_text())["wan_move"]
    assert tr.shape == (1, 5, 24, 2) and m["frame_size"] == [832, 480] and m["first_video_frame"] == T - 1
    np.testing.assert_allclose(tr[0, 0], f["history_tracks"][-1] * np.array([480 / W, 832 / H]), atol=1e-3)
    with pytest.raises(ValueError, match="`--wan-move-frames` must be 4n \\+ 1"):
        main(base + ["--wan-move-frames", "80", "--out", str(tmp_path / "bad")])
    assert not (tmp_path / "bad").exists()


def test_wan_move_export_of_a_tracked_wide_video_follows_the_crop(setup, tmp_path):
    d, clip = setup
    wide = np.zeros((12, H, 2 * W, 3), np.uint8)
    wide[:, :, W // 2 : W // 2 + W] = clip.frames
    write_video(tmp_path / "wide.mp4", wide, 8)
    assert main(["forecast", str(tmp_path / "wide.mp4"), "--pipeline", str(d / "pipe"), "--steps", "1",
                 "--export", "wan-move", "--out", str(tmp_path / "o")]) == 0
    f = np.load(tmp_path / "o" / "forecast.npz")
    view = json.loads((tmp_path / "o" / "meta.json").read_text())["wan_move"]["view"]
    assert view["fit"] == "crop" and view["output_size"] == [464, 832]
    tr = np.load(tmp_path / "o" / "wan-move" / "sample_1_tracks.npy")
    expect = f["history_tracks_input_px"][0] * view["scale_xy"] + view["offset_xy"]  # same scene points
    np.testing.assert_allclose(tr[0, 0], expect, atol=1e-3)


def test_comfyui_tracks_export(setup, tmp_path):
    from trajloom_hf.track_export import comfyui_tracks

    d, _ = setup
    assert main(["forecast", str(d / "clip.mp4"), "--pipeline", str(d / "pipe"), "--tracks", str(d / "tracks.npz"),
                 "--layout", "TN", "--steps", "1", "--export", "wan-move", "--export", "comfyui",
                 "--out", str(tmp_path / "o")]) == 0
    coords = json.loads((tmp_path / "o" / "comfyui" / "sample_1_tracks.json").read_text())
    tr = np.load(tmp_path / "o" / "wan-move" / "sample_1_tracks.npy")
    vi = np.load(tmp_path / "o" / "wan-move" / "sample_1_visibility.npy")
    keep = np.flatnonzero(vi[0, : 2 * T].all(0))
    assert len(coords) == len(keep) > 0 and all(len(c) == 2 * T for c in coords)
    assert coords[0][0].keys() == {"x", "y"}
    np.testing.assert_allclose([[p["x"], p["y"]] for p in coords[0]], tr[0, : 2 * T, keep[0]], atol=1e-3)
    assert (tmp_path / "o" / "comfyui" / "first_frame.png").is_file()
    assert comfyui_tracks(tr, np.zeros_like(vi), 2 * T) == []

def test_official_compat_flag(setup):
    """--official-compat runs the pipeline's official_compat mode (seed 42 on the device unless --seed)."""
    from trajloom_hf.pipelines import TrajLoomPipeline

    d, clip = setup
    out = d / "compat"
    assert main(["forecast", str(d / "clip.mp4"), "--pipeline", str(d / "pipe"), "--tracks", str(d / "tracks.npz"),
                 "--layout", "TN", "--steps", "3", "--out", str(out), "--official-compat", "--dtype", "float32"]) == 0
    f = np.load(out / "forecast.npz")
    meta = json.loads((out / "meta.json").read_text())
    assert meta["official_compat"] is True and meta["seed"] == 42 and meta["steps"] == 3
    pipe = TrajLoomPipeline.from_pretrained(d / "pipe")
    ref = pipe(clip.tracks[:T], clip.visibility[:T], official_compat=True, num_inference_steps=3).future_tracks[0]
    np.testing.assert_allclose(f["future_tracks"], ref, rtol=0, atol=1e-4)
