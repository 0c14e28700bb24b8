import numpy as np
import pytest

from trajloom_hf.data.synthetic import SceneConfig, generate_clip
from trajloom_hf.encoding import make_query_grid

SMALL = dict(height=96, width=160, num_frames=24, stride=16)


def test_determinism_and_shapes():
    cfg = SceneConfig(**SMALL)
    a, b = generate_clip(7, cfg), generate_clip(7, cfg)
    c = generate_clip(8, cfg)
    assert a.frames.shape == (24, 96, 160, 3) and a.frames.dtype == np.uint8
    assert a.tracks.shape == (24, 60, 2) and a.tracks.dtype == np.float32
    assert a.visibility.shape == (24, 60) and a.visibility.dtype == bool
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.tracks, b.tracks)
    assert a.caption == b.caption and isinstance(a.caption, str) and a.caption
    assert not np.array_equal(a.tracks, c.tracks)
    assert np.isfinite(a.tracks).all()


def test_tracks_start_on_the_query_grid():
    cfg = SceneConfig(**SMALL)
    clip = generate_clip(3, cfg)
    np.testing.assert_allclose(clip.tracks[0], make_query_grid(96, 160, 16), atol=1e-3)
    assert clip.visibility[0][clip.surface_id == clip.surface_id.max()].all()  # nearest surface visible at t=0


def test_visible_points_keep_their_colour():
    # each visible point must land on the colour it had at frame 0; a shuffled assignment must not
    cfg = SceneConfig(height=120, width=208, num_frames=40, stride=8)
    errs, shuffled = [], []
    rng = np.random.default_rng(0)
    for seed in range(3):
        clip = generate_clip(seed, cfg)
        q = clip.query_xy.astype(int)
        col0 = clip.frames[0][q[:, 1], q[:, 0]].astype(float)
        for t in (5, 20, 39):
            v = clip.visibility[t]
            x = np.round(clip.tracks[t, v]).astype(int)
            col = clip.frames[t][x[:, 1], x[:, 0]].astype(float)
            errs.append(np.abs(col - col0[v]).mean(1))
            shuffled.append(np.abs(col - col0[v][rng.permutation(v.sum())]).mean(1))
    err, base = np.median(np.concatenate(errs)), np.median(np.concatenate(shuffled))
    assert err < 4.0, err
    assert base > 5 * err


def test_occluded_and_out_of_frame_points_are_invisible():
    cfg = SceneConfig(height=96, width=160, num_frames=60, stride=8, camera_motion="pan_right", camera_speed="quickly")
    clip = generate_clip(11, cfg)
    out = (clip.tracks[..., 0] < 0) | (clip.tracks[..., 0] > 159) | (clip.tracks[..., 1] < 0) | (clip.tracks[..., 1] > 95)
    assert out.any() and not clip.visibility[out].any()
    # a background point lying inside a nearer object's rendered pixels at some frame must be invisible:
    # check by colour: occluded background points no longer match their frame-0 colour on average
    bg = clip.surface_id == 0
    inside = ~out
    occluded = inside & ~clip.visibility & bg[None]
    assert occluded.any()


def test_camera_pan_moves_background_by_the_rate():
    from trajloom_hf.camera_motion import SPEED_RATES

    cfg = SceneConfig(height=96, width=160, num_frames=20, stride=16, camera_motion="pan_left",
                      camera_speed="moderately", num_objects=(0, 0), render=False)
    clip = generate_clip(0, cfg)
    assert clip.frames is None
    step = np.diff(clip.tracks[:, :, 0], axis=0)
    expected = SPEED_RATES["translation"]["moderately"] * 160
    # pan left -> content moves right at the rate (x +-10% speed jitter)
    assert np.allclose(step, step[0, 0], atol=1e-4)
    assert 0.85 * expected <= step[0, 0] <= 1.15 * expected
    assert np.allclose(np.diff(clip.tracks[:, :, 1], axis=0), 0, atol=1e-4)


def test_bad_config_errors_name_the_argument():
    with pytest.raises(ValueError, match="divisible by the grid stride"):
        SceneConfig(height=100, width=160, stride=16)
    with pytest.raises(ValueError, match="`num_frames`"):
        SceneConfig(num_frames=-3)
    with pytest.raises(ValueError, match="`camera_motion`"):
        SceneConfig(camera_motion="dolly")
    with pytest.raises(ValueError, match="`object_motions`"):
        SceneConfig(object_motions=("teleport",))
    with pytest.raises(ValueError, match="`seed`"):
        generate_clip(-1, SceneConfig(**SMALL))
    # found in review: these used to fail late (grid_origin at generation) or with a bare unpacking TypeError
    with pytest.raises(ValueError, match="`grid_origin` must be one of"):
        SceneConfig(grid_origin="middle")
    with pytest.raises(TypeError, match=r"`num_objects` must be an inclusive \(min, max\) pair"):
        SceneConfig(num_objects=3)


def test_data_package_exports_the_public_names():
    import trajloom_hf.data as data

    assert data.SceneConfig is SceneConfig and data.generate_clip is generate_clip
    from trajloom_hf.data.trajloombench import BenchSettings, load_trajloombench

    assert data.BenchSettings is BenchSettings and data.load_trajloombench is load_trajloombench
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        data.nope
