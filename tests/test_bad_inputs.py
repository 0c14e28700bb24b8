"""Bad inputs across the entry points: each row is (id, call, exception type, message substring).

Every row must end in a named error (the type and a substring of the message that says what is wrong), never a
quiet wrong answer, a deep torch/numpy error or a hang. The CLI rows run `trajloom` as a person does (no
TRAJLOOM_DEBUG): exit code 2 and one line on stderr holding the substring.
"""

import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

from tests.test_pipeline_trajloom import H, S, T, W, tiny_pipeline
from trajloom_hf import metrics
from trajloom_hf.data.synthetic import SceneConfig, generate_clip
from trajloom_hf.models import AutoencoderTraj, TrajFlowTransformer, VisibilityPredictor
from trajloom_hf.pipelines import TrajLoomPipeline
from trajloom_hf.schedulers import FlowMatchTrajScheduler

CLIP = generate_clip(1, SceneConfig(height=H, width=W, num_frames=2 * T, stride=S))
TR, VIS = CLIP.tracks[:T], CLIP.visibility[:T]
PIPE = tiny_pipeline()
GEN = torch.Generator


def _call(**kw):
    args = dict(history_tracks=TR, history_visibility=VIS, num_inference_steps=2, generator=GEN().manual_seed(0))
    args.update(kw)
    return PIPE(**args)


def _nan_callback(pipe, i, t, state):
    return {"latents": state["latents"] * float("nan")}


def _nan_weights():
    p = tiny_pipeline()
    with torch.no_grad():
        p.transformer.out_proj.weight[0, 0] = float("inf")  # one flipped exponent bit
    return p(TR, VIS, num_inference_steps=2, generator=GEN().manual_seed(0))


def _mismatched_transformer(**override):
    p = tiny_pipeline()
    cfg = {**p.transformer.config, **override}
    cfg = {k: v for k, v in cfg.items() if not k.startswith("_")}
    return TrajLoomPipeline(vae=p.vae, transformer=TrajFlowTransformer(**cfg), scheduler=FlowMatchTrajScheduler())


def _frame_pipe_call(video):
    from tests.test_frame_encoder import tiny_frame_pipeline

    p = tiny_frame_pipeline("tracks")
    return p(TR, VIS, video=video, num_inference_steps=1, generator=[GEN().manual_seed(0)])


FRAMES = CLIP.frames[:T]
NAN_FRAMES = FRAMES.astype(np.float32)
NAN_FRAMES[0, 0, 0, 0] = np.nan

PIPELINE_ROWS = [
    ("num_samples=True", lambda: _call(num_samples=True), ValueError, "`num_samples` must be a positive integer"),
    ("num_samples=0", lambda: _call(num_samples=0), ValueError, "`num_samples`"),
    ("num_samples=1.5", lambda: _call(num_samples=1.5), ValueError, "`num_samples`"),
    ("steps=0", lambda: _call(num_inference_steps=0), ValueError, "`num_inference_steps`"),
    ("steps=2.5", lambda: _call(num_inference_steps=2.5), ValueError, "`num_inference_steps`"),
    ("zero clips", lambda: _call(history_tracks=TR[None][:0], history_visibility=VIS[None][:0]), ValueError, "zero clips"),
    ("numpy generator", lambda: _call(generator=np.random.default_rng(0)), TypeError, "must be a torch.Generator"),
    ("generator list with None", lambda: _call(generator=[None]), TypeError, "holds None"),
    ("generator list too short", lambda: _call(history_tracks=np.stack([TR, TR]), history_visibility=np.stack([VIS, VIS]),
                                               generator=[GEN()]), ValueError, "one generator per clip"),
    ("threshold 2.0", lambda: _call(visibility_threshold=2.0), ValueError, "`visibility_threshold` must be a number in [0, 1]"),
    ("threshold NaN", lambda: _call(visibility_threshold=float("nan")), ValueError, "`visibility_threshold`"),
    ("visibility probabilities", lambda: _call(history_visibility=VIS * 0.3), ValueError, "must be bool or 0/1"),
    ("visibility wrong shape", lambda: _call(history_visibility=VIS[:, :5]), ValueError, "`history_visibility` must have shape"),
    ("tracks normalised [-1, 1]", lambda: _call(history_tracks=TR / np.array([W, H]) * 2 - 1), ValueError, "off the stride-16 query grid"),
    ("tracks in 2x pixels", lambda: _call(history_tracks=TR * 2), ValueError, "off the stride-16 query grid"),
    ("tracks (y, x)", lambda: _call(history_tracks=np.ascontiguousarray(TR[..., ::-1])), ValueError, "off the stride-16 query grid"),
    ("tracks of a far frame", lambda: _call(history_tracks=TR * 10), ValueError, "far outside the 64x96 frame"),
    ("no point visible at frame 0", lambda: _call(history_visibility=np.zeros_like(VIS)), ValueError, "no point is visible at frame 0"),
    ("NaN tracks", lambda: _call(history_tracks=np.where(np.arange(TR.size).reshape(TR.shape) == 5, np.nan, TR)), ValueError, "NaN or inf"),
    ("tracks as a list", lambda: _call(history_tracks=TR.tolist()), TypeError, "`history_tracks` must be a numpy array"),
    ("tracks of strings", lambda: _call(history_tracks=TR.astype(str)), TypeError, "must hold pixel coordinates"),
    ("tracks [N, 2]", lambda: _call(history_tracks=TR[0]), ValueError, "[T, N, 2]"),
    ("too few frames", lambda: _call(history_tracks=TR[:5], history_visibility=VIS[:5]), ValueError, "needs at least 9"),
    ("wrong N", lambda: _call(history_tracks=TR[:, :10], history_visibility=VIS[:, :10]), ValueError, "N=24"),
    ("solver", lambda: _call(solver="rk4"), ValueError, "`solver` must be one of"),
    ("output_type", lambda: _call(output_type="pil"), ValueError, "`output_type`"),
    ("callback NaN latents", lambda: _call(callback_on_step_end=_nan_callback), ValueError, "returned latents with NaN"),
    ("callback wrong shape", lambda: _call(callback_on_step_end=lambda p, i, t, s: {"latents": s["latents"][:, :1]}),
     ValueError, "a tensor of shape"),
    ("NaN weights (bit flip)", _nan_weights, ValueError, "`transformer` weight 'out_proj.weight' contains NaN or inf"),
    ("transformer history_num_frames", lambda: _mismatched_transformer(history_num_frames=T + 4), ValueError,
     "history_num_frames=13"),
    ("transformer temporal_stride", lambda: _mismatched_transformer(temporal_stride=2), ValueError, "temporal_stride=2"),
    ("video float [0, 1]", lambda: _frame_pipe_call(FRAMES / 255.0), TypeError, "must be uint8 RGB frames"),
    ("video float [0, 255]", lambda: _frame_pipe_call(FRAMES.astype(np.float32)), TypeError, "must be uint8 RGB frames"),
    ("video NaN frames", lambda: _frame_pipe_call(NAN_FRAMES), ValueError, "NaN or inf pixel values"),
    ("prompt without text encoder", lambda: _call(prompt="a cat"), ValueError, "no `text_encoder`"),
    ("history_mode", lambda: TrajLoomPipeline(**PIPE.components, history_mode="image"), ValueError, "`history_mode`"),
]

# ---------------------------------------------------------------------------------------------------------------
rng = np.random.default_rng(0)
GT = (rng.normal(size=(3, 20, 30, 2)).cumsum(1) + 40).astype(np.float32)
GVIS = np.ones(GT.shape[:-1], bool)
PRED = GT + 0.5

METRIC_ROWS = [
    ("fvmd no visible point", lambda: metrics.fvmd(PRED, GT, prediction_visibility=~GVIS, reference_visibility=~GVIS,
                                                  grid_shape=(5, 6)), ValueError, "no point of `predictions` is visible"),
    ("fvmd_long no visible reference", lambda: metrics.fvmd_long(PRED, GT, reference_visibility=~GVIS, grid_shape=(5, 6)),
     ValueError, "no point of `references` is visible"),
    ("fvmd probability visibility", lambda: metrics.fvmd(PRED, GT, prediction_visibility=GVIS * 0.3,
                                                        reference_visibility=GVIS, grid_shape=(5, 6)),
     ValueError, "threshold probabilities first"),
    ("fvmd string visibility", lambda: metrics.fvmd(PRED, GT, prediction_visibility=GVIS.astype(str),
                                                   reference_visibility=GVIS, grid_shape=(5, 6)), TypeError, "must be boolean"),
    ("fvmd official with visibility", lambda: metrics.fvmd(PRED, GT, prediction_visibility=GVIS, mode="official"),
     ValueError, "official FVMD has no visibility masking"),
    ("fvmd_long one clip", lambda: metrics.fvmd_long(PRED[:1], GT[:1], grid_shape=(5, 6)), ValueError, "at least 2 clips"),
    ("fvmd NaN without visibility", lambda: metrics.fvmd(np.full_like(PRED, np.nan), GT, grid_shape=(5, 6)), ValueError,
     "contains NaN/inf"),
    ("fvmd grid mismatch", lambda: metrics.fvmd(PRED, GT, grid_shape=(4, 6)), ValueError, "does not hold N=30"),
    ("vepe probability visibility", lambda: metrics.vepe(PRED, GT, GVIS * 0.3), ValueError, "threshold probabilities first"),
    ("vepe no visible point", lambda: metrics.vepe(PRED, GT, ~GVIS), ValueError, "no valid (visible, finite) point"),
    ("vepe shape", lambda: metrics.vepe(PRED[:, :5], GT), ValueError, "does not match"),
    ("ade probability visibility", lambda: metrics.displacement_errors(PRED[:, None], GT, GVIS * 0.7), ValueError,
     "threshold probabilities first"),
    ("ade video without visible point", lambda: metrics.displacement_errors(PRED[:, None], GT, np.where(
        np.arange(3)[:, None, None] == 1, False, GVIS)), ValueError, "a video has no visible point"),
    ("flow_tv grid_stride NaN", lambda: metrics.flow_tv(PRED, grid_shape=(5, 6), grid_stride=float("nan")), ValueError,
     "`grid_stride` must be a positive finite number"),
    ("flow_tv grid_stride -16", lambda: metrics.flow_tv(PRED, grid_shape=(5, 6), grid_stride=-16), ValueError, "`grid_stride`"),
    ("flow_tv grid_stride str", lambda: metrics.flow_tv(PRED, grid_shape=(5, 6), grid_stride="16"), ValueError, "`grid_stride`"),
    ("div_curl grid_stride inf", lambda: metrics.div_curl_energy(PRED, grid_shape=(5, 6), grid_stride=float("inf")),
     ValueError, "`grid_stride`"),
    ("flow_tv probability visibility", lambda: metrics.flow_tv(PRED, GVIS * 0.5, grid_shape=(5, 6), grid_stride=16),
     ValueError, "threshold probabilities first"),
    ("visibility_scores probabilities", lambda: metrics.visibility_scores(GVIS * 0.3, GVIS), ValueError, "only 0/1"),
]

# ---------------------------------------------------------------------------------------------------------------


def _saved(tmp_path, edit):
    folder = tmp_path / "p"
    if not folder.exists():
        PIPE.save_pretrained(folder)
    edit(folder)
    return lambda: TrajLoomPipeline.from_pretrained(folder)


def _set_config(folder, component, **values):
    path = folder / component / "config.json"
    cfg = json.loads(path.read_text())
    cfg.update(values)
    path.write_text(json.dumps(cfg))


MODEL_ROWS = [
    ("from_pretrained missing folder", lambda tmp: (lambda: TrajLoomPipeline.from_pretrained(str(tmp / "nope"))),
     FileNotFoundError, "does not exist"),
    ("from_pretrained no model_index", lambda tmp: _saved(tmp, lambda f: (f / "model_index.json").unlink()),
     FileNotFoundError, "has no model_index.json"),
    ("from_pretrained corrupt model_index", lambda tmp: _saved(tmp, lambda f: (f / "model_index.json").write_text("{")),
     ValueError, "model_index.json' is not valid JSON (Expecting"),
    ("from_pretrained missing component", lambda tmp: _saved(tmp, lambda f: shutil.rmtree(f / "transformer")),
     FileNotFoundError, "has no transformer/ folder"),
    ("from_pretrained missing safetensors", lambda tmp: _saved(
        tmp, lambda f: (f / "vae" / "diffusion_pytorch_model.safetensors").unlink()),
     FileNotFoundError, "`vae` of"),
    ("from_pretrained config str int", lambda tmp: _saved(tmp, lambda f: _set_config(f, "vae", num_heads="4")),
     TypeError, "`num_heads` must be int"),
    ("from_pretrained config float for int", lambda tmp: _saved(tmp, lambda f: _set_config(f, "transformer", num_layers=2.0)),
     TypeError, "`num_layers` must be int"),
    ("from_pretrained config bool", lambda tmp: _saved(tmp, lambda f: _set_config(f, "transformer", use_text_cond="no")),
     TypeError, "`use_text_cond` must be bool"),
    ("latents_std zero", lambda tmp: (lambda: AutoencoderTraj(latents_std=[0.0] * 16, latents_mean=[0.0] * 16)),
     ValueError, "`latents_std` must be positive"),
    ("latents_std negative", lambda tmp: (lambda: AutoencoderTraj(latents_std=[-1.0] * 16)), ValueError,
     "`latents_std` must be positive"),
    ("latents_std NaN", lambda tmp: (lambda: AutoencoderTraj(latents_std=[float("nan")] * 16)), ValueError,
     "must hold finite numbers"),
    ("visibility head threshold 2.0", lambda tmp: (lambda: VisibilityPredictor(threshold=2.0)), ValueError,
     "`threshold` must be a number in [0, 1]"),
    ("visibility head threshold NaN", lambda tmp: (lambda: VisibilityPredictor(threshold=float("nan"))), ValueError,
     "`threshold`"),
]

# ---------------------------------------------------------------------------------------------------------------


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def _cli_fixture(tmp):
    PIPE.save_pretrained(tmp / "pipe")
    (tmp / "evil.pkl").write_bytes(pickle.dumps({"v": {"video": _RunsCode()}}))
    (tmp / "notes.pt").write_text("not a checkpoint")
    (tmp / "a_file").write_text("x")
    from tests.test_convert_autoencoder import official_state_dict

    torch.save({"vae": official_state_dict()}, tmp / "vae.pt")
    (tmp / "cfg.json").write_text(json.dumps({"vae_config": {"num_heads": 4}}))  # not the official layout
    from trajloom_hf.data.trajloombench import BenchSettings, build_trajloombench

    build_trajloombench("synthetic", str(tmp / "bench"), "synthetic_tracked", counts={"test": 2}, progress=False,
                        settings=BenchSettings(height=64, width=96, history_frames=9, future_frames=9, stride=16, fps=8))


BENCH = ["bench", "build", "--source", "synthetic", "--config", "c", "--height", "64", "--width", "96", "--stride", "16",
         "--history-frames", "3", "--future-frames", "3"]
CLI_ROWS = [
    ("synth --fps 0", ["synth", "--out", "{tmp}/s", "--fps", "0"], "`--fps` must be a positive number"),
    ("synth --num-clips 0", ["synth", "--out", "{tmp}/s", "--num-clips", "0"], "`--num-clips` must be >= 1"),
    ("synth --out a file", ["synth", "--out", "{tmp}/a_file"], "exists and is not a folder"),
    ("bench --fps -1", BENCH + ["--out", "{tmp}/b", "--fps", "-1"], "`fps` must be a positive finite number"),
    ("bench --num-train -3", BENCH + ["--out", "{tmp}/b", "--num-train", "-3"], "must be a non-negative integer, got -3"),
    ("bench --stride 7", BENCH[:-6] + ["--stride", "7", "--out", "{tmp}/b"], "divisible by the grid stride"),
    ("bench tapvid pickle with code", ["bench", "build", "--source", "tapvid", "--input", "{tmp}/evil.pkl", "--out",
                                       "{tmp}/b", "--config", "d"], "Pass --trust-pickle"),
    ("bench missing input", ["bench", "build", "--source", "videos", "--input", "{tmp}/none", "--out", "{tmp}/b",
                             "--config", "d"], "does not exist"),
    ("evaluate missing pipeline", ["evaluate", "--pipeline", "{tmp}/nope", "--bench", "{tmp}/bench"], "does not exist"),
    ("evaluate unknown config", ["evaluate", "--pipeline", "{tmp}/pipe", "--bench", "{tmp}/bench", "--config", "synthetic"],
     "its configs: synthetic_tracked"),
    ("evaluate missing bench", ["evaluate", "--pipeline", "{tmp}/pipe", "--bench", "{tmp}/none"], "`--bench` folder"),
    ("evaluate --out a file", ["evaluate", "--pipeline", "{tmp}/pipe", "--bench", "{tmp}/bench", "--out", "{tmp}/a_file"],
     "is not a folder"),
    ("evaluate --num-samples 0", ["evaluate", "--pipeline", "{tmp}/pipe", "--bench", "{tmp}/bench", "--num-samples", "0"],
     "`--num-samples` must be >= 1"),
    ("convert nothing", ["convert-official", "--out", "{tmp}/o"], "nothing to convert"),
    ("convert not a checkpoint", ["convert-official", "--vae", "{tmp}/notes.pt", "--num-heads", "4", "--out", "{tmp}/o"],
     "is not a PyTorch checkpoint"),
    ("convert VAE without heads", ["convert-official", "--vae", "{tmp}/vae.pt", "--out", "{tmp}/o"],
     "head count cannot be read from the weights"),
    ("convert unreadable VAE config", ["convert-official", "--vae", "{tmp}/vae.pt", "--vae-config", "{tmp}/cfg.json",
                                       "--out", "{tmp}/o"], "cannot read the VAE config"),
    ("convert --out with other files", ["convert-official", "--vae", "{tmp}/notes.pt", "--out", "{tmp}", "--overwrite"],
     "holds files this command did not write"),
    ("forecast missing pipeline", ["forecast", "{tmp}/a_file", "--pipeline", "{tmp}/nope", "--out", "{tmp}/f"],
     "does not exist"),
]


@pytest.mark.parametrize("name, call, exc, text", PIPELINE_ROWS + METRIC_ROWS, ids=[r[0] for r in PIPELINE_ROWS + METRIC_ROWS])
def test_bad_call_is_a_named_error(name, call, exc, text):
    with pytest.raises(exc) as info:
        call()
    assert text in str(info.value), str(info.value)


@pytest.mark.parametrize("name, make, exc, text", MODEL_ROWS, ids=[r[0] for r in MODEL_ROWS])
def test_bad_model_input_is_a_named_error(name, make, exc, text, tmp_path):
    call = make(tmp_path)
    with pytest.raises(exc) as info:
        call()
    assert text in str(info.value), str(info.value)


@pytest.fixture(scope="module")
def cli_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    _cli_fixture(tmp)
    return tmp


@pytest.mark.parametrize("name, argv, text", CLI_ROWS, ids=[r[0] for r in CLI_ROWS])
def test_bad_command_is_one_line_and_exit_code_2(name, argv, text, cli_dir, capsys, monkeypatch):
    from trajloom_hf.cli import main

    monkeypatch.delenv("TRAJLOOM_DEBUG", raising=False)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    before = sorted(p.name for p in cli_dir.iterdir())
    assert main([a.replace("{tmp}", str(cli_dir)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert text in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in cli_dir.iterdir()) == before  # refused before anything was written



def test_probability_visibility_in_track_files_is_refused(tmp_path):
    """Track files (forecast --tracks, bench build) with visibility probabilities: refused or skipped, never cast."""
    from trajloom_hf.data.trajloombench import BenchSettings, build_trajloombench
    from trajloom_hf.track_files import read_track_file
    from trajloom_hf.video_io import write_video

    c = generate_clip(2, SceneConfig(height=64, width=96, num_frames=12, stride=16))
    np.savez(tmp_path / "p.npz", tracks=c.tracks.transpose(1, 0, 2), visibility=c.visibility.T * 0.3)
    with pytest.raises(ValueError, match="threshold probabilities first"):
        read_track_file(tmp_path / "p.npz")
    folder = tmp_path / "official"
    folder.mkdir()
    write_video(folder / "p.mp4", c.frames, 8)
    shutil.copy(tmp_path / "p.npz", folder / "p.npz")
    m = build_trajloombench("trajloom-official", str(tmp_path / "b"), "k", input_path=str(folder), progress=False,
                            settings=BenchSettings(height=64, width=96, history_frames=5, future_frames=5, stride=16))
    assert m["counts"] == {"test": 0} and "threshold probabilities first" in m["skipped"]["official-p"]
