"""History/future windows from synthetic clips (cached as .npz) and from an in-memory ``datasets.Dataset``."""

import numpy as np
import pytest
import torch

from trajloom_hf.data.synthetic import SceneConfig, generate_clip
from trajloom_hf.data.track_windows import (
    TrackClip,
    TrackSegmentDataset,
    TrackWindowDataset,
    hf_dataset_clips,
    synthetic_clips,
)

CFG = SceneConfig(height=64, width=96, num_frames=12, stride=16, render=False)


def test_synthetic_clips_are_cached_once_and_reloaded_identically(tmp_path):
    clips = synthetic_clips([3, 4], CFG, cache_dir=str(tmp_path), progress=False)
    files = sorted(p.name for p in tmp_path.rglob("*.npz"))
    assert files == ["00000003.npz", "00000004.npz"] and not list(tmp_path.rglob(".*.tmp"))
    ref = generate_clip(3, CFG)
    np.testing.assert_array_equal(clips[0].tracks, ref.tracks)
    np.testing.assert_array_equal(clips[0].visibility, ref.visibility)
    again = synthetic_clips([3, 4], CFG, cache_dir=str(tmp_path), progress=False)
    for a, b in zip(clips, again):
        np.testing.assert_array_equal(a.tracks, b.tracks)
        np.testing.assert_array_equal(a.visibility, b.visibility)
        assert a.caption == b.caption and b.frames is None  # render=False: no frames generated or cached
    # another scene (size, camera motion, ...) lives under another cache key, never mixed in
    other = SceneConfig(height=64, width=96, num_frames=10, stride=16, render=False)
    assert synthetic_clips([3], other, cache_dir=str(tmp_path), progress=False)[0].tracks.shape[0] == 10
    static = SceneConfig(height=64, width=96, num_frames=12, stride=16, render=False, camera_motion="static", num_objects=(0, 0))
    clip = synthetic_clips([3], static, cache_dir=str(tmp_path), progress=False)[0]
    np.testing.assert_array_equal(clip.tracks, generate_clip(3, static).tracks)
    assert len({p.parent for p in tmp_path.rglob("*.npz")}) == 3


def test_window_items_split_history_and_future():
    clips = synthetic_clips([0], CFG, progress=False)
    ds = TrackWindowDataset(clips, 5, 5)
    item = ds[0]
    assert len(ds) == 1 and set(item) == {"history_tracks", "history_visibility", "future_tracks", "future_visibility", "caption"}
    assert item["history_tracks"].shape == (5, 24, 2) and item["history_tracks"].dtype == torch.float32
    assert item["history_visibility"].dtype == torch.bool
    np.testing.assert_array_equal(item["future_tracks"].numpy(), clips[0].tracks[5:10])
    np.testing.assert_array_equal(item["history_visibility"].numpy(), clips[0].visibility[:5])
    seg = TrackSegmentDataset(ds)  # the VAE trains on both windows
    assert len(seg) == 2
    np.testing.assert_array_equal(seg[1]["tracks"].numpy(), clips[0].tracks[5:10])
    np.testing.assert_array_equal(seg[0]["visibility"].numpy(), clips[0].visibility[:5])


def test_frames_only_when_asked():
    clip = generate_clip(1, SceneConfig(height=64, width=96, num_frames=6, stride=16, render=True))
    tc = TrackClip(clip.tracks, clip.visibility, clip.caption, clip.frames)
    assert "history_frames" not in TrackWindowDataset([tc], 3, 3)[0]
    frames = TrackWindowDataset([tc], 3, 3, with_frames=True)[0]["history_frames"]
    assert frames.shape == (3, 64, 96, 3) and frames.dtype == torch.uint8


def test_hf_dataset_columns_with_video_bytes():
    datasets = pytest.importorskip("datasets")
    from trajloom_hf.video_io import encode_mp4_bytes

    clip = generate_clip(2, SceneConfig(height=64, width=96, num_frames=6, stride=16, render=True))
    ds = datasets.Dataset.from_dict({
        "tracks": [clip.tracks.tolist()], "visibility": [clip.visibility.tolist()], "caption": [clip.caption],
        "video": [encode_mp4_bytes(clip.frames)],
    })
    clips = hf_dataset_clips(ds, with_video=True)
    assert len(clips) == 1 and clips[0].caption == clip.caption and isinstance(clips[0].video_bytes, bytes)
    np.testing.assert_allclose(clips[0].tracks, clip.tracks)
    assert clips[0].tracks.dtype == np.float32 and clips[0].visibility.dtype == bool
    item = TrackWindowDataset(clips, 3, 3, with_frames=True)[0]
    assert item["history_frames"].shape == (3, 64, 96, 3)
    # mp4 is lossy: the decoded frames are close to the rendered ones, not equal
    assert (item["history_frames"].float() - torch.from_numpy(clip.frames[:3]).float()).abs().mean() < 10
    assert hf_dataset_clips(ds)[0].video_bytes is None  # video bytes are kept only when asked
    with pytest.raises(ValueError, match="'visibility' column"):
        hf_dataset_clips(datasets.Dataset.from_dict({"tracks": [clip.tracks.tolist()]}))


def test_bad_clips_are_rejected():
    t = np.zeros((6, 24, 2), np.float32)
    v = np.ones((6, 24), bool)
    with pytest.raises(ValueError, match="needs history \\+ future = 8"):
        TrackWindowDataset([TrackClip(t, v)], 4, 4)
    with pytest.raises(ValueError, match="visibility"):
        TrackWindowDataset([TrackClip(t, v[:, :5])], 3, 3)
    nan = t.copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        TrackWindowDataset([TrackClip(nan, v)], 3, 3)
    with pytest.raises(ValueError, match="no frames or video"):
        TrackWindowDataset([TrackClip(t, v)], 3, 3, with_frames=True)
    with pytest.raises(ValueError, match="same length"):
        TrackSegmentDataset(TrackWindowDataset([TrackClip(t, v)], 3, 2))
