"""ADE/FDE and best-of-K minADE/minFDE over visible points, as an `evaluate` module (thin wrapper over
`trajloom_hf.metrics.endpoint.displacement_errors`)."""

import evaluate
import numpy as np

from trajloom_hf.metrics.endpoint import displacement_errors
from trajloom_hf.metrics.evaluate_modules import DirectComputeMixin, metric_info

_DESCRIPTION = """Sample accuracy of generative forecasts: per video and sample, the mean error over visible points
(ADE) and at each point's last visible frame (FDE); minADE/minFDE keep the best of the K samples per video."""
_CITATION = """@article{trajloom2026, title={TrajLoom}, journal={arXiv:2603.22606}, year={2026}}"""
_KWARGS = """
Args:
    predictions: per video, K sampled futures [K, T, N, 2] in pixels.
    references: per video, the ground truth [T, N, 2] in pixels.
    visibility: optional [V, T, N] reference visibility.
    fde_at: "last_visible" (default: each point's last visible frame) or "last_frame" (the window's final frame, over
        the points visible there: the "Forecasting Motion in the Wild" FDE).
Returns:
    min_ade, min_fde, ade, fde (px), num_samples.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class MinADE(DirectComputeMixin, evaluate.Metric):
    def _info(self):
        return metric_info(_DESCRIPTION, _CITATION, _KWARGS, predictions="samples", references="tracks")

    def _compute(self, predictions, references, visibility=None, fde_at="last_visible"):
        d = displacement_errors(np.asarray(predictions, np.float32), np.asarray(references, np.float32), visibility,
                                fde_at=fde_at)
        return {"min_ade": d.min_ade, "min_fde": d.min_fde, "ade": d.ade, "fde": d.fde, "num_samples": d.num_samples}
