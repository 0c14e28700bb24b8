"""MVD, the motion-vector histogram distance of "Forecasting Motion in the Wild", as an `evaluate` module (thin
wrapper over `trajloom_hf.metrics.motion_vector_distance.motion_vector_distance`)."""

import evaluate
import numpy as np

from trajloom_hf.metrics.evaluate_modules import DirectComputeMixin, metric_info
from trajloom_hf.metrics.motion_vector_distance import motion_vector_distance

_DESCRIPTION = """Per video and sample: both track sets are boxed into [0, 256]^2 by their joint min/max, points get an
8-px cell from their first-frame position, and the L2 distance between the magnitude-weighted 8-bin angle histograms
of velocity and acceleration vectors per (8-vector time cube, cell) is taken; averaged over samples and videos."""
_CITATION = """@article{trajloom2026, title={TrajLoom}, journal={arXiv:2603.22606}, year={2026}}
@article{thakkar2026forecasting, title={Forecasting Motion in the Wild}, journal={arXiv:2604.01015}, year={2026}}"""
_KWARGS = """
Args:
    predictions: per video, K sampled futures [K, T, N, 2] in pixels (T >= 3).
    references: per video, the ground truth [T, N, 2] in pixels.
    prediction_visibility: optional [V, K, T, N] or [V, T, N] visibility of the forecasts.
    reference_visibility: optional [V, T, N] reference visibility.
Returns:
    mvd (lower is better), num_samples.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class MVD(DirectComputeMixin, evaluate.Metric):
    def _info(self):
        return metric_info(_DESCRIPTION, _CITATION, _KWARGS, predictions="samples", references="tracks")

    def _compute(self, predictions, references, prediction_visibility=None, reference_visibility=None):
        r = motion_vector_distance(np.asarray(predictions, np.float32), np.asarray(references, np.float32),
                                   prediction_visibility, reference_visibility)
        return {"mvd": r.value, "num_samples": r.num_samples}
