import numpy as np
import pytest

from trajloom_hf.camera_motion import (
    CAMERA_MOTIONS,
    append_camera_phrase,
    camera_motion_phrase,
    caption_with_camera_motion,
    has_camera_phrase,
    estimate_camera_motion,
)
from trajloom_hf.data.synthetic import SceneConfig, generate_clip


def test_caption_phrase_right_for_at_least_90_percent_of_synthetic_clips():
    right, total = 0, 0
    for i, motion in enumerate(CAMERA_MOTIONS * 5):  # 50 clips, every primitive, random speeds
        cfg = SceneConfig(height=96, width=160, num_frames=40, stride=16, camera_motion=motion, render=False)
        clip = generate_clip(1000 + i, cfg)
        est = estimate_camera_motion(clip.tracks, clip.visibility, 96, 160)
        right += est.phrase == camera_motion_phrase(clip.camera_motion, clip.camera_speed)
        total += 1
        assert clip.caption.endswith(camera_motion_phrase(clip.camera_motion, clip.camera_speed))
    print(f"camera phrase accuracy {right}/{total}")
    assert right / total >= 0.9


def test_sign_conventions_on_hand_made_tracks():
    rng = np.random.default_rng(0)
    pts = rng.uniform([0, 0], [159, 95], size=(80, 2))
    t = np.arange(30)[:, None, None]
    # content moving left by 1.2 px/frame = camera panning right, 0.0075 widths/frame -> "quickly"? no: moderately
    tracks = pts[None] + t * np.array([-1.2, 0.0])
    est = estimate_camera_motion(tracks, None, 96, 160)
    assert est.motion == "pan_right" and est.speed == "moderately"
    assert est.translation[0] == pytest.approx(-1.2)
    # content expanding about the centre = zoom in
    centre = np.array([79.5, 47.5])
    tracks = centre + (pts - centre)[None] * np.exp(0.004 * t)
    est = estimate_camera_motion(tracks, None, 96, 160)
    assert est.motion == "zoom_in" and est.zoom_rate == pytest.approx(0.004, rel=0.05)
    # static
    est = estimate_camera_motion(np.repeat(pts[None], 10, 0), None, 96, 160)
    assert est.phrase == "static camera"


def test_moving_object_does_not_dominate():
    rng = np.random.default_rng(1)
    pts = rng.uniform([0, 0], [159, 95], size=(100, 2))
    t = np.arange(30)[:, None, None]
    tracks = np.repeat(pts[None], 30, 0).astype(float)
    tracks[:, :25] += t * np.array([3.0, 2.0])  # a quarter of the points on a fast object
    assert estimate_camera_motion(tracks, None, 96, 160).motion == "static"


def test_phrases_and_errors():
    assert append_camera_phrase("a dog runs.", "static camera") == "a dog runs, static camera"
    assert append_camera_phrase("", "static camera") == "static camera"
    with pytest.raises(ValueError, match="`motion`"):
        camera_motion_phrase("dolly")
    with pytest.raises(ValueError, match="`speed`"):
        camera_motion_phrase("pan_left", "warp")
    with pytest.raises(ValueError, match="`tracks`"):
        estimate_camera_motion(np.zeros((1, 5, 2)), None, 96, 160)
    with pytest.raises(ValueError, match="`visibility`"):
        estimate_camera_motion(np.zeros((4, 5, 2)), np.ones((4, 6), bool), 96, 160)


def test_training_captions_get_the_estimated_camera_phrase():
    """App. E.2: the phrase estimated from the window's tracks is appended to the caption; captions that already
    carry one (the synthetic generator's) are left alone."""
    rng = np.random.default_rng(2)
    pts = rng.uniform([0, 0], [159, 95], size=(60, 2))
    t = np.arange(20)[:, None, None]
    panning = pts[None] + t * np.array([-1.2, 0.0])  # content moves left: camera pans right, moderately
    assert caption_with_camera_motion("a red ball bounces.", panning, None, 96, 160) == \
        "a red ball bounces, camera pans right moderately"
    assert caption_with_camera_motion("", np.repeat(pts[None], 5, 0), None, 96, 160) == "static camera"
    done = "a dog runs, camera zooms in slowly"
    assert has_camera_phrase(done) and not has_camera_phrase("a dog runs")
    assert caption_with_camera_motion(done, panning, None, 96, 160) == done
    clip = generate_clip(7, SceneConfig(height=96, width=160, num_frames=20, stride=16, camera_motion="tilt_up", render=False))
    assert caption_with_camera_motion(clip.caption, clip.tracks, clip.visibility, 96, 160) == clip.caption
    with pytest.raises(TypeError, match="`caption`"):
        caption_with_camera_motion(None, panning, None, 96, 160)
