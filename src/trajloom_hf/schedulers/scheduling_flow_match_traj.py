"""Rectified-flow scheduler of TrajLoom-Flow (paper §3.3, App. A.2, D.4; reference §3.11).

Convention (the paper's, kept everywhere in this package): flow time ``t`` runs from the **source** state
``z_0`` at ``t = 0`` to the **data** ``z_1`` at ``t = 1``::

    z_t = (1 - t) z_0 + t z_1,        dz/dt = v(z_t, t) ≈ z_1 - z_0.

Relation to diffusers' flow-matching schedulers (``FlowMatchEulerDiscreteScheduler``): diffusers uses the noise
level ``sigma = 1 - t`` (``sigma = 1`` is noise) and a velocity ``v_diffusers = z_0 - z_1 = -v``; its model receives
``sigma * 1000`` while TrajLoom's generator receives ``t`` itself in [0, 1].  A diffusers Euler step
``z + (sigma_next - sigma) v_diffusers`` is therefore identical to our ``z + (t_next - t) v``.

The module also holds the training-time samplers of the flow (``t`` mixture, boundary-anchored source ``z_0``,
interpolation with tube noise) so that training and inference draw from the same source distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Union

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor

GeneratorLike = Optional[Union[torch.Generator, List[torch.Generator]]]
VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

SOLVERS = ("euler", "heun", "dopri5", "dopri5_adaptive")
SPACINGS = ("uniform", "logit", "logit_uniform")

# Dormand–Prince 5(4) tableau (Dormand & Prince 1980); the 7th stage is the FSAL stage.
_DP_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_DP_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_DP_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_DP_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)


# ----------------------------------------------------------------------------------------------------------------
# time grids and training-time samplers (shared by training and inference)


def _check_num_steps(num_steps, name: str = "num_inference_steps") -> int:
    if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {num_steps!r}")
    return num_steps


def flow_time_grid(num_steps: int, spacing: str = "uniform", t_eps: float = 1e-5, device=None) -> torch.Tensor:
    """Increasing flow-time grid ``[num_steps + 1]`` float64 from source to data.

    * ``"uniform"``: ``t_i = i / num_steps`` on [0, 1] (the official sampler, reference §3.11);
    * ``"logit"``: the ``i / K`` quantiles of the logit-normal training distribution ``sigmoid(N(0, 1))`` (App. A.2),
      ``t_i = sigmoid(Φ^{-1}(i / K))``, with the ends clamped to ``t_eps`` and ``1 - t_eps``: our reading of the
      "logit-spaced time grid in [t_eps, 1 - t_eps]" of the on-policy stage (App. A.3; no code was released).
      Steps are denser around t = 0.5 where training puts most of its t samples (K = 8: 1e-5, 0.24, 0.34, 0.42,
      0.5, 0.58, 0.66, 0.76, 1 - 1e-5);
    * ``"logit_uniform"``: uniform in logit space between ``logit(t_eps)`` and ``logit(1 - t_eps)`` (the literal
      alternative; with t_eps = 1e-5 it puts most points within 1e-3 of the ends, where the endpoint targets of
      eq. 11 divide by ``1 - t`` or ``t``).
    """
    num_steps = _check_num_steps(num_steps, "num_steps")
    if spacing not in SPACINGS:
        raise ValueError(f"`spacing` must be one of {SPACINGS}, got {spacing!r}")
    if not 0.0 < t_eps < 0.5:
        raise ValueError(f"`t_eps` must be in (0, 0.5), got {t_eps}")
    if spacing == "uniform":
        return torch.linspace(0.0, 1.0, num_steps + 1, dtype=torch.float64, device=device)
    if spacing == "logit":
        q = torch.linspace(0.0, 1.0, num_steps + 1, dtype=torch.float64, device=device)
        grid = torch.sigmoid(math.sqrt(2.0) * torch.erfinv(2.0 * q - 1.0))  # ±inf at the ends -> 0 / 1
        return grid.clamp(t_eps, 1.0 - t_eps)
    lo = math.log(t_eps / (1.0 - t_eps))
    return torch.sigmoid(torch.linspace(lo, -lo, num_steps + 1, dtype=torch.float64, device=device))


def sample_flow_time(
    batch_size: int,
    *,
    small_prob: float = 0.2,
    small_max: float = 0.1,
    t_eps: float = 1e-5,
    generator: Optional[torch.Generator] = None,
    device=None,
) -> torch.Tensor:
    """Training flow times ``[B]`` float32 (App. A.2): with probability ``small_prob`` ``t ~ U(0, small_max)``,
    otherwise ``t = sigmoid(N(0, 1))``; clamped to ``[t_eps, 1 - t_eps]``."""
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be positive, got {batch_size}")
    if not 0.0 <= small_prob <= 1.0 or not 0.0 < small_max <= 1.0:
        raise ValueError(f"`small_prob` must be in [0, 1] and `small_max` in (0, 1], got {small_prob}, {small_max}")
    gen_device = generator.device if generator is not None else device
    pick = torch.rand(batch_size, generator=generator, device=gen_device)
    small = torch.rand(batch_size, generator=generator, device=gen_device) * small_max
    logit_normal = torch.sigmoid(torch.randn(batch_size, generator=generator, device=gen_device))
    t = torch.where(pick < small_prob, small, logit_normal).clamp(t_eps, 1.0 - t_eps)
    return t.to(device=device if device is not None else t.device, dtype=torch.float32)


def sample_source(
    history_latents: Optional[torch.Tensor] = None,
    *,
    shape: Optional[Sequence[int]] = None,
    anchor: bool = True,
    anchor_noise_std: float = 0.1,
    generator: GeneratorLike = None,
    device=None,
) -> torch.Tensor:
    """Source state ``z_0`` ``[B, K, N, C]`` float32 of the flow (paper eqs. 7/19, App. A.2).

    ``z_0 ~ N(0, I)``; with ``anchor`` the first future slice is replaced by the last history latent plus noise,
    ``z_0[:, 0] = z_hist[:, -1] + anchor_noise_std * eta`` (boundary anchoring at k = 0, as in the paper and the
    official ``x0_mode="anchor_first"``; ``anchor=False`` is the "w/o anchoring" ablation of Table 5).
    The two noise draws follow the official order (full tensor first, then the anchor slice), so a seeded
    generator reproduces the official source.

    Args:
        history_latents: normalised history latents ``[B, K, N, C]`` (required when ``anchor``); gives the shape.
        shape: ``[B, K, N, C]`` when no history is given.
        generator: a ``torch.Generator`` or one per batch element (diffusers ``randn_tensor`` semantics).
    """
    if history_latents is not None:
        if history_latents.ndim != 4:
            raise ValueError(f"`history_latents` must have shape [B, K, N, C], got {list(history_latents.shape)}")
        if shape is not None and tuple(shape) != tuple(history_latents.shape):
            raise ValueError(f"`shape` {list(shape)} does not match `history_latents` {list(history_latents.shape)}")
        shape = tuple(history_latents.shape)
        device = history_latents.device if device is None else device
    elif anchor:
        raise ValueError("`history_latents` is required when `anchor=True` (boundary-anchored source, eq. 7)")
    elif shape is None or len(shape) != 4:
        raise ValueError(f"`shape` must be [B, K, N, C] when no history is given, got {shape!r}")
    if anchor_noise_std < 0:
        raise ValueError(f"`anchor_noise_std` must be >= 0, got {anchor_noise_std}")
    z0 = randn_tensor(tuple(shape), generator=generator, device=torch.device(device or "cpu"), dtype=torch.float32)
    if anchor:
        b, _, n, c = shape
        eta = randn_tensor((b, n, c), generator=generator, device=z0.device, dtype=torch.float32)
        z0 = z0.clone()
        z0[:, 0] = history_latents[:, -1].to(torch.float32) + anchor_noise_std * eta
    return z0


def interpolate_flow(
    source: torch.Tensor,
    target: torch.Tensor,
    t: torch.Tensor,
    *,
    tube_sigma: float = 0.05,
    noise: Optional[torch.Tensor] = None,
    generator: GeneratorLike = None,
) -> torch.Tensor:
    """Training state (eq. 8): ``z_t = (1 - t) z_0 + t z_1 + tube_sigma * eps`` in float32; ``t`` is ``[B]`` or scalar."""
    if source.shape != target.shape:
        raise ValueError(f"`source` {list(source.shape)} and `target` {list(target.shape)} must have the same shape")
    t = torch.as_tensor(t, dtype=torch.float32, device=source.device)
    if t.ndim == 1 and t.shape[0] != source.shape[0]:
        raise ValueError(f"`t` must be a scalar or [B={source.shape[0]}], got {list(t.shape)}")
    t = t.reshape(-1, *([1] * (source.ndim - 1))) if t.ndim == 1 else t
    z0, z1 = source.to(torch.float32), target.to(torch.float32)
    z_t = (1.0 - t) * z0 + t * z1
    if tube_sigma > 0:
        if noise is None:
            noise = randn_tensor(tuple(source.shape), generator=generator, device=source.device, dtype=torch.float32)
        elif noise.shape != source.shape:
            raise ValueError(f"`noise` must have shape {list(source.shape)}, got {list(noise.shape)}")
        z_t = z_t + tube_sigma * noise.to(torch.float32)
    return z_t


# ----------------------------------------------------------------------------------------------------------------
# adaptive Dormand–Prince (used when torchdiffeq is not installed)


def _rms_error(err: torch.Tensor, y0: torch.Tensor, y1: torch.Tensor, rtol: float, atol: float) -> float:
    scale = atol + rtol * torch.maximum(y0.abs(), y1.abs())
    return float(torch.sqrt(torch.mean((err / scale) ** 2)))


def _dopri5_stages(f, t: float, y: torch.Tensor, h: float, k1: torch.Tensor):
    ks = [k1]
    for i in range(1, 7):
        dy = sum(a * k for a, k in zip(_DP_A[i], ks) if a != 0.0)
        ks.append(f(t + _DP_C[i] * h, y + h * dy))
    y5 = y + h * sum(b * k for b, k in zip(_DP_B5, ks) if b != 0.0)
    err = h * sum((b5 - b4) * k for b5, b4, k in zip(_DP_B5, _DP_B4, ks) if b5 != b4)
    return y5, err, ks[6]


def dopri5_integrate(
    f: Callable[[float, torch.Tensor], torch.Tensor],
    y0: torch.Tensor,
    t0: float = 0.0,
    t1: float = 1.0,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    max_num_steps: int = 10_000,
    safety: float = 0.9,
    min_factor: float = 0.2,
    max_factor: float = 10.0,
):
    """Adaptive RK45 (Dormand–Prince, FSAL, Hairer's initial step) from ``t0`` to ``t1``.

    One step size for the whole tensor (all batch elements), RMS error norm scaled by ``atol + rtol |y|``, like
    torchdiffeq's ``dopri5``. Returns ``(y(t1), number of function evaluations)``.
    """
    y = y0
    t = float(t0)
    k1 = f(t, y)
    nfe = 1
    # Hairer, Nørsett & Wanner, Solving ODEs I, §II.4 initial step selection.
    scale = atol + rtol * y.abs()
    d0 = float(torch.sqrt(torch.mean((y / scale) ** 2)))
    d1 = float(torch.sqrt(torch.mean((k1 / scale) ** 2)))
    h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
    k_probe = f(t + h0, y + h0 * k1)
    nfe += 1
    d2 = float(torch.sqrt(torch.mean(((k_probe - k1) / scale) ** 2))) / h0
    h1 = max(1e-6, h0 * 1e-3) if max(d1, d2) <= 1e-15 else (0.01 / max(d1, d2)) ** (1.0 / 5.0)
    h = min(100.0 * h0, h1, t1 - t)
    steps = 0
    while t < t1 - 1e-12:
        if steps >= max_num_steps:
            raise RuntimeError(f"dopri5 did not reach t={t1} within {max_num_steps} steps (t={t:.6f}, h={h:.3e})")
        h = min(h, t1 - t)
        y_new, err, k_last = _dopri5_stages(f, t, y, h, k1)
        nfe += 6
        steps += 1
        err_norm = _rms_error(err, y, y_new, rtol, atol)
        if not math.isfinite(err_norm):
            factor = min_factor
        elif err_norm == 0.0:
            factor = max_factor
        else:
            factor = min(max_factor, max(min_factor, safety * err_norm ** (-1.0 / 5.0)))
        if err_norm <= 1.0:
            t, y, k1 = t + h, y_new, k_last
        h = h * factor
    return y, nfe


def dopri5_fixed(f, y0: torch.Tensor, grid: torch.Tensor):
    """Fixed-step Dormand–Prince (5th-order solution, no error control) on ``grid``; returns ``(y, nfe)``."""
    y, k1 = y0, None
    nfe = 0
    for i in range(len(grid) - 1):
        t, h = float(grid[i]), float(grid[i + 1] - grid[i])
        if k1 is None:
            k1 = f(t, y)
            nfe += 1
        y, _, k1 = _dopri5_stages(f, t, y, h, k1)
        nfe += 6
    return y, nfe


# ----------------------------------------------------------------------------------------------------------------
# the scheduler


@dataclass
class FlowMatchTrajSchedulerOutput(BaseOutput):
    """Output of :meth:`FlowMatchTrajScheduler.step`.

    Args:
        prev_sample: ``[B, K, N, C]`` float32 state for the next model evaluation (for Heun's first stage: the
            Euler predictor at the next time).
        pred_original_sample: ``[B, K, N, C]`` implied data endpoint ``z + (1 - t) v`` (eq. 13's ``ẑ^(1)``).
    """

    prev_sample: torch.Tensor
    pred_original_sample: Optional[torch.Tensor] = None


@dataclass
class FlowMatchTrajSamplerOutput(BaseOutput):
    """Output of :meth:`FlowMatchTrajScheduler.sample`: the state at ``t = 1`` and the number of model evaluations."""

    sample: torch.Tensor
    nfe: int


class FlowMatchTrajScheduler(SchedulerMixin, ConfigMixin):
    """Rectified-flow ODE solver from the source (``t = 0``) to the data (``t = 1``) for TrajLoom-Flow.

    Inference loop (Euler or Heun; one model evaluation per entry of ``timesteps``)::

        z = scheduler.sample_source(history_latents, generator=g)
        scheduler.set_timesteps(10)
        for t in scheduler.timesteps:
            v = transformer(z, scheduler.model_timestep(t, z.shape[0]), context=ctx).sample
            z = scheduler.step(v, t, z).prev_sample

    or ``scheduler.sample(model_fn, z)`` for any solver including DOPRI5. The state is kept in float32 (float64
    stays float64).

    DOPRI5 (App. D.4, "DOPRI5 with 100 steps"): ``"dopri5"`` with an explicit step count
    (``sample(fn, z, 100)``, or any pipeline call, which always passes ``num_inference_steps``) runs that many
    fixed Dormand–Prince steps on the time grid (``1 + 6 n`` evaluations); ``"dopri5_adaptive"`` is the official
    adaptive solver (rtol / atol, torchdiffeq when installed, otherwise the built-in RK45), whatever the step count.
    ``"dopri5"`` without a step count follows ``dopri5_adaptive`` (default: adaptive, as the official script).

    Args:
        solver: ``"euler"`` (default, paper main setting), ``"heun"`` (2 evaluations per step), ``"dopri5"`` or
            ``"dopri5_adaptive"``.
        timestep_spacing: ``"uniform"`` (``t_i = i / n``, official), ``"logit"`` or ``"logit_uniform"``
            (see :func:`flow_time_grid`).
        t_eps: model evaluations see ``t`` clamped to ``[t_eps, 1 - t_eps]`` (official); also the logit-grid ends.
        rtol / atol: DOPRI5 tolerances (official 1e-5 / 1e-5).
        dopri5_adaptive: what ``"dopri5"`` does when no step count is given: adaptive (official) or fixed steps
            (``num_inference_steps`` of the config).
        dopri5_backend: ``"auto"`` (torchdiffeq if importable), ``"torchdiffeq"`` or ``"native"``.
        anchor_first / anchor_noise_std: boundary-anchored source ``z_0`` (eq. 7, App. A.2).
        fix_first_latent: sampling only: hold the first future latent at the last history latent for the whole
            ODE (the official ``--fix_first_frame`` / ``x0_fix_first_latent``, off there by default; the pipeline
            applies it, :meth:`TrajLoomPipeline.__call__`).
        tube_sigma, t_small_prob, t_small_max: training-time interpolation noise and flow-time mixture (App. A.2).
    """

    _compatibles: List[str] = []

    @register_to_config
    def __init__(
        self,
        solver: str = "euler",
        timestep_spacing: str = "uniform",
        num_inference_steps: int = 10,
        t_eps: float = 1e-5,
        rtol: float = 1e-5,
        atol: float = 1e-5,
        dopri5_adaptive: bool = True,
        dopri5_backend: str = "auto",
        anchor_first: bool = True,
        anchor_noise_std: float = 0.1,
        tube_sigma: float = 0.05,
        t_small_prob: float = 0.2,
        t_small_max: float = 0.1,
        fix_first_latent: bool = False,
    ):
        if not isinstance(fix_first_latent, bool):
            raise TypeError(f"`fix_first_latent` must be True or False, got {fix_first_latent!r}")
        if solver not in SOLVERS:
            raise ValueError(f"`solver` must be one of {SOLVERS}, got {solver!r}")
        if timestep_spacing not in SPACINGS:
            raise ValueError(f"`timestep_spacing` must be one of {SPACINGS}, got {timestep_spacing!r}")
        if dopri5_backend not in ("auto", "torchdiffeq", "native"):
            raise ValueError(f"`dopri5_backend` must be 'auto', 'torchdiffeq' or 'native', got {dopri5_backend!r}")
        _check_num_steps(num_inference_steps)
        self.timesteps: Optional[torch.Tensor] = None
        self.time_grid: Optional[torch.Tensor] = None
        self.num_inference_steps: Optional[int] = None
        self._step_index: Optional[int] = None
        self._first_stage = None  # Heun: (sample, derivative) of the current step
        self._solver = solver  # solver of the current schedule (``set_timesteps(solver=...)`` overrides the config)

    # ------------------------------------------------------------------------------------------------------------
    @property
    def order(self) -> int:
        """Model evaluations per ODE step for the step-wise solvers (diffusers pipelines use it for progress)."""
        return 2 if self._solver == "heun" else 1

    @property
    def step_index(self) -> Optional[int]:
        return self._step_index

    def set_timesteps(
        self,
        num_inference_steps: Optional[int] = None,
        device=None,
        spacing: Optional[str] = None,
        solver: Optional[str] = None,
    ) -> None:
        """Build the grid ``time_grid`` ``[n + 1]`` and the evaluation times ``timesteps`` (float32).

        Euler: ``timesteps = t_0 .. t_{n-1}`` (n evaluations); Heun: ``t_0, t_1, t_1, t_2, ..., t_{n-1}, t_n``
        (2n evaluations, like diffusers' ``HeunDiscreteScheduler``). ``solver`` / ``spacing`` override the config.
        """
        n = _check_num_steps(self.config.num_inference_steps if num_inference_steps is None else num_inference_steps)
        solver = self.config.solver if solver is None else solver
        if solver not in SOLVERS:
            raise ValueError(f"`solver` must be one of {SOLVERS}, got {solver!r}")
        self._solver = solver
        spacing = self.config.timestep_spacing if spacing is None else spacing
        grid = flow_time_grid(n, spacing, self.config.t_eps, device=device)
        self.time_grid = grid
        self.num_inference_steps = n
        if solver == "heun":
            idx = torch.stack([torch.arange(n), torch.arange(1, n + 1)], dim=1).reshape(-1)
            self.timesteps = grid[idx.to(grid.device)].to(torch.float32)
        else:
            self.timesteps = grid[:-1].to(torch.float32)
        self._step_index = 0
        self._first_stage = None

    def model_timestep(self, timestep, batch_size: int, device=None) -> torch.Tensor:
        """Time fed to the model: ``[B]`` float32 clamped to ``[t_eps, 1 - t_eps]`` (official sampler)."""
        t = torch.as_tensor(timestep, dtype=torch.float32, device=device).reshape(-1)
        if t.numel() == 1:
            t = t.expand(batch_size)
        elif t.numel() != batch_size:
            raise ValueError(f"`timestep` must be a scalar or have {batch_size} entries, got {t.numel()}")
        eps = self.config.t_eps
        return t.clamp(eps, 1.0 - eps).contiguous()

    @staticmethod
    def _state_dtype(x: torch.Tensor) -> torch.dtype:
        return torch.float64 if x.dtype == torch.float64 else torch.float32

    def step(
        self,
        model_output: torch.Tensor,
        timestep: Union[float, torch.Tensor],
        sample: torch.Tensor,
        return_dict: bool = True,
    ):
        """Advance by one model evaluation (Euler: one ODE step; Heun: one of its two stages).

        Args:
            model_output: velocity ``v = dz/dt`` ``[B, K, N, C]`` (TrajLoom sign, not diffusers').
            timestep: the entry of ``timesteps`` the model was evaluated at (checked against the schedule).
            sample: current state ``[B, K, N, C]``.
        """
        if self.timesteps is None:
            raise ValueError("call `set_timesteps(num_inference_steps)` before `step()`")
        if self._solver.startswith("dopri5"):
            raise ValueError("the DOPRI5 solvers have no step-wise API; use `scheduler.sample(model_fn, z0, n)`")
        if model_output.shape != sample.shape:
            raise ValueError(f"`model_output` {list(model_output.shape)} must match `sample` {list(sample.shape)}")
        i = self._step_index
        if i >= len(self.timesteps):
            raise ValueError(f"all {len(self.timesteps)} steps were taken; call `set_timesteps` again")
        t_val = float(torch.as_tensor(timestep).reshape(-1)[0])
        if abs(t_val - float(self.timesteps[i])) > 1e-6:
            raise ValueError(f"`timestep`={t_val:.6g} is not the expected entry {float(self.timesteps[i]):.6g} (step {i})")
        dtype = self._state_dtype(sample)
        z = sample.to(dtype)
        v = model_output.to(dtype)
        grid = self.time_grid
        if self._solver == "euler":
            t0, t1 = float(grid[i]), float(grid[i + 1])
            prev = z + (t1 - t0) * v
            x1 = z + (1.0 - t0) * v
        else:
            k = i // 2
            t0, t1 = float(grid[k]), float(grid[k + 1])
            if i % 2 == 0:  # predictor (Euler) to t_{k+1}; keep the first stage
                self._first_stage = (z, v)
                prev = z + (t1 - t0) * v
                x1 = z + (1.0 - t0) * v
            else:  # corrector: trapezoid of the two slopes
                z_k, v_k = self._first_stage
                prev = z_k + (t1 - t0) * 0.5 * (v_k + v)
                x1 = z + (1.0 - t1) * v
                self._first_stage = None
        self._step_index = i + 1
        if not return_dict:
            return (prev, x1)
        return FlowMatchTrajSchedulerOutput(prev_sample=prev, pred_original_sample=x1)

    # ------------------------------------------------------------------------------------------------------------
    def sample(
        self,
        model_fn: VelocityFn,
        source: torch.Tensor,
        num_inference_steps: Optional[int] = None,
        *,
        solver: Optional[str] = None,
        spacing: Optional[str] = None,
        callback: Optional[Callable[[int, float, torch.Tensor], None]] = None,
    ) -> FlowMatchTrajSamplerOutput:
        """Integrate ``dz/dt = model_fn(z, t)`` from ``source`` (t = 0) to t = 1.

        ``model_fn(z [B, K, N, C] float32, t [B] float32 clamped to [t_eps, 1 - t_eps]) -> velocity``. For "euler" /
        "heun" this is the ``set_timesteps`` + ``step`` loop; ``callback(step, t, z)`` is called after each step.
        ``"dopri5"`` with ``num_inference_steps`` runs that many fixed DOPRI5 steps; ``"dopri5_adaptive"`` (or
        ``"dopri5"`` without a step count and ``dopri5_adaptive=True``) the adaptive solver (see the class doc).
        """
        solver = self.config.solver if solver is None else solver
        if solver not in SOLVERS:
            raise ValueError(f"`solver` must be one of {SOLVERS}, got {solver!r}")
        dtype = self._state_dtype(source)
        z = source.to(dtype)
        b = z.shape[0]

        def f(t: float, y: torch.Tensor) -> torch.Tensor:
            return model_fn(y, self.model_timestep(t, b, device=y.device)).to(dtype)

        if solver in ("euler", "heun"):
            self.set_timesteps(num_inference_steps, device=z.device, spacing=spacing, solver=solver)
            for j, t in enumerate(self.timesteps):
                z = self.step(f(float(t), z), t, z).prev_sample
                if callback is not None:
                    callback(j, float(t), z)
            return FlowMatchTrajSamplerOutput(sample=z, nfe=len(self.timesteps))

        adaptive = solver == "dopri5_adaptive" or (num_inference_steps is None and self.config.dopri5_adaptive)
        if not adaptive:
            n = _check_num_steps(self.config.num_inference_steps if num_inference_steps is None else num_inference_steps)
            self.num_inference_steps = n
            grid = flow_time_grid(n, spacing or self.config.timestep_spacing, self.config.t_eps)
            z, nfe = dopri5_fixed(f, z, grid)
            return FlowMatchTrajSamplerOutput(sample=z, nfe=nfe)

        backend = self.config.dopri5_backend
        if backend in ("auto", "torchdiffeq"):
            try:
                from torchdiffeq import odeint
            except ImportError:
                if backend == "torchdiffeq":
                    raise ImportError("dopri5_backend='torchdiffeq' needs `pip install torchdiffeq`") from None
                odeint = None
            if odeint is not None:
                counter = [0]

                def g(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                    counter[0] += 1
                    return f(float(t), y)

                span = torch.tensor([0.0, 1.0], dtype=dtype, device=z.device)
                out = odeint(g, z, span, method="dopri5", rtol=self.config.rtol, atol=self.config.atol)
                return FlowMatchTrajSamplerOutput(sample=out[-1], nfe=counter[0])
        z, nfe = dopri5_integrate(f, z, 0.0, 1.0, rtol=self.config.rtol, atol=self.config.atol)
        return FlowMatchTrajSamplerOutput(sample=z, nfe=nfe)

    # ------------------------------------------------------------------------------------------------------------
    # source distribution and training helpers (defaults from the config)

    def sample_source(
        self,
        history_latents: Optional[torch.Tensor] = None,
        *,
        shape: Optional[Sequence[int]] = None,
        generator: GeneratorLike = None,
        anchor: Optional[bool] = None,
        anchor_noise_std: Optional[float] = None,
        device=None,
    ) -> torch.Tensor:
        """Source ``z_0`` ``[B, K, N, C]`` float32; see :func:`sample_source` (defaults from the config)."""
        return sample_source(
            history_latents,
            shape=shape,
            anchor=self.config.anchor_first if anchor is None else anchor,
            anchor_noise_std=self.config.anchor_noise_std if anchor_noise_std is None else anchor_noise_std,
            generator=generator,
            device=device,
        )

    def sample_training_timesteps(self, batch_size: int, generator=None, device=None) -> torch.Tensor:
        """Training flow times ``[B]`` from the App. A.2 mixture; see :func:`sample_flow_time`."""
        return sample_flow_time(
            batch_size,
            small_prob=self.config.t_small_prob,
            small_max=self.config.t_small_max,
            t_eps=self.config.t_eps,
            generator=generator,
            device=device,
        )

    def interpolate(self, source, target, t, noise=None, generator=None) -> torch.Tensor:
        """Training state ``z_t`` (eq. 8) with the configured tube noise; see :func:`interpolate_flow`."""
        return interpolate_flow(source, target, t, tube_sigma=self.config.tube_sigma, noise=noise, generator=generator)

    @staticmethod
    def velocity_target(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Rectified-flow target ``u = z_1 - z_0`` (eq. 8) in float32."""
        return target.to(torch.float32) - source.to(torch.float32)

    def __len__(self) -> int:
        return self.config.num_inference_steps
