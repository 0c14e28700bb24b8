import numpy as np
import pytest
import torch

from trajloom_hf.data.synthetic import SceneConfig, generate_clip
from trajloom_hf.models import AutoencoderTraj, TrajFlowTransformer, VisibilityPredictor
from trajloom_hf.pipelines import TrajLoomPipeline
from trajloom_hf.schedulers import FlowMatchTrajScheduler

H, W, S, T = 64, 96, 16, 9


def tiny_pipeline(seed=0, height=H):
    torch.manual_seed(seed)
    vae = AutoencoderTraj(height=height, width=W, patch_size=S, num_frames=T, temporal_stride=4, hidden_size=32, num_heads=4,
                          encoder_depth=4, decoder_depth=4, latent_channels=4, pos_embed_dim=8,
                          latents_mean=[0.0] * 4, latents_std=[1.0] * 4)
    for p in vae.parameters():  # open the zero-initialised gates/final layer so outputs depend on the latents
        if p.dim() == 3 or p.shape[0] == 2:
            torch.nn.init.normal_(p, std=0.05)
    tr = TrajFlowTransformer(latent_channels=4, num_latent_frames=3, grid_size=(height // S, 6), hidden_size=32, num_heads=4,
                             num_layers=2, text_embed_dim=16, video_latent_channels=4, use_text_cond=False,
                             use_video_cond=False, history_num_frames=T, temporal_stride=4)
    for p in tr.parameters():
        if p.dim() >= 1 and p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.02)
    vis = VisibilityPredictor(latent_channels=4, hidden_size=8, depth=1)
    return TrajLoomPipeline(vae=vae.eval(), transformer=tr.eval(), scheduler=FlowMatchTrajScheduler(), visibility_predictor=vis.eval())


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


@pytest.fixture(scope="module")
def history():
    clip = generate_clip(1, SceneConfig(height=H, width=W, num_frames=2 * T, stride=S, render=False))
    return clip.tracks[:T], clip.visibility[:T]


def test_end_to_end_shapes_ranges_and_determinism(pipe, history):
    tracks, vis = history
    out = pipe(tracks, vis, num_samples=3, num_inference_steps=3, generator=torch.Generator().manual_seed(0))
    assert out.future_tracks.shape == (1, 3, T, 24, 2) and out.future_tracks.dtype == np.float32
    assert out.future_visibility.shape == (1, 3, T, 24) and out.future_visibility.dtype == bool
    assert out.visibility_prob.shape == (1, 3, T, 24) and ((0 <= out.visibility_prob) & (out.visibility_prob <= 1)).all()
    ft = out.future_tracks
    assert (ft[..., 0] >= 0).all() and (ft[..., 0] < W - 1).all() and (ft[..., 1] < H - 1).all()
    assert not np.allclose(ft[0, 0], ft[0, 1])  # samples differ
    again = pipe(tracks, vis, num_samples=3, num_inference_steps=3, generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(again.future_tracks, ft)  # same seed repeats


def test_batch_equals_single_and_heun_dopri(pipe, history):
    tracks, vis = history
    single = pipe(tracks, vis, num_samples=2, num_inference_steps=2, generator=[torch.Generator().manual_seed(5)],
                  output_type="pt")
    batch = pipe(np.stack([tracks, tracks + 1.0]), np.stack([vis, vis]), num_samples=2, num_inference_steps=2,
                 generator=[torch.Generator().manual_seed(5), torch.Generator().manual_seed(6)], output_type="pt")
    assert torch.allclose(batch.future_tracks[0], single.future_tracks[0], atol=1e-4)
    heun = pipe(tracks, vis, num_inference_steps=2, solver="heun", generator=torch.Generator().manual_seed(1))
    dopri = pipe(tracks, vis, solver="dopri5", generator=torch.Generator().manual_seed(1))
    assert np.isfinite(heun.future_tracks).all() and np.isfinite(dopri.future_tracks).all()


@pytest.mark.parametrize("solver, steps, expected", [("dopri5", 3, 19), ("dopri5", 5, 31), ("euler", 4, 4), ("heun", 2, 4)])
def test_solver_step_count_is_respected(pipe, history, monkeypatch, solver, steps, expected):
    """DOPRI5 with a step count runs that many fixed steps (1 + 6 n transformer calls, App. D.4), not adaptive."""
    tracks, vis = history
    calls = []
    original = pipe.transformer.forward
    monkeypatch.setattr(pipe.transformer, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    pipe(tracks, vis, num_inference_steps=steps, solver=solver, generator=torch.Generator().manual_seed(1))
    assert len(calls) == expected


def test_context_is_computed_once_per_call_and_shared_by_the_samples(pipe, history, monkeypatch):
    """The history context (projections and every block's cross-attention K/V) is computed once per pipe() call,
    not per Euler step, and the S samples of a clip attend to that one context (batch 1), not to S copies."""
    tracks, vis = history
    tr = pipe.transformer
    counts = {}
    modules = {"hist_track_proj": tr.hist_track_proj, "track_global_proj": tr.track_global_proj,
               "hist_vis_proj": tr.hist_vis_proj, **{f"kv{i}": blk.xattn.kv for i, blk in enumerate(tr.blocks)}}
    hooks = [m.register_forward_hook(lambda *_, name=name: counts.__setitem__(name, counts.get(name, 0) + 1))
             for name, m in modules.items()]
    seen = []
    original = tr.forward

    def spy(sample, t, *a, context=None, **k):
        seen.append((sample.shape[0], context.batch_size, [kv[0].shape[0] for kv in context.kv if kv is not None]))
        return original(sample, t, *a, context=context, **k)

    monkeypatch.setattr(tr, "forward", spy)
    try:
        pipe(tracks, vis, num_samples=3, num_inference_steps=4, generator=torch.Generator().manual_seed(0))
    finally:
        for h in hooks:
            h.remove()
    assert counts == {name: 1 for name in modules}
    n = tr.num_tokens
    assert seen == [(3, 1, [1, n])] * 4  # spatial K/V batch 1, temporal K/V batch N: one clip, not 3 samples'


def test_history_visibility_reaches_the_model(pipe, history, monkeypatch):
    tracks, vis = history
    seen = {}
    original = pipe.transformer.prepare_context

    def spy(z, v, *a, **k):
        seen["vis"] = v
        return original(z, v, *a, **k)

    monkeypatch.setattr(pipe.transformer, "prepare_context", spy)
    vis = vis.copy()
    vis[:, :5] = False
    pipe(tracks, vis, num_inference_steps=1)
    assert seen["vis"] is not None and seen["vis"].shape == (1, 3, 24)
    assert seen["vis"][0, :, :5].sum() == 0 and seen["vis"][0, :, 5:].sum() > 0


def test_save_load_round_trip(tmp_path, pipe, history):
    tracks, vis = history
    pipe.save_pretrained(tmp_path / "pipe")
    back = TrajLoomPipeline.from_pretrained(tmp_path / "pipe")
    assert back.video_vae is None and isinstance(back.visibility_predictor, VisibilityPredictor)
    a = pipe(tracks, vis, num_samples=2, num_inference_steps=2, generator=torch.Generator().manual_seed(3))
    b = back(tracks, vis, num_samples=2, num_inference_steps=2, generator=torch.Generator().manual_seed(3))
    np.testing.assert_array_equal(a.future_tracks, b.future_tracks)
    np.testing.assert_array_equal(a.future_visibility, b.future_visibility)


def test_callback_and_tuple_output(pipe, history):
    tracks, vis = history
    steps = []

    def cb(p, i, t, kwargs):
        steps.append(i)
        return kwargs

    res = pipe(tracks, vis, num_inference_steps=3, callback_on_step_end=cb, return_dict=False)
    assert steps == [0, 1, 2] and isinstance(res, tuple) and len(res) == 4


def test_bad_inputs(pipe, history):
    tracks, vis = history
    with pytest.raises(ValueError, match="needs at least 9"):
        pipe(tracks[:5], vis[:5])
    with pytest.raises(ValueError, match="N=20 points"):
        pipe(tracks[:, :20], vis[:, :20])
    with pytest.raises(ValueError, match="far outside"):
        pipe(tracks * 100, vis)
    with pytest.raises(ValueError, match="`history_visibility`"):
        pipe(tracks, vis[:, :3])
    with pytest.raises(ValueError, match="NaN"):
        bad = tracks.copy()
        bad[0, 0, 0] = np.nan
        pipe(bad, vis)
    with pytest.raises(ValueError, match="`num_samples`"):
        pipe(tracks, vis, num_samples=0)
    with pytest.raises(ValueError, match="no `text_encoder`"):
        pipe(tracks, vis, prompt="a cat")
    with pytest.raises(ValueError, match="no `video_vae`"):
        pipe(tracks, vis, video=np.zeros((T, H, W, 3), np.uint8))
    with pytest.raises((OSError, ValueError), match="nonexistent"):
        TrajLoomPipeline.from_pretrained("/nonexistent/pipeline")


def test_missing_component_folder_is_reported(tmp_path, pipe):
    import shutil

    pipe.save_pretrained(tmp_path / "p")
    shutil.rmtree(tmp_path / "p" / "transformer")
    with pytest.raises((OSError, ValueError, EnvironmentError)):
        TrajLoomPipeline.from_pretrained(tmp_path / "p")


def test_first_frame_history_mode_ignores_motion(history):
    tracks, vis = history
    pipe = tiny_pipeline()
    ff = TrajLoomPipeline(**pipe.components, history_mode="first_frame")
    still = np.repeat(tracks[:1], T, 0)
    a = ff(tracks, vis, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    b = pipe(still, np.repeat(vis[:1], T, 0), num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(a.future_tracks, b.future_tracks, rtol=0, atol=1e-4)  # px ~ 90: 1e-5 is ~1 fp32 ulp
    with pytest.raises(ValueError, match="`history_mode`"):
        TrajLoomPipeline(**pipe.components, history_mode="image")


def test_missing_component_is_named(tmp_path, pipe):
    import shutil

    pipe.save_pretrained(tmp_path / "p")
    shutil.rmtree(tmp_path / "p" / "visibility_predictor")
    with pytest.raises(FileNotFoundError, match="`visibility_predictor`"):
        TrajLoomPipeline.from_pretrained(tmp_path / "p")
    (tmp_path / "p" / "model_index.json").unlink()
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        TrajLoomPipeline.from_pretrained(tmp_path / "p")


def test_heun_callback_follows_whole_steps_and_can_replace_latents(pipe, history):
    tracks, vis = history
    seen = []

    def record(p, i, t, kwargs):
        seen.append((i, round(float(t), 4)))
        return kwargs

    pipe(tracks, vis, num_inference_steps=3, solver="heun", callback_on_step_end=record)
    assert seen == [(0, 0.0), (1, 0.3333), (2, 0.6667)]  # once per ODE step, at the step's start time

    fixed = torch.full((1, 3, 24, 4), 0.5)

    def overwrite(p, i, t, kwargs):
        return {"latents": fixed.clone()} if i == 1 else kwargs

    a = pipe(tracks, vis, num_inference_steps=2, generator=torch.Generator().manual_seed(0), callback_on_step_end=overwrite)
    b = pipe(tracks, vis, num_inference_steps=2, generator=torch.Generator().manual_seed(9), callback_on_step_end=overwrite)
    np.testing.assert_array_equal(a.future_tracks, b.future_tracks)  # the returned latents were decoded


def test_out_of_frame_history_points_are_invisible_to_the_model(pipe, history, monkeypatch):
    tracks, vis = history
    seen = {}
    original = pipe.transformer.prepare_context

    def spy(z, v, *a, **k):
        seen["vis"] = v
        return original(z, v, *a, **k)

    monkeypatch.setattr(pipe.transformer, "prepare_context", spy)
    tracks, vis = tracks.copy(), np.ones_like(vis)
    tracks[:, 3] = (-20.0, 10.0)  # left of the frame in every frame (normal in tracking data: no error)
    tracks[:4, 7] = (10.0, H + 5.0)  # below the frame in frames 0-3 only -> latent step 0 invisible
    pipe(tracks, vis, num_inference_steps=1)
    v = seen["vis"][0]
    inside = ((tracks >= 0) & (tracks <= (W - 1, H - 1))).all(-1).all(0)  # points in the frame throughout
    assert inside.sum() > 5 and v[:, inside].all()
    assert v[:, 3].sum() == 0 and v[0, 7] == 0 and v[1:, 7].all()


def test_pt_output_and_low_precision_models_keep_fp32_coordinates(history):
    tracks, vis = history
    ref = tiny_pipeline()(tracks, vis, num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="pt")
    assert isinstance(ref.future_tracks, torch.Tensor) and ref.future_visibility.dtype == torch.bool
    low = tiny_pipeline().to(dtype=torch.bfloat16)
    out = low(torch.from_numpy(tracks), torch.from_numpy(vis), num_inference_steps=2,
              generator=torch.Generator().manual_seed(0), output_type="pt")
    assert out.future_tracks.dtype == torch.float32 and out.visibility_prob.dtype == torch.float32
    # bf16 weights change the futures by a fraction of a pixel on this tiny model, not by the frame scale
    assert (out.future_tracks - ref.future_tracks).abs().max() < 1.0


def test_longer_history_is_cut_with_a_warning(pipe):
    """A history longer than the model's window is cut to its last frames (which no longer start on the query grid):
    the pipeline warns and forecasts exactly as from those frames; an exact-length history does not warn."""
    import warnings

    clip = generate_clip(4, SceneConfig(height=H, width=W, num_frames=T + 5, stride=S, render=False))
    with pytest.warns(UserWarning, match=r"has 14 frames; the model's history window is 9 frames"):
        a = pipe(clip.tracks, clip.visibility, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        b = pipe(clip.tracks[-T:], clip.visibility[-T:], num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    np.testing.assert_array_equal(a.future_tracks, b.future_tracks)


def test_visibility_modes_hold_last_head_and_residual_head(history):
    """hold_last = each point's last (in-frame) history visibility AND the in-frame test of the predicted tracks;
    the untrained history-residual head gives exactly that; the official head differs; 'auto' picks the head."""
    tracks, vis = history
    vis = vis.copy()
    vis[-1, :7] = False  # some points occluded at the forecast start
    base = tiny_pipeline()
    g = lambda: torch.Generator().manual_seed(2)  # noqa: E731
    hold = base(tracks, vis, num_samples=2, num_inference_steps=2, generator=g(), visibility_mode="hold_last")
    last = base.hold_last_visibility(tracks, vis).numpy()  # [1, N]
    assert last[0, :7].sum() == 0 and last[0, 7:].any()
    np.testing.assert_array_equal(hold.future_visibility, last[:, None, None, :] & hold.future_in_frame)
    assert hold.visibility_prob is None
    head = base(tracks, vis, num_samples=2, num_inference_steps=2, generator=g())  # auto: the (official) head
    assert base.resolve_visibility_mode() == "head" and head.visibility_prob is not None
    np.testing.assert_array_equal(head.future_tracks, hold.future_tracks)
    np.testing.assert_array_equal(head.future_in_frame, hold.future_in_frame)
    residual = VisibilityPredictor(latent_channels=4, hidden_size=8, depth=1, design="history_residual",
                                   grid_size=[4, 6], spatial_kernel=3)
    comps = {**base.components, "visibility_predictor": residual}
    res = TrajLoomPipeline(**comps)(tracks, vis, num_samples=2, num_inference_steps=2, generator=g())
    np.testing.assert_array_equal(res.future_visibility, hold.future_visibility)
    torch.nn.init.normal_(residual.correction_out.weight, std=1.0)  # a correction now changes the answer
    res2 = TrajLoomPipeline(**comps)(tracks, vis, num_samples=2, num_inference_steps=2, generator=g())
    assert (res2.visibility_prob != res.visibility_prob).any()
    no_head = TrajLoomPipeline(**{**base.components, "visibility_predictor": None})
    assert no_head.resolve_visibility_mode() == "hold_last"
    np.testing.assert_array_equal(no_head(tracks, vis, num_samples=2, num_inference_steps=2, generator=g()).future_visibility,
                                  hold.future_visibility)
    held_default = TrajLoomPipeline(**base.components, visibility_mode="hold_last")
    np.testing.assert_array_equal(held_default(tracks, vis, num_samples=2, num_inference_steps=2, generator=g()).future_visibility,
                                  hold.future_visibility)
    with pytest.raises(ValueError, match="no `visibility_predictor`"):
        no_head(tracks, vis, visibility_mode="head")
    with pytest.raises(ValueError, match="`visibility_mode`"):
        base(tracks, vis, visibility_mode="oracle")
    with pytest.raises(ValueError, match="needs a `visibility_predictor`"):
        TrajLoomPipeline(**{**base.components, "visibility_predictor": None}, visibility_mode="head")


def test_official_compat_reproduces_the_official_script_choices(history):
    """official_compat=True: no history visibility to the model, 100 Euler steps, a seed-42 generator on the device
    per clip (reference §3.11, §6.1); the default stays ours."""
    tracks, vis = history
    pipe = tiny_pipeline()
    steps = []
    counter = lambda p, i, t, state: (steps.append(i), state)[1]  # noqa: E731
    pipe(tracks, vis, official_compat=True, callback_on_step_end=counter)
    assert len(steps) == 100
    kw = dict(official_compat=True, num_inference_steps=3)
    a = pipe(tracks, vis, **kw)
    explicit = pipe(tracks, vis, generator=[torch.Generator().manual_seed(42)], **kw)
    np.testing.assert_array_equal(a.future_tracks, explicit.future_tracks)  # the official seed, drawn on the device
    hidden = vis.copy()
    hidden[1:, ::2] = False  # the history visibility changes, frame 0 (the grid check) does not
    np.testing.assert_array_equal(a.future_tracks, pipe(tracks, hidden, **kw).future_tracks)  # never passed
    ours = pipe(tracks, vis, num_inference_steps=3, generator=[torch.Generator().manual_seed(42)])
    ours_hidden = pipe(tracks, hidden, num_inference_steps=3, generator=[torch.Generator().manual_seed(42)])
    assert np.abs(ours.future_tracks - ours_hidden.future_tracks).max() > 1e-4  # ours passes it
    assert np.abs(ours.future_tracks - a.future_tracks).max() > 1e-4
    # the same seed for every video: two copies of a clip in one batch get the same future
    both = pipe(np.stack([tracks, tracks]), np.stack([vis, vis]), **kw)
    # equal up to float rounding: a batch of two runs other matmul kernels than a batch of one (tracks ~30 px)
    np.testing.assert_allclose(both.future_tracks[0], both.future_tracks[1], rtol=0, atol=1e-3)
    with pytest.raises(TypeError, match="`official_compat`"):
        pipe(tracks, vis, official_compat="yes")


def test_temporal_smoothing_option(tmp_path, history):
    """temporal_smoothing: the decoded tracks low-passed along time (trajloom_hf.track_smoothing) before the
    in-frame test; a config field that round-trips, overridable per call, off by default."""
    from trajloom_hf.metrics import mean_acceleration
    from trajloom_hf.track_smoothing import smooth_tracks_in_time

    pipe = tiny_pipeline()
    tracks, vis = history
    assert pipe.config.temporal_smoothing == 0.0 and pipe.resolve_temporal_smoothing() == 0.0
    run = lambda **kw: pipe(tracks, vis, num_samples=2, num_inference_steps=2, generator=torch.Generator().manual_seed(0),
                            output_type="pt", **kw).future_tracks
    raw, smooth = run(), run(temporal_smoothing=1.5)
    w, h = W - 1 - 1e-3, H - 1 - 1e-3
    inside = ((raw[..., 0] > 0) & (raw[..., 0] < w) & (raw[..., 1] > 0) & (raw[..., 1] < h)).all(1)  # never clipped
    assert inside.float().mean() > 0.5
    expected = smooth_tracks_in_time(raw[0], 1.5)  # smoothing commutes with the affine px map (weights sum to 1)
    torch.testing.assert_close(smooth[0][inside[0][None].expand_as(smooth[0][..., 0])],
                               expected[inside[0][None].expand_as(expected[..., 0])], atol=1e-4, rtol=0)
    assert mean_acceleration(smooth.numpy()) < 0.5 * mean_acceleration(raw.numpy())
    pipe.register_to_config(temporal_smoothing=1.5)
    pipe.save_pretrained(tmp_path / "p")
    loaded = TrajLoomPipeline.from_pretrained(tmp_path / "p")
    assert loaded.config.temporal_smoothing == 1.5 and loaded.resolve_temporal_smoothing(0) == 0.0
    again = loaded(tracks, vis, num_samples=2, num_inference_steps=2, generator=torch.Generator().manual_seed(0),
                   output_type="pt").future_tracks
    torch.testing.assert_close(again, smooth, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="temporal_smoothing"):
        run(temporal_smoothing=-1.0)
    with pytest.raises(ValueError, match="temporal_smoothing"):
        TrajLoomPipeline(vae=pipe.vae, transformer=pipe.transformer, scheduler=pipe.scheduler, temporal_smoothing=float("nan"))


def test_fix_first_latent_holds_the_first_future_latent_at_the_last_history_latent(history, monkeypatch):
    """fix_first_latent (the official --fix_first_frame): every model evaluation sees the first future latent set to
    the last history latent, it never moves (Euler and DOPRI5), the other latents do; a scheduler config field the
    pipeline follows unless the call overrides it; off by default."""
    tracks, vis = history
    pipe = tiny_pipeline()
    assert pipe.scheduler.config.fix_first_latent is False
    hist, seen = [], []
    source = pipe.scheduler.sample_source

    def record_source(history_latents=None, **kw):
        hist.append(history_latents[:, -1].clone())
        return source(history_latents=history_latents, **kw)

    forward = pipe.transformer.forward

    def record_forward(z, t, **kw):
        seen.append(z[:, 0].clone())
        return forward(z, t, **kw)

    monkeypatch.setattr(pipe.scheduler, "sample_source", record_source)
    monkeypatch.setattr(pipe.transformer, "forward", record_forward)
    states = []
    run = lambda **kw: pipe(tracks, vis, num_samples=2, num_inference_steps=3, generator=torch.Generator().manual_seed(0),  # noqa: E731
                            output_type="pt", **kw).future_tracks
    cb = lambda p, i, t, d: states.append(d["latents"].clone()) or d  # noqa: E731
    fixed = run(fix_first_latent=True, callback_on_step_end=cb)
    held = torch.cat(hist).float()
    assert len(seen) == 3 and all(torch.equal(s.float(), held) for s in seen)
    assert all(torch.equal(z[:, 0], held) for z in states)
    moved = [float((z[:, 1:] - states[0][:, 1:]).abs().max()) for z in states[1:]]
    assert min(moved) > 0  # the rest of the future still flows
    hist.clear()
    seen.clear()
    default = run()
    assert not torch.equal(seen[-1].float(), held)  # by default the first latent moves with the ODE
    assert (fixed - default).abs().max() > 1e-3
    hist.clear()
    seen.clear()
    run(fix_first_latent=True, solver="dopri5")
    assert len(seen) == 1 + 6 * 3 and all(torch.equal(s.float(), torch.cat(hist).float()) for s in seen)
    # the scheduler's config is the default, a call overrides it
    pipe.scheduler.register_to_config(fix_first_latent=True)
    torch.testing.assert_close(run(), fixed)
    torch.testing.assert_close(run(fix_first_latent=False), default)
    with pytest.raises(TypeError, match="fix_first_latent"):
        run(fix_first_latent=1)
    with pytest.raises(TypeError, match="fix_first_latent"):
        FlowMatchTrajScheduler(fix_first_latent="yes")
