"""VEPE (visibility-masked endpoint error, TrajLoom eq. 17) as an `evaluate` module (thin wrapper over
`trajloom_hf.metrics.endpoint.vepe`)."""

import datasets
import evaluate
import numpy as np

from trajloom_hf.metrics.endpoint import vepe
from trajloom_hf.metrics.evaluate_modules import DirectComputeMixin

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
TRACKS = datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float32"))))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class VEPE(DirectComputeMixin, evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description=_DESCRIPTION, citation=_CITATION, inputs_description=_KWARGS,
                                   features=datasets.Features({"predictions": TRACKS, "references": TRACKS}))

    def _compute(self, predictions, references, visibility=None):
        return {"vepe_px": vepe(np.asarray(predictions, np.float32), np.asarray(references, np.float32), visibility)}
