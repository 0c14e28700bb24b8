"""Location-bias diagnostic (paper App. B.1, eq. 18, Fig. 3b).

How much of the coordinate variance is explained by the grid location alone? For one coordinate axis ``d``
(absolute ``D_x``, ``D_y`` or offset ``X_x``, ``X_y``, normalised units) with values ``d_{n,t}`` pooled over clips:

    mu_n      = sum_t v_{n,t} d_{n,t} / sum_t v_{n,t}             (visibility-weighted location baseline)
    sigma2_n  = sum_t v_{n,t} (d_{n,t} - mu_n)^2 / sum_t v_{n,t}   (motion around it)
    Explained = 100 * Var_n(mu_n) / (Var_n(mu_n) + E_n[sigma2_n])

Grid location ``n`` is the query cell; the samples of one location are all its visible (clip, frame) values, so
with many clips ``mu_n`` is the location's average position and ``sigma2_n`` the motion spread at that location.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np

from .encoding import normalize_tracks, tracks_to_offsets
from .validation import check_tracks, check_visibility


@dataclass
class LocationBiasResult:
    """Explained variance in percent per representation and axis, plus the two variance terms."""

    explained: Dict[str, float]  # keys "absolute_x", "absolute_y", "offset_x", "offset_y"
    between: Dict[str, float]  # Var_n(mu_n)
    within: Dict[str, float]  # E_n[sigma2_n]
    num_clips: int
    num_locations: int

    def table(self) -> str:
        """A text table in the layout of Fig. 3b."""
        lines = [
            "| representation | axis | explained by grid location (%) | Var_n(mu_n) | E_n[sigma2_n] |",
            "|---|---|---|---|---|",
        ]
        for rep in ("absolute", "offset"):
            for axis in ("x", "y"):
                k = f"{rep}_{axis}"
                lines.append(
                    f"| {rep} | {axis} | {self.explained[k]:.1f} | {self.between[k]:.3e} | {self.within[k]:.3e} |"
                )
        return "\n".join(lines)


def explained_variance(values: np.ndarray, weights: np.ndarray) -> tuple:
    """Eq. 18 for one axis. ``values``/``weights`` ``[S, N]`` (S pooled samples per location, N locations).

    Returns ``(explained_percent, Var_n(mu_n), E_n[sigma2_n])``; locations never visible are skipped.
    """
    w = weights.astype(np.float64)
    v = values.astype(np.float64)
    count = w.sum(axis=0)
    keep = count > 0
    if not keep.any():
        raise ValueError("`visibility` marks no point visible: the diagnostic needs visible samples")
    safe = np.where(keep, count, 1.0)
    mu_all = (w * v).sum(axis=0) / safe
    # two-pass variance around the baseline (numerically stable)
    sigma2_all = (w * (v - mu_all) ** 2).sum(axis=0) / safe
    mu, sigma2 = mu_all[keep], sigma2_all[keep]
    between = float(mu.var())
    within = float(sigma2.mean())
    total = between + within
    return (100.0 * between / total if total > 0 else 0.0), between, within


def location_variance_explained(
    tracks: np.ndarray,
    visibility: Optional[np.ndarray],
    height: int,
    width: int,
    stride: int,
    origin: str = "topleft",
) -> LocationBiasResult:
    """Fraction of coordinate variance explained by grid location, absolute vs offsets (App. B.1).

    Args:
        tracks: ``[C, T, N, 2]`` (or one clip ``[T, N, 2]``) pixels, points on the stride grid (row-major).
        visibility: ``[C, T, N]`` bool, or None (all visible).
        height, width, stride, origin: frame size and query grid of the tracks.
    """
    tracks = np.asarray(tracks)
    check_tracks(tracks, "tracks", min_ndim=3, max_ndim=4)
    if tracks.ndim == 3:
        tracks = tracks[None]
        visibility = None if visibility is None else np.asarray(visibility)[None]
    if visibility is None:
        visibility = np.ones(tracks.shape[:-1], dtype=bool)
    visibility = np.asarray(visibility)
    check_visibility(visibility, tracks.shape, "visibility")
    c, t, n, _ = tracks.shape
    absolute = normalize_tracks(tracks.astype(np.float64), height, width).reshape(c * t, n, 2)
    offsets = tracks_to_offsets(tracks.astype(np.float64), height, width, stride, origin).reshape(c * t, n, 2)
    w = visibility.reshape(c * t, n)
    explained, between, within = {}, {}, {}
    for rep, arr in (("absolute", absolute), ("offset", offsets)):
        for axis_i, axis in enumerate("xy"):
            k = f"{rep}_{axis}"
            explained[k], between[k], within[k] = explained_variance(arr[..., axis_i], w)
    return LocationBiasResult(explained, between, within, num_clips=c, num_locations=n)
