import argparse
import math

import pytest
import torch

from trajloom_hf.convert.flow import (
    convert_trajloom_generator,
    convert_visibility_predictor,
    generator_config_from_official,
    load_checkpoint_state_dict,
)
from trajloom_hf.models.transformer_traj_flow import TrajFlowTransformer

# official generator config (reference §3.1)
OFFICIAL_GENERATOR_JSON = {
    "generator": {
        "latent_channels": 16, "num_frames_latent": 21, "input_height": 480, "input_width": 832, "patch_size": 32,
        "hidden_size": 768, "num_heads": 12, "depth": 16, "mlp_ratio": 4.0, "dropout": 0.0,
        "video_latent_channels": 16, "use_video_cond": True, "text_embed_dim": 4096, "use_text_cond": True,
        "num_frames_in": 81, "latent_time_stride": 4, "use_overlap": False, "temporal_first": True,
        "spatial_ctx_mode": "pooled_last", "spatial_ctx_pool": 1, "spatial_ctx_last_k": 1,
        "spatial_ctx_include_video": True, "video_ctx_mode": "concat", "track_fusion": "add_last_plus_vel",
        "track_fusion_scale_init": 0.1, "track_fusion_use_time_gate": True, "video_fusion": "none",
        "video_fusion_scale_init": 0.05, "use_hist_vis_cond": True, "hist_vis_scale_init": 1.0,
    },
    "train": {"lr": 6e-5},
}


def official_generator_shapes(d=768, c=16, k=21, n=390, text=4096, video=16, layers=16, mlp=4):
    """Reference Appendix A, generator key table, written out with the sizes as parameters."""
    shapes = {
        "alpha_hist_vis": (), "alpha_video_ctx": (), "beta_video_cond": (), "beta_track_cond": (),
        "track_fusion_scale": (), "track_fusion_gate_logit": (k,),
        "pos_embed": (1, n, d), "seg_embed": (2, d),
        "in_proj.weight": (d, c), "in_proj.bias": (d,),
        "hist_track_proj.weight": (d, c), "hist_track_proj.bias": (d,),
        "hist_video_proj.weight": (d, video), "hist_video_proj.bias": (d,),
        "video_global_proj.weight": (d, video), "video_global_proj.bias": (d,),
        "hist_vis_proj.weight": (d, 1), "hist_vis_proj.bias": (d,),
        "time_mlp.0.weight": (mlp * d, d), "time_mlp.0.bias": (mlp * d,),
        "time_mlp.2.weight": (d, mlp * d), "time_mlp.2.bias": (d,),
        "text_proj.weight": (d, text), "text_proj.bias": (d,),
        "track_global_proj.weight": (d, 2 * c), "track_global_proj.bias": (d,),
        "out_proj.weight": (c, d), "out_proj.bias": (c,),
    }
    for i in range(layers):
        p = f"blocks.{i}."
        shapes.update({
            p + "attn.qkv.weight": (3 * d, d), p + "attn.qkv.bias": (3 * d,),
            p + "attn.proj.weight": (d, d), p + "attn.proj.bias": (d,),
            p + "xattn.q.weight": (d, d), p + "xattn.q.bias": (d,),
            p + "xattn.kv.weight": (2 * d, d), p + "xattn.kv.bias": (2 * d,),
            p + "xattn.proj.weight": (d, d), p + "xattn.proj.bias": (d,),
            p + "mlp.fc1.weight": (mlp * d, d), p + "mlp.fc1.bias": (mlp * d,),
            p + "mlp.fc2.weight": (d, mlp * d), p + "mlp.fc2.bias": (d,),
            p + "adaLN.1.weight": (9 * d, d), p + "adaLN.1.bias": (9 * d,),
        })
    return shapes


def test_paper_config_state_dict_equals_official_key_table():
    with torch.device("meta"):
        m = TrajFlowTransformer(**generator_config_from_official(OFFICIAL_GENERATOR_JSON))
    ours = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert ours == official_generator_shapes()


TINY_SIZES = dict(d=32, c=4, k=5, n=12, text=7, video=3, layers=4)


def _random_official_generator(seed=0, **sizes):
    g = torch.Generator().manual_seed(seed)
    sd = {k: torch.randn(s, generator=g) for k, s in official_generator_shapes(**sizes).items()}
    # what an official checkpoint may also carry: the non-persistent tables and debug buffers
    sd["abs_time_embed_hist"] = torch.zeros(1, sizes.get("k", 21), sizes.get("d", 768))
    sd["blocks.0.last_gate_xattn_mean"] = torch.zeros(())
    return sd


def test_convert_random_generator_checkpoint(tmp_path):
    sd = _random_official_generator(**TINY_SIZES)
    path = tmp_path / "trajloom_generator.pt"
    torch.save({"generator": sd, "epoch": 3}, path)
    m = convert_trajloom_generator(path, grid_size=(3, 4), num_heads=4, history_num_frames=17)
    assert m.config.hidden_size == 32 and m.config.num_layers == 4 and m.config.num_latent_frames == 5
    assert m.config.text_embed_dim == 7 and m.config.video_latent_channels == 3 and m.config.use_hist_vis_cond
    loaded = m.state_dict()
    for key, value in sd.items():
        if key in loaded:
            torch.testing.assert_close(loaded[key], value)
    assert "blocks.0.last_gate_xattn_mean" not in loaded
    # DDP-prefixed raw state dicts convert to the same weights
    m2 = convert_trajloom_generator({"module." + k: v for k, v in sd.items()}, grid_size=(3, 4), num_heads=4, history_num_frames=17)
    z = torch.randn(1, 5, 12, 4)
    with torch.no_grad():
        a = m(z, 0.3, torch.randn(1, 5, 12, 4), text_embeds=torch.ones(1, 7)).sample
    assert torch.isfinite(a).all()
    for k, v in m.state_dict().items():
        torch.testing.assert_close(v, m2.state_dict()[k])


def test_convert_without_optional_streams_infers_switches():
    sd = _random_official_generator(**TINY_SIZES)
    for key in [k for k in sd if k.startswith(("text_proj", "hist_video_proj", "video_global_proj", "hist_vis_proj"))]:
        del sd[key]
    for key in ("alpha_video_ctx", "beta_video_cond", "alpha_hist_vis"):
        del sd[key]
    m = convert_trajloom_generator(sd, grid_size=(3, 4), num_heads=4)
    assert not m.config.use_text_cond and not m.config.use_video_cond and not m.config.use_hist_vis_cond


def test_convert_errors_name_the_problem(tmp_path):
    sd = _random_official_generator(**TINY_SIZES)
    bad = dict(sd)
    bad["blocks.1.mlp.fc1.weight"] = torch.zeros(5, 32)
    with pytest.raises(ValueError, match="blocks.1.mlp.fc1.weight"):
        convert_trajloom_generator(bad, grid_size=(3, 4), num_heads=4)
    with pytest.raises(ValueError, match="grid_size"):
        convert_trajloom_generator(sd, num_heads=4)  # N = 12 is not the paper's 390
    with pytest.raises(ValueError, match="no tensor state dict"):
        load_checkpoint_state_dict({"epoch": 1}, ("generator",))
    with pytest.raises(ValueError, match="video_fusion"):
        generator_config_from_official({"generator": {"video_fusion": "add"}})
    odd = tmp_path / "odd.pt"
    torch.save({"model": sd, "args": argparse.Namespace(lr=1e-4)}, odd)  # pickled object: refused by weights_only
    with pytest.raises(ValueError, match=r"holds pickled Python objects besides tensors \(argparse.Namespace\).*--trust-pickle"):
        convert_trajloom_generator(odd, grid_size=(3, 4))


def test_official_config_mapping():
    cfg = generator_config_from_official(OFFICIAL_GENERATOR_JSON)
    assert cfg["grid_size"] == (15, 26) and cfg["num_layers"] == 16 and cfg["num_latent_frames"] == 21
    assert cfg["use_history_fusion"] and cfg["fusion_velocity_term"] and cfg["history_num_frames"] == 81
    assert generator_config_from_official({"track_fusion": "add_last"})["fusion_velocity_term"] is False
    assert generator_config_from_official({"track_fusion": "none"})["use_history_fusion"] is False


def test_convert_visibility_predictor(tmp_path):
    g = torch.Generator().manual_seed(0)
    shapes = {
        "in_proj.weight": (64, 16), "in_proj.bias": (64,),
        "temporal_net.0.weight": (64, 64, 3), "temporal_net.0.bias": (64,),
        "temporal_net.2.weight": (64, 64, 3), "temporal_net.2.bias": (64,),
        "temporal_net.4.weight": (64, 64, 3), "temporal_net.4.bias": (64,),
        "out.weight": (1, 64, 1), "out.bias": (1,),
    }
    # weights scaled by 1/sqrt(fan_in) (biases by 0.1) so every layer stays O(1): an fp32 sum of unscaled randn
    # products reaches ~1e4 and its last bits depend on the BLAS kernel and thread count
    sd = {k: torch.randn(s, generator=g) * (0.1 if k.endswith("bias") else math.prod(s[1:]) ** -0.5)
          for k, s in shapes.items()}
    path = tmp_path / "visibility_predictor.pt"
    torch.save({"predictor": sd}, path)
    official = {"predictor": {"latent_channels": 16, "hidden": 64, "depth": 3, "kernel_size": 3, "use_hist_last": False,
                              "use_delta_to_hist": False}, "patch_size": 32, "temp_stride": 4}
    m = convert_visibility_predictor(path, official)
    assert sum(p.numel() for p in m.parameters()) == 38209
    # the converted model computes the official per-token conv stack
    z = torch.randn(1, 21, 2, 16, generator=g)
    x = torch.nn.functional.linear(z[0, :, 1], sd["in_proj.weight"], sd["in_proj.bias"]).t()[None]
    for i in (0, 2, 4):
        x = torch.nn.functional.silu(torch.nn.functional.conv1d(x, sd[f"temporal_net.{i}.weight"], sd[f"temporal_net.{i}.bias"], padding=1))
    ref = torch.nn.functional.conv1d(x, sd["out.weight"], sd["out.bias"])[0, 0]
    with torch.no_grad():
        got = m(z).logits[0, :, 1]
    assert 0.05 < float(ref.abs().max()) < 10  # well-conditioned: the tolerance below is ~100x fp32 round-off
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="use_hist_last"):
        convert_visibility_predictor(sd, {"predictor": {"use_hist_last": True}})
