"""Trajectory metrics (numpy): FVMD (official and trajectory modes), FVMD-Long, FlowTV, DivCurlE, VEPE, ADE/FDE,
the error by future frame, points within 1-16 px and MVD (the motion-forecasting peer's), future-visibility scores,
and the mean acceleration magnitude (a jitter diagnostic).

The ``evaluate`` modules in the repository's ``metrics/`` folder are thin wrappers over these functions.
"""

from .acceleration import mean_acceleration
from .endpoint import DisplacementErrors, ErrorByFrame, displacement_errors, error_by_frame, vepe
from .flow_field import FlowFieldScore, div_curl_energy, flow_tv
from .fvmd import (
    FVMDResult,
    frechet_distance,
    fvmd,
    fvmd_long,
    motion_features,
    motion_histograms,
)
from .motion_vector_distance import MotionVectorDistance, motion_vector_distance, motion_vector_histogram
from .points_within import PointsWithin, points_within
from .visibility import VisibilityScores, visibility_scores

__all__ = [
    "DisplacementErrors", "ErrorByFrame", "error_by_frame", "FVMDResult", "FlowFieldScore", "displacement_errors",
    "div_curl_energy", "flow_tv",
    "frechet_distance", "fvmd", "fvmd_long", "motion_features", "motion_histograms", "vepe",
    "VisibilityScores", "visibility_scores", "MotionVectorDistance", "motion_vector_distance",
    "motion_vector_histogram", "PointsWithin", "points_within", "mean_acceleration",
]
