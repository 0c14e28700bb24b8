import pytest
import torch

from trajloom_hf.encoding import make_query_grid, normalize_tracks
from trajloom_hf.latent_statistics import compute_latent_statistics, set_latent_statistics
from trajloom_hf.models.autoencoder_traj import AutoencoderTraj

TINY = dict(height=64, width=96, patch_size=16, num_frames=9, temporal_stride=4, hidden_size=32, num_heads=4,
            encoder_depth=4, decoder_depth=4, latent_channels=4, pos_embed_dim=8)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return AutoencoderTraj(**TINY).eval()


def tracks(b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.from_numpy(make_query_grid(64, 96, 16))
    px = q[None, None] + torch.randn(b, 9, 24, 2, generator=g).cumsum(1)
    return normalize_tracks(px, 64, 96)


def test_shapes_and_posterior(model):
    x = tracks()
    enc = model.encode(x)
    d = enc.latent_dist
    assert d.mean.shape == (2, 3, 24, 4) and model.num_latent_frames == 3
    assert torch.all(d.std > 0)
    s1 = d.sample(torch.Generator().manual_seed(3))
    s2 = d.sample(torch.Generator().manual_seed(3))
    assert torch.equal(s1, s2) and not torch.equal(s1, d.mode())
    assert d.kl().shape == (2,) and torch.all(d.kl() >= 0)
    out = model.decode(d.mode())
    assert out.sample.shape == (2, 9, 24, 2) and out.sample.dtype == torch.float32
    full = model(x, sample_posterior=False)
    assert torch.allclose(full.sample, out.sample)


def test_untrained_decoder_outputs_the_anchors(model):
    # final layer is zero-initialised: with offsets the decoder starts at the pixel-centre anchors (static grid)
    z = torch.randn(1, 3, 24, 4)
    assert torch.allclose(model.decode(z).sample[0, 0], model.anchors)
    absolute = AutoencoderTraj(**{**TINY, "use_offsets": False})
    assert torch.count_nonzero(absolute.decode(z).sample) == 0


def test_kl_matches_closed_form():
    from trajloom_hf.models.autoencoder_traj import TrajLatentDistribution

    mean = torch.full((1, 1, 1, 2), 0.5)
    raw = torch.zeros(1, 1, 1, 2)  # std = softplus(0) = ln 2
    d = TrajLatentDistribution(mean, raw)
    s = torch.log(torch.tensor(2.0))
    expected = -torch.log(s) + 0.5 * (s**2 + 0.25) - 0.5
    assert torch.allclose(d.kl(), expected.reshape(1), atol=1e-6)


def test_save_load_round_trip(tmp_path, model):
    model.save_pretrained(tmp_path)
    back = AutoencoderTraj.from_pretrained(tmp_path)
    x = tracks()
    with torch.no_grad():
        assert torch.equal(back.encode(x).latent_dist.mean, model.encode(x).latent_dist.mean)
    assert back.config.use_offsets and back.config.num_frames == 9


def test_latent_statistics_and_scaling(model):
    batches = [tracks(2, s) for s in range(3)]
    stats = compute_latent_statistics(model, batches, progress=False)
    z = torch.cat([model.encode(b).latent_dist.mean for b in batches]).reshape(-1, 4)
    assert stats.count == z.shape[0]
    assert torch.allclose(torch.tensor(stats.mean), z.mean(0).double().float(), atol=1e-5)
    assert torch.allclose(torch.tensor(stats.std), z.std(0, unbiased=False), atol=1e-5)
    m = AutoencoderTraj(**TINY)
    with pytest.raises(ValueError, match="no latent statistics"):
        m.scale_latents(z)
    set_latent_statistics(m, stats)
    zs = m.scale_latents(z)
    assert torch.allclose(zs.mean(0), torch.zeros(4), atol=1e-4)
    assert torch.allclose(m.unscale_latents(zs), z, atol=1e-5)


def test_gradient_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    a = AutoencoderTraj(**TINY)
    for p in a.parameters():  # open the zero gates so every block contributes
        if p.dim() == 3:
            torch.nn.init.normal_(p, std=0.1)
    torch.nn.init.normal_(a.final_layer.weight, std=0.1)
    x = tracks()
    a(x, sample_posterior=False).sample.square().sum().backward()
    g1 = a.x_embedder.weight.grad.clone()
    a.zero_grad()
    a.enable_gradient_checkpointing()
    a(x, sample_posterior=False).sample.square().sum().backward()
    assert torch.allclose(a.x_embedder.weight.grad, g1, atol=1e-5)


def test_bf16_weights_keep_fp32_coordinates():
    m = AutoencoderTraj(**TINY).to(torch.bfloat16)
    out = m.decode(torch.randn(1, 3, 24, 4))
    assert out.sample.dtype == torch.float32
    assert torch.allclose(out.sample[0, 0], m.anchors)  # exact anchors despite bf16 weights


def test_bf16_blocks_get_contiguous_inputs_with_batch_one():
    """A bf16 block runs on its own contiguous layout even for B = 1, where the temporal/spatial reshape is a
    strided view (the bf16 norm kernel was 68x slower on it at the paper config); fp32 keeps the view (measured
    cheaper); both give the same tracks."""
    torch.manual_seed(0)
    m = AutoencoderTraj(**TINY).eval()
    for blk in (*m.encoder_blocks, *m.decoder_blocks):  # open the zero-initialised gates so every block matters
        torch.nn.init.normal_(blk.gate_msa, std=0.5)
        torch.nn.init.normal_(blk.gate_mlp, std=0.5)
    seen = []
    hooks = [blk.register_forward_pre_hook(lambda mod, args: seen.append((args[0].dtype, args[0].is_contiguous())))
             for blk in (*m.encoder_blocks, *m.decoder_blocks)]
    x = tracks(b=1)
    with torch.no_grad():
        ref = m.decode(m.encode(x).latent_dist.mode()).sample
        assert (torch.float32, False) in seen  # the fp32 strided view (temporal blocks with B = 1)
        seen.clear()
        m16 = m.to(torch.bfloat16)
        out = m16.decode(m16.encode(x).latent_dist.mode()).sample
    for h in hooks:
        h.remove()
    assert len(seen) == TINY["encoder_depth"] + TINY["decoder_depth"]
    assert all(dtype == torch.bfloat16 and contiguous for dtype, contiguous in seen)
    assert (out - ref).abs().max() < 0.05 * ref.abs().max()  # the same function, to bf16 rounding


def test_bad_inputs(model):
    with pytest.raises(ValueError, match=r"`tracks` must have shape \[B, 9, 24, 2\]"):
        model.encode(torch.zeros(1, 8, 24, 2))
    with pytest.raises(ValueError, match="grid 4x6"):
        model.encode(torch.zeros(1, 9, 20, 2))
    bad = tracks()
    bad[0, 1, 2, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model.encode(bad)
    with pytest.raises(TypeError, match="torch.Tensor"):
        model.encode([[0.0]])
    with pytest.raises(ValueError, match=r"`z` must have shape \[B, 3, 24, 4\]"):
        model.decode(torch.zeros(1, 2, 24, 4))
    with pytest.raises(ValueError, match="num_frames"):
        AutoencoderTraj(**{**TINY, "num_frames": 10})
    with pytest.raises(ValueError, match="encoder_depth"):
        AutoencoderTraj(**{**TINY, "encoder_depth": 6})
    with pytest.raises(ValueError, match="divisible by the grid stride"):
        AutoencoderTraj(**{**TINY, "height": 70})
    with pytest.raises(ValueError, match="latents_mean"):
        AutoencoderTraj(**{**TINY, "latents_mean": [0.0]})


def test_offset_scale_is_a_reparameterisation():
    torch.manual_seed(0)
    a = AutoencoderTraj(**TINY)
    b = AutoencoderTraj(**{**TINY, "offset_scale": "grid"})
    b.load_state_dict(a.state_dict())
    sx, sy = 96 / 32, 64 / 32  # offsets in grid cells
    with torch.no_grad():  # scale the input embedding and the output head so both compute the same function
        b.x_embedder.weight /= torch.tensor([sx, sy])
        torch.nn.init.normal_(a.final_layer.weight, std=0.01)
        b.final_layer.weight.copy_(a.final_layer.weight * torch.tensor([[sx], [sy]]))
        b.final_layer.bias.copy_(a.final_layer.bias * torch.tensor([sx, sy]))
        x = tracks()
        assert torch.allclose(a(x, sample_posterior=False).sample, b(x, sample_posterior=False).sample, atol=1e-5)
    with pytest.raises(ValueError, match="`offset_scale`"):
        AutoencoderTraj(**{**TINY, "offset_scale": "cells"})


def test_forward_output_survives_accelerate_mixed_precision_wrapping(model):
    # accelerate's mixed-precision forward wrapper rebuilds the output with type(output)(dict)
    from accelerate.utils import convert_to_fp32

    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(tracks(), sample_posterior=False)
    wrapped = convert_to_fp32(out)
    assert wrapped.sample.dtype == torch.float32 and wrapped.latents.shape == (2, 3, 24, 4)
    assert wrapped.latent_dist is out.latent_dist and torch.isfinite(wrapped.latent_dist.kl()).all()
