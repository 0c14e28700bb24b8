import numpy as np
import pytest

from trajloom_hf import rendering as R


def _scene(t=6, h=48, w=64):
    frames = np.full((t, h, w, 3), 40, np.uint8)
    q = np.array([[10.0, 10.0], [40.0, 30.0]])
    tracks = q[None] + np.arange(t)[:, None, None] * np.array([2.0, 1.0])
    vis = np.ones((t, 2), bool)
    return frames, tracks, vis


def test_render_tracks_draws_point_colours_where_visible():
    frames, tracks, vis = _scene()
    out = R.render_tracks(frames, tracks, vis, radius=2)
    assert out.shape == frames.shape and out.dtype == np.uint8
    cols = R.point_colors(tracks[0], 48, 64)
    for t in (0, 5):
        for n in range(2):
            x, y = np.round(tracks[t, n]).astype(int)
            assert np.abs(out[t, y, x].astype(int) - cols[n]).max() < 30
    assert (out[0, 0, 0] == 40).all()  # far from any point: untouched background


def test_hidden_points_are_not_drawn_in_hide_mode_and_hollow_otherwise():
    frames, tracks, vis = _scene()
    vis[3, 1] = False
    hide = R.render_tracks(frames, tracks, vis, occluded="hide", trail=0)
    x, y = np.round(tracks[3, 1]).astype(int)
    assert (hide[3, y - 3 : y + 4, x - 3 : x + 4] == 40).all()
    hollow = R.render_tracks(frames, tracks, vis, occluded="hollow", trail=0, radius=3)
    assert (hollow[3, y, x] == 40).all()  # centre of the ring is empty
    assert (hollow[3, y - 4 : y + 5, x - 4 : x + 5] != 40).any()  # the ring is drawn


def test_trail_is_drawn_between_past_positions():
    frames, tracks, vis = _scene()
    out = R.render_tracks(frames, tracks, vis, trail=5)
    mid = np.round((tracks[2, 0] + tracks[3, 0]) / 2).astype(int)
    assert (out[5, mid[1], mid[0]] != 40).any()
    out0 = R.render_tracks(frames, tracks, vis, trail=0)
    assert (out0[5, mid[1], mid[0]] == 40).all()


def test_forecast_panels_and_montage():
    frames, tracks, vis = _scene(t=8)
    fut = np.stack([tracks[4:] + 1, tracks[4:] - 1])
    video = R.render_forecast(frames[:4], tracks[:4], vis[:4], fut, None, labels=["GT", "ours"])
    assert video.shape == (4 + 4, 48, 128, 3)
    m = R.montage(video, num=3, padding=10)
    assert m.shape == (48, 3 * 128 + 20, 3)
    sbs = R.side_by_side([frames, frames], ["a", "b"])
    assert sbs.shape == (8, 48, 128, 3)


def test_bad_inputs():
    frames, tracks, vis = _scene()
    with pytest.raises(ValueError, match="`tracks` has 5 frames but `frames` has 6"):
        R.render_tracks(frames, tracks[:5], vis[:5])
    with pytest.raises(ValueError, match="`visibility`"):
        R.render_tracks(frames, tracks, vis[:, :1])
    with pytest.raises(ValueError, match="`color_by`"):
        R.render_tracks(frames, tracks, vis, color_by="z")
    with pytest.raises(ValueError, match="`labels`"):
        R.render_forecast(frames[:3], tracks[:3], vis[:3], tracks[3:][None], labels=["a", "b"])
    with pytest.raises(ValueError, match="`future_tracks`"):
        R.render_forecast(frames[:3], tracks[:3], vis[:3], tracks[3:, :1][None])


def test_backgrounds_and_point_subsampling():
    frames, tracks, vis = _scene()
    white = R.render_tracks(frames, tracks, vis, background="white", trail=0)
    assert (white[0, 0, 0] == 255).all()
    light = R.render_tracks(frames, tracks, vis, background="lightened", trail=0)
    assert 40 < light[0, 0, 0, 0] < 255
    one = R.render_tracks(frames, tracks, vis, max_points=1, trail=0)
    x, y = np.round(tracks[0, 1]).astype(int)
    assert (one[0, y - 3 : y + 4, x - 3 : x + 4] == 40).all()  # only the first point is kept
    with pytest.raises(ValueError, match="`background`"):
        R.render_tracks(frames, tracks, vis, background="black")


def test_point_colours_follow_the_query_position():
    q = np.array([[0.0, 0.0], [63.0, 0.0], [0.0, 47.0]])
    for mode in R.COLOR_MODES:
        cols = R.point_colors(q, 48, 64, mode)
        assert cols.shape == (3, 3) and cols.dtype == np.uint8
    xy = R.point_colors(q, 48, 64, "xy")
    assert not np.array_equal(xy[0], xy[1]) and not np.array_equal(xy[0], xy[2])
    x_only = R.point_colors(q, 48, 64, "x")
    np.testing.assert_array_equal(x_only[0], x_only[2])  # same x -> same colour
