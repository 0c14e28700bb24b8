"""Known-answer tests of the "Forecasting Motion in the Wild" metrics: points within 1-16 px, MVD, the last-frame FDE,
and their evaluate modules."""

import numpy as np
import pytest

from trajloom_hf.metrics import displacement_errors, motion_vector_distance, motion_vector_histogram, points_within
from trajloom_hf.metrics.evaluate_modules import metric_path


def offsets(distances, frames=2):
    """Reference at the origin-ish, prediction displaced along x by each distance: ``[1, T, N, 2]`` each."""
    ref = np.tile(np.array([[10.0, 20.0]]), (frames, len(distances), 1))[None]
    pred = ref.copy()
    pred[..., 0] += np.asarray(distances)[None, None]
    return pred, ref


def test_points_within_counts_strictly_below_each_threshold():
    pred, ref = offsets([0.5, 1.0, 3.0, 10.0, 20.0])
    r = points_within(pred, ref)
    assert r.fractions == {1.0: 1 / 5, 2.0: 2 / 5, 4.0: 3 / 5, 8.0: 3 / 5, 16.0: 4 / 5}  # 1.0 is not within 1
    assert r.average == pytest.approx(13 / 25) and r.scale == 1.0 and r.num_samples == 1


def test_points_within_visibility_scale_samples_and_videos():
    pred, ref = offsets([0.5, 1.0, 3.0, 10.0, 20.0])
    vis = np.ones(ref.shape[:-1], bool)
    vis[0, :, 4] = False  # the 20 px point does not count
    assert points_within(pred, ref, vis).fractions[16.0] == 1.0
    # a 512 x 100 frame maps onto a 256 square by 0.5: distances 0.25, 0.5, 1.5, 5, 10
    r = points_within(pred, ref, frame_size=(512, 100))
    assert r.scale == 0.5 and r.fractions == {1.0: 2 / 5, 2.0: 3 / 5, 4.0: 3 / 5, 8.0: 4 / 5, 16.0: 1.0}
    # K = 2 samples (the second exact) average; a second video (all exact) averages over videos
    samples = np.stack([pred[0], ref[0]])[None]
    assert points_within(samples, ref).fractions[1.0] == pytest.approx((1 / 5 + 1) / 2)
    two = points_within(np.concatenate([pred, ref]), np.concatenate([ref, ref]))
    assert two.fractions[2.0] == pytest.approx((2 / 5 + 1) / 2)


def test_points_within_errors():
    pred, ref = offsets([1.0, 2.0])
    with pytest.raises(ValueError, match="predictions"):
        points_within(pred[:, :1], ref)
    with pytest.raises(ValueError, match="visibility"):
        points_within(pred, ref, np.ones((1, 2, 3), bool))
    with pytest.raises(ValueError, match="no visible point"):
        points_within(pred, ref, np.zeros((1, 2, 2), bool))
    with pytest.raises(ValueError, match="thresholds"):
        points_within(pred, ref, thresholds=(0, 1))
    with pytest.raises(ValueError, match="frame_size"):
        points_within(pred, ref, frame_size=(0, 10))
    bad = pred.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        points_within(bad, ref)


def test_fde_last_frame_reads_the_final_frame_only():
    ref = np.zeros((1, 3, 2, 2))
    pred = ref.copy()
    pred[0, 2, 0, 0] = 3.0  # point 0: error 3 at the final frame (visible)
    pred[0, 1, 1, 1] = 7.0  # point 1: error 7 at t = 1, its last visible frame; occluded at the end
    pred[0, 2, 1, 1] = 100.0
    vis = np.ones((1, 3, 2), bool)
    vis[0, 2, 1] = False
    assert displacement_errors(pred, ref, vis).fde == pytest.approx((3 + 7) / 2)
    assert displacement_errors(pred, ref, vis, fde_at="last_frame").fde == pytest.approx(3.0)
    # a video with nothing visible at its final frame is left out of the last-frame FDE (not counted as 0)
    vis2 = np.concatenate([vis, vis])
    vis2[1, 2] = False
    d = displacement_errors(np.concatenate([pred, pred]), np.concatenate([ref, ref]), vis2, fde_at="last_frame")
    assert d.fde == pytest.approx(3.0) and d.min_fde == pytest.approx(3.0)
    with pytest.raises(ValueError, match="final frame"):
        displacement_errors(pred, ref, np.array([[[True, True], [True, True], [False, False]]]), fde_at="last_frame")
    with pytest.raises(ValueError, match="fde_at"):
        displacement_errors(pred, ref, vis, fde_at="end")


def moving(velocity, frames=9, extra_static=()):
    """Reference: points static at (0, 0), (256, 256) and ``extra_static``; prediction: point 0 moves by
    ``velocity`` per frame. ``[1, T, N, 2]`` each; the joint box is [0, 256]^2 (scale 1)."""
    start = np.array([[0.0, 0.0], [256.0, 256.0], *extra_static])
    ref = np.tile(start, (frames, 1, 1))[None]
    pred = ref.copy()
    pred[0, :, 0] += np.arange(frames)[:, None] * np.asarray(velocity, float)
    return pred, ref


def test_motion_vector_histogram_bins_and_weights():
    pred, _ = moving((1.0, 0.0))
    h = motion_vector_histogram(pred[0], np.ones(pred.shape[1:3], bool))
    # 8 velocities -> one cube; point 0 in cell (0, 0): atan2(1, 0) = pi/2 -> bin 6, weight ceil(log2 2) / 8
    assert h.shape == (32 * 32 * 8,) and h[6] == pytest.approx(0.125) and np.count_nonzero(h) == 1
    pred, _ = moving((0.0, 3.0))
    h = motion_vector_histogram(pred[0], np.ones(pred.shape[1:3], bool))
    assert h[4] == pytest.approx(0.25) and np.count_nonzero(h) == 1  # atan2(0, 3) = 0 -> bin 4; ceil(log2 4) / 8
    # acceleration: x_t = t^2 / 2 -> unit acceleration along x (bin 6, weight 1/8); 9 frames give only 7 -> zeros
    t = np.arange(10.0)
    acc = np.stack([t**2 / 2, np.zeros_like(t)], -1)[:, None]
    h = motion_vector_histogram(acc, np.ones((10, 1), bool), "acceleration")
    assert h[6] == pytest.approx(0.125) and np.count_nonzero(h) == 1
    assert not motion_vector_histogram(acc[:9], np.ones((9, 1), bool), "acceleration").any()
    with pytest.raises(ValueError, match="motion"):
        motion_vector_histogram(acc, np.ones((10, 1), bool), "jerk")


def test_mvd_known_values():
    pred, ref = moving((1.0, 0.0))
    assert motion_vector_distance(ref, ref).value == 0.0
    assert motion_vector_distance(pred, ref).value == pytest.approx(0.125)  # one bin at 1/8, acceleration all zero
    # a second, static point in point 0's cell doubles the count there: the bin halves
    pred, ref = moving((1.0, 0.0), extra_static=[(3.0, 3.0)])
    assert motion_vector_distance(pred, ref).value == pytest.approx(0.0625)
    # visibility masks velocities but the per-cell mean stays: hiding frame 4 of point 0 keeps 6 of its 8 vectors
    pred, ref = moving((1.0, 0.0))
    pvis = np.ones(pred.shape[:-1], bool)
    pvis[0, 4, 0] = False
    assert motion_vector_distance(pred, ref, pvis).value == pytest.approx(0.125)
    # samples average: K = 2 with one exact sample
    r = motion_vector_distance(np.stack([pred[0], ref[0]])[None], ref)
    assert r.value == pytest.approx(0.0625) and r.num_samples == 2 and r.per_video.shape == (1,)


def test_mvd_errors():
    pred, ref = moving((1.0, 0.0))
    with pytest.raises(ValueError, match="at least 3 frames"):
        motion_vector_distance(pred[:, :2], ref[:, :2])
    with pytest.raises(ValueError, match="prediction_visibility"):
        motion_vector_distance(pred, ref, np.ones((1, 9, 5), bool))
    with pytest.raises(ValueError, match="reference_visibility"):
        motion_vector_distance(pred, ref, None, np.ones((1, 9), bool))
    with pytest.raises(ValueError, match="no visible point"):
        motion_vector_distance(pred, ref, np.zeros((1, 9, 2), bool), np.zeros((1, 9, 2), bool))
    bad = pred.copy()
    bad[0, 3, 1, 0] = np.inf
    with pytest.raises(ValueError, match="finite"):
        motion_vector_distance(bad, ref)


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")


def test_evaluate_modules_equal_the_core(offline):
    import evaluate

    rng = np.random.default_rng(0)
    gt = (rng.normal(size=(2, 12, 6, 2)).cumsum(1) * 4 + 100).astype(np.float32)
    samples = gt[:, None] + rng.normal(size=(2, 3, 12, 6, 2)).astype(np.float32) * 3
    vis = rng.random(gt.shape[:-1]) > 0.2
    out = evaluate.load(metric_path("points_within")).compute(predictions=samples, references=gt, visibility=vis,
                                                               frame_size=(480, 832))
    core = points_within(samples, gt, vis, frame_size=(480, 832))
    assert out["pts_within_4"] == pytest.approx(core.fractions[4.0])
    assert out["average_pts_within_thresh"] == pytest.approx(core.average) and 0 < core.average < 1
    out = evaluate.load(metric_path("mvd")).compute(predictions=samples, references=gt, reference_visibility=vis,
                                                     prediction_visibility=vis)
    assert out["mvd"] == pytest.approx(motion_vector_distance(samples, gt, vis, vis).value) and out["mvd"] > 0
    out = evaluate.load(metric_path("min_ade")).compute(predictions=samples, references=gt, visibility=vis,
                                                         fde_at="last_frame")
    assert out["fde"] == pytest.approx(displacement_errors(samples, gt, vis, fde_at="last_frame").fde)
