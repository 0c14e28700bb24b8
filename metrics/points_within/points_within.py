"""Fraction of visible future points within 1/2/4/8/16 px of the ground truth ("Forecasting Motion in the Wild"), as
an `evaluate` module (thin wrapper over `trajloom_hf.metrics.points_within.points_within`)."""

import evaluate
import numpy as np

from trajloom_hf.metrics.evaluate_modules import DirectComputeMixin, metric_info
from trajloom_hf.metrics.points_within import THRESHOLDS, points_within

_DESCRIPTION = """Per video and sample, the fraction of visible (frame, point) pairs of the forecast window whose
predicted position is strictly within d px of the reference, for d = 1, 2, 4, 8, 16, and their mean; averaged over
samples and videos. With frame_size, pixels are those of a 256-px square (the peer's convention)."""
_CITATION = """@article{trajloom2026, title={TrajLoom}, journal={arXiv:2603.22606}, year={2026}}
@article{thakkar2026forecasting, title={Forecasting Motion in the Wild}, journal={arXiv:2604.01015}, year={2026}}"""
_KWARGS = """
Args:
    predictions: per video, K sampled futures [K, T, N, 2] in pixels.
    references: per video, the ground truth [T, N, 2] in pixels.
    visibility: optional [V, T, N] reference visibility.
    frame_size: optional (height, width): rescale by 256 / max(height, width) first (the peer's 256-px frame).
    thresholds: optional distances in px (default 1, 2, 4, 8, 16).
Returns:
    pts_within_<d> for each threshold d, average_pts_within_thresh (fractions in [0, 1]), scale, num_samples.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class PointsWithin(DirectComputeMixin, evaluate.Metric):
    def _info(self):
        return metric_info(_DESCRIPTION, _CITATION, _KWARGS, predictions="samples", references="tracks")

    def _compute(self, predictions, references, visibility=None, frame_size=None, thresholds=THRESHOLDS):
        r = points_within(np.asarray(predictions, np.float32), np.asarray(references, np.float32), visibility,
                          thresholds=thresholds, frame_size=frame_size)
        out = {f"pts_within_{d:g}": f for d, f in r.fractions.items()}
        out.update(average_pts_within_thresh=r.average, scale=r.scale, num_samples=r.num_samples)
        return out
