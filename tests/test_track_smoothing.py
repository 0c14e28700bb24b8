import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter1d

from trajloom_hf.track_smoothing import gaussian_kernel, smooth_tracks_in_time


def test_matches_scipy_nearest_mode_and_keeps_lines():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(2, 13, 5, 2)).cumsum(1) * 3 + 50).astype(np.float32)
    for sigma in (0.5, 1.5, 4.0):  # 4.0: the kernel radius (16) is longer than the window (13)
        ours = smooth_tracks_in_time(torch.from_numpy(x), sigma).numpy()
        ref = gaussian_filter1d(x.astype(np.float64), sigma, axis=1, mode="nearest")
        np.testing.assert_allclose(ours, ref, atol=1e-4)
    # a constant-velocity track is unchanged away from the edges (the kernel is symmetric and sums to 1)
    t = torch.arange(20.0)
    line = torch.stack([2 * t + 1, -t], -1)[None, :, None]
    out = smooth_tracks_in_time(line, 1.0)
    torch.testing.assert_close(out[:, 4:-4], line[:, 4:-4], atol=1e-5, rtol=0)
    # App. B.2's alternating jitter is removed: x(t) = t + 0.5 (-1)^t -> |residual| < 0.01 px inside
    jitter = line + 0.5 * ((-1.0) ** t)[None, :, None, None] * torch.tensor([1.0, 0.0])
    assert (smooth_tracks_in_time(jitter, 2.0)[:, 8:-8] - line[:, 8:-8]).abs().max() < 0.01
    assert smooth_tracks_in_time(line.double(), 0.0).dtype == torch.float32
    torch.testing.assert_close(smooth_tracks_in_time(line, 0.0), line)
    assert gaussian_kernel(1.0).sum().item() == pytest.approx(1.0) and gaussian_kernel(1.0).numel() == 9


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf"), True, "2"])
def test_bad_sigma(bad):
    with pytest.raises(ValueError, match="sigma"):
        smooth_tracks_in_time(torch.zeros(1, 5, 3, 2), bad)


def test_bad_tracks():
    with pytest.raises(ValueError, match=r"\[B, T, N, 2\]"):
        smooth_tracks_in_time(torch.zeros(5, 3, 2), 1.0)
