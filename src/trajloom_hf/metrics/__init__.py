"""Trajectory metrics (numpy): FVMD (official and trajectory modes), FVMD-Long, FlowTV, DivCurlE, VEPE, ADE/FDE,
future-visibility scores.

The ``evaluate`` modules in the repository's ``metrics/`` folder are thin wrappers over these functions.
"""

from .endpoint import DisplacementErrors, displacement_errors, vepe
from .flow_field import FlowFieldScore, div_curl_energy, flow_tv
from .fvmd import (
    FVMDResult,
    frechet_distance,
    fvmd,
    fvmd_long,
    motion_features,
    motion_histograms,
)
from .visibility import VisibilityScores, visibility_scores

__all__ = [
    "DisplacementErrors", "FVMDResult", "FlowFieldScore", "displacement_errors", "div_curl_energy", "flow_tv",
    "frechet_distance", "fvmd", "fvmd_long", "motion_features", "motion_histograms", "vepe",
    "VisibilityScores", "visibility_scores",
]
