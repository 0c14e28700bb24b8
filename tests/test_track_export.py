import numpy as np
import pytest

from trajloom_hf.track_export import wan_move_command, wan_move_frame_for, wan_move_frame_size, wan_move_tracks


def test_wan_move_frame_size_follows_its_rule():
    # Wan-Move: H = 8 * round(sqrt(area * h / w) // 8 // 2 * 2), in floating point
    assert wan_move_frame_size((480, 832)) == (464, 832)  # sqrt(399360 * 480 / 832) = 479.99999999999994
    assert wan_move_frame_size((832, 480)) == (832, 480)
    assert wan_move_frame_size((96, 160)) == (480, 800)
    assert wan_move_frame_for((480, 832)) == (464, 832) and wan_move_frame_for((832, 480)) == (832, 480)
    with pytest.raises(ValueError, match="positive"):
        wan_move_frame_size((0, 832))


def test_wan_move_tracks_join_pad_cut_and_hide():
    rng = np.random.default_rng(0)
    ht, ft = rng.uniform(0, 100, (6, 5, 2)), rng.uniform(0, 100, (7, 5, 2))
    hv, fv = np.ones((6, 5), bool), np.ones((7, 5), bool)
    ft[3, 0] = (120.0, 10.0)  # leaves a 100x110 (H x W) frame
    ft[4, 1] = np.nan
    tr, vi, real = wan_move_tracks(ht, hv, ft, fv, frame_hw=(100, 110), num_frames=17)
    assert tr.shape == (1, 17, 5, 2) and tr.dtype == np.float32 and vi.shape == (1, 17, 5) and vi.dtype == bool
    assert real == 13
    np.testing.assert_allclose(tr[0, :6], ht, rtol=1e-6)
    np.testing.assert_allclose(tr[0, 13:], np.repeat(tr[0, 12:13], 4, 0))  # held, not visible
    assert not vi[0, 13:].any() and vi[0, :6].all()
    assert not vi[0, 9, 0] and not vi[0, 10, 1] and np.isfinite(tr).all()
    tr, vi, real = wan_move_tracks(ht, hv, ft, fv, frame_hw=(100, 110), num_frames=5, start="last")
    assert real == 5 and tr.shape == (1, 5, 5, 2)
    np.testing.assert_allclose(tr[0, 0], ht[-1], rtol=1e-6)
    np.testing.assert_allclose(tr[0, 1:], ft[:4], rtol=1e-6)  # the future follows the last observed frame
    with pytest.raises(ValueError, match="`num_frames` must be 4n"):
        wan_move_tracks(ht, hv, ft, fv, frame_hw=(100, 110), num_frames=16)
    with pytest.raises(ValueError, match="`start`"):
        wan_move_tracks(ht, hv, ft, fv, frame_hw=(100, 110), start="first")
    with pytest.raises(ValueError, match="same N"):
        wan_move_tracks(ht, hv, ft[:, :3], fv[:, :3], frame_hw=(100, 110))
    assert "--size 480*832 --frame_num 81" in wan_move_command("a.png", "t.npy", "v.npy")
