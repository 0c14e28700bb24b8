"""FlowTV as an `evaluate` module (thin wrapper over `trajloom_hf.metrics.flow_field.flow_tv`). Reference-free: it looks
only at the predictions."""

import evaluate
import numpy as np

from trajloom_hf.metrics.flow_field import flow_tv
from trajloom_hf.metrics.evaluate_modules import DirectComputeMixin, metric_info

_DESCRIPTION = """FlowSmoothTV (eq. 15): total variation of the per-frame flow on the grid, 1/frame (paper tables: x 10^2). Lower is smoother / more coherent motion."""
_CITATION = """@article{trajloom2026, title={TrajLoom}, journal={arXiv:2603.22606}, year={2026}}"""
_KWARGS = """
Args:
    predictions: per video, predicted tracks [T, N, 2] in pixels, N row-major over `grid_shape`.
    visibility: optional [V, T, N] bool (the official script masks with the ground-truth visibility).
    grid_shape: (H_g, W_g); grid_stride: grid spacing in pixels.
Returns:
    flow_tv: the mean over videos with a finite value; flow_tv_per_video: list.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class FlowTV(DirectComputeMixin, evaluate.Metric):
    def _info(self):
        return metric_info(_DESCRIPTION, _CITATION, _KWARGS, predictions="tracks")

    def _compute(self, predictions, visibility=None, grid_shape=None, grid_stride=None):
        if grid_shape is None or grid_stride is None:
            raise ValueError("`grid_shape` (H_g, W_g) and `grid_stride` (px) are required")
        r = flow_tv(np.asarray(predictions, np.float32), visibility, grid_shape=tuple(grid_shape), grid_stride=float(grid_stride))
        return {"flow_tv": r.value, "flow_tv_per_video": r.per_video.tolist()}
