"""FVMD-Long (TrajLoom paper §4.1.6): trajectory-mode FVMD with the whole future window as one clip per video,
as an `evaluate` module (thin wrapper over `trajloom_hf.metrics.fvmd.fvmd_long`)."""

import evaluate
import numpy as np

from trajloom_hf.metrics.fvmd import fvmd_long
from trajloom_hf.metrics.evaluate_modules import DirectComputeMixin, metric_info

_DESCRIPTION = """FVMD computed on the full forecast window as a single clip, so that errors that accumulate late in a
long horizon count as much as early ones. The paper's tables report FVMD-Long x 10^-3."""
_CITATION = """@article{trajloom2026, title={TrajLoom}, journal={arXiv:2603.22606}, year={2026}}"""
_KWARGS = """
Args:
    predictions, references: per video, tracks [T, N, 2] in pixels; N row-major over `grid_shape`.
    prediction_visibility, reference_visibility: optional [V, T, N] bool masks.
    grid_shape: (H_g, W_g).
Returns:
    fvmd_long (combined), fvmd_long_velocity, fvmd_long_acceleration, num_clips, feature_dim.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class FVMDLong(DirectComputeMixin, evaluate.Metric):
    def _info(self):
        return metric_info(_DESCRIPTION, _CITATION, _KWARGS, predictions="tracks", references="tracks")

    def _compute(self, predictions, references, prediction_visibility=None, reference_visibility=None, grid_shape=None):
        if grid_shape is None:
            raise ValueError("`grid_shape` (H_g, W_g) is required")
        r = fvmd_long(np.asarray(predictions, np.float32), np.asarray(references, np.float32),
                      prediction_visibility=prediction_visibility, reference_visibility=reference_visibility,
                      grid_shape=tuple(grid_shape))
        return {"fvmd_long": r.combined, "fvmd_long_velocity": r.velocity, "fvmd_long_acceleration": r.acceleration,
                "num_clips": r.num_clips, "feature_dim": r.feature_dim}
