"""Attention blocks and fixed embeddings against explicit formulas (reference §2.2, §2.5, §3.6)."""

import math

import pytest
import torch

from trajloom_hf.models.attention import Attention, Mlp, RMSNorm
from trajloom_hf.models.embeddings import FourierFeatures, sincos_1d, sincos_2d, timestep_embedding


def test_rmsnorm_computes_in_fp32_and_returns_input_dtype():
    torch.manual_seed(0)
    norm = RMSNorm(8)
    with torch.no_grad():
        norm.weight.copy_(torch.linspace(0.5, 2.0, 8))
    x = torch.randn(3, 5, 8) * 100
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * norm.weight
    torch.testing.assert_close(norm(x), expected)
    y = norm(x.to(torch.bfloat16))
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), expected, atol=0.05, rtol=0.01)
    plain = RMSNorm(8, elementwise_affine=False)
    assert plain.weight is None and not list(plain.parameters())
    assert torch.allclose(plain(x).pow(2).mean(-1), torch.ones(3, 5), atol=1e-4)



@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_rmsnorm_accumulates_in_fp32_for_reduced_precision(dtype):
    """A bf16 row of 3072 equal values: a bf16 running sum of squares stalls at 256 terms (the output would be ~3.5x
    too large); fp16 values of 2000 would overflow a fp16 norm (~1.1e5 > 65504). Both must give ~1 everywhere."""
    plain = RMSNorm(3072, elementwise_affine=False)
    for value in (1.0, 2000.0 if dtype == torch.float16 else 1e4):
        x = torch.full((2, 3072), value, dtype=dtype)
        x[1, ::2] = -value  # mixed signs, same magnitude
        y = plain(x)
        assert y.dtype == dtype
        torch.testing.assert_close(y.float().abs(), torch.ones(2, 3072), atol=0, rtol=1e-2)
    # strided input (a head slice of a fused qkv projection) gives the numbers of its contiguous copy
    qkv = torch.randn(4, 6, 3, 2, 64).to(dtype)
    k = qkv[:, :, 1].transpose(1, 2)
    torch.testing.assert_close(RMSNorm(64, elementwise_affine=False)(k), RMSNorm(64, elementwise_affine=False)(k.contiguous()), atol=0, rtol=0)

def _reference_attention(q, k, v, heads):
    b, l, d = q.shape
    split = lambda t: t.reshape(b, -1, heads, d // heads).transpose(1, 2)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), -1) @ v
    return a.transpose(1, 2).reshape(b, l, d)


def test_self_attention_matches_explicit_softmax():
    torch.manual_seed(0)
    attn = Attention(16, 4)
    assert set(dict(attn.named_parameters())) == {"qkv.weight", "qkv.bias", "proj.weight", "proj.bias"}
    x = torch.randn(2, 7, 16)
    q, k, v = attn.qkv(x).chunk(3, -1)
    expected = attn.proj(_reference_attention(q, k, v, 4))
    torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=1e-5)


def test_qk_norm_normalises_each_head():
    torch.manual_seed(0)
    attn = Attention(16, 4, qk_norm=True)
    assert not list(attn.q_norm.parameters())  # no affine by default
    x = torch.randn(2, 7, 16)
    q, k, v = attn.qkv(x).chunk(3, -1)
    rms = lambda t: t / torch.sqrt(t.pow(2).mean(-1, keepdim=True) + 1e-6)  # noqa: E731
    per_head = lambda t: rms(t.reshape(2, 7, 4, 4)).reshape(2, 7, 16)  # noqa: E731
    expected = attn.proj(_reference_attention(per_head(q), per_head(k), v, 4))
    torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=1e-5)
    affine = Attention(16, 4, qk_norm=True, qk_norm_affine=True)
    assert affine.q_norm.weight.shape == (4,) and affine.k_norm.weight.shape == (4,)


def test_cross_attention_cached_context_equals_context():
    torch.manual_seed(0)
    attn = Attention(16, 4, qk_norm=True, cross_attention_dim=24)
    assert attn.q.weight.shape == (16, 16) and attn.kv.weight.shape == (32, 24) and not hasattr(attn, "qkv")
    x, ctx = torch.randn(2, 5, 16), torch.randn(2, 9, 24)
    cached = attn.project_context(ctx)
    torch.testing.assert_close(attn(x, context_kv=cached), attn(x, ctx))
    k, v = attn.kv(ctx).chunk(2, -1)
    rms = lambda t: t / torch.sqrt(t.pow(2).mean(-1, keepdim=True) + 1e-6)  # noqa: E731
    per_head = lambda t, n: rms(t.reshape(2, n, 4, 4)).reshape(2, n, 16)  # noqa: E731
    expected = attn.proj(_reference_attention(per_head(attn.q(x), 5), per_head(k, 9), v, 4))
    torch.testing.assert_close(attn(x, ctx), expected, atol=1e-5, rtol=1e-5)


def test_attention_errors():
    with pytest.raises(ValueError, match="divisible by `num_heads`"):
        Attention(10, 4)
    cross = Attention(16, 4, cross_attention_dim=8)
    with pytest.raises(ValueError, match="context"):
        cross(torch.randn(1, 3, 16))
    with pytest.raises(ValueError, match="cross-attention"):
        Attention(16, 4).project_context(torch.randn(1, 3, 16))


def test_mlp_layout_and_gelu_variants():
    torch.manual_seed(0)
    mlp = Mlp(8, 32)
    x = torch.randn(4, 8)
    torch.testing.assert_close(mlp(x), mlp.fc2(torch.nn.functional.gelu(mlp.fc1(x))))
    tanh = Mlp(8, 32, approximate="tanh")
    tanh.load_state_dict(mlp.state_dict())
    torch.testing.assert_close(tanh(x), mlp.fc2(torch.nn.functional.gelu(mlp.fc1(x), approximate="tanh")))


def test_sincos_1d_values_and_order():
    table = sincos_1d([0, 1, 5], 8)
    assert table.shape == (3, 8) and table.dtype == torch.float32
    omega = torch.tensor([10000 ** (-k / 4) for k in range(4)], dtype=torch.float64)
    ang = torch.tensor([0.0, 1.0, 5.0], dtype=torch.float64)[:, None] * omega
    torch.testing.assert_close(table, torch.cat([ang.sin(), ang.cos()], -1).float())
    torch.testing.assert_close(sincos_1d([0, 1, 5], 8, sin_first=False), torch.cat([ang.cos(), ang.sin()], -1).float())
    with pytest.raises(ValueError, match="even"):
        sincos_1d([0], 7)


def test_sincos_2d_is_row_major_with_the_column_half_first():
    table = sincos_2d(3, 4, 16)
    assert table.shape == (12, 16)
    i, j = 2, 1  # token n = i * W_g + j
    n = i * 4 + j
    torch.testing.assert_close(table[n, :8], sincos_1d([j], 8)[0])
    torch.testing.assert_close(table[n, 8:], sincos_1d([i], 8)[0])
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_2d(3, 4, 10)


def test_timestep_embedding_formula():
    t = torch.tensor([0.0, 0.25, 1.0])
    emb = timestep_embedding(t, 8)
    freqs = torch.exp(-math.log(10000.0) * torch.arange(4) / 4)
    ang = t[:, None] * freqs  # t in [0, 1] used directly (no x1000)
    assert emb.shape == (3, 8) and emb.dtype == torch.float32
    torch.testing.assert_close(emb, torch.cat([ang.cos(), ang.sin()], -1))
    torch.testing.assert_close(timestep_embedding(t.half(), 8, cos_first=False), torch.cat([ang.sin(), ang.cos()], -1), atol=1e-3, rtol=0)
    torch.testing.assert_close(timestep_embedding(t, 8, max_period=100.0)[:, 1], (t * math.exp(-math.log(100.0) / 4)).cos())


def test_fourier_features_are_frozen_saved_and_follow_the_formula():
    torch.manual_seed(0)
    ff = FourierFeatures(2, 4)
    assert ff.w.shape == (4, 2) and not ff.w.requires_grad
    assert "w" in ff.state_dict() and not [p for p in ff.parameters() if p.requires_grad]
    c = torch.randn(5, 2)
    proj = c @ ff.w.t()
    torch.testing.assert_close(ff(c), torch.cat([proj.cos(), proj.sin()], -1) / math.sqrt(8))
    other = FourierFeatures(2, 4)
    assert not torch.equal(other.w, ff.w)
    other.load_state_dict(ff.state_dict())  # a checkpoint's w replaces the random draw
    torch.testing.assert_close(other(c), ff(c))
    assert ff(c.to(torch.bfloat16)).dtype == torch.float32  # positions never drop below fp32


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_generator_attention_runs_the_fused_cpu_kernel(dtype):
    """Self- and cross-attention of a generator block (strided views of the fused qkv projection, broadcast context
    groups) reach the fused flash-attention kernel for CPU, never the math fallback that materialises the scores."""
    from torch.profiler import ProfilerActivity, profile

    from trajloom_hf.models.transformer_traj_flow import TrajFlowBlock

    torch.manual_seed(0)
    blk = TrajFlowBlock(32, 4).to(dtype).eval()
    x = torch.randn(2, 3, 5, 7, 32, dtype=dtype)  # [G, S, K, N, D]: 2 groups, 3 samples, 5 steps, 7 tokens
    ctx_kv = blk.xattn.project_context(torch.randn(2, 6, 32, dtype=dtype))
    with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
        out = blk(x, torch.randn(2, 3, 1, 1, 32, dtype=dtype), context_kv=ctx_kv)
    names = [e.key for e in prof.key_averages()]
    assert out.shape == x.shape and out.dtype == dtype
    assert sum(e.count for e in prof.key_averages() if e.key == "aten::_scaled_dot_product_flash_attention_for_cpu") == 2
    assert "aten::_scaled_dot_product_attention_math" not in names


def test_bench_attention_explicit_path_equals_sdpa_and_prints_its_table(capsys):
    """benchmarks/bench_attention.py compares the fused kernel with an explicit chunked softmax(QK^T/sqrt d)V: the
    two must compute the same attention (else its timings compare different work)."""
    from tests.script_loading import load_script

    bench = load_script("benchmarks/bench_attention.py")
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(5, 2, n, 8, generator=g) for n in (7, 11, 11))
    torch.testing.assert_close(bench.explicit(q, k, v, chunk=2), torch.nn.functional.scaled_dot_product_attention(q, k, v))
    bench.main(["--quick", "--repeats", "1", "--heads", "1", "--head-dim", "8"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| spatial") or line.startswith("| temporal")]
    assert len(rows) == 8  # 4 calls x 2 dtypes
