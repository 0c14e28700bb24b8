"""VEPE (visibility-masked endpoint error, TrajLoom eq. 17) as an `evaluate` module (thin wrapper over
`trajloom_hf.metrics.endpoint.vepe`)."""

import evaluate
import numpy as np

from trajloom_hf.metrics.endpoint import vepe
from trajloom_hf.metrics.evaluate_modules import DirectComputeMixin, metric_info

_DESCRIPTION = """Mean Euclidean distance in pixels between predicted and reference points, pooled over every visible
(video, frame, point). Used for TrajLoom-VAE reconstructions (paper Tables 2 and 4)."""
_CITATION = """@article{trajloom2026, title={TrajLoom}, journal={arXiv:2603.22606}, year={2026}}"""
_KWARGS = """
Args:
    predictions, references: per video, tracks [T, N, 2] in pixels.
    visibility: optional [V, T, N] reference visibility (default: all visible).
Returns:
    vepe_px.
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class VEPE(DirectComputeMixin, evaluate.Metric):
    def _info(self):
        return metric_info(_DESCRIPTION, _CITATION, _KWARGS, predictions="tracks", references="tracks")

    def _compute(self, predictions, references, visibility=None):
        return {"vepe_px": vepe(np.asarray(predictions, np.float32), np.asarray(references, np.float32), visibility)}
