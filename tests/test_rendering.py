import numpy as np
import pytest

from trajloom_hf import rendering as R


RAW = dict(min_width=0, show_legend=False)  # no upscaling, no key: pixel positions as given


def _scene(t=6, h=48, w=64):
    frames = np.full((t, h, w, 3), 40, np.uint8)
    q = np.array([[10.0, 10.0], [40.0, 30.0]])
    tracks = q[None] + np.arange(t)[:, None, None] * np.array([2.0, 1.0])
    vis = np.ones((t, 2), bool)
    return frames, tracks, vis


def test_render_tracks_draws_point_colours_where_visible():
    frames, tracks, vis = _scene()
    out = R.render_tracks(frames, tracks, vis, **RAW, radius=2)
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
    hide = R.render_tracks(frames, tracks, vis, **RAW, occluded="hide", trail=0)
    x, y = np.round(tracks[3, 1]).astype(int)
    assert (hide[3, y - 3 : y + 4, x - 3 : x + 4] == 40).all()
    hollow = R.render_tracks(frames, tracks, vis, **RAW, occluded="hollow", trail=0, radius=3)
    assert (hollow[3, y, x] == 40).all()  # centre of the ring is empty
    assert (hollow[3, y - 4 : y + 5, x - 4 : x + 5] != 40).any()  # the ring is drawn


def test_trail_is_drawn_between_past_positions():
    frames, tracks, vis = _scene()
    out = R.render_tracks(frames, tracks, vis, **RAW, trail=5)
    mid = np.round((tracks[2, 0] + tracks[3, 0]) / 2).astype(int)
    assert (out[5, mid[1], mid[0]] != 40).any()
    out0 = R.render_tracks(frames, tracks, vis, **RAW, trail=0)
    assert (out0[5, mid[1], mid[0]] == 40).all()


def test_forecast_panels_and_montage():
    frames, tracks, vis = _scene(t=8)
    fut = np.stack([tracks[4:] + 1, tracks[4:] - 1])
    video = R.render_forecast(frames[:4], tracks[:4], vis[:4], fut, None, labels=["GT", "ours"])
    k = 5  # 64 px panels upscaled to 320 px
    size = R._font_size(k)
    head = R.header(k * 64, "GT", size=size).shape[0]
    key = R.legend(2 * k * 64 + 6, size=size).shape[0]
    assert video.shape == (4 + 4, head + k * 48 + key, 2 * k * 64 + 6, 3)
    raw = R.render_forecast(frames[:4], tracks[:4], vis[:4], fut, None, labels=["GT", "ours"], **RAW)
    assert raw.shape == (8, R.header(64, "GT", size=R._font_size(1)).shape[0] + 48, 2 * 64 + 6, 3)
    m = R.montage(video, num=3, padding=10, layout="row")
    assert m.shape == (video.shape[1], 3 * video.shape[2] + 20, 3)
    # auto: a strip wider than MONTAGE_MAX_WIDTH becomes one row per time, so the panels stay large in a README
    keys = R.forecast_keyframes(4, 4)
    assert keys == [3, 5, 7]
    col = R.montage(video, indices=keys)
    assert col.shape == (3 * video.shape[1] + 20, video.shape[2], 3)
    np.testing.assert_array_equal(col[: video.shape[1]], video[3])
    small = R.montage(frames, num=3)  # narrow frames stay in a row
    assert small.shape == (48, 3 * 64 + 20, 3)
    with pytest.raises(ValueError, match="`indices`"):
        R.montage(video, indices=[8])
    with pytest.raises(ValueError, match="`layout`"):
        R.montage(video, layout="grid")
    sbs = R.side_by_side([frames, frames], ["a", "b"])
    assert sbs.shape == (8, R.header(64, "a", size=14).shape[0] + 48, 134, 3)


def test_bad_inputs():
    frames, tracks, vis = _scene()
    with pytest.raises(ValueError, match="`tracks` has 5 frames but `frames` has 6"):
        R.render_tracks(frames, tracks[:5], vis[:5])
    with pytest.raises(ValueError, match="`visibility`"):
        R.render_tracks(frames, tracks, vis[:, :1])
    with pytest.raises(ValueError, match="`color_by`"):
        R.render_tracks(frames, tracks, vis, **RAW, color_by="z")
    with pytest.raises(ValueError, match="`labels`"):
        R.render_forecast(frames[:3], tracks[:3], vis[:3], tracks[3:][None], labels=["a", "b"])
    with pytest.raises(ValueError, match="`future_tracks`"):
        R.render_forecast(frames[:3], tracks[:3], vis[:3], tracks[3:, :1][None])


def test_backgrounds_and_point_subsampling():
    frames, tracks, vis = _scene()
    white = R.render_tracks(frames, tracks, vis, **RAW, background="white", trail=0)
    assert (white[0, 0, 0] == 255).all()
    light = R.render_tracks(frames, tracks, vis, **RAW, background="lightened", trail=0)
    assert 40 < light[0, 0, 0, 0] < 255
    one = R.render_tracks(frames, tracks, vis, **RAW, max_points=1, trail=0)
    x, y = np.round(tracks[0, 1]).astype(int)
    assert (one[0, y - 3 : y + 4, x - 3 : x + 4] == 40).all()  # only the first point is kept
    with pytest.raises(ValueError, match="`background`"):
        R.render_tracks(frames, tracks, vis, **RAW, background="black")


def test_point_colours_follow_the_query_position():
    q = np.array([[0.0, 0.0], [63.0, 0.0], [0.0, 47.0]])
    for mode in R.COLOR_MODES:
        cols = R.point_colors(q, 48, 64, mode)
        assert cols.shape == (3, 3) and cols.dtype == np.uint8
    xy = R.point_colors(q, 48, 64, "xy")
    assert not np.array_equal(xy[0], xy[1]) and not np.array_equal(xy[0], xy[2])
    x_only = R.point_colors(q, 48, 64, "x")
    np.testing.assert_array_equal(x_only[0], x_only[2])  # same x -> same colour


def _ink_box(img, background):
    ys, xs = np.nonzero((img != background).any(-1))
    return xs.min(), ys.min(), xs.max(), ys.max()


def test_a_label_is_drawn_once():
    """Issue 18: "ground truth" rendered as "groundtuthth" (the text drawn twice, offset). One drawing: the ink is
    exactly one rendering of the text and spans the font's own text box."""
    from PIL import Image, ImageDraw

    blank = np.full((40, 200, 3), 255, np.uint8)
    img = R.draw_text(blank, "ground truth", (10, 12), 14, (0, 0, 0))
    ref = Image.new("RGB", (200, 40), (255, 255, 255))
    draw = ImageDraw.Draw(ref)
    font = R._font(14)
    left, top, right, bottom = draw.textbbox((0, 0), "ground truth", font=font)
    draw.text((10 - left, 12 - top), "ground truth", fill=(0, 0, 0), font=font)
    np.testing.assert_array_equal(img, np.asarray(ref))
    x0, y0, x1, y1 = _ink_box(img, 255)
    w, h = R.text_size("ground truth", 14)
    assert abs(x0 - 10) <= 1 and abs(y0 - 12) <= 1 and abs((x1 - x0 + 1) - w) <= 2 and abs((y1 - y0 + 1) - h) <= 2
    # the header holds the title once: its ink is the title's ink, no second copy to the right
    bar = R.header(320, "ground truth")
    hx0, _, hx1, _ = _ink_box(bar, np.array(R._BAR))
    assert hx1 - hx0 + 1 <= w + 2


def test_panels_are_upscaled_to_a_readable_width_with_a_key():
    frames, tracks, vis = _scene(t=6, h=96, w=160)
    fut = tracks[None] + 1.0
    video = R.render_forecast(frames, tracks, vis, fut, labels=["ground truth"])
    panel_w = video.shape[2]
    assert panel_w >= 320 and R.display_scale(160) == 2 and R.display_scale(400) == 1
    # the point is drawn where its coordinates land after upscaling (pixel centres map to pixel centres)
    head = R.header(320, "history", size=R._font_size(2)).shape[0]
    x, y = np.round(R.to_display(tracks[2, 0], 2)).astype(int)
    cols = R.point_colors(tracks[0], 96, 160)
    assert np.abs(video[2, head + y, x].astype(int) - cols[0]).max() < 30
    # the key below: a light bar with dark text
    key = video[0, head + 192 :]
    assert key.shape[0] >= 20 and (key < 100).any() and (np.median(key) > 200)
    big = R.render_tracks(frames, tracks, vis)
    assert big.shape[2] == 320 and big.shape[1] > 192


def test_points_outside_the_frame_leave_no_pixels_at_the_border():
    """Issue 18: predictions that leave the frame were clipped to the border and piled up there as hollow circles."""
    t, h, w = 6, 48, 64
    frames = np.full((t, h, w, 3), 40, np.uint8)
    xs = np.array([40.0, 60.0, 70.0, 90.0, 120.0, 150.0])  # leaves the frame on the right after frame 1
    tracks = np.stack([np.stack([xs, np.full(t, 20.0)], -1), np.stack([np.full(t, 20.0), np.full(t, 10.0)], -1)], 1)
    vis = (tracks[..., 0] <= w - 1)
    clipped = tracks.copy()
    clipped[..., 0] = np.clip(clipped[..., 0], 0, w - 1 - 1e-3)  # what the pipeline returns (official clipping)
    for tr in (tracks, clipped):
        out = R.render_tracks(frames, tr, vis, trail=0, **RAW)
        assert (out[2:, :, -6:] == 40).all()  # nothing along the right edge once the point has left
        assert (out[2:] != 40).any()  # the point still inside is drawn
        video = R.render_forecast(frames[:2], tr[:2], vis[:2], tr[2:][None], vis[2:][None], trail=0,
                                  **RAW)
        head = video.shape[1] - h
        edge = video[2:, head:, -6:]
        assert (edge == edge[0, 0, 0]).all()  # the plain (lightened) hold frame, no ring
    # an occluded point inside the frame is still drawn hollow, and a visible point on the edge filled
    inside = np.array([[[30.0, 20.0], [0.0, 30.0]]] * t)
    vis_in = np.array([[False, True]] * t)
    out = R.render_tracks(frames, inside, vis_in, trail=0, radius=3, **RAW)
    assert (out[0, 14:27, 24:37] != 40).any() and (out[0, 28:33, 0:3] != 40).any()
