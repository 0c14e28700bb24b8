import json

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
    assert np.load(out / "official" / "pred_tracks.npy").shape == (T, 24, 2)
    assert np.load(out / "official" / "query_xy.npy").dtype == np.int64


def test_forecast_tracks_the_video_when_no_tracks_are_given(setup):
    d, _ = setup
    assert main(["forecast", str(d / "clip.mp4"), "--pipeline", str(d / "pipe"), "--steps", "1", "--out", str(d / "o2")]) == 0
    assert "tracker" in json.loads((d / "o2" / "meta.json").read_text())["history_tracks_from"]


def test_errors_leave_no_partial_output(setup):
    d, _ = setup
    with pytest.raises(FileNotFoundError, match="model_index.json"):
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
