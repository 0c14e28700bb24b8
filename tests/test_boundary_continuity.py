"""trajloom_hf.boundary_continuity and the pipeline's `boundary_continuity` option."""

import math

import pytest
import torch

from trajloom_hf.boundary_continuity import check_tau, continue_history, continuity_weights


def _case():
    # 2 points on a line at 1 px/frame (history), a future that starts 3 px (x) and -2 px (y) off the continuation
    hist = torch.zeros(1, 4, 2, 2)
    hist[0, :, :, 0] = torch.arange(4.0)[:, None] + torch.tensor([10.0, 50.0])
    hist[0, :, :, 1] = 20.0
    fut = torch.zeros(1, 5, 2, 2)
    fut[0, :, :, 0] = 4.0 + torch.arange(5.0)[:, None] + torch.tensor([10.0, 50.0]) + 3.0
    fut[0, :, :, 1] = 20.0 - 2.0
    return fut, hist, torch.ones(1, 4, 2, dtype=torch.bool)


def test_constant_shift_puts_frame_0_on_the_constant_velocity_step():
    fut, hist, vis = _case()
    out = continue_history(fut, hist, vis, math.inf)
    want = fut.clone()
    want[..., 0] -= 3.0
    want[..., 1] += 2.0
    torch.testing.assert_close(out, want)


def test_offset_decays_as_exp_minus_t_over_tau_and_skips_unseen_points():
    fut, hist, vis = _case()
    vis[0, -2, 1] = False  # point 1 not seen in the second-to-last frame: its velocity is unknown
    out = continue_history(fut, hist, vis, 2.0)
    w = torch.exp(-torch.arange(5.0) / 2.0)
    torch.testing.assert_close(out[0, :, 0, 0], fut[0, :, 0, 0] - 3.0 * w)
    torch.testing.assert_close(out[0, :, 0, 1], fut[0, :, 0, 1] + 2.0 * w)
    torch.testing.assert_close(out[0, :, 1], fut[0, :, 1])
    torch.testing.assert_close(continue_history(fut, hist, vis, 0), fut)


def test_weights_and_argument_errors():
    torch.testing.assert_close(continuity_weights(3, math.inf), torch.ones(3))
    torch.testing.assert_close(continuity_weights(3, 0), torch.zeros(3))
    torch.testing.assert_close(continuity_weights(2, 1.0), torch.tensor([1.0, math.exp(-1.0)]))
    for bad in (-1.0, float("nan"), True, "5"):
        with pytest.raises(ValueError, match="boundary_continuity"):
            check_tau(bad)
    fut, hist, vis = _case()
    with pytest.raises(ValueError, match=r"`history` must be a tensor \[R=1, T_h >= 2, N=2, 2\]"):
        continue_history(fut, hist[:, :1], vis[:, :1], 1.0)
    with pytest.raises(ValueError, match="`future` must be a tensor"):
        continue_history(fut[0], hist, vis, 1.0)
    with pytest.raises(ValueError, match="`history_visibility` must be a bool tensor"):
        continue_history(fut, hist, vis[:, :, :1], 1.0)


def test_pipeline_joins_its_forecast_onto_the_history_it_sees(tmp_path):
    """tau = inf: future frame 0 of every sample is the first constant-velocity step of the history (where that
    lies inside the frame); a last_frame (WHN-style) view joins at the current positions; config default, call
    override, save/load round trip."""
    from tests.test_pipeline_trajloom import H, S, T, W, tiny_pipeline
    from trajloom_hf import TrajLoomPipeline
    from trajloom_hf.data.synthetic import SceneConfig, generate_clip

    clip = generate_clip(1, SceneConfig(height=H, width=W, num_frames=2 * T, stride=S, render=False))
    tracks, vis = clip.tracks[:T], clip.visibility[:T]
    pipe = tiny_pipeline()
    run = lambda p, **kw: p(tracks, vis, num_samples=2, num_inference_steps=2,  # noqa: E731
                            generator=torch.Generator().manual_seed(0), output_type="pt", **kw).future_tracks
    plain, joined = run(pipe), run(pipe, boundary_continuity=math.inf)
    t, v = torch.as_tensor(tracks), torch.as_tensor(vis)
    ref = 2 * t[-1] - t[-2]
    ok = v[-1] & v[-2] & (ref[:, 0] > 0) & (ref[:, 0] < W - 1) & (ref[:, 1] > 0) & (ref[:, 1] < H - 1)
    assert ok.sum() > 5
    for s in range(2):
        torch.testing.assert_close(joined[0, s, 0][ok], ref[ok].float(), atol=1e-4, rtol=0)
    assert (plain[0, :, 0][:, ok] - ref[ok]).abs().max() > 0.1  # without the option frame 0 is off the line
    pipe.register_to_config(boundary_continuity=math.inf)
    pipe.save_pretrained(tmp_path / "p")
    loaded = TrajLoomPipeline.from_pretrained(tmp_path / "p")
    assert loaded.config.boundary_continuity == math.inf
    torch.testing.assert_close(run(loaded), joined)
    torch.testing.assert_close(run(loaded, boundary_continuity=0), plain)
    held = TrajLoomPipeline(vae=pipe.vae, transformer=pipe.transformer, scheduler=pipe.scheduler,
                            history_mode="last_frame", boundary_continuity=math.inf)
    out = run(held)
    torch.testing.assert_close(out[0, 0, 0][ok], t[-1][ok].float(), atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="boundary_continuity"):
        run(pipe, boundary_continuity=-2.0)
    with pytest.raises(ValueError, match="boundary_continuity"):
        TrajLoomPipeline(vae=pipe.vae, transformer=pipe.transformer, scheduler=pipe.scheduler, boundary_continuity="x")
