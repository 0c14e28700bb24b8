"""Horizons longer than one window: the pipeline's rollout (`num_windows`), `trajloom forecast --horizon`."""

import json

import numpy as np
import pytest
import torch

from tests.test_frame_encoder import tiny_frame_pipeline
from tests.test_pipeline_trajloom import H, S, T, W, tiny_pipeline
from trajloom_hf.data.synthetic import SceneConfig, generate_clip
from tests.script_loading import load_script


@pytest.fixture(scope="module")
def pipe():
    return tiny_pipeline()


@pytest.fixture(scope="module")
def clip():
    return generate_clip(1, SceneConfig(height=H, width=W, num_frames=2 * T, stride=S, render=True))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_one_window_is_todays_call_and_the_first_window_of_a_rollout(pipe, clip):
    tr, vi = clip.tracks[:T], clip.visibility[:T]
    base = pipe(tr, vi, num_samples=3, num_inference_steps=2, generator=gen(1))
    one = pipe(tr, vi, num_samples=3, num_inference_steps=2, generator=gen(1), num_windows=1)
    two = pipe(tr, vi, num_samples=3, num_inference_steps=2, generator=gen(1), num_windows=2)
    for name in ("future_tracks", "future_visibility", "visibility_prob", "future_in_frame"):
        np.testing.assert_array_equal(getattr(one, name), getattr(base, name))
        np.testing.assert_array_equal(getattr(two, name)[:, :, :T], getattr(base, name))
    assert two.future_tracks.shape == (1, 3, 2 * T, 24, 2) and two.future_tracks.dtype == np.float32
    assert two.future_visibility.shape == (1, 3, 2 * T, 24) and two.visibility_prob.shape == (1, 3, 2 * T, 24)
    assert not np.array_equal(two.future_tracks[:, :, T:], two.future_tracks[:, :, :T])
    three = pipe(tr, vi, num_samples=1, num_inference_steps=1, generator=gen(1), num_windows=3)
    assert three.future_tracks.shape == (1, 1, 3 * T, 24, 2)


@pytest.mark.parametrize("mode", ["head", "hold_last"])
def test_second_window_is_the_pipeline_run_on_the_first_forecast(pipe, clip, mode):
    """Window 2 = a manual call on the last T frames of history + forecast 1 (visibility included), the generator
    continuing: the rollout adds nothing else."""
    tr, vi = clip.tracks[:T], clip.visibility[:T]
    kw = dict(num_inference_steps=2, visibility_mode=mode)
    two = pipe(tr, vi, num_samples=2, generator=gen(4), num_windows=2, **kw)
    g = gen(4)
    first = pipe(tr, vi, num_samples=2, generator=g, **kw)
    hist_t = np.concatenate([np.repeat(tr[None], 2, 0), first.future_tracks[0]], 1)[:, -T:]
    hist_v = np.concatenate([np.repeat(vi[None], 2, 0), first.future_visibility[0]], 1)[:, -T:]
    second = pipe(hist_t, hist_v, num_samples=1, generator=g, check_query_grid=False, **kw)
    np.testing.assert_array_equal(two.future_tracks[0, :, T:], second.future_tracks[:, 0])
    np.testing.assert_array_equal(two.future_visibility[0, :, T:], second.future_visibility[:, 0])


def test_rollout_history_spy_grid_and_anchors(pipe, clip, monkeypatch):
    tr, vi = clip.tracks[:T], clip.visibility[:T]
    anchors, grid = pipe.vae.anchors.clone(), pipe.query_grid().copy()
    seen, checked = [], []
    original, check = pipe.encode_history, pipe._check_query_grid
    monkeypatch.setattr(pipe, "_check_query_grid", lambda t, v: checked.append(t.shape[0]) or check(t, v))
    monkeypatch.setattr(pipe, "encode_history", lambda t, v: seen.append((t.clone(), v.clone())) or original(t, v))
    out = pipe(tr, vi, num_samples=2, num_inference_steps=1, generator=gen(2), num_windows=3, output_type="pt")
    assert [s[0].shape[0] for s in seen] == [1, 2, 2]  # clips, then one history per sample
    torch.testing.assert_close(seen[0][0][0], torch.as_tensor(tr), rtol=0, atol=0)
    for j in (1, 2):  # window j+1's history is forecast j (history and future windows are both T frames)
        torch.testing.assert_close(seen[j][0], out.future_tracks[0, :, (j - 1) * T : j * T], rtol=0, atol=0)
        assert torch.equal(seen[j][1], out.future_visibility[0, :, (j - 1) * T : j * T])
    # only the observed history is checked against the query grid (later histories start at a later frame) ...
    assert checked == [1]
    # ... and the grid and the Grid-Anchor anchors stay those of frame 0
    torch.testing.assert_close(pipe.vae.anchors, anchors, rtol=0, atol=0)
    np.testing.assert_array_equal(pipe.query_grid(), grid)


def test_batched_rollout_with_one_generator_per_clip_equals_single_clips(pipe, clip):
    tr, vi = clip.tracks[:T], clip.visibility[:T]
    single = pipe(tr, vi, num_samples=2, num_inference_steps=1, generator=[gen(5)], num_windows=2)
    batch = pipe(np.stack([tr, tr + 1.0]), np.stack([vi, vi]), num_samples=2, num_inference_steps=1,
                 generator=[gen(5), gen(6)], num_windows=2)
    np.testing.assert_allclose(batch.future_tracks[0], single.future_tracks[0], atol=1e-4)
    assert batch.future_tracks.shape == (2, 2, 2 * T, 24, 2)


def test_later_windows_video_hold_last_and_none(clip, monkeypatch):
    pipe = tiny_frame_pipeline("tracks")
    tr, vi, fr = clip.tracks[:T], clip.visibility[:T], clip.frames[:T]
    kw = dict(num_samples=1, num_inference_steps=2)
    held = pipe(tr, vi, video=fr, generator=gen(3), num_windows=2, **kw)
    g = gen(3)
    first = pipe(tr, vi, video=fr, generator=g, **kw)
    manual = pipe(first.future_tracks[0], first.future_visibility[0], video=np.repeat(fr[-1:], T, 0), generator=g,
                  check_query_grid=False, **kw)  # the last observed frame held over the unknown frames
    np.testing.assert_array_equal(held.future_tracks[0, :, T:], manual.future_tracks[:, 0])
    videos = []
    original = pipe.transformer.prepare_context
    monkeypatch.setattr(pipe.transformer, "prepare_context",
                        lambda *a, **k: videos.append(a[2]) or original(*a, **k))
    off = pipe(tr, vi, video=fr, generator=gen(3), num_windows=2, rollout_video="none", **kw)
    assert videos[0] is not None and videos[1] is None  # window 2 without video context (zeros)
    np.testing.assert_array_equal(off.future_tracks[:, :, :T], held.future_tracks[:, :, :T])
    assert not np.allclose(off.future_tracks[:, :, T:], held.future_tracks[:, :, T:], atol=1e-3)  # the video mattered
    assert pipe._rollout_frame_index(np.zeros((12, 1, 1, 3)), 1, T) == tuple([11] * T)
    assert pipe._rollout_frame_index(np.zeros((12, 1, 1, 3)), 0, T) == tuple(range(3, 12))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2", None])
def test_bad_num_windows_and_horizon_are_named(pipe, clip, bad):
    with pytest.raises(ValueError, match="`num_windows`"):
        pipe(clip.tracks[:T], clip.visibility[:T], num_windows=bad)
    with pytest.raises(ValueError, match="`horizon`"):
        pipe.num_windows_for(bad)


def test_num_windows_for_horizon_rounds_up(pipe, clip):
    assert [pipe.num_windows_for(h) for h in (1, T, T + 1, 2 * T, 2 * T + 1)] == [1, 1, 2, 2, 3]
    with pytest.raises(ValueError, match="`rollout_video`"):
        pipe(clip.tracks[:T], clip.visibility[:T], num_windows=2, rollout_video="blank")


def test_forecast_cli_horizon_rounds_up_and_trims(tmp_path, pipe, clip):
    from trajloom_hf.cli import main
    from trajloom_hf.video_io import write_video

    write_video(tmp_path / "clip.mp4", clip.frames, 8)
    np.savez(tmp_path / "tracks.npz", tracks=clip.tracks, vis=clip.visibility)
    pipe.save_pretrained(tmp_path / "pipe")
    base = ["forecast", str(tmp_path / "clip.mp4"), "--pipeline", str(tmp_path / "pipe"), "--tracks",
            str(tmp_path / "tracks.npz"), "--layout", "TN", "--steps", "1", "--num-samples", "2"]
    assert main([*base, "--horizon", str(T + 4), "--out", str(tmp_path / "long")]) == 0
    assert main([*base, "--out", str(tmp_path / "one")]) == 0
    long, one = np.load(tmp_path / "long" / "forecast.npz"), np.load(tmp_path / "one" / "forecast.npz")
    assert long["future_tracks"].shape == (2, T + 4, 24, 2) and long["future_visibility"].shape == (2, T + 4, 24)
    np.testing.assert_array_equal(long["future_tracks"][:, :T], one["future_tracks"])  # window 1 unchanged
    meta = json.loads((tmp_path / "long" / "meta.json").read_text())
    assert (meta["num_windows"], meta["window_frames"], meta["future_frames"]) == (2, T, T + 4)
    # the file holds 2 T frames: the ground truth is what there is of the horizon
    assert long["gt_future_tracks"].shape == (T, 24, 2) and one["gt_future_tracks"].shape == (T, 24, 2)
    with pytest.raises(ValueError, match="`--horizon`"):
        main([*base, "--horizon", "0", "--out", str(tmp_path / "bad")])
    assert not (tmp_path / "bad").exists()


def test_rollout_windows_cuts_the_ground_truth_and_refuses_short_clips():
    from trajloom_hf.evaluation import rollout_windows

    x = np.arange(2 * 20, dtype=np.float32).reshape(2, 20, 1)
    w = rollout_windows(x, 5, 4, 3)
    assert len(w) == 3 and all(p.shape == (2, 4, 1) for p in w)
    np.testing.assert_array_equal(w[2][1, :, 0], [20 + 13, 20 + 14, 20 + 15, 20 + 16])
    with pytest.raises(ValueError, match=r"`tracks` has 20 frames per clip; 4 windows of 4 frames .* need 21"):
        rollout_windows(x, 5, 4, 4)
    with pytest.raises(ValueError, match="`num_windows`"):
        rollout_windows(x, 5, 4, 0)


def test_long_horizon_benchmark_refuses_clips_too_short_for_the_horizon(tmp_path, pipe):
    from trajloom_hf.data.trajloombench import BenchSettings, build_trajloombench

    settings = BenchSettings(height=H, width=W, history_frames=T, future_frames=2 * T, stride=S, fps=8.0)
    build_trajloombench("synthetic", str(tmp_path / "bench"), "short", settings=settings,
                        counts={"train": 0, "validation": 0, "test": 2}, seed=0, progress=False)
    pipe.save_pretrained(tmp_path / "pipe")
    bench = load_script("benchmarks/bench_long_horizon.py")
    args = ["--out", str(tmp_path / "o"), "--pipeline", str(tmp_path / "pipe"), "--bench", str(tmp_path / "bench"),
            "--config", "short"]
    with pytest.raises(ValueError, match=r"has 27 frames per clip; 3 windows of 9 frames after a 9-frame history need 36"):
        bench.main(args + ["--windows", "3"])
    assert not (tmp_path / "o" / "results.json").exists()
    with pytest.raises(ValueError, match="`--windows` must be >= 1"):
        bench.main(args + ["--windows", "0"])
    with pytest.raises(ValueError, match="`--pipeline` needs `--bench`"):
        bench.main(["--out", str(tmp_path / "o"), "--pipeline", str(tmp_path / "pipe")])


def test_later_windows_encode_the_held_frame_once_per_clip_but_need_a_context_per_sample(clip, monkeypatch):
    """Windows 2.. : the held frame is encoded once per clip (batch = clips, reused by every later window); the
    transformer context is per sample there (each sample continues its own forecast), so the video latents enter
    ``prepare_context`` with one row per sample: clip i's encoding at rows i*S .. i*S+S-1."""
    pipe = tiny_frame_pipeline("tracks")
    other = generate_clip(2, SceneConfig(height=H, width=W, num_frames=2 * T, stride=S, render=True))
    tr, vi = np.stack([clip.tracks[:T], other.tracks[:T]]), np.stack([clip.visibility[:T], other.visibility[:T]])
    fr = np.stack([clip.frames[:T], other.frames[:T]])
    encoded, contexts = [], []
    encode, prepare = pipe.encode_video, pipe.transformer.prepare_context
    monkeypatch.setattr(pipe, "encode_video", lambda v, b: encoded.append((b, encode(v, b))) or encoded[-1][1])
    monkeypatch.setattr(pipe.transformer, "prepare_context",
                        lambda *a, **k: contexts.append((a, prepare(*a, **k))) or contexts[-1][1])
    pipe(tr, vi, video=fr, num_samples=3, num_inference_steps=1, generator=gen(7), num_windows=3)
    # window 1 encodes the observed frames, windows 2 and 3 share one encoding of the held last frame
    assert [(b, lat.shape[0]) for b, lat in encoded] == [(2, 2), (2, 2)]
    held = encoded[1][1]
    assert [args[0].shape[0] for args, _ in contexts] == [2, 6, 6]  # clips, then one history per sample
    assert contexts[1][0][2] is contexts[2][0][2]  # the per-sample rows are built once, not per window
    torch.testing.assert_close(contexts[1][0][2], held.repeat_interleave(3, 0), rtol=0, atol=0)
    # why the rows are per sample: the samples' histories differ, and with them their contexts
    ctx = contexts[1][1].temporal_context.unflatten(0, (6, -1))
    assert not torch.allclose(ctx[0], ctx[1], atol=1e-4) and not torch.allclose(ctx[3], ctx[4], atol=1e-4)
