"""The converted official VAE must reproduce the official *dense* formulation (reference §1.5, §1.6, §2)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trajloom_hf.convert.autoencoder import convert_trajloom_vae, latent_stats_from_official, vae_config_from_official

H, W, S, T, STRIDE, D, HEADS, C, P, DEPTH = 64, 96, 16, 9, 4, 32, 4, 4, 8, 4
GH, GW = H // S, W // S
N = GH * GW


def sincos(pos, dim):  # MAE convention, sin first
    omega = 1.0 / 10000 ** (np.arange(dim // 2) / (dim / 2.0))
    a = np.asarray(pos, np.float64)[:, None] * omega[None]
    return np.concatenate([np.sin(a), np.cos(a)], 1)


def official_state_dict(seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape, s=0.2: torch.randn(*shape, generator=g, dtype=torch.float64) * s  # noqa: E731
    rows, cols = np.meshgrid(np.arange(GH), np.arange(GW), indexing="ij")
    pos = np.concatenate([sincos(cols.reshape(-1), D // 2), sincos(rows.reshape(-1), D // 2)], 1)
    yy, xx = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    anchor = np.stack([2 * (xx + 0.5) / W - 1, 2 * (yy + 0.5) / H - 1])[None, None]
    sd = {
        "pos_embed": torch.tensor(pos)[None], "temp_embed_in": torch.tensor(sincos(np.arange(T), D))[None],
        "offset_anchor_grid": torch.tensor(anchor),
        "temp_compressor.conv.weight": r(D, D, 7, s=0.05), "temp_compressor.conv.bias": r(D),
        "temp_expander.deconv.weight": r(D, D, 7, s=0.05), "temp_expander.deconv.bias": r(D),
        "x_embedder.proj.weight": r(D, 2, S, S, s=0.05), "x_embedder.proj.bias": r(D),
        "patch_pos_lff.w": r(P // 2, 2, s=1.0), "patch_pos_lff.mlp.fc1.weight": r(4 * P, P), "patch_pos_lff.mlp.fc1.bias": r(4 * P),
        "patch_pos_lff.mlp.fc2.weight": r(P, 4 * P), "patch_pos_lff.mlp.fc2.bias": r(P),
        "patch_pos_proj.weight": r(D, P), "patch_pos_proj.bias": r(D),
        "to_latents.weight": r(2 * C, D), "to_latents.bias": r(2 * C),
        "from_latents.weight": r(D, C), "from_latents.bias": r(D),
        "final_layer.weight": r(S * S * 2, D, s=0.05), "final_layer.bias": r(S * S * 2, s=0.05),
    }
    for part in ("encoder_blocks", "decoder_blocks"):
        for i in range(DEPTH):
            p = f"{part}.{i}."
            sd.update({
                p + "gate_msa": r(1, 1, D, s=0.5), p + "gate_mlp": r(1, 1, D, s=0.5),
                p + "norm1.weight": 1 + r(D, s=0.1), p + "norm2.weight": 1 + r(D, s=0.1), p + "norm3.weight": 1 + r(D, s=0.1),
                p + "attn.qkv.weight": r(3 * D, D), p + "attn.qkv.bias": r(3 * D), p + "attn.proj.weight": r(D, D),
                p + "attn.proj.bias": r(D), p + "mlp.fc1.weight": r(4 * D, D), p + "mlp.fc1.bias": r(4 * D),
                p + "mlp.fc2.weight": r(D, 4 * D), p + "mlp.fc2.bias": r(D),
            })
    return sd


# ---- the official dense model, written from the specification ---------------------------------------------------
def block(sd, p, x):
    def rms(v, w):
        return v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + 1e-6) * w

    b, l, _ = x.shape
    qkv = F.linear(rms(x, sd[p + "norm1.weight"]), sd[p + "attn.qkv.weight"], sd[p + "attn.qkv.bias"])
    q, k, v = qkv.reshape(b, l, 3, HEADS, D // HEADS).permute(2, 0, 3, 1, 4)
    a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D // HEADS), -1) @ v
    x = x + sd[p + "gate_msa"] * F.linear(a.transpose(1, 2).reshape(b, l, D), sd[p + "attn.proj.weight"], sd[p + "attn.proj.bias"])
    m = F.linear(F.gelu(F.linear(rms(x, sd[p + "norm3.weight"]), sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"])),
                 sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
    return x + sd[p + "gate_mlp"] * m


def stage(sd, part, idx, h, temp_embed=None):
    b, t, n, d = h.shape
    for j, i in enumerate(idx):
        if j % 2 == 0:
            h = block(sd, f"{part}.{i}.", h.reshape(b * t, n, d)).reshape(b, t, n, d)
        else:
            x = h.permute(0, 2, 1, 3).reshape(b * n, t, d)
            if j == 1 and temp_embed is not None:
                x = x + temp_embed
            h = block(sd, f"{part}.{i}.", x).reshape(b, n, t, d).permute(0, 2, 1, 3)
    return h


def dense_encode_decode(sd, tracks_norm):
    """tracks [B, T, N, 2] normalised -> (posterior mean [B, K, N, C], decoded query-pixel tracks [B, T, N, 2])."""
    b = tracks_norm.shape[0]
    grid = tracks_norm.reshape(b, T, GH, GW, 2)
    dense = grid.repeat_interleave(S, 2).repeat_interleave(S, 3).permute(0, 1, 4, 2, 3)  # [B, T, 2, H, W]
    x = dense - sd["offset_anchor_grid"]
    tok = F.conv2d(x.reshape(b * T, 2, H, W), sd["x_embedder.proj.weight"], sd["x_embedder.proj.bias"], stride=S)
    h = tok.flatten(2).transpose(1, 2).reshape(b, T, N, D) + sd["pos_embed"]
    rows, cols = torch.meshgrid(torch.arange(GH), torch.arange(GW), indexing="ij")
    c = torch.stack([2 * (cols.reshape(-1) + 0.5) / GW - 1, 2 * (rows.reshape(-1) + 0.5) / GH - 1], -1).double()
    f = c @ sd["patch_pos_lff.w"].t()
    f = torch.cat([torch.cos(f), torch.sin(f)], -1) / math.sqrt(P)
    f = F.linear(F.gelu(F.linear(f, sd["patch_pos_lff.mlp.fc1.weight"], sd["patch_pos_lff.mlp.fc1.bias"])),
                 sd["patch_pos_lff.mlp.fc2.weight"], sd["patch_pos_lff.mlp.fc2.bias"])
    h = h + F.linear(f, sd["patch_pos_proj.weight"], sd["patch_pos_proj.bias"])
    h = stage(sd, "encoder_blocks", range(DEPTH // 2), h, sd["temp_embed_in"][0])
    seq = F.pad(h.permute(0, 2, 3, 1).reshape(b * N, D, T), (3, 3), mode="replicate")
    z = F.conv1d(seq, sd["temp_compressor.conv.weight"], sd["temp_compressor.conv.bias"], stride=STRIDE)
    k = z.shape[-1]
    h = z.reshape(b, N, D, k).permute(0, 3, 1, 2)
    h = stage(sd, "encoder_blocks", range(DEPTH // 2, DEPTH), h)
    mean = F.linear(h, sd["to_latents.weight"], sd["to_latents.bias"])[..., :C]
    # decoder
    h = F.linear(mean, sd["from_latents.weight"], sd["from_latents.bias"])
    h = stage(sd, "decoder_blocks", range(DEPTH // 2), h)
    seq = F.pad(h.permute(0, 2, 3, 1).reshape(b * N, D, k), (3, 3), mode="replicate")
    out = F.conv_transpose1d(seq, sd["temp_expander.deconv.weight"], sd["temp_expander.deconv.bias"], stride=STRIDE, padding=3)
    h = out[..., 12 : 12 + T].reshape(b, N, D, T).permute(0, 3, 1, 2)
    h = stage(sd, "decoder_blocks", range(DEPTH // 2, DEPTH), h)
    patches = F.linear(h, sd["final_layer.weight"], sd["final_layer.bias"]).reshape(b, T, GH, GW, S, S, 2)
    dense_out = patches.permute(0, 1, 6, 2, 4, 3, 5).reshape(b, T, 2, H, W) + sd["offset_anchor_grid"]
    at_queries = dense_out[:, :, :, ::S, ::S].permute(0, 1, 3, 4, 2).reshape(b, T, N, 2)
    return mean, at_queries


def test_converted_vae_matches_dense_official_formulation():
    sd = official_state_dict()
    model = convert_trajloom_vae({"vae": sd}, num_heads=HEADS).double()
    assert model.config.height == H and model.config.num_frames == T and model.config.temporal_stride == STRIDE
    g = torch.Generator().manual_seed(1)
    q = torch.tensor(np.stack(np.meshgrid(np.arange(GW) * S, np.arange(GH) * S), -1).reshape(-1, 2), dtype=torch.float64)
    px = q[None, None] + torch.randn(2, T, N, 2, generator=g, dtype=torch.float64).cumsum(1) * 2
    norm = px / torch.tensor([W / 2, H / 2], dtype=torch.float64) - 1
    ref_mean, ref_dec = dense_encode_decode(sd, norm)
    with torch.no_grad():
        mean = model.encode(norm).latent_dist.mean
        dec = model.decode(mean).sample
    assert (mean - ref_mean).abs().max().item() < 1e-5
    assert (dec - ref_dec).abs().max().item() < 1e-5


def test_official_config_mapping_and_latent_stats(tmp_path):
    # the official trajloom_vae_config.json nests the VAE config under trajloom_vae.config (reference §2.1)
    section = {"input_height": 480, "input_width": 832, "num_frames_in": 81, "temp_stride": 4, "use_dino": False,
               "hidden_size": 512, "num_heads": 8}
    expected = {"height": 480, "width": 832, "num_frames": 81, "temporal_stride": 4, "hidden_size": 512, "num_heads": 8}
    assert vae_config_from_official({"trajloom_vae": {"config": section}, "train": {"lr": 2e-5}}) == expected
    assert vae_config_from_official({"vae": section}) == expected
    # a file it cannot read is refused (it used to be ignored and the head count guessed from the weights)
    for unreadable in ({"trajloom": {"config": section}}, {"trajloom_vae": {"config": {"hidden_size": 512}}}, {}):
        with pytest.raises(ValueError, match="cannot read the VAE config.*gives num_heads.*trajloom_vae.config"):
            vae_config_from_official(unreadable)
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        vae_config_from_official({"trajloom_vae": {"config": {**section, "num_heads": 7}}})
    with pytest.raises(ValueError, match="`num_heads` must be a positive integer"):
        vae_config_from_official({"trajloom_vae": {"config": {**section, "num_heads": "8"}}})
    stats = {"z_all": {"per_channel": {"mean": [0.5] * C, "std": [2.0] * C}}}
    out = latent_stats_from_official(stats)
    model = convert_trajloom_vae(official_state_dict(), num_heads=HEADS, **out)
    z = torch.randn(1, 3, N, C)
    assert torch.allclose(model.scale_latents(z), (z - 0.5) / 2.0)
    with pytest.raises(ValueError, match="`key`"):
        latent_stats_from_official(stats, "z_hist")


def test_pt_file_round_trip_with_weights_only(tmp_path):
    sd = official_state_dict()
    path = tmp_path / "trajloom_vae.pt"
    torch.save({"vae": sd, "epoch": 3}, path)
    model = convert_trajloom_vae(path, num_heads=HEADS)
    model.save_pretrained(tmp_path / "vae")
    from trajloom_hf.models.autoencoder_traj import AutoencoderTraj

    back = AutoencoderTraj.from_pretrained(tmp_path / "vae")
    x = torch.rand(1, T, N, 2) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(back.encode(x).latent_dist.mean, model.encode(x).latent_dist.mean)
    assert (tmp_path / "vae" / "diffusion_pytorch_model.safetensors").exists()


def test_mismatching_config_is_rejected():
    sd = official_state_dict()
    with pytest.raises(ValueError, match="pos_embed"):
        convert_trajloom_vae(sd, num_heads=HEADS, width=128)  # fixed tables disagree with the config
    bad = dict(sd)
    del bad["x_embedder.proj.weight"]
    with pytest.raises(ValueError, match="not an official TrajLoom-VAE"):
        convert_trajloom_vae(bad)


@pytest.mark.parametrize("overrides", [{"offset_scale": "grid"}, {"offset_scale": 2.5}, {"use_offsets": False}])
def test_conversion_honours_offset_scale_and_absolute_coordinates(overrides):
    # offset_scale is folded into x_embedder / final_layer; use_offsets=False drops the anchor ramp (official model
    # without the dense anchor field), so both still compute the official dense formulation
    sd = official_state_dict()
    ref_sd = dict(sd)
    if overrides.get("use_offsets") is False:
        ref_sd["offset_anchor_grid"] = torch.zeros_like(sd["offset_anchor_grid"])
    model = convert_trajloom_vae(sd, num_heads=HEADS, **overrides).double()
    norm = torch.rand(1, T, N, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 2 - 1
    ref_mean, ref_dec = dense_encode_decode(ref_sd, norm)
    with torch.no_grad():
        mean = model.encode(norm).latent_dist.mean
        dec = model.decode(mean).sample
    assert (mean - ref_mean).abs().max().item() < 1e-5
    assert (dec - ref_dec).abs().max().item() < 1e-5


def test_official_config_file_sets_the_head_count():
    """A 2-head VAE converted from the official config layout gets 2 heads (it was converted with a guessed 1)."""
    sd = official_state_dict()
    official = {"trajloom_vae": {"config": {"hidden_size": D, "num_heads": 2, "patch_size": S, "input_height": H,
                                            "input_width": W, "num_frames_in": T, "temp_stride": STRIDE}}}
    model = convert_trajloom_vae(sd, official).double()
    assert model.config.num_heads == 2
    norm = torch.rand(1, T, N, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        ours = model.encode(norm).latent_dist.mean
        guessed = convert_trajloom_vae(sd, num_heads=1).double().encode(norm).latent_dist.mean
    assert (ours - guessed).abs().max() > 1e-4  # the head count matters: guessing it would be silently wrong
    with pytest.raises(ValueError, match="head count cannot be read from the weights"):
        convert_trajloom_vae(sd)


def test_bf16_checkpoint_loads_as_fp32_with_a_note(tmp_path):
    sd = official_state_dict()
    path = tmp_path / "trajloom_vae.pt"
    torch.save({"vae": {k: v.to(torch.bfloat16) for k, v in sd.items()}}, path)
    with pytest.warns(UserWarning, match="bfloat16 tensors: read as float32"):
        model = convert_trajloom_vae(path, num_heads=HEADS)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    for key in ("to_latents.weight", "from_latents.bias", "temp_compressor.conv.weight"):  # values unchanged
        torch.testing.assert_close(model.state_dict()[key], sd[key].to(torch.bfloat16).float(), rtol=0, atol=0)
    with pytest.raises(ValueError, match="pos_embed"):  # a wrong size is still caught at bf16 precision
        convert_trajloom_vae(path, num_heads=HEADS, width=128)


def test_nan_weights_and_non_checkpoints_are_named(tmp_path):
    sd = official_state_dict()
    sd["to_latents.weight"][3, 1] = float("nan")  # one flipped exponent bit is enough
    with pytest.raises(ValueError, match="'to_latents.weight' holds NaN or inf: the file is corrupt"):
        convert_trajloom_vae({"vae": sd}, num_heads=HEADS)
    junk = tmp_path / "notes.pt"
    junk.write_text("these are my notes, not a checkpoint")
    with pytest.raises(ValueError, match="is not a PyTorch checkpoint") as info:
        convert_trajloom_vae(junk, num_heads=HEADS)
    assert "weights_only=False" not in str(info.value)
