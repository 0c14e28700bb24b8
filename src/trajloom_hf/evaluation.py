"""Benchmark evaluation: forecasts of pipelines and simple baselines on a TrajLoomBench split, scored with the
paper's metrics and tabulated in the layout of Table 1.

Per clip the history is the first ``T_h`` frames (``T_h`` = the pipeline VAE's ``num_frames``) and the target the
next ``T_f`` frames. Baselines computed in the same run: **static** (every point stays at its last history
position) and **constant velocity** (the last history velocity, extrapolated). Scores (GT visibility masks both
sets, as TrajLoom's scripts do):

* FVMD (trajectory mode, 16-frame clips, stride 1) and FVMD-Long (the whole window) of the first sample per clip;
* FlowTV and DivCurlE of the first sample;
* minADE/minFDE over all samples and the mean ADE;
* the metrics of "Forecasting Motion in the Wild" (google-deepmind/motion-forecasting), averaged over all samples:
  FDE at the window's final frame (``fde_last_frame``), the fraction of points within 1/2/4/8/16 px on the peer's
  256-px frame (``pts_within_<d>``, ``pts_within_avg``) and MVD (``mvd``, on the last history frame followed by the
  forecast window);
* future visibility against the GT visibility (all samples): accuracy and the occluded class's F1.
  ``vis_accuracy`` / ``occlusion_f1`` score what each pipeline returns by default (its ``visibility_mode``, listed in
  the settings); every pipeline is also scored on both readings, ``*_hold_last`` (each point's last history
  visibility held, AND the in-frame test of its predicted tracks) and, with a visibility head, ``*_head``. The
  baselines hold each point's last history visibility (constant velocity also marks points that leave the frame
  occluded);
* for pipelines, the VAE's reconstruction VEPE of the GT future window (and, with ``vepe_frames``, of its first L
  frames: Table 2's 24- and 81-frame segments).

With ``oracle`` every pipeline's VAE is also scored on its own reconstruction of the GT future,
``decode(encode(gt).mean)`` (row ``"VAE reconstruction (oracle, <name>)"``; a VAE shared by several pipelines once):
the flow's target is exactly that latent, so this row bounds what any forecast through the VAE can score (with the
future known). A reconstruction that scores worse than constant velocity means the VAE, not the generator, limits
the result. ``results.md`` also lists each method's mean acceleration magnitude next to the ground truth's
(:func:`trajloom_hf.metrics.mean_acceleration`, first sample, GT-visible triplets; key ``mean_accel``): decoder
jitter shows there, and FVMD sees it.

Pipelines that condition on the frames (a ``frame_encoder`` or ``video_vae``) get each clip's history frames from
the bench's ``video`` column. With ``shuffle_frames`` they are scored a second time with every clip given another
clip's frames (clip ``i`` gets clip ``i + 1``'s, cyclically; tracks unchanged), the row ``"<name> (other clip's
frames)"``: a model that uses the image must score clearly worse there.

Past one window (``num_windows`` k > 1): pipelines forecast k windows with their rollout, the baselines extrapolate
over the whole horizon, and every row is scored per window against the GT of that window (:func:`score_windows`,
also used by ``benchmarks/bench_long_horizon.py``); window 1 keeps the one-window keys and numbers, window j is
each method's ``"window_<j>"`` entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np
import torch
from diffusers.utils import logging
from tqdm.auto import tqdm

from .encoding import clip_to_frame, in_frame
from .metrics import (
    displacement_errors,
    div_curl_energy,
    flow_tv,
    fvmd,
    fvmd_long,
    mean_acceleration,
    motion_vector_distance,
    points_within,
    vepe,
    visibility_scores,
)

logger = logging.get_logger(__name__)

# metric key -> (table label, scale applied in the table: the paper's Table 1/3 conventions)
TABLE_ROWS = {
    "fvmd": ("FVMD", 1.0),
    "fvmd_long": ("FVMD-Long (10^-3)", 1e-3),
    "flow_tv": ("FlowTV (10^2)", 1e2),
    "div_curl_energy": ("DivCurlE (10^3)", 1e3),
    "min_ade": ("minADE@K (px)", 1.0),
    "ade": ("ADE (px)", 1.0),
    "fde_last_frame": ("FDE at the final frame (px)", 1.0),
    **{f"pts_within_{d}": (f"points within {d} px, 256-px frame (higher is better)", 1.0) for d in (1, 2, 4, 8, 16)},
    "pts_within_avg": ("points within 1-16 px, mean (higher is better)", 1.0),
    "mvd": ("MVD", 1.0),
    "vis_accuracy": ("visibility accuracy (higher is better)", 1.0),
    "occlusion_f1": ("occlusion F1 (higher is better)", 1.0),
    "vis_accuracy_head": ("visibility accuracy, visibility head", 1.0),
    "occlusion_f1_head": ("occlusion F1, visibility head", 1.0),
    "vis_accuracy_hold_last": ("visibility accuracy, hold last history visibility", 1.0),
    "occlusion_f1_hold_last": ("occlusion F1, hold last history visibility", 1.0),
    "vae_vepe": ("VAE VEPE (px)", 1.0),
}


def static_baseline(history_tracks: np.ndarray, future_frames: int) -> np.ndarray:
    """``[V, T_h, N, 2]`` -> ``[V, T_f, N, 2]``: the last history position, held."""
    return np.repeat(history_tracks[:, -1:], future_frames, axis=1)


def held_visibility(history_visibility: np.ndarray, future_frames: int) -> np.ndarray:
    """``[V, T_h, N]`` -> ``[V, T_f, N]``: each point's last history visibility, held (the baselines' visibility)."""
    return np.repeat(np.asarray(history_visibility, dtype=bool)[:, -1:], future_frames, axis=1)


def constant_velocity_baseline(history_tracks: np.ndarray, future_frames: int) -> np.ndarray:
    """``[V, T_h, N, 2]`` -> ``[V, T_f, N, 2]``: ``x_{T_h - 1} + (k + 1) (x_{T_h - 1} - x_{T_h - 2})``."""
    last = history_tracks[:, -1:]
    vel = history_tracks[:, -1:] - history_tracks[:, -2:-1]
    steps = np.arange(1, future_frames + 1, dtype=np.float64)[None, :, None, None]
    return (last + steps * vel).astype(np.float32)


def rollout_windows(x: np.ndarray, history_frames: int, window_frames: int, num_windows: int, name: str = "tracks"):
    """The ``num_windows`` consecutive future windows of clips ``x`` ``[V, T, ...]`` after their first
    ``history_frames`` frames: a list of ``[V, window_frames, ...]`` (window ``j`` = frames ``T_h + j F`` to
    ``T_h + (j + 1) F``), the ground truth of a rollout ``pipe(..., num_windows=k)``. A clip too short to hold the
    whole horizon is a ``ValueError`` (a shorter ground truth would silently score fewer frames)."""
    for arg, value in (("history_frames", history_frames), ("window_frames", window_frames), ("num_windows", num_windows)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{arg}` must be a positive integer, got {value!r}")
    need = history_frames + num_windows * window_frames
    if x.ndim < 2 or x.shape[1] < need:
        raise ValueError(f"`{name}` has {x.shape[1] if x.ndim >= 2 else 0} frames per clip; {num_windows} windows of "
                         f"{window_frames} frames after a {history_frames}-frame history need {need} (build the bench "
                         f"with --history-frames {history_frames} --future-frames {num_windows * window_frames})")
    return [x[:, history_frames + j * window_frames : history_frames + (j + 1) * window_frames]
            for j in range(num_windows)]


@dataclass
class BenchSplit:
    """A split as arrays: ``tracks [V, T, N, 2]`` px, ``visibility [V, T, N]``, grid info, optional ``videos``."""

    tracks: np.ndarray
    visibility: np.ndarray
    captions: List[str]
    height: int
    width: int
    stride: int
    clip_ids: List[str]
    videos: Optional[List[bytes]] = None  # mp4 bytes per clip (the ``video`` column), when frames are needed

    def history_frames(self, indices: Sequence[int], history_frames: int) -> np.ndarray:
        """Decoded history frames ``[len(indices), T_h, H, W, 3]`` uint8 of the given clips."""
        from .video_io import decode_mp4_bytes

        if self.videos is None:
            raise ValueError("this split was loaded without its videos (load_bench_split(..., with_video=True))")
        frames = [decode_mp4_bytes(bytes(self.videos[i]), max_frames=history_frames) for i in indices]
        if any(f.shape[0] < history_frames for f in frames):
            raise ValueError(f"a clip's video has fewer than the {history_frames} history frames")
        return np.stack([f[:history_frames] for f in frames])

    @property
    def grid_shape(self):
        return self.height // self.stride, self.width // self.stride


def load_bench_split(bench: str, config: str, split: str, max_clips: Optional[int] = None, *,
                     with_video: bool = False) -> BenchSplit:
    """Read a TrajLoomBench split (``load_dataset(bench, config, split=split)``) into arrays (and the mp4 bytes of
    each clip with ``with_video``)."""
    from .data.trajloombench import load_trajloombench

    ds = load_trajloombench(bench, config, split, numpy=False)
    if max_clips is not None:
        ds = ds.select(range(min(max_clips, len(ds))))
    if len(ds) < 2:
        raise ValueError(f"split {split!r} of {bench!r}/{config!r} has {len(ds)} clips; FVMD needs at least 2")
    cols = ds.select_columns(["tracks", "visibility", "caption", "height", "width", "stride", "clip_id"]).with_format("numpy")
    rows = [cols[i] for i in range(len(cols))]
    stride = int(rows[0]["stride"])
    if stride == 0:
        raise ValueError(f"config {config!r} holds sparse (non-grid) tracks; the forecasting metrics need a grid config")
    videos = list(ds["video"]) if with_video else None
    return BenchSplit(np.stack([r["tracks"] for r in rows]).astype(np.float32), np.stack([r["visibility"] for r in rows]).astype(bool),
                      [str(r["caption"]) for r in rows], int(rows[0]["height"]), int(rows[0]["width"]), stride,
                      [str(r["clip_id"]) for r in rows], videos)


def uses_frames(pipe) -> bool:
    """Whether a pipeline conditions on the video frames (a ``frame_encoder`` or a ``video_vae``)."""
    return getattr(pipe, "frame_encoder", None) is not None or getattr(pipe, "video_vae", None) is not None


def score(predictions: np.ndarray, gt: np.ndarray, gt_vis: np.ndarray, grid_shape, grid_stride: float,
          clip_len: int = 16, clip_stride: int = 1, predicted_visibility: Optional[np.ndarray] = None, *,
          frame_size=None, history_last: Optional[np.ndarray] = None,
          history_last_visibility: Optional[np.ndarray] = None,
          prediction_last: Optional[np.ndarray] = None) -> Dict[str, float]:
    """Scores of predictions ``[V, S, T_f, N, 2]`` (and ``predicted_visibility [V, S, T_f, N]``, optional) against
    ``gt [V, T_f, N, 2]`` and ``gt_vis [V, T_f, N]`` (see the module docstring).

    ``frame_size`` ``(H, W)`` (default: ``grid_shape * grid_stride``) sets the 256-px frame of ``pts_within_*``;
    ``history_last`` ``[V, N, 2]`` with ``history_last_visibility`` ``[V, N]`` (the last observed frame) is put in
    front of both sets for MVD (the peer's window starts at its GT conditioning frames); None: the forecast window
    alone. ``prediction_last`` ``[V, S, N, 2]`` replaces ``history_last`` in front of the predictions (a later window
    of a rollout: each set starts from its own frame before the window)."""
    first = predictions[:, 0]
    out = {
        "fvmd": fvmd(first, gt, prediction_visibility=gt_vis, reference_visibility=gt_vis, grid_shape=grid_shape,
                     clip_len=clip_len, clip_stride=clip_stride).combined,
        "fvmd_long": fvmd_long(first, gt, prediction_visibility=gt_vis, reference_visibility=gt_vis,
                               grid_shape=grid_shape).combined,
        "flow_tv": flow_tv(first, gt_vis, grid_shape=grid_shape, grid_stride=grid_stride).value,
        "div_curl_energy": div_curl_energy(first, gt_vis, grid_shape=grid_shape, grid_stride=grid_stride).value,
        "mean_accel": mean_acceleration(first, gt_vis),
    }
    d = displacement_errors(predictions, gt, gt_vis)
    out.update(min_ade=d.min_ade, min_fde=d.min_fde, ade=d.ade, num_samples=d.num_samples)
    out.update(peer_scores(predictions, gt, gt_vis, frame_size or (grid_shape[0] * grid_stride, grid_shape[1] * grid_stride),
                           history_last, history_last_visibility, prediction_last))
    if predicted_visibility is not None:
        v = visibility_scores(predicted_visibility, gt_vis)
        out.update(vis_accuracy=v.accuracy, occlusion_precision=v.occlusion_precision,
                   occlusion_recall=v.occlusion_recall, occlusion_f1=v.occlusion_f1)
    return out


def peer_scores(predictions: np.ndarray, gt: np.ndarray, gt_vis: np.ndarray, frame_size, history_last=None,
                history_last_visibility=None, prediction_last=None) -> Dict[str, float]:
    """The "Forecasting Motion in the Wild" scores of ``predictions [V, S, T_f, N, 2]`` (all samples, GT visibility
    for both sets): ``fde_last_frame``, ``pts_within_<d>`` / ``pts_within_avg`` and ``mvd`` (see :func:`score`)."""
    # undefined (NaN, left out of the table) when no clip has a point visible at the final frame
    ends = np.asarray(gt_vis, bool)[:, -1].any()
    out = {"fde_last_frame": displacement_errors(predictions, gt, gt_vis, fde_at="last_frame").fde if ends else float("nan")}
    pw = points_within(predictions, gt, gt_vis, frame_size=frame_size)
    out.update({f"pts_within_{d:g}": f for d, f in pw.fractions.items()}, pts_within_avg=pw.average)
    pred, ref, vis = predictions, gt, gt_vis
    if prediction_last is not None and history_last is None:
        raise ValueError("`prediction_last` needs `history_last` (the reference's frame before the window)")
    if history_last is not None:
        if history_last_visibility is None:
            raise ValueError("`history_last` needs `history_last_visibility` [V, N]")
        anchor = np.asarray(history_last, np.float32)[:, None]  # [V, 1, N, 2]
        ref = np.concatenate([anchor, gt], 1)
        own = anchor[:, None] if prediction_last is None else np.asarray(prediction_last, np.float32)[:, :, None]
        if own.shape[0] != len(gt) or own.shape[1] not in (1, predictions.shape[1]) or own.shape[3:] != anchor.shape[2:]:
            raise ValueError(f"`prediction_last` must have shape [V={len(gt)}, S={predictions.shape[1]}, N, 2], got "
                             f"{list(np.shape(prediction_last))}")
        pred = np.concatenate([np.broadcast_to(own, (len(gt), predictions.shape[1]) + anchor.shape[1:]), predictions], 2)
        vis = np.concatenate([np.asarray(history_last_visibility, bool)[:, None], gt_vis], 1)
    out["mvd"] = motion_vector_distance(pred, ref, vis[:, None], vis).value
    return out


def score_windows(predictions: np.ndarray, tracks: np.ndarray, visibility: np.ndarray, history_frames: int,
                  window_frames: int, num_windows: int, grid_shape, grid_stride: float,
                  predicted_visibility: Optional[np.ndarray] = None, *, frame_size=None) -> List[Dict[str, float]]:
    """:func:`score` of each window of a forecast: predictions ``[V, S, >= num_windows * F, N, 2]`` px (``F`` =
    ``window_frames``; window ``j`` = forecast frames ``j F`` to ``(j + 1) F``, a rollout ``pipe(..., num_windows=k)``)
    and ``predicted_visibility`` ``[V, S, ..., N]`` (optional) against the clips ``tracks [V, T, N, 2]`` px /
    ``visibility [V, T, N]`` whose first ``history_frames`` frames are the observed history (the ground truth of
    window ``j`` from :func:`rollout_windows`: a clip too short for the horizon is a ``ValueError``). MVD puts in front
    of each set its own frame before the window: the last observed frame for window 1 (shared by both), for a later
    window the GT frame and the forecast's last frame of the window before (``score(..., prediction_last=)``)."""
    gt = rollout_windows(tracks, history_frames, window_frames, num_windows)
    gt_vis = rollout_windows(visibility, history_frames, window_frames, num_windows, "visibility")
    need = num_windows * window_frames
    if predictions.ndim != 5 or predictions.shape[0] != len(tracks) or predictions.shape[2] < need:
        raise ValueError(f"`predictions` must be [V={len(tracks)}, S, >= {need} frames, N, 2] for {num_windows} windows "
                         f"of {window_frames} frames, got {list(predictions.shape)}")
    out = []
    for j in range(num_windows):
        cut, before = slice(j * window_frames, (j + 1) * window_frames), history_frames + j * window_frames - 1
        out.append(score(predictions[:, :, cut], gt[j], gt_vis[j], grid_shape, grid_stride,
                         predicted_visibility=None if predicted_visibility is None else predicted_visibility[:, :, cut],
                         frame_size=frame_size, history_last=tracks[:, before],
                         history_last_visibility=visibility[:, before],
                         prediction_last=None if j == 0 else predictions[:, :, j * window_frames - 1]))
    return out


class SplitForecast(NamedTuple):
    """:func:`forecast_split`'s result: ``tracks`` ``[V, S, T_f, N, 2]`` px, ``visibility`` ``[V, S, T_f, N]`` (the
    pipeline's default reading) and ``readings`` (``"hold_last"``, and ``"head"`` with a visibility head)."""

    tracks: np.ndarray
    visibility: np.ndarray
    readings: Dict[str, np.ndarray]


@torch.no_grad()
def forecast_split(pipe, data: BenchSplit, history_frames: int, *, num_samples: int, num_inference_steps: int,
                   solver: str, seed: int, batch_size: int = 4, progress: bool = True,
                   frame_source: Optional[Sequence[int]] = None, temporal_smoothing: Optional[float] = None,
                   num_windows: int = 1, rollout_video: str = "hold_last", fix_first_latent: Optional[bool] = None,
                   boundary_continuity: Optional[float] = None):
    """Run a pipeline over every clip (one generator per clip: seeds ``seed + index``). A frame-conditioned pipeline
    gets clip ``frame_source[i]``'s history frames for clip ``i`` (default: its own). ``temporal_smoothing``: the
    pipeline call's sigma (None: the pipeline's config). ``num_windows`` / ``rollout_video``: the pipeline's rollout
    (``T_f`` = ``num_windows`` windows; windows 2.. are conditioned on the pipeline's own visibility reading).
    ``fix_first_latent``: the pipeline call's (None: its scheduler config). ``boundary_continuity``: the pipeline
    call's tau (frames; None: the pipeline's config; :mod:`trajloom_hf.boundary_continuity`).

    Returns :class:`SplitForecast`: tracks ``[V, S, T_f, N, 2]`` px, the pipeline's visibility ``[V, S, T_f, N]``
    bool (its ``visibility_mode``) and both readings in ``readings``: ``"hold_last"`` (each point's last history
    visibility AND the in-frame test of the predicted tracks, over the whole horizon) and, with a visibility head,
    ``"head"`` (for ``num_windows > 1`` only when the head is the pipeline's reading: the rollout follows it).
    """
    outs, heads, inside = [], [], []
    mode = pipe.resolve_visibility_mode()
    has_head = getattr(pipe, "visibility_predictor", None) is not None
    # one window: the tracks do not depend on the reading, so run the head (the hold-last reading is computed below);
    # a rollout feeds the reading into the next history: run the pipeline's own
    run_mode = ("head" if has_head else "hold_last") if num_windows == 1 else mode
    v = data.tracks.shape[0]
    source = list(range(v)) if frame_source is None else [int(j) for j in frame_source]
    if len(source) != v:
        raise ValueError(f"`frame_source` must name one clip per clip ({v}), got {len(source)}")
    for start in tqdm(range(0, v, batch_size), desc="forecast", disable=not progress):
        idx = list(range(start, min(v, start + batch_size)))
        gens = [torch.Generator().manual_seed(seed + i) for i in idx]
        prompt = [data.captions[i] for i in idx] if getattr(pipe, "text_encoder", None) is not None else None
        video = data.history_frames([source[i] for i in idx], history_frames) if uses_frames(pipe) else None
        res = pipe(data.tracks[idx, :history_frames], data.visibility[idx, :history_frames], video=video, prompt=prompt,
                   num_samples=num_samples, num_inference_steps=num_inference_steps, solver=solver, generator=gens,
                   visibility_mode=run_mode, temporal_smoothing=temporal_smoothing, num_windows=num_windows,
                   rollout_video=rollout_video, fix_first_latent=fix_first_latent,
                   boundary_continuity=boundary_continuity)
        outs.append(res.future_tracks)
        heads.append(res.future_visibility)
        inside.append(res.future_in_frame)
    tracks, inside = np.concatenate(outs), np.concatenate(inside)
    last = pipe.hold_last_visibility(data.tracks[:, :history_frames], data.visibility[:, :history_frames]).cpu().numpy()
    readings = {"hold_last": last[:, None, None, :] & inside}
    if run_mode == "head":
        readings["head"] = np.concatenate(heads)
    return SplitForecast(tracks, readings[mode], readings)


CONTINUITY_TAUS = (0.0, 5.0, 10.0, 20.0, 40.0, float("inf"))
CONTINUITY_CRITERIA = ("min_ade", "fvmd")


@dataclass
class VisibilityChoice:
    """:func:`choose_visibility_mode`'s result: the chosen ``mode`` (``"head"`` or ``"hold_last"``, a pipeline's
    ``visibility_mode``) and ``scores`` (``{reading: {"accuracy", "occlusion_f1"}}``, every reading scored)."""

    mode: str
    scores: Dict[str, Dict[str, float]]


def choose_visibility_mode(readings: Dict[str, np.ndarray], references: np.ndarray) -> VisibilityChoice:
    """The future-visibility reading of a forecast to use: ``readings`` (:attr:`SplitForecast.readings`:
    ``"hold_last"`` and, with a head, ``"head"``, each ``[V, S, T_f, N]`` bool) scored against ``references``
    ``[V, T_f, N]`` (GT visibility of a held-out split).

    The head is chosen only when it beats hold-last on both accuracy and occlusion F1 (issue 12's bar: otherwise a
    user is better off with the trivial reading); ties go to hold-last."""
    if "hold_last" not in readings:
        raise ValueError(f"`readings` must hold a 'hold_last' reading, got {sorted(readings)}")
    unknown = sorted(set(readings) - {"hold_last", "head"})
    if unknown:
        raise ValueError(f"`readings` may hold only 'hold_last' and 'head', got {unknown}")
    scores = {}
    for name in ("hold_last", "head"):
        if name in readings:
            v = visibility_scores(readings[name], references)
            scores[name] = {"accuracy": v.accuracy, "occlusion_f1": v.occlusion_f1}
    head, last = scores.get("head"), scores["hold_last"]
    better = head is not None and all(head[k] > last[k] for k in ("accuracy", "occlusion_f1"))
    return VisibilityChoice("head" if better else "hold_last", scores)


@dataclass
class ContinuityChoice:
    """:func:`choose_boundary_continuity`'s result: the chosen ``tau`` (frames), the ``criterion`` it minimises,
    ``scores`` (``{tau: {"min_ade", "ade", "min_fde", "fvmd"}}``, every tau of the grid, in grid order) and
    ``visibility``, the visibility reading chosen on the same forecast (:func:`choose_visibility_mode`)."""

    tau: float
    criterion: str
    scores: Dict[float, Dict[str, float]]
    visibility: Optional[VisibilityChoice] = None


@torch.no_grad()
def choose_boundary_continuity(pipe, data: BenchSplit, *, taus: Sequence[float] = CONTINUITY_TAUS,
                               criterion: str = "min_ade", num_samples: int = 4, num_inference_steps: int = 10,
                               solver: str = "euler", seed: int = 0, batch_size: int = 4,
                               progress: bool = True) -> ContinuityChoice:
    """The boundary-continuity ``tau`` (frames; :mod:`trajloom_hf.boundary_continuity`) of ``taus`` that gives the
    lowest ``criterion`` (``"min_ade"`` or ``"fvmd"``, GT visibility) on ``data`` (a held-out split, not the test
    split), the first of equal scores, and the visibility reading (head or hold-last, :func:`choose_visibility_mode`)
    of that forecast.

    One forecast with the join off (``boundary_continuity=0``, seeds as :func:`forecast_split`); each tau is then
    applied to those samples as the pipeline applies it (onto the pipeline's :meth:`history_view`, then clipped to
    the frame), so every tau is scored on the same samples. The pipeline joins before it clips: for a point that
    left the frame the post-hoc join shifts the clipped position (its score differs by at most that clipping)."""
    from .boundary_continuity import check_tau, continue_history

    if criterion not in CONTINUITY_CRITERIA:
        raise ValueError(f"`criterion` must be one of {CONTINUITY_CRITERIA}, got {criterion!r}")
    if isinstance(taus, (str, bytes)) or not isinstance(taus, Sequence) or len(taus) == 0:
        raise ValueError(f"`taus` must be a non-empty sequence of taus (frames, 0 = off, inf), got {taus!r}")
    grid = []
    for t in taus:
        t = check_tau(t, "taus")
        if t in grid:
            raise ValueError(f"`taus` names {t:g} twice: {list(taus)}")
        grid.append(t)
    t_h = pipe.history_frames
    t_f = min(pipe.future_frames, data.tracks.shape[1] - t_h)
    if t_f < 2:
        raise ValueError(f"clips have {data.tracks.shape[1]} frames: no future window after {t_h} history frames")
    fc = forecast_split(pipe, data, t_h, num_samples=num_samples, num_inference_steps=num_inference_steps,
                        solver=solver, seed=seed, batch_size=batch_size, progress=progress, boundary_continuity=0.0)
    pred = torch.from_numpy(np.ascontiguousarray(fc.tracks[:, :, :t_f], dtype=np.float32))  # [V, S, T_f, N, 2]
    v, s = pred.shape[:2]
    view_t, view_v = pipe.history_view(data.tracks[:, :t_h], data.visibility[:, :t_h])
    view_t = view_t.cpu().repeat_interleave(s, dim=0)
    view_v = view_v.cpu().repeat_interleave(s, dim=0)
    gt, gt_vis = data.tracks[:, t_h:t_h + t_f], data.visibility[:, t_h:t_h + t_f]
    h, w = pipe.frame_size
    scores = {}
    for tau in grid:
        joined = continue_history(pred.reshape(v * s, *pred.shape[2:]), view_t, view_v, tau)
        joined = clip_to_frame(joined, h, w).reshape(pred.shape).numpy()
        d = displacement_errors(joined, gt, gt_vis)
        scores[tau] = {"min_ade": d.min_ade, "ade": d.ade, "min_fde": d.min_fde,
                       "fvmd": fvmd(joined[:, 0], gt, prediction_visibility=gt_vis, reference_visibility=gt_vis,
                                    grid_shape=data.grid_shape, clip_len=16, clip_stride=1).combined}  # as :func:`score`
    best = min(grid, key=lambda t: scores[t][criterion])  # min() keeps the first of equal scores
    # the readings AND the in-frame test of the unjoined tracks (the join moves a point by a few px at most)
    visibility = choose_visibility_mode({k: r[:, :, :t_f] for k, r in fc.readings.items()}, gt_vis)
    return ContinuityChoice(tau=best, criterion=criterion, scores=scores, visibility=visibility)


def continuity_markdown(choice: ContinuityChoice, name: str = "") -> str:
    """A table of :class:`ContinuityChoice` scores, one row per tau, the chosen one in bold."""
    rows = [f"| tau (frames){f' · {name}' if name else ''} | minADE@K | ADE | minFDE@K | FVMD |", "|---|---|---|---|---|"]
    for tau, sc in choice.scores.items():
        label = "0 (off)" if tau == 0 else ("inf" if tau == float("inf") else f"{tau:g}")
        cells = [label] + [f"{sc[k]:.3f}" for k in ("min_ade", "ade", "min_fde")] + [f"{sc['fvmd']:.2f}"]
        if tau == choice.tau:
            cells = [f"**{c}**" for c in cells]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def visibility_markdown(choice: VisibilityChoice) -> str:
    """A table of :class:`VisibilityChoice` scores, one row per reading, the chosen one in bold."""
    rows = ["| visibility reading | accuracy | occlusion F1 |", "|---|---|---|"]
    for name, sc in choice.scores.items():
        cells = [name.replace("_", "-"), f"{sc['accuracy']:.4f}", f"{sc['occlusion_f1']:.4f}"]
        if name == choice.mode:
            cells = [f"**{c}**" for c in cells]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


@torch.no_grad()
def vae_reconstruct(vae, tracks: np.ndarray, batch_size: int = 8, temporal_smoothing: float = 0.0) -> np.ndarray:
    """``decode(encode(x).mean, clamp=True)`` of pixel tracks ``[V, T, N, 2]`` (``T = vae.config.num_frames``) ->
    ``[V, T, N, 2]`` fp32 px: the VAE's reconstruction, the flow's target decoded (posterior mean, eq. 6), then
    smoothed along time as a pipeline with that ``temporal_smoothing`` (sigma, frames) would."""
    from .track_smoothing import check_sigma, smooth_tracks_in_time

    from .encoding import denormalize_tracks, normalize_tracks

    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive integer, got {batch_size!r}")
    sigma = check_sigma(temporal_smoothing)
    h, w = vae.config.height, vae.config.width
    param = next(vae.parameters())
    recs = []
    for i in range(0, len(tracks), batch_size):
        x = normalize_tracks(torch.as_tensor(np.asarray(tracks[i : i + batch_size], np.float32), device=param.device), h, w)
        rec = smooth_tracks_in_time(vae.decode(vae.encode(x).latent_dist.mode(), clamp=True).sample, sigma)
        recs.append(denormalize_tracks(rec.float(), h, w).cpu().numpy())
    return np.concatenate(recs).astype(np.float32)


@torch.no_grad()
def vae_reconstruction_vepes(vae, gt: np.ndarray, gt_vis: np.ndarray, segment_frames: Sequence[int] = (),
                             batch_size: int = 8) -> Dict[str, float]:
    """VEPE (px) of ``decode(encode(gt).mean)`` on the GT future windows ``[V, T, N, 2]`` (paper Table 2).

    Returns ``{"vae_vepe": VEPE over the whole window}`` plus ``"vae_vepe_<L>"`` for each ``L`` in
    ``segment_frames``: the VEPE of the first ``L`` frames of each reconstructed window (the official
    ``compute_vae_recon_metrics.py --eval_len L``; Table 2 reports L = 24 and 81 with an 81-frame VAE). Pooled over all
    visible (t, n) of all clips.
    """
    t = gt.shape[1]
    for length in segment_frames:
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or not 1 <= length <= t:
            raise ValueError(f"`segment_frames` entries must be integers in [1, {t}] (the VAE window), got {length!r}")
    rec = vae_reconstruct(vae, gt, batch_size)
    out = {"vae_vepe": vepe(rec, gt, gt_vis)}
    for length in segment_frames:
        out[f"vae_vepe_{int(length)}"] = vepe(rec[:, :length], gt[:, :length], gt_vis[:, :length])
    return out


def vae_reconstruction_vepe(vae, gt: np.ndarray, gt_vis: np.ndarray, batch_size: int = 8) -> float:
    """VEPE (px) of ``decode(encode(gt).mean)`` on the GT windows ``[V, T, N, 2]``; see :func:`vae_reconstruction_vepes`."""
    return vae_reconstruction_vepes(vae, gt, gt_vis, batch_size=batch_size)["vae_vepe"]


def results_markdown(results: Dict[str, Dict[str, float]], dataset: str) -> str:
    """Markdown table in the layout of the paper's Table 1: rows (metric, method), one column per dataset."""
    lines = [f"| Metric | Method | {dataset} |", "|---|---|---|"]
    rows = dict(TABLE_ROWS)
    segments = sorted({int(k.rsplit("_", 1)[1]) for sc in results.values() for k in sc if k.startswith("vae_vepe_")})
    rows.update({f"vae_vepe_{n}": (f"VAE VEPE, {n}-frame segments (px)", 1.0) for n in segments})
    for key, (label, scale) in rows.items():
        for method, scores in results.items():
            if key in scores and scores[key] is not None and np.isfinite(scores[key]):
                lines.append(f"| {label} | {method} | {scores[key] * scale:.4g} |")
    return "\n".join(lines)


def acceleration_markdown(results: Dict[str, Dict[str, float]], reference: float) -> str:
    """Markdown list of each method's ``mean_accel`` (px / frame^2) under the ground truth's ``reference`` value."""
    lines = ["Mean acceleration magnitude, px/frame^2 (first sample, GT-visible triplets; a jitter diagnostic, not a "
             "score: compare with the ground truth)", "", f"- ground truth: {reference:.4g}"]
    lines += [f"- {method}: {scores['mean_accel']:.4g}" for method, scores in results.items()
              if np.isfinite(scores.get("mean_accel", float("nan")))]
    return "\n".join(lines)


def _same_weights(a, b) -> bool:
    """Whether two VAEs have the same config and parameters (pipelines sharing a VAE get one oracle row)."""
    if {k: v for k, v in a.config.items() if not k.startswith("_")} != \
            {k: v for k, v in b.config.items() if not k.startswith("_")}:  # `_name_or_path` is the folder
        return False
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    return pa.keys() == pb.keys() and all(torch.equal(pa[k].cpu(), pb[k].cpu()) for k in pa)


def evaluate_bench(
    pipelines: Dict[str, str],
    bench: str,
    config: str,
    split: str = "test",
    *,
    num_samples: int = 4,
    num_inference_steps: int = 10,
    solver: str = "euler",
    seed: int = 0,
    max_clips: Optional[int] = None,
    out_dir: Optional[str] = None,
    progress: bool = True,
    vepe_frames: Sequence[int] = (),
    shuffle_frames: bool = False,
    torch_dtype: Optional[torch.dtype] = None,
    oracle: bool = False,
    temporal_smoothing: Optional[float] = None,
    num_windows: int = 1,
    rollout_video: str = "hold_last",
    fix_first_latent: Optional[bool] = None,
    boundary_continuity: Optional[float] = None,
) -> Dict[str, Dict[str, float]]:
    """Score every pipeline folder in ``pipelines`` (name -> path) and the static / constant-velocity baselines
    (with ``shuffle_frames``, frame-conditioned pipelines also with another clip's frames: module docstring).

    The history length is the first pipeline's ``vae.config.num_frames``; every method is scored on the same future
    window. ``vepe_frames`` (e.g. ``(24, 81)``, Table 2) adds the VAE VEPE of the first L frames of each window
    (``vae_vepe_<L>``). ``torch_dtype`` (e.g. ``torch.bfloat16``) loads the model trunks in that dtype (None:
    fp32); coordinates and scores stay fp32. ``oracle`` adds the row ``"VAE reconstruction (oracle, <name>)"`` of
    every pipeline whose VAE window equals the future window (module docstring), smoothed as that pipeline's
    forecasts are. ``temporal_smoothing`` (sigma, frames) overrides every pipeline's own (None: each pipeline's
    config; :mod:`trajloom_hf.track_smoothing`). ``fix_first_latent`` overrides every pipeline's scheduler config
    (the official ``--fix_first_frame``; None: each pipeline's own, False unless set); ``boundary_continuity`` (tau,
    frames) every pipeline's config (None: each pipeline's own, 0 = off; :mod:`trajloom_hf.boundary_continuity`). Writes ``results.json`` and
    ``results.md`` to ``out_dir`` when given (atomically).

    ``num_windows`` ``k > 1``: every pipeline forecasts ``k`` windows with its rollout (``pipe(..., num_windows=k,
    rollout_video=rollout_video)``, README "Past one window"), the baselines extrapolate over the same horizon, and
    every row is scored window by window (:func:`score_windows`) against the GT of that window; the clips must hold
    ``k`` whole windows after the history (else a ``ValueError`` before any sampling). Window 1's scores are the
    methods' keys, as for ``k = 1`` (the same numbers); window ``j`` is each method's ``"window_<j>"`` entry
    (:func:`window_results`); ``results.md`` gets one section per window.
    """
    from .pipelines import TrajLoomPipeline
    from .pipelines.pipeline_trajloom import ROLLOUT_VIDEO_MODES

    if not pipelines:
        raise ValueError("`pipelines` must name at least one pipeline folder")
    if isinstance(num_windows, bool) or not isinstance(num_windows, (int, np.integer)) or num_windows < 1:
        raise ValueError(f"`num_windows` (--num-windows) must be a positive integer, got {num_windows!r}")
    num_windows = int(num_windows)
    if rollout_video not in ROLLOUT_VIDEO_MODES:
        raise ValueError(f"`rollout_video` must be one of {ROLLOUT_VIDEO_MODES}, got {rollout_video!r}")
    loaded = {}
    for name, path in pipelines.items():
        if not Path(path, "model_index.json").is_file():
            raise FileNotFoundError(f"pipeline folder {path!r} ({name}) has no model_index.json")
        loaded[name] = TrajLoomPipeline.from_pretrained(path, **({} if torch_dtype is None else {"torch_dtype": torch_dtype}))
    if temporal_smoothing is not None:
        from .track_smoothing import check_sigma

        temporal_smoothing = check_sigma(temporal_smoothing)
    if boundary_continuity is not None:
        from .boundary_continuity import check_tau

        boundary_continuity = check_tau(boundary_continuity)
    if not isinstance(oracle, bool):
        raise TypeError(f"`oracle` must be True or False, got {oracle!r}")
    if fix_first_latent is not None and not isinstance(fix_first_latent, bool):
        raise TypeError(f"`fix_first_latent` must be True, False or None, got {fix_first_latent!r}")
    if shuffle_frames and not any(uses_frames(p) for p in loaded.values()):
        raise ValueError("`shuffle_frames` needs a pipeline that conditions on the frames (frame_encoder or video_vae)")
    data = load_bench_split(bench, config, split, max_clips, with_video=any(uses_frames(p) for p in loaded.values()))
    first = next(iter(loaded.values()))
    t_h, k = first.history_frames, num_windows
    if k == 1:
        t_f = min(first.vae.config.num_frames, data.tracks.shape[1] - t_h)
        if t_f < 2:
            raise ValueError(f"clips have {data.tracks.shape[1]} frames: no future window after {t_h} history frames")
    else:  # a rollout scores whole windows only: the clips must hold all of them (checked before any sampling)
        t_f = first.future_frames
        for name, pipe in loaded.items():
            if (pipe.history_frames, pipe.future_frames) != (t_h, t_f):
                raise ValueError(f"`num_windows` (--num-windows) {k}: every pipeline must forecast windows of the "
                                 f"same length; {name!r} has {pipe.history_frames} history + {pipe.future_frames} "
                                 f"future frames, the first pipeline {t_h} + {t_f}")
        have = data.tracks.shape[1] - t_h
        if have < k * t_f:
            raise ValueError(f"`num_windows` (--num-windows) {k} needs {k} x {t_f} = {k * t_f} future frames per clip "
                             f"after the {t_h}-frame history; the clips of {config}/{split} have {have} "
                             f"({data.tracks.shape[1]} frames in all)")
    for name, pipe in loaded.items():
        if pipe.frame_size != (data.height, data.width) or pipe.vae.config.patch_size != data.stride:
            raise ValueError(f"pipeline {name!r} works at {pipe.frame_size} stride {pipe.vae.config.patch_size}, the "
                             f"bench at {(data.height, data.width)} stride {data.stride}")
    for length in vepe_frames:
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or not 1 <= length <= t_f:
            raise ValueError(f"`vepe_frames` entries must be integers in [1, {t_f}] (the future window), got {length!r}")
    hist = data.tracks[:, :t_h]
    gt_w = rollout_windows(data.tracks, t_h, t_f, k)
    vis_w = rollout_windows(data.visibility, t_h, t_f, k, "visibility")
    grid, stride, size = data.grid_shape, float(data.stride), (data.height, data.width)
    windows: List[Dict[str, Dict[str, float]]] = [{} for _ in range(k)]  # per window: method -> scores

    def add(name, pred, pred_vis, readings=None, vae=None):
        """Score ``pred [V, S, k T_f, N, 2]`` window by window (with the visibility readings and the VAE's VEPE)."""
        for j, sc in enumerate(score_windows(pred, data.tracks, data.visibility, t_h, t_f, k, grid, stride, pred_vis,
                                             frame_size=size)):
            cut = slice(j * t_f, (j + 1) * t_f)
            for reading, values in (readings or {}).items():  # both readings, whichever the pipeline uses by default
                v = visibility_scores(values[:, :, cut], vis_w[j])
                sc[f"vis_accuracy_{reading}"] = v.accuracy
                sc[f"occlusion_f1_{reading}"] = v.occlusion_f1
            if vae is not None:
                sc.update(vae_reconstruction_vepes(vae, gt_w[j], vis_w[j], vepe_frames))
            windows[j][name] = sc

    forecast = dict(num_samples=num_samples, num_inference_steps=num_inference_steps, solver=solver, seed=seed,
                    progress=progress, temporal_smoothing=temporal_smoothing, num_windows=k, rollout_video=rollout_video,
                    fix_first_latent=fix_first_latent, boundary_continuity=boundary_continuity)
    oracle_vaes = []  # (name, vae) already scored as an oracle row
    held = held_visibility(data.visibility[:, :t_h], k * t_f)
    for name, pipe in loaded.items():
        pred, pred_vis, readings = forecast_split(pipe, data, t_h, **forecast)
        add(name, pred, pred_vis, readings, pipe.vae if pipe.vae.config.num_frames == t_f else None)
        if oracle and pipe.vae.config.num_frames == t_f and not any(_same_weights(pipe.vae, v) for _, v in oracle_vaes):
            oracle_vaes.append((name, pipe.vae))
            sigma = pipe.resolve_temporal_smoothing(temporal_smoothing)
            rec = np.concatenate([vae_reconstruct(pipe.vae, g, temporal_smoothing=sigma) for g in gt_w], 1)
            add(f"VAE reconstruction (oracle, {name})", rec[:, None], (held & in_frame(rec, *size))[:, None])
        elif oracle and pipe.vae.config.num_frames != t_f:
            logger.warning("no oracle row for %r: its VAE window (%d frames) is not the future window (%d)", name,
                           pipe.vae.config.num_frames, t_f)
        if shuffle_frames and uses_frames(pipe):
            other = [(i + 1) % len(hist) for i in range(len(hist))]  # every clip gets another clip's frames
            pred, pred_vis, _ = forecast_split(pipe, data, t_h, frame_source=other, **forecast)
            add(f"{name} (other clip's frames)", pred, pred_vis)
    cv = constant_velocity_baseline(hist, k * t_f)
    add("constant velocity", cv[:, None], (held & in_frame(cv, *size))[:, None])
    add("static", static_baseline(hist, k * t_f)[:, None], held[:, None])
    results = windows[0]
    for j in range(1, k):  # later windows: nested under "window_<j>" of each method (window 1's keys stay as for k = 1)
        for name, sc in windows[j].items():
            results[name][f"window_{j + 1}"] = sc
    if out_dir is not None:
        from .video_io import atomic_path

        out = Path(out_dir)
        gt, gt_vis = gt_w[0], vis_w[0]
        meta = {"bench": bench, "config": config, "split": split, "num_clips": int(len(gt)), "history_frames": t_h,
                "future_frames": t_f * k, "num_samples": num_samples, "num_inference_steps": num_inference_steps,
                "solver": solver, "seed": seed, "pipelines": pipelines, "vepe_frames": [int(n) for n in vepe_frames],
                "shuffle_frames": shuffle_frames, "oracle": oracle,
                "gt_mean_accel": mean_acceleration(gt, gt_vis),
                "visibility_modes": {name: pipe.resolve_visibility_mode() for name, pipe in loaded.items()},
                "temporal_smoothing": {name: pipe.resolve_temporal_smoothing(temporal_smoothing)
                                       for name, pipe in loaded.items()},
                "dtype": "float32" if torch_dtype is None else str(torch_dtype).replace("torch.", "")}
        fixed = {name: pipe.scheduler.config.get("fix_first_latent", False) if fix_first_latent is None
                 else fix_first_latent for name, pipe in loaded.items()}
        if any(fixed.values()):  # only when used: the settings of the paper-default runs stay as they were
            meta["fix_first_latent"] = fixed
        joined = {name: pipe.resolve_boundary_continuity(boundary_continuity) for name, pipe in loaded.items()}
        if any(joined.values()):  # only when used, as fix_first_latent
            meta["boundary_continuity"] = joined
        if k > 1:  # only for a rollout: the settings of a one-window run stay as they were
            meta.update(num_windows=k, window_frames=t_f, rollout_video=rollout_video,
                        gt_mean_accel_windows=[mean_acceleration(g, v) for g, v in zip(gt_w, vis_w)])
        title = (f"# TrajLoomBench results ({config}/{split}, {len(gt)} clips, {t_h} + "
                 f"{t_f if k == 1 else f'{k} x {t_f}'} frames, {num_samples} samples, {solver} x {num_inference_steps})")
        with atomic_path(out / "results.json") as tmp:
            Path(tmp).write_text(json.dumps({"settings": meta, "results": results}, indent=2))
        with atomic_path(out / "results.md") as tmp:
            Path(tmp).write_text(title + "\n\n" + windows_markdown(results, f"{config}/{split}", t_f,
                                                                   meta.get("gt_mean_accel_windows",
                                                                            [meta["gt_mean_accel"]])) + "\n")
    return results


def window_results(results: Dict[str, Dict], window: int) -> Dict[str, Dict[str, float]]:
    """The scores of forecast window ``window`` (1-based) of :func:`evaluate_bench`'s ``results``: window 1 is each
    method's own keys, window ``j > 1`` its ``"window_<j>"`` entry (present with ``num_windows >= j``)."""
    if window == 1:
        return {m: {key: v for key, v in sc.items() if not key.startswith("window_")} for m, sc in results.items()}
    found = {m: sc[f"window_{window}"] for m, sc in results.items() if f"window_{window}" in sc}
    if not found:
        raise ValueError(f"`window` {window}: the results hold no window {window} (evaluated with fewer windows)")
    return found


def windows_markdown(results: Dict[str, Dict], dataset: str, window_frames: int,
                     gt_mean_accel: Sequence[float]) -> str:
    """The tables of :func:`results_markdown` and the acceleration list of :func:`acceleration_markdown` (ground truth
    ``gt_mean_accel[j]`` of window ``j + 1``): as they are for one window, one ``## Window j`` section each for more."""
    k = len(gt_mean_accel)
    if k == 1:
        return results_markdown(results, dataset) + "\n\n" + acceleration_markdown(results, gt_mean_accel[0])
    parts = []
    for j in range(1, k + 1):
        per = window_results(results, j)
        parts.append(f"## Window {j} (future frames {(j - 1) * window_frames + 1}-{j * window_frames})\n\n"
                     + results_markdown(per, dataset) + "\n\n" + acceleration_markdown(per, gt_mean_accel[j - 1]))
    return "\n\n".join(parts)
