"""FVMD (Fréchet Video Motion Distance) on point tracks, as an `evaluate` module (thin wrapper over
`trajloom_hf.metrics.fvmd`)."""

import evaluate
import numpy as np

from trajloom_hf.metrics.fvmd import fvmd
from trajloom_hf.metrics.evaluate_modules import DirectComputeMixin, metric_info

_DESCRIPTION = """Fréchet distance between Gaussians fitted to magnitude-weighted motion-angle histograms of two sets
of point tracks (velocity, acceleration and both). mode="official" reproduces the official FVMD package on given
tracks (square grid, 16-frame clips, stride 1, its released acceleration); mode="trajectory" is TrajLoom's version
(second-difference acceleration, visibility masking, rectangular grids, configurable clips)."""
_CITATION = """@inproceedings{liu2024fvmd, title={Fréchet Video Motion Distance: A Metric for Evaluating Motion
Consistency in Videos}, author={Liu, Jiahe and Qu, Youran and Yan, Qi and Zeng, Xiaohui and Wang, Lele and Liao, Renjie},
booktitle={ICML 2024 Workshop}, year={2024}}
@article{trajloom2026, title={TrajLoom}, journal={arXiv:2603.22606}, year={2026}}"""
_KWARGS = """
Args:
    predictions: per video, tracks [T, N, 2] in pixels (x, y), N row-major over the grid.
    references: per video, tracks [T, N, 2] in pixels (the sets need not be paired or equally many).
    prediction_visibility, reference_visibility: optional [V, T, N] bool masks (trajectory mode only; NaN
        coordinates count as invisible when given, otherwise they raise ValueError).
    mode: "trajectory" (default) or "official" (square grid, T >= 16, no visibility).
    grid_shape: (H_g, W_g) of the row-major grid (required in trajectory mode).
    clip_len, clip_stride: windows (default 16 and 1; clip_len 0 = the whole video).
Returns:
    fvmd (combined), fvmd_velocity, fvmd_acceleration, num_clips, feature_dim.
Example:
    >>> m = evaluate.load("metrics/fvmd")  # from the repository root
    >>> m.compute(predictions=pred, references=gt, grid_shape=(15, 26))["fvmd"]
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS)
class FVMD(DirectComputeMixin, evaluate.Metric):
    def _info(self):
        return metric_info(_DESCRIPTION, _CITATION, _KWARGS, predictions="tracks", references="tracks",
                           reference_urls=["https://arxiv.org/abs/2407.16124", "https://arxiv.org/abs/2603.22606"])

    def _compute(self, predictions, references, prediction_visibility=None, reference_visibility=None,
                 mode="trajectory", grid_shape=None, clip_len=16, clip_stride=1):
        r = fvmd(np.asarray(predictions, np.float32), np.asarray(references, np.float32),
                 prediction_visibility=prediction_visibility, reference_visibility=reference_visibility, mode=mode,
                 grid_shape=None if grid_shape is None else tuple(grid_shape), clip_len=clip_len, clip_stride=clip_stride)
        return {"fvmd": r.combined, "fvmd_velocity": r.velocity, "fvmd_acceleration": r.acceleration,
                "num_clips": r.num_clips, "feature_dim": r.feature_dim}
