import math

import pytest
import torch

from trajloom_hf.schedulers import FlowMatchTrajScheduler, flow_time_grid, interpolate_flow, sample_flow_time, sample_source
from trajloom_hf.schedulers import scheduling_flow_match_traj as sched_mod


def _decay(z, t):
    return -z


def test_euler_exact_on_constant_velocity():
    s = FlowMatchTrajScheduler()
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(2, 3, 4, 5, generator=g)
    v = torch.randn(2, 3, 4, 5, generator=g)
    s.set_timesteps(7)
    z = z0
    for t in s.timesteps:
        z = s.step(v, t, z).prev_sample
    assert z.dtype == torch.float32
    torch.testing.assert_close(z, z0 + v, rtol=0, atol=1e-5)  # 7 fp32 Euler steps on |z| ~ 4: ~7 ulps
    # same through sample(), with the model seeing clamped times
    seen = []

    def model(z, t):
        seen.append(t.clone())
        return v

    out = s.sample(model, z0, 7)
    torch.testing.assert_close(out.sample, z0 + v, rtol=0, atol=1e-5)
    assert out.nfe == 7 and seen[0].shape == (2,) and float(seen[0][0]) == pytest.approx(1e-5)


def test_euler_matches_manual_official_loop():
    s = FlowMatchTrajScheduler()
    z = torch.randn(1, 2, 3, 4, dtype=torch.float64)
    ref = z.clone()
    for i in range(5):
        t = max(i / 5, 1e-5)
        ref = ref + 0.2 * (math.sin(3 * t) - ref)
    out = s.sample(lambda y, t: torch.sin(3 * t.double()).view(-1, 1, 1, 1) - y, z, 5).sample
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)  # the model sees float32 times


def test_heun_second_order_convergence():
    s = FlowMatchTrajScheduler(solver="heun")
    z0 = torch.ones(1, 1, 2, 2, dtype=torch.float64)
    errs = []
    for n in (4, 8, 16, 32):
        out = s.sample(_decay, z0, n)
        assert out.nfe == 2 * n
        errs.append(float((out.sample - math.exp(-1.0)).abs().max()))
    rates = [math.log2(a / b) for a, b in zip(errs, errs[1:])]
    assert all(1.8 < r < 2.2 for r in rates), rates
    # Euler is only first order on the same problem
    e1 = float((s.sample(_decay, z0, 16, solver="euler").sample - math.exp(-1.0)).abs().max())
    e2 = float((s.sample(_decay, z0, 32, solver="euler").sample - math.exp(-1.0)).abs().max())
    assert 0.8 < math.log2(e1 / e2) < 1.2


def test_heun_stepwise_api_keeps_first_stage():
    s = FlowMatchTrajScheduler(solver="heun")
    s.set_timesteps(2)
    assert s.order == 2
    torch.testing.assert_close(s.timesteps, torch.tensor([0.0, 0.5, 0.5, 1.0]))
    z = torch.full((1, 1, 1, 1), 2.0)
    # dz/dt = t: exact z(1) = z0 + 1/2 (Heun is exact for linear-in-t velocity)
    for t in s.timesteps:
        z = s.step(torch.full_like(z, float(t)), t, z).prev_sample
    assert float(z) == pytest.approx(2.5, abs=1e-6)


@pytest.mark.parametrize("backend", ["native", "auto"])
def test_dopri5_accurate_on_exponential_decay(backend):
    s = FlowMatchTrajScheduler(solver="dopri5", dopri5_backend=backend)
    z0 = torch.linspace(-2, 3, 24, dtype=torch.float64).reshape(1, 2, 3, 4)
    out = s.sample(_decay, z0)
    torch.testing.assert_close(out.sample, z0 * math.exp(-1.0), rtol=0, atol=3e-5)
    assert 7 < out.nfe < 200


def test_native_dopri5_matches_torchdiffeq():
    pytest.importorskip("torchdiffeq")
    z0 = torch.randn(2, 2, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def f(z, t):
        return torch.cos(4 * t.double()).view(-1, 1, 1, 1) * z - 0.5 * torch.tanh(z)

    a = FlowMatchTrajScheduler(solver="dopri5", dopri5_backend="native").sample(f, z0)
    b = FlowMatchTrajScheduler(solver="dopri5", dopri5_backend="torchdiffeq").sample(f, z0)
    ref = FlowMatchTrajScheduler(solver="dopri5", dopri5_backend="native", rtol=1e-11, atol=1e-11).sample(f, z0).sample
    # both adaptive solvers reach the tolerance-level global error, with a similar number of evaluations
    torch.testing.assert_close(a.sample, ref, rtol=2e-3, atol=1e-5)
    torch.testing.assert_close(b.sample, ref, rtol=2e-3, atol=1e-5)
    assert 0.5 < a.nfe / b.nfe < 2


def test_fixed_step_dopri5_is_fifth_order():
    s = FlowMatchTrajScheduler(solver="dopri5", dopri5_adaptive=False)
    z0 = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    e = [float((s.sample(_decay, z0, n).sample - math.exp(-1.0)).abs()) for n in (2, 4)]
    assert math.log2(e[0] / e[1]) > 4.5


def test_dopri5_with_explicit_steps_is_fixed_step_on_linear_ode():
    """App. D.4 "DOPRI5 with 100 steps": an explicit count gives exactly that many fixed steps (1 + 6 n evaluations),
    fifth-order accurate on dz/dt = A z (analytic solution expm(A) z0); "dopri5_adaptive" ignores the count."""
    a = torch.tensor([[-1.0, 2.0], [-2.0, -1.0]], dtype=torch.float64)  # decaying rotation, z(1) = expm(A) z0
    z0 = torch.tensor([1.0, -0.5], dtype=torch.float64).repeat(1, 1, 3, 1)  # [1, 1, 3, 2]
    exact = z0 @ torch.linalg.matrix_exp(a).T
    calls = []

    def f(z, t):
        calls.append(float(t[0]))
        return z @ a.T

    s = FlowMatchTrajScheduler(solver="dopri5")  # dopri5_adaptive=True by default: only without a step count
    errs = []
    for n in (2, 4, 8):
        calls.clear()
        out = s.sample(f, z0, n)
        assert out.nfe == 1 + 6 * n == len(calls)
        assert s.num_inference_steps == n
        errs.append(float((out.sample - exact).abs().max()))
    rates = [math.log2(e1 / e2) for e1, e2 in zip(errs, errs[1:])]
    assert all(4.5 < r < 6.5 for r in rates), (errs, rates)
    assert errs[-1] < 1e-6
    # 100 fixed steps (the paper's setting): global error ~ h^5
    out = s.sample(f, z0, 100)
    assert out.nfe == 601 and float((out.sample - exact).abs().max()) < 1e-10
    # the adaptive solver by name: same answer to its tolerance, step count ignored, NFE from error control
    ad = FlowMatchTrajScheduler(solver="dopri5_adaptive", dopri5_backend="native")
    a5, a50 = ad.sample(f, z0, 5), ad.sample(f, z0, 50)
    assert a5.nfe == a50.nfe and a5.nfe not in (1 + 6 * 5, 1 + 6 * 50)
    torch.testing.assert_close(a5.sample, exact, rtol=0, atol=1e-4)
    # no step count: config decides (adaptive by default)
    assert s.sample(f, z0).nfe == FlowMatchTrajScheduler(solver="dopri5", dopri5_backend=s.config.dopri5_backend).sample(f, z0).nfe


def test_dopri5_has_no_step_api():
    for name in ("dopri5", "dopri5_adaptive"):
        s = FlowMatchTrajScheduler(solver=name)
        s.set_timesteps(4)
        with pytest.raises(ValueError, match="sample"):
            s.step(torch.zeros(1, 1, 1, 1), s.timesteps[0], torch.zeros(1, 1, 1, 1))


def test_time_grids():
    u = flow_time_grid(4)
    torch.testing.assert_close(u, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64))
    # "logit": i/K quantiles of sigmoid(N(0, 1)), ends clamped to [eps, 1 - eps]
    g = flow_time_grid(8, "logit", 1e-5)
    assert float(g[0]) == pytest.approx(1e-5) and float(g[-1]) == pytest.approx(1 - 1e-5)
    assert float(g[4]) == pytest.approx(0.5)
    for i in range(1, 8):
        logit = math.log(float(g[i]) / (1 - float(g[i])))
        assert 0.5 * (1 + math.erf(logit / math.sqrt(2))) == pytest.approx(i / 8, abs=1e-9)
    torch.testing.assert_close(g, 1 - g.flip(0))  # symmetric
    assert 0.2 < float(g[1]) < 0.3 and 0.7 < float(g[7]) < 0.8
    # "logit_uniform": equal steps in logit space
    lu = flow_time_grid(8, "logit_uniform", 1e-5)
    logits = torch.log(lu / (1 - lu))
    torch.testing.assert_close(logits.diff(), torch.full((8,), float(logits[1] - logits[0]), dtype=torch.float64))
    assert float(lu[-1]) == pytest.approx(1 - 1e-5)


def test_bad_input_errors():
    s = FlowMatchTrajScheduler()
    with pytest.raises(ValueError, match="num_inference_steps"):
        s.set_timesteps(0)
    with pytest.raises(ValueError, match="num_inference_steps"):
        s.set_timesteps(-3)
    with pytest.raises(ValueError, match="solver"):
        FlowMatchTrajScheduler(solver="rk4")
    with pytest.raises(ValueError, match="spacing"):
        s.set_timesteps(4, spacing="cosine")
    with pytest.raises(ValueError, match="set_timesteps"):
        FlowMatchTrajScheduler().step(torch.zeros(1, 1, 1, 1), 0.0, torch.zeros(1, 1, 1, 1))
    s.set_timesteps(4)
    with pytest.raises(ValueError, match="expected entry"):
        s.step(torch.zeros(1, 1, 1, 1), 0.5, torch.zeros(1, 1, 1, 1))
    with pytest.raises(ValueError, match="must match"):
        s.step(torch.zeros(1, 1, 1, 2), 0.0, torch.zeros(1, 1, 1, 1))


def test_save_load_roundtrip(tmp_path):
    s = FlowMatchTrajScheduler(solver="heun", timestep_spacing="logit", anchor_noise_std=0.2)
    s.save_pretrained(tmp_path)
    r = FlowMatchTrajScheduler.from_pretrained(tmp_path)
    assert r.config.solver == "heun" and r.config.timestep_spacing == "logit" and r.config.anchor_noise_std == 0.2


def test_flow_time_mixture_statistics():
    g = torch.Generator().manual_seed(0)
    t = sample_flow_time(40000, generator=g)
    assert t.dtype == torch.float32 and float(t.min()) >= 1e-5 and float(t.max()) <= 1 - 1e-5
    # P(t < 0.1) = 0.2 + 0.8 * P(sigmoid(N) < 0.1) = 0.2 + 0.8 * Phi(logit(0.1))
    p_logit = 0.5 * (1 + math.erf(math.log(0.1 / 0.9) / math.sqrt(2)))
    assert float((t < 0.1).float().mean()) == pytest.approx(0.2 + 0.8 * p_logit, abs=0.01)
    assert float((t > 0.5).float().mean()) == pytest.approx(0.4, abs=0.01)


def test_source_anchoring_and_official_rng_order():
    hist = torch.randn(2, 3, 4, 5)
    z0 = sample_source(hist, anchor=True, anchor_noise_std=0.1, generator=torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    ref = torch.randn(2, 3, 4, 5, generator=g)
    ref[:, 0] = hist[:, -1] + 0.1 * torch.randn(2, 4, 5, generator=g)
    torch.testing.assert_close(z0, ref)
    free = sample_source(hist, anchor=False, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(free, torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(7)))
    # per-sample generators: each batch row reproducible on its own
    gens = [torch.Generator().manual_seed(s) for s in (1, 2)]
    both = FlowMatchTrajScheduler().sample_source(hist, generator=gens)
    single = sample_source(hist[1:], generator=[torch.Generator().manual_seed(2)])
    torch.testing.assert_close(both[1:], single)
    with pytest.raises(ValueError, match="history_latents"):
        sample_source(None, shape=(1, 2, 3, 4), anchor=True)


def test_interpolation_with_tube_noise():
    z0, z1, eps = torch.randn(3, 2, 2, 2), torch.randn(3, 2, 2, 2), torch.randn(3, 2, 2, 2)
    t = torch.tensor([0.0, 0.25, 1.0])
    zt = interpolate_flow(z0, z1, t, tube_sigma=0.05, noise=eps)
    ref = (1 - t.view(-1, 1, 1, 1)) * z0 + t.view(-1, 1, 1, 1) * z1 + 0.05 * eps
    torch.testing.assert_close(zt, ref)
    s = FlowMatchTrajScheduler()
    torch.testing.assert_close(s.interpolate(z0, z1, t, noise=eps), ref)
    torch.testing.assert_close(s.velocity_target(z0, z1), z1 - z0)
    with pytest.raises(ValueError, match="t"):
        interpolate_flow(z0, z1, torch.zeros(2))


def test_diffusers_sigma_relation():
    """An Euler step in TrajLoom's t equals diffusers' step in sigma = 1 - t with v_diffusers = -v."""
    s = FlowMatchTrajScheduler()
    s.set_timesteps(4)
    z, v = torch.randn(1, 1, 2, 2), torch.randn(1, 1, 2, 2)
    t0, t1 = float(s.time_grid[0]), float(s.time_grid[1])
    ours = s.step(v, s.timesteps[0], z).prev_sample
    sigma0, sigma1 = 1 - t0, 1 - t1
    torch.testing.assert_close(ours, z + (sigma1 - sigma0) * (-v))
    assert sched_mod.SOLVERS == ("euler", "heun", "dopri5", "dopri5_adaptive")
