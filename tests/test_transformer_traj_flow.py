import math

import pytest
import torch

from trajloom_hf.models.transformer_traj_flow import TrajFlowContext, TrajFlowTransformer

K, GH, GW, C, D = 5, 3, 4, 4, 32
N = GH * GW
TINY = dict(
    num_layers=4, hidden_size=D, num_heads=4, num_latent_frames=K, grid_size=(GH, GW), latent_channels=C,
    text_embed_dim=7, video_latent_channels=3, history_num_frames=17, temporal_stride=4,
)


def _model(seed=0, **overrides):
    torch.manual_seed(seed)
    m = TrajFlowTransformer(**{**TINY, **overrides}).eval()
    with torch.no_grad():  # move away from the zero/identity init so every path matters
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


def _inputs(b=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return dict(
        sample=torch.randn(b, K, N, C, generator=g),
        timestep=torch.rand(b, generator=g),
        history_latents=torch.randn(b, K, N, C, generator=g),
        history_visibility=torch.rand(b, K, N, generator=g) > 0.3,
        video_latents=torch.randn(b, K, N, 3, generator=g),
        text_embeds=torch.randn(b, 7, generator=g),
    )


def _sincos(pos, dim):
    half = dim // 2
    f = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    a = torch.as_tensor(pos, dtype=torch.float64).reshape(-1, 1) * f
    return torch.cat([torch.cos(a), torch.sin(a)], dim=-1).float()


def _block_ref(blk, x, cond, ctx):
    """One DiT block written out per sequence: x [M, L, D], cond [M, D], ctx [M, Lc, D] (reference §3.7)."""
    mods = [m.unsqueeze(1) for m in blk.adaLN(cond).chunk(9, dim=-1)]

    def rms(v):
        return v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + 1e-6)

    x = x + mods[2] * blk.attn(rms(x) * (1 + mods[1]) + mods[0])
    x = x + mods[5] * blk.xattn(rms(x) * (1 + mods[4]) + mods[3], ctx)
    return x + mods[8] * blk.mlp(rms(x) * (1 + mods[7]) + mods[6])


def _reference_forward(m, sample, timestep, history_latents, history_visibility, video_latents, text_embeds):
    """Official forward re-derived from the reference spec with explicit loops (no caching, no reshape tricks)."""
    b = sample.shape[0]
    zh = history_latents
    c = m.time_mlp(_sincos(timestep, D)) + m.text_proj(text_embeds)
    c = c + m.beta_video_cond * m.video_global_proj(video_latents.mean(dim=(1, 2)))
    c = c + m.beta_track_cond * m.track_global_proj(torch.cat([zh.mean(dim=(1, 2)), zh[:, -1].mean(dim=1)], -1))
    h = m.hist_track_proj(zh) + m.alpha_hist_vis * m.hist_vis_proj(history_visibility.float()[..., None])
    u = m.alpha_video_ctx * m.hist_video_proj(video_latents)
    x = m.in_proj(sample)
    gates = torch.sigmoid(m.track_fusion_gate_logit)
    x = torch.stack(
        [x[:, k] + m.track_fusion_scale * gates[k] * (h[:, -1] + (k / (K - 1)) * (h[:, -1] - h[:, -2])) for k in range(K)], 1
    )
    p_hist = _sincos([4 * k for k in range(K)], D)
    p_fut = _sincos([17 + 4 * k for k in range(K)], D)
    ctx = torch.cat([h + p_hist[None, :, None], u + p_hist[None, :, None]], dim=1) + m.seg_embed[0]
    x = x + p_fut[None, :, None] + m.seg_embed[1] + m.pos_embed[:, None]
    ctx_t = torch.stack([ctx[:, :, n] for n in range(N)], dim=1).reshape(b * N, 2 * K, D)
    ctx_s = torch.cat([ctx[:, K - 1] + m.pos_embed[0], ctx[:, 2 * K - 1] + m.pos_embed[0]], dim=1)  # [B, 2N, D]
    ctx_s = ctx_s.repeat_interleave(K, dim=0)  # the same tokens for every future step
    for p in range(len(m.blocks) // 2):
        xt = x.permute(0, 2, 1, 3).reshape(b * N, K, D)
        xt = _block_ref(m.blocks[2 * p + 1], xt, c.repeat_interleave(N, 0), ctx_t)
        x = xt.reshape(b, N, K, D).permute(0, 2, 1, 3)
        xs = _block_ref(m.blocks[2 * p], x.reshape(b * K, N, D), c.repeat_interleave(K, 0), ctx_s)
        x = xs.reshape(b, K, N, D)
    return m.out_proj(m.norm_out(x))


@torch.no_grad()
def test_matches_explicit_reference_forward():
    m = _model()
    inp = _inputs()
    out = m(**inp).sample
    ref = _reference_forward(m, **inp)
    assert out.shape == (2, K, N, C)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


@torch.no_grad()
@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"use_video_cond": False, "use_text_cond": False, "use_hist_vis_cond": False},
        {"use_history_fusion": False, "temporal_first": False, "video_ctx_mode": "sum"},
        {"spatial_ctx_mode": "none"},
        {"spatial_ctx_pool": 2, "spatial_ctx_last_k": 2, "spatial_ctx_include_video": False, "fusion_velocity_term": False},
    ],
)
def test_cached_context_equals_uncached(overrides):
    m = _model(**overrides)
    inp = _inputs()
    cfg = m.config
    cond = dict(
        history_visibility=inp["history_visibility"] if cfg.use_hist_vis_cond else None,
        video_latents=inp["video_latents"] if cfg.use_video_cond else None,
        text_embeds=inp["text_embeds"] if cfg.use_text_cond else None,
    )
    uncached = m(inp["sample"], inp["timestep"], inp["history_latents"], **cond).sample
    ctx = m.prepare_context(inp["history_latents"], **cond)
    assert isinstance(ctx, TrajFlowContext) and ctx.is_cached
    for t in (inp["timestep"], torch.tensor([0.9, 0.05])):  # the same context reused at several steps
        cached = m(inp["sample"], t, context=ctx).sample
        ref = m(inp["sample"], t, inp["history_latents"], **cond).sample
        torch.testing.assert_close(cached, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(m(inp["sample"], inp["timestep"], context=ctx).sample, uncached, rtol=1e-4, atol=1e-5)
    # a prepared but unprojected context gives the same numbers too
    plain = m.prepare_context(inp["history_latents"], **cond, project_kv=False)
    assert not plain.is_cached
    torch.testing.assert_close(m(inp["sample"], inp["timestep"], context=plain).sample, uncached, rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_batch_elements_are_independent_and_context_repeats():
    m = _model()
    inp = _inputs(b=2)
    full = m(**inp).sample
    one = m(**{k: v[1:] for k, v in inp.items()}).sample
    torch.testing.assert_close(full[1:], one, rtol=1e-4, atol=1e-5)
    # several samples per history: repeat the cached context instead of recomputing it
    ctx = m.prepare_context(inp["history_latents"], inp["history_visibility"], inp["video_latents"], inp["text_embeds"])
    rep = ctx.repeat_interleave(3)
    z = torch.randn(6, K, N, C)
    t = torch.rand(6)
    out = m(z, t, context=rep).sample
    ref = m(z, t, inp["history_latents"].repeat_interleave(3, 0), inp["history_visibility"].repeat_interleave(3, 0),
            inp["video_latents"].repeat_interleave(3, 0), inp["text_embeds"].repeat_interleave(3, 0)).sample
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_official_initialisation():
    torch.manual_seed(0)
    m = TrajFlowTransformer(**TINY)
    for blk in m.blocks:
        assert torch.count_nonzero(blk.adaLN[1].weight) == 0
        bias = blk.adaLN[1].bias.reshape(9, D)
        assert torch.all(bias[[2, 5, 8]] == 1) and torch.all(bias[[0, 1, 3, 4, 6, 7]] == 0)
    torch.testing.assert_close(torch.sigmoid(m.track_fusion_gate_logit), torch.linspace(0.95, 0.35, K))
    assert float(m.track_fusion_scale.detach()) == pytest.approx(0.1) and float(m.alpha_hist_vis.detach()) == 1.0
    assert torch.count_nonzero(m.hist_vis_proj.weight) == 0 and torch.count_nonzero(m.hist_vis_proj.bias) == 0
    torch.testing.assert_close(m.abs_time_embed_hist[0], _sincos([0, 4, 8, 12, 16], D))
    torch.testing.assert_close(m.abs_time_embed_fut[0], _sincos([17, 21, 25, 29, 33], D))
    assert "abs_time_embed_hist" not in m.state_dict()
    # at the paper config the gates run 0.95 - 0.03 k and the future frames are 81 + 4 k
    with torch.device("meta"):
        big = TrajFlowTransformer()
    assert big.abs_time_embed_fut.shape == (1, 21, 768)
    assert sum(p.numel() for p in big.parameters()) == 244_461_354


@torch.no_grad()
def test_hist_visibility_and_fusion_switches_change_the_output():
    inp = _inputs()
    m = _model()
    base = m(**inp).sample
    flipped = m(**{**inp, "history_visibility": ~inp["history_visibility"]}).sample
    assert (base - flipped).abs().max() > 1e-4
    # "w/o fusion" has no fusion parameters and no fusion term
    nf = _model(use_history_fusion=False)
    assert not any(k.startswith("track_fusion") for k in nf.state_dict())
    assert nf.prepare_context(inp["history_latents"]).fusion is None
    # history_visibility [B, K, N, 1] is accepted like [B, K, N]
    torch.testing.assert_close(m(**{**inp, "history_visibility": inp["history_visibility"][..., None]}).sample, base)


def test_gradient_checkpointing_gives_the_same_gradients():
    inp = _inputs()
    grads = []
    for ckpt in (False, True):
        m = _model().train()
        if ckpt:
            m.enable_gradient_checkpointing()
        m(**inp).sample.square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-5)


def test_save_load_roundtrip_and_bf16(tmp_path):
    m = _model()
    m.save_pretrained(tmp_path)
    r = TrajFlowTransformer.from_pretrained(tmp_path)
    inp = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(m(**inp).sample, r(**inp).sample)
        full = r(**inp).sample
        half = r.to(torch.bfloat16)(**inp).sample
    # a bf16 trunk still takes the ODE state in and gives the velocity out in fp32 (`_keep_in_fp32_modules`)
    assert r.blocks[0].attn.qkv.weight.dtype == torch.bfloat16 and r.dtype == torch.bfloat16
    assert r.in_proj.weight.dtype == torch.float32 and r.out_proj.weight.dtype == torch.float32
    assert half.dtype == torch.float32
    err = (half - full).abs().max().item()
    assert 0 < err < 0.05 * full.abs().max().item()


def test_video_latents_to_tokens_layout():
    wan = torch.arange(2 * 3 * K * GH * GW, dtype=torch.float32).reshape(2, 3, K, GH, GW)
    tok = TrajFlowTransformer.video_latents_to_tokens(wan)
    assert tok.shape == (2, K, N, 3)
    i, j = 2, 1
    torch.testing.assert_close(tok[1, 4, i * GW + j], wan[1, :, 4, i, j])


def test_bad_input_errors():
    m = _model()
    inp = _inputs()
    with pytest.raises(ValueError, match="history_latents.*must match"):
        m(inp["sample"], inp["timestep"], inp["history_latents"][:1])
    with pytest.raises(ValueError, match=r"history_latents.*K=5"):
        m(inp["sample"], inp["timestep"], inp["history_latents"][:, :4])
    with pytest.raises(ValueError, match=r"sample.*N=12"):
        m(inp["sample"][:, :, :5], inp["timestep"], inp["history_latents"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m(inp["sample"], torch.tensor([0.5, 1.5]), inp["history_latents"])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m(inp["sample"], -0.1, inp["history_latents"])
    with pytest.raises(ValueError, match="text_embed_dim=7"):
        m(inp["sample"], inp["timestep"], inp["history_latents"], text_embeds=torch.randn(2, 8))
    with pytest.raises(ValueError, match="timestep"):
        m(inp["sample"], torch.rand(3), inp["history_latents"])
    ctx = m.prepare_context(inp["history_latents"])
    with pytest.raises(ValueError, match="not both"):
        m(inp["sample"], inp["timestep"], inp["history_latents"], context=ctx)
    with pytest.raises(ValueError, match="repeat_interleave"):
        m(inp["sample"][:1], 0.5, context=ctx)
    with pytest.raises(ValueError, match="history_visibility"):
        m(inp["sample"], inp["timestep"], inp["history_latents"], history_visibility=torch.full((2, K, N), 0.5))
    with pytest.raises(ValueError, match="use_text_cond=False"):
        _model(use_text_cond=False)(inp["sample"], 0.5, inp["history_latents"], text_embeds=inp["text_embeds"])
    with pytest.raises(ValueError, match="num_layers"):
        TrajFlowTransformer(**{**TINY, "num_layers": 3})
    with pytest.raises(ValueError, match="history_latents"):
        m(inp["sample"], 0.5)


@torch.no_grad()
@pytest.mark.parametrize("overrides", [{}, {"temporal_first": False, "spatial_ctx_mode": "none"}])
@pytest.mark.parametrize("s", [1, 2, 5])
def test_context_broadcast_over_samples_equals_repeated_context(overrides, s):
    """S samples per history attend to one context of batch B (a view) exactly as to the context repeated S times."""
    m = _model(**overrides)
    inp = _inputs(b=2)
    ctx = m.prepare_context(inp["history_latents"], inp["history_visibility"], inp["video_latents"], inp["text_embeds"])
    g = torch.Generator().manual_seed(3)
    z = torch.randn(2 * s, K, N, C, generator=g)
    t = torch.rand(2 * s, generator=g)  # a different flow time per sample: the time term is per sample
    shared = m(z, t, context=ctx).sample
    repeated = m(z, t, context=ctx.repeat_interleave(s)).sample
    uncached = m(z, t, *(inp[k].repeat_interleave(s, 0) for k in ("history_latents", "history_visibility", "video_latents", "text_embeds"))).sample
    scale = float(repeated.abs().max())  # outputs of order 1 (weights scaled by 0.05): fp32 rounding ~1e-6 of it
    assert scale > 0.1
    torch.testing.assert_close(shared, repeated, rtol=0, atol=1e-5 * scale)
    torch.testing.assert_close(shared, uncached, rtol=0, atol=1e-5 * scale)
    # each history's samples depend on that history's context only
    one = m(z[s:], t[s:], context=m.prepare_context(inp["history_latents"][1:], inp["history_visibility"][1:],
                                                       inp["video_latents"][1:], inp["text_embeds"][1:])).sample
    torch.testing.assert_close(shared[s:], one, rtol=0, atol=1e-5 * scale)
    with pytest.raises(ValueError, match="multiple of the `context` batch 2"):
        m(torch.zeros(3, K, N, C), 0.5, context=ctx)


def test_context_broadcast_keeps_gradients():
    """Training through a shared context (on-policy losses): gradients equal those of the repeated context."""
    m = _model()
    inp = _inputs(b=2)
    z = torch.randn(6, K, N, C, generator=torch.Generator().manual_seed(4))
    grads = []
    for repeat in (False, True):
        m.zero_grad()
        ctx = m.prepare_context(inp["history_latents"], inp["history_visibility"], inp["video_latents"], inp["text_embeds"])
        m(z, 0.3, context=ctx.repeat_interleave(3) if repeat else ctx).sample.square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None]))
    assert grads[0].abs().max() > 1e-4
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-5 * float(grads[1].abs().max()))


@torch.no_grad()
def test_prepared_context_is_not_recomputed_by_the_steps():
    """Text, video and history projections and every block's cross-attention K/V run once, in prepare_context;
    the ODE steps (here 3 evaluations of 4 samples per history) only run the query stream."""
    m = _model()
    inp = _inputs(b=2)
    context_modules = {"text_proj": m.text_proj, "video_global_proj": m.video_global_proj,
                       "track_global_proj": m.track_global_proj, "hist_track_proj": m.hist_track_proj,
                       "hist_vis_proj": m.hist_vis_proj, "hist_video_proj": m.hist_video_proj,
                       **{f"kv{i}": blk.xattn.kv for i, blk in enumerate(m.blocks)}}
    counts = dict.fromkeys(context_modules, 0)
    queries = {"in_proj": 0}
    hooks = [mod.register_forward_hook(lambda *_, n=n: counts.__setitem__(n, counts[n] + 1)) for n, mod in context_modules.items()]
    hooks.append(m.in_proj.register_forward_hook(lambda *_: queries.__setitem__("in_proj", queries["in_proj"] + 1)))
    ctx = m.prepare_context(inp["history_latents"], inp["history_visibility"], inp["video_latents"], inp["text_embeds"])
    assert counts == dict.fromkeys(context_modules, 1)
    for t in (0.1, 0.5, 0.9):
        m(torch.randn(8, K, N, C), t, context=ctx)
    for h in hooks:
        h.remove()
    assert counts == dict.fromkeys(context_modules, 1) and queries["in_proj"] == 3
