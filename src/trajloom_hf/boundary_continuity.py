"""Boundary continuity: join a decoded future window onto its history in pixel space.

A forecast window starts one frame after the last history frame, so its first frame is nearly determined by the
history: a point moves about one frame's velocity. The flow does not have to get that right, and a small one does
not: on the quickstart's physics bench the best-of-K error at future frame 0 is ~2.6 px while constant velocity is
within 0.06 px there, although the VAE reconstructs the window to 0.15 px. Removing that offset from the whole
window (``tau`` 40 or inf) lowers minADE most on that bench's validation split, so the offset persists over the
window (README, "Boundary continuity").

``continue_history`` measures that offset at future frame 0, ``d = x_0 - (h_{-1} + (h_{-1} - h_{-2}))``, and
removes it with a weight that decays over the window, ``x_t <- x_t - exp(-t / tau) d`` (``tau = inf``: the whole
offset at every frame). The reference is the first step of constant velocity on the history the model sees: a
pipeline whose history is one frame held still (the WHN-style ``last_frame`` view) has zero velocity there, so its
futures are joined to the points' current positions and it learns nothing about their motion. Only points visible
in the two last history frames are moved (an occluded history position is a guess). This is not in the paper: it
is an option of :class:`~trajloom_hf.TrajLoomPipeline`, off by default (``boundary_continuity=0``).
"""

from __future__ import annotations

import math
import numbers

import torch


def check_tau(tau, name: str = "boundary_continuity") -> float:
    """``tau`` as a float: a number > 0 in frames (``math.inf``: a constant shift), or 0 = off."""
    if isinstance(tau, bool) or not isinstance(tau, numbers.Real) or math.isnan(tau) or tau < 0:
        raise ValueError(f"`{name}` must be 0 (off), a number of frames > 0 or inf, got {tau!r}")
    return float(tau)


def continuity_weights(num_frames: int, tau: float) -> torch.Tensor:
    """``[num_frames]`` float32: ``exp(-t / tau)`` for ``t = 0 .. num_frames - 1`` (all ones for ``tau = inf``,
    all zeros for ``tau = 0``)."""
    tau = check_tau(tau, "tau")
    t = torch.arange(num_frames, dtype=torch.float32)
    if tau == 0:
        return torch.zeros(num_frames)
    return torch.exp(-t / tau) if math.isfinite(tau) else torch.ones(num_frames)


def continue_history(future: torch.Tensor, history: torch.Tensor, history_visibility: torch.Tensor,
                     tau: float) -> torch.Tensor:
    """Shift ``future`` ``[R, T_f, N, 2]`` px so that its first frame continues ``history`` ``[R, T_h, N, 2]`` px
    (``T_h >= 2``) at constant velocity, the shift decaying as ``exp(-t / tau)`` over the future frames ``t``.

    Points not visible (``history_visibility`` ``[R, T_h, N]`` bool) in both of the last two history frames are
    left as they are. Computed and returned in fp32; ``tau = 0`` returns ``future`` unchanged (as fp32)."""
    tau = check_tau(tau, "tau")
    if not isinstance(future, torch.Tensor) or future.ndim != 4 or future.shape[-1] != 2:
        raise ValueError(f"`future` must be a tensor [R, T_f, N, 2] (px), got "
                         f"{list(future.shape) if isinstance(future, torch.Tensor) else type(future).__name__}")
    r, t_f, n, _ = future.shape
    if not isinstance(history, torch.Tensor) or history.ndim != 4 or history.shape[0] != r or history.shape[2:] != (n, 2) \
            or history.shape[1] < 2:
        raise ValueError(f"`history` must be a tensor [R={r}, T_h >= 2, N={n}, 2] (px), got "
                         f"{list(history.shape) if isinstance(history, torch.Tensor) else type(history).__name__}")
    if not isinstance(history_visibility, torch.Tensor) or tuple(history_visibility.shape) != tuple(history.shape[:3]):
        raise ValueError(f"`history_visibility` must be a bool tensor {list(history.shape[:3])}, got "
                         f"{list(history_visibility.shape) if isinstance(history_visibility, torch.Tensor) else type(history_visibility).__name__}")
    x = future.float()
    if tau == 0:
        return x
    h = history.to(device=x.device, dtype=torch.float32)
    reference = 2 * h[:, -1] - h[:, -2]  # h_{-1} + (h_{-1} - h_{-2}): the first constant-velocity step
    seen = (history_visibility[:, -1] & history_visibility[:, -2]).to(x.device)
    offset = torch.where(seen[..., None], x[:, 0] - reference, torch.zeros_like(reference))  # [R, N, 2]
    w = continuity_weights(t_f, tau).to(x.device)
    return x - w[None, :, None, None] * offset[:, None]
