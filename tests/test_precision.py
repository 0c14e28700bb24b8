"""bf16 inference: dtype resolution, fp32 islands inside bf16 models, pipeline accuracy against fp32, CLI --dtype."""

import pytest
import torch

from trajloom_hf import precision
from trajloom_hf.cli import build_parser
from trajloom_hf.data.synthetic import SceneConfig, generate_clip
from trajloom_hf.pipelines import TrajLoomPipeline
from tests.test_pipeline_trajloom import H, S, T, W, tiny_pipeline


@pytest.fixture
def cpu_bf16(monkeypatch):
    """Pretend the CPU has (or lacks) bf16 matmul instructions."""

    def set_(flags, capability="AVX512"):
        precision.cpu_has_bf16_matmul.cache_clear()
        monkeypatch.setattr(precision, "_cpu_flags", lambda: set(flags))
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)

    yield set_
    precision.cpu_has_bf16_matmul.cache_clear()


def test_resolve_dtype_auto_follows_the_hardware(cpu_bf16):
    cpu_bf16({"avx512f", "avx512_bf16"})
    assert precision.resolve_dtype("auto", "cpu") is torch.bfloat16
    cpu_bf16({"amx_tile", "amx_bf16"})
    assert precision.resolve_dtype("auto") is torch.bfloat16
    cpu_bf16({"avx2", "avx512f"})
    assert precision.resolve_dtype("auto", "cpu") is torch.float32
    cpu_bf16(set(), capability="AMX")  # a torch build that reports AMX itself
    assert precision.resolve_dtype("auto", "cpu") is torch.bfloat16
    if not torch.cuda.is_available():
        assert precision.resolve_dtype("auto", "cuda") is torch.float32


def test_resolve_dtype_names_and_errors():
    for name, dtype in [("float32", torch.float32), ("fp32", torch.float32), ("bfloat16", torch.bfloat16),
                        ("bf16", torch.bfloat16), ("float16", torch.float16), (torch.bfloat16, torch.bfloat16)]:
        assert precision.resolve_dtype(name) is dtype
    with pytest.raises(ValueError, match="dtype.*'auto'"):
        precision.resolve_dtype("int8")
    with pytest.raises(ValueError, match="floating-point"):
        precision.resolve_dtype(torch.int32)
    assert precision.dtype_name(torch.bfloat16) == "bfloat16"


def _islands(model):
    return {n for n, p in model.named_parameters() if any(k in n for k in model._keep_in_fp32_modules or ())}


def test_to_bf16_keeps_fp32_islands_and_round_trips():
    pipe = tiny_pipeline()
    vae = pipe.vae
    before = {n: p.detach().clone() for n, p in vae.named_parameters()}
    vae.to(torch.bfloat16)
    islands = _islands(vae)
    assert {"x_embedder.weight", "final_layer.weight", "patch_pos_lff.w"} <= islands
    for n, p in vae.named_parameters():
        if n in islands:
            assert p.dtype == torch.float32 and torch.equal(p, before[n])  # never rounded
        else:
            assert p.dtype == torch.bfloat16
    assert vae.dtype == torch.bfloat16  # the trunk's dtype (diffusers skips the islands)
    vae.to(torch.float32)
    assert all(p.dtype == torch.float32 for p in vae.parameters())
    assert torch.equal(vae.final_layer.weight, before["final_layer.weight"])
    tr = pipe.transformer.to(torch.bfloat16)
    assert tr.in_proj.weight.dtype == tr.out_proj.weight.dtype == torch.float32
    assert tr.blocks[0].mlp.fc1.weight.dtype == torch.bfloat16
    vis = pipe.visibility_predictor.to(torch.bfloat16)
    assert vis.dtype == torch.bfloat16
    with pytest.raises(TypeError, match="floating point"):
        vae.to(torch.int32)


def test_from_pretrained_torch_dtype_equals_to_dtype(tmp_path):
    pipe = tiny_pipeline()
    pipe.save_pretrained(tmp_path)
    loaded = TrajLoomPipeline.from_pretrained(tmp_path, torch_dtype=torch.bfloat16)
    by_name = TrajLoomPipeline.from_pretrained(tmp_path, torch_dtype="bfloat16")
    pipe.to(torch.bfloat16)
    for name in ("vae", "transformer", "visibility_predictor"):
        ref = dict(getattr(pipe, name).named_parameters())
        for other in (loaded, by_name):
            for n, p in getattr(other, name).named_parameters():
                assert p.dtype == ref[n].dtype and torch.equal(p, ref[n]), (name, n)
    assert loaded.vae.final_layer.weight.dtype == torch.float32 and loaded.vae.dtype == torch.bfloat16
    plain = TrajLoomPipeline.from_pretrained(tmp_path)  # the diffusers convention: fp32 unless asked
    assert all(p.dtype == torch.float32 for p in plain.transformer.parameters())


def test_bf16_pipeline_is_close_to_fp32_and_returns_fp32_coordinates():
    clip = generate_clip(3, SceneConfig(height=H, width=W, num_frames=2 * T, stride=S, render=False))
    tracks, vis = clip.tracks[:T], clip.visibility[:T]
    pipe = tiny_pipeline()
    kw = dict(num_samples=4, num_inference_steps=4, output_type="pt")
    full = pipe(tracks, vis, generator=torch.Generator().manual_seed(0), **kw)
    pipe.to(torch.bfloat16)
    half = pipe(tracks, vis, generator=torch.Generator().manual_seed(0), **kw)
    assert half.future_tracks.dtype == torch.float32 and half.visibility_prob.dtype == torch.float32
    err = (half.future_tracks - full.future_tracks).norm(dim=-1)
    # bf16 noise of this tiny random model (64x96 px frames, the samples themselves spread over several px):
    # sub-pixel, and nonzero, i.e. the trunk really ran in bf16
    assert 0 < err.median().item() < 0.05 and err.max().item() < 0.5
    spread = (full.future_tracks[0, 0] - full.future_tracks[0, 1]).norm(dim=-1).median().item()
    assert err.median().item() < 0.1 * spread


@pytest.mark.parametrize("command", [["forecast", "v.mp4", "--pipeline", "p", "--out", "o"],
                                     ["evaluate", "--pipeline", "p", "--bench", "b"]])
def test_cli_dtype_option(command, capsys):
    parser = build_parser()
    assert parser.parse_args(command).dtype == "auto"
    for name in ("float32", "bfloat16", "bf16", "fp32"):
        assert parser.parse_args(command + ["--dtype", name]).dtype == name
    with pytest.raises(SystemExit):
        parser.parse_args(command + ["--dtype", "int8"])
    assert "invalid choice: 'int8'" in capsys.readouterr().err


def test_fp32_islands_stay_fp32_under_autocast():
    """Accelerate's --mixed_precision bf16 runs the forward under torch.autocast: coordinates, offsets, the ODE state
    and the velocity must still be computed in fp32 (an autocast bf16 offset head rounds 0.5 by 2e-3 = 0.8 px)."""
    pipe = tiny_pipeline()
    seen = {}

    def hook(name):
        return lambda module, inputs, output: seen.__setitem__(name, (inputs[0].dtype, output.dtype))

    for name, module in [("x_embedder", pipe.vae.x_embedder), ("final_layer", pipe.vae.final_layer),
                         ("in_proj", pipe.transformer.in_proj), ("out_proj", pipe.transformer.out_proj),
                         ("qkv", pipe.vae.encoder_blocks[0].attn.qkv)]:
        module.register_forward_hook(hook(name))
    x = torch.rand(2, T, 24, 2) * 2 - 1
    k, n, c = pipe.transformer.latent_shape
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rec = pipe.vae(x).sample
        v = pipe.transformer(torch.randn(2, k, n, c), 0.5, torch.randn(2, k, n, c)).sample
    assert rec.dtype == v.dtype == torch.float32
    for name in ("x_embedder", "final_layer", "in_proj", "out_proj"):
        assert seen[name] == (torch.float32, torch.float32), name
    assert seen["qkv"][1] == torch.bfloat16  # the trunk does run in bf16
