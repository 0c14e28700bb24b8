import json

import numpy as np
import pytest

from trajloom_hf.cli import main
from trajloom_hf.data.trajloombench import BenchSettings, build_trajloombench
from trajloom_hf.evaluation import (
    constant_velocity_baseline,
    held_visibility,
    peer_scores,
    results_markdown,
    score,
    static_baseline,
)
from trajloom_hf.metrics import motion_vector_distance
from trajloom_hf.precision import dtype_name, resolve_dtype


def test_baselines_hand_case():
    h = np.array([[[[0.0, 0.0]], [[1.0, 2.0]], [[3.0, 5.0]]]])  # [V=1, T=3, N=1, 2]
    np.testing.assert_array_equal(static_baseline(h, 2)[0, :, 0], [[3, 5], [3, 5]])
    np.testing.assert_array_equal(constant_velocity_baseline(h, 2)[0, :, 0], [[5, 8], [7, 11]])
    hv = np.array([[[1, 0], [0, 1]]], bool)  # [V=1, T_h=2, N=2]
    np.testing.assert_array_equal(held_visibility(hv, 3)[0], [[0, 1]] * 3)


def test_perfect_prediction_scores():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(4, 20, 30, 2)).cumsum(1) + 40
    vis = np.ones(gt.shape[:-1], bool)
    s = score(gt[:, None], gt, vis, (5, 6), 16.0)
    assert s["min_ade"] == 0 and s["fvmd"] < 0.01 and s["fvmd_long"] < 0.01 and "vis_accuracy" not in s
    vis[:, 10:, :5] = False
    s = score(gt[:, None], gt, vis, (5, 6), 16.0, predicted_visibility=vis[:, None])
    assert s["vis_accuracy"] == 1.0 and s["occlusion_f1"] == 1.0
    table = results_markdown({"perfect": s}, "toy")
    assert "| FVMD | perfect |" in table and "| FlowTV (10^2) | perfect |" in table
    # the motion-forecasting peer's metrics: exact forecasts score FDE 0, every point within 1 px, MVD 0
    assert s["fde_last_frame"] == 0 and s["pts_within_1"] == 1.0 and s["pts_within_avg"] == 1.0 and s["mvd"] == 0
    assert "| MVD | perfect |" in table and "| points within 1-16 px, mean (higher is better) | perfect |" in table


def test_peer_scores_frame_size_and_anchor():
    # one point moving 2 px/frame along x for 9 frames after the anchor; the forecast holds it 3 px behind
    gt = (np.arange(1, 10.0)[:, None] * [2.0, 0.0] + [100.0, 50.0])[None, :, None]  # [1, 9, 1, 2]
    pred = gt - [3.0, 0.0]
    vis = np.ones(gt.shape[:-1], bool)
    native = peer_scores(pred[:, None], gt, vis, (64, 64))
    assert native["fde_last_frame"] == pytest.approx(3.0)
    assert [native[f"pts_within_{d}"] for d in (1, 2, 4, 8, 16)] == [0, 0, 0, 0, 1]  # 3 px x 256 / 64 = 12 px
    assert [peer_scores(pred[:, None], gt, vis, (512, 256))[f"pts_within_{d}"]
            for d in (1, 2, 4, 8, 16)] == [0, 1, 1, 1, 1]  # 3 px x 256 / 512 = 1.5 px
    # MVD runs on the anchor (last history frame, shared by both sets) followed by the forecast window
    anchor = np.array([[[100.0, 50.0]]])
    anchored = peer_scores(pred[:, None], gt, vis, (64, 64), anchor, np.ones((1, 1), bool))
    by_hand = motion_vector_distance(np.concatenate([anchor[:, None], pred], 1), np.concatenate([anchor[:, None], gt], 1))
    assert anchored["mvd"] == pytest.approx(by_hand.value) and anchored["mvd"] != native["mvd"]
    assert peer_scores(gt[:, None], gt, vis, (64, 64), anchor, np.ones((1, 1), bool))["mvd"] == 0
    with pytest.raises(ValueError, match="history_last_visibility"):
        peer_scores(gt[:, None], gt, vis, (64, 64), anchor)
    # a later rollout window: each set starts from its own frame before the window
    own = anchor[:, None] - [3.0, 0.0]  # [V, S, N, 2]: the forecast's last frame of the window before
    shifted = peer_scores(pred[:, None], gt, vis, (64, 64), anchor, np.ones((1, 1), bool), prediction_last=own)
    by_hand = motion_vector_distance(np.concatenate([own[:, :, None], pred[:, None]], 2), np.concatenate([anchor[:, None], gt], 1))
    assert shifted["mvd"] == pytest.approx(by_hand.value) and shifted["mvd"] != anchored["mvd"]
    with pytest.raises(ValueError, match="`prediction_last` needs `history_last`"):
        peer_scores(pred[:, None], gt, vis, (64, 64), prediction_last=own)


def test_evaluate_cli_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    from tests.test_pipeline_trajloom import tiny_pipeline  # the same tiny components as the pipeline tests

    bench = tmp_path / "bench"
    build_trajloombench("synthetic", str(bench), "synthetic", progress=False, counts={"test": 3},
                        settings=BenchSettings(height=80, width=96, history_frames=9, future_frames=9, stride=16, fps=8))
    tiny_pipeline(height=80).save_pretrained(tmp_path / "pipe")
    tiny_pipeline(seed=1, height=80).save_pretrained(tmp_path / "other")
    out = tmp_path / "res"
    assert main(["evaluate", "--pipeline", str(tmp_path / "pipe"), "--bench", str(bench), "--config", "synthetic",
                 "--baseline", f"whn={tmp_path / 'other'}", "--num-samples", "2", "--steps", "2", "--vepe-frames", "4", "9",
                 "--out", str(out)]) == 0
    saved = json.loads((out / "results.json").read_text())
    res = saved["results"]
    assert saved["settings"]["dtype"] == dtype_name(resolve_dtype("auto"))  # --dtype auto: bf16 where the CPU has it
    assert set(res) == {"TrajLoom", "whn", "constant velocity", "static"}
    assert res["static"]["flow_tv"] == pytest.approx(0.0)  # nothing moves
    assert np.isfinite(res["TrajLoom"]["fvmd"]) and res["TrajLoom"]["num_samples"] == 2 and "vae_vepe" in res["TrajLoom"]
    for method in res.values():  # the motion-forecasting peer's metrics for every method
        assert 0.0 <= method["pts_within_avg"] <= 1.0 and method["mvd"] >= 0 and method["fde_last_frame"] >= 0
    assert res["static"]["pts_within_16"] >= res["static"]["pts_within_1"]
    assert "| MVD | static |" in (out / "results.md").read_text()
    for method in res.values():  # every method is scored on its future visibility too
        assert 0.0 <= method["vis_accuracy"] <= 1.0 and 0.0 <= method["occlusion_f1"] <= 1.0
    # pipelines: both readings; the default one (auto = the head here) is the unsuffixed score
    settings = json.loads((out / "results.json").read_text())["settings"]
    assert settings["visibility_modes"] == {"TrajLoom": "head", "whn": "head"}
    for name in ("TrajLoom", "whn"):
        assert res[name]["vis_accuracy"] == res[name]["vis_accuracy_head"]
        assert res[name]["occlusion_f1"] == res[name]["occlusion_f1_head"]
        assert 0.0 <= res[name]["vis_accuracy_hold_last"] <= 1.0
    assert "| visibility accuracy, hold last history visibility | TrajLoom |" in (out / "results.md").read_text()
    md = (out / "results.md").read_text()
    assert "| FVMD-Long (10^-3) | constant velocity |" in md
    # Table 2's segment lengths: VEPE of the first L frames of each reconstructed window; L = T is the whole window
    assert res["TrajLoom"]["vae_vepe_9"] == pytest.approx(res["TrajLoom"]["vae_vepe"], rel=1e-6)
    assert res["TrajLoom"]["vae_vepe_4"] != pytest.approx(res["TrajLoom"]["vae_vepe"], rel=1e-3)
    assert "| VAE VEPE, 4-frame segments (px) | TrajLoom |" in md and "vae_vepe_4" not in res["static"]
    with pytest.raises(ValueError, match="vepe_frames"):
        main(["evaluate", "--pipeline", str(tmp_path / "pipe"), "--bench", str(bench), "--config", "synthetic",
              "--vepe-frames", "10", "--out", str(tmp_path / "res2")])
    with pytest.raises(FileNotFoundError, match="`--pipeline` folder .*nope' does not exist"):
        main(["evaluate", "--pipeline", str(tmp_path / "nope"), "--bench", str(bench), "--out", str(out)])
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no model_index.json"):
        main(["evaluate", "--pipeline", str(tmp_path / "empty"), "--bench", str(bench), "--out", str(out)])


def test_vae_vepe_of_segments_is_the_vepe_of_the_first_frames():
    import torch

    from tests.test_pipeline_trajloom import tiny_pipeline
    from trajloom_hf.encoding import denormalize_tracks, normalize_tracks
    from trajloom_hf.evaluation import vae_reconstruction_vepes
    from trajloom_hf.metrics import vepe

    vae = tiny_pipeline().vae
    rng = np.random.default_rng(0)
    gt = (rng.uniform([0, 0], [95, 63], size=(3, 1, 24, 2)) + rng.normal(size=(3, 9, 24, 2)).cumsum(1)).astype(np.float32)
    vis = rng.random(gt.shape[:-1]) > 0.2
    out = vae_reconstruction_vepes(vae, gt, vis, (3, 9), batch_size=2)
    with torch.no_grad():
        rec = denormalize_tracks(vae.decode(vae.encode(normalize_tracks(torch.from_numpy(gt), 64, 96)).latent_dist.mode(),
                                            clamp=True).sample, 64, 96).numpy()
    assert out["vae_vepe_3"] == pytest.approx(vepe(rec[:, :3], gt[:, :3], vis[:, :3]), rel=1e-5)
    assert out["vae_vepe_9"] == pytest.approx(out["vae_vepe"], rel=1e-6)
    assert out["vae_vepe"] == pytest.approx(vepe(rec, gt, vis), rel=1e-5)
    for bad in (0, 10, 2.5):
        with pytest.raises(ValueError, match="segment_frames"):
            vae_reconstruction_vepes(vae, gt, vis, (bad,))


def test_evaluate_frame_pipelines_and_shuffled_frames(tmp_path, monkeypatch):
    """Frame-conditioned pipelines get each clip's own history frames; --shuffle-frames adds a row with another
    clip's frames (the check that a model uses the image)."""
    import torch

    from tests.test_frame_encoder import tiny_frame_pipeline
    from trajloom_hf.evaluation import forecast_split, load_bench_split

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    bench = tmp_path / "bench"
    build_trajloombench("synthetic", str(bench), "synthetic", progress=False, counts={"test": 3},
                        settings=BenchSettings(height=80, width=96, history_frames=9, future_frames=9, stride=16, fps=8))
    whn = tiny_frame_pipeline("last_frame", height=80)
    whn.save_pretrained(tmp_path / "whn")
    out = tmp_path / "res"
    assert main(["evaluate", "--pipeline", str(tmp_path / "whn"), "--bench", str(bench), "--config", "synthetic",
                 "--num-samples", "1", "--steps", "2", "--out", str(out), "--shuffle-frames"]) == 0
    res = json.loads((out / "results.json").read_text())["results"]
    assert set(res) == {"TrajLoom", "TrajLoom (other clip's frames)", "constant velocity", "static"}
    assert res["TrajLoom"]["ade"] != res["TrajLoom (other clip's frames)"]["ade"]
    # clip 0 forecast with clip 1's frames = the pipeline called on clip 0's tracks with clip 1's video
    data = load_bench_split(str(bench), "synthetic", "test", with_video=True)
    pred = forecast_split(whn, data, 9, num_samples=1, num_inference_steps=2, solver="euler", seed=0,
                          progress=False, frame_source=[1, 2, 0]).tracks
    direct = whn(data.tracks[0, :9], data.visibility[0, :9], video=data.history_frames([1], 9)[0],
                 num_inference_steps=2, generator=[torch.Generator().manual_seed(0)]).future_tracks
    np.testing.assert_allclose(pred[0], direct[0], atol=1e-4)
    with pytest.raises(ValueError, match="frame_encoder or video_vae"):
        from tests.test_pipeline_trajloom import tiny_pipeline

        tiny_pipeline(height=80).save_pretrained(tmp_path / "plain")
        main(["evaluate", "--pipeline", str(tmp_path / "plain"), "--bench", str(bench), "--config", "synthetic",
              "--out", str(out), "--shuffle-frames"])


def test_mean_acceleration_hand_cases():
    from trajloom_hf.metrics import mean_acceleration

    t = np.arange(8.0)
    line = np.stack([3.0 * t, -t], -1)[None, :, None]  # [V=1, T=8, N=1, 2], constant velocity
    assert mean_acceleration(line) == 0.0
    # App. B.2's jittery reconstruction x(t) = t + b (-1)^t: |a| = 4 b at every interior frame
    jitter = line + 0.25 * (-1.0) ** t[None, :, None, None] * np.array([1.0, 0.0])
    assert mean_acceleration(jitter) == pytest.approx(1.0)
    fall = np.stack([0 * t, 0.5 * t**2], -1)[None, :, None]  # uniform acceleration 1 px/frame^2 along y
    both = np.concatenate([fall, line], 2)  # two points: 1 and 0
    assert mean_acceleration(both) == pytest.approx(0.5)
    vis = np.ones(both.shape[:-1], bool)
    vis[:, 4, 1] = False  # three triplets of the still point drop out: 6 of 1 + 3 of 0
    assert mean_acceleration(both, vis) == pytest.approx(6 / 9)
    assert np.isnan(mean_acceleration(both, np.zeros_like(vis)))
    with pytest.raises(ValueError, match="at least 3 frames"):
        mean_acceleration(both[:, :2])
    with pytest.raises(ValueError, match="visibility"):
        mean_acceleration(both, vis[:, :3])


def test_evaluate_oracle_rows(tmp_path, monkeypatch):
    """--oracle scores each distinct VAE's reconstruction of the GT future (decode(encode(gt))), once per VAE."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    from tests.test_pipeline_trajloom import tiny_pipeline
    from trajloom_hf.evaluation import evaluate_bench, load_bench_split, vae_reconstruct
    from trajloom_hf.metrics import mean_acceleration, vepe

    bench = tmp_path / "bench"
    build_trajloombench("synthetic", str(bench), "synthetic", progress=False, counts={"test": 3},
                        settings=BenchSettings(height=80, width=96, history_frames=9, future_frames=9, stride=16, fps=8))
    first = tiny_pipeline(height=80)
    first.save_pretrained(tmp_path / "pipe")
    tiny_pipeline(height=80).save_pretrained(tmp_path / "same_vae")  # same seed: identical VAE
    tiny_pipeline(seed=1, height=80).save_pretrained(tmp_path / "other")
    pipes = {"TrajLoom": str(tmp_path / "pipe"), "twin": str(tmp_path / "same_vae"), "other": str(tmp_path / "other")}
    out = tmp_path / "res"
    res = evaluate_bench(pipes, str(bench), "synthetic", "test", num_samples=1, num_inference_steps=1, oracle=True,
                         out_dir=str(out), progress=False)
    oracle_rows = sorted(k for k in res if "oracle" in k)
    assert oracle_rows == ["VAE reconstruction (oracle, TrajLoom)", "VAE reconstruction (oracle, other)"]
    data = load_bench_split(str(bench), "synthetic", "test")
    gt, vis = data.tracks[:, 9:18], data.visibility[:, 9:18]
    rec = vae_reconstruct(first.vae, gt, batch_size=2)
    by_hand = score(rec[:, None], gt, vis, data.grid_shape, 16.0)
    row = res["VAE reconstruction (oracle, TrajLoom)"]
    for key in ("fvmd", "fvmd_long", "min_ade", "mean_accel"):
        assert row[key] == pytest.approx(by_hand[key], rel=1e-5)
    assert vepe(rec, gt, vis) == pytest.approx(res["TrajLoom"]["vae_vepe"], rel=1e-5)  # the same reconstruction
    assert row["fvmd"] != pytest.approx(res["VAE reconstruction (oracle, other)"]["fvmd"], rel=1e-3)
    saved = json.loads((out / "results.json").read_text())
    assert saved["settings"]["oracle"] is True
    assert saved["settings"]["gt_mean_accel"] == pytest.approx(mean_acceleration(gt, vis))
    md = (out / "results.md").read_text()
    assert "| FVMD | VAE reconstruction (oracle, TrajLoom) |" in md
    assert f"- ground truth: {mean_acceleration(gt, vis):.4g}" in md and "- static: 0" in md
    plain = evaluate_bench({"TrajLoom": str(tmp_path / "pipe")}, str(bench), "synthetic", "test", num_samples=1,
                           num_inference_steps=1, progress=False)
    assert not any("oracle" in k for k in plain) and plain["static"]["mean_accel"] == 0.0
    # --temporal-smoothing: every pipeline's forecasts and its oracle row are low-passed with that sigma
    smooth = evaluate_bench({"TrajLoom": str(tmp_path / "pipe")}, str(bench), "synthetic", "test", num_samples=1,
                            num_inference_steps=1, progress=False, oracle=True, temporal_smoothing=2.0,
                            out_dir=str(tmp_path / "smooth"))
    by_hand = score(vae_reconstruct(first.vae, gt, temporal_smoothing=2.0)[:, None], gt, vis, data.grid_shape, 16.0)
    assert smooth["VAE reconstruction (oracle, TrajLoom)"]["fvmd"] == pytest.approx(by_hand["fvmd"], rel=1e-5)
    assert smooth["TrajLoom"]["mean_accel"] < plain["TrajLoom"]["mean_accel"]
    assert smooth["constant velocity"] == plain["constant velocity"]  # baselines untouched
    assert json.loads((tmp_path / "smooth" / "results.json").read_text())["settings"]["temporal_smoothing"] == {"TrajLoom": 2.0}
    with pytest.raises(ValueError, match="--temporal-smoothing"):
        main(["evaluate", "--pipeline", str(tmp_path / "pipe"), "--bench", str(bench), "--temporal-smoothing", "-1",
              "--out", str(tmp_path / "bad")])
    assert main(["evaluate", "--pipeline", str(tmp_path / "pipe"), "--bench", str(bench), "--num-samples", "1",
                 "--steps", "1", "--oracle", "--no-eval-results", "--out", str(tmp_path / "cli")]) == 0
    cli = json.loads((tmp_path / "cli" / "results.json").read_text())["results"]
    assert "VAE reconstruction (oracle, TrajLoom)" in cli
    with pytest.raises(TypeError, match="oracle"):
        evaluate_bench({"TrajLoom": str(tmp_path / "pipe")}, str(bench), "synthetic", "test", oracle="yes")


def test_evaluate_num_windows_scores_every_window(tmp_path, monkeypatch, capsys):
    """--num-windows K: each window scored against its own ground truth; window 1 is the one-window run's numbers."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    from tests.test_pipeline_trajloom import tiny_pipeline
    import trajloom_hf.evaluation as evaluation
    from trajloom_hf.evaluation import evaluate_bench, load_bench_split, window_results

    bench = tmp_path / "bench"
    build_trajloombench("synthetic", str(bench), "synthetic", progress=False, counts={"test": 3},
                        settings=BenchSettings(height=80, width=96, history_frames=9, future_frames=18, stride=16, fps=8))
    tiny_pipeline(height=80).save_pretrained(tmp_path / "pipe")
    run = dict(pipelines={"TrajLoom": str(tmp_path / "pipe")}, bench=str(bench), config="synthetic", split="test",
               num_samples=2, num_inference_steps=1, progress=False)
    one = evaluate_bench(**run, out_dir=str(tmp_path / "one"))
    two = evaluate_bench(**run, num_windows=2, out_dir=str(tmp_path / "two"))
    assert set(two) == set(one) == {"TrajLoom", "constant velocity", "static"}
    np.testing.assert_equal(window_results(two, 1), one)  # window 1: the same keys and numbers (NaN == NaN here)
    for name in two:
        w2 = two[name]["window_2"]
        assert set(w2) == set(one[name]) and np.isfinite(w2["fvmd"]) and w2["min_ade"] != one[name]["min_ade"]
    assert "window_2" not in one["TrajLoom"] and "vae_vepe" in two["TrajLoom"]["window_2"]
    # window 2 by hand: constant velocity over 18 frames, its second half against GT frames 18..26; MVD starts each
    # set from its own frame before the window (the GT's frame 17, the forecast's frame 8)
    data = load_bench_split(str(bench), "synthetic", "test")
    cv = constant_velocity_baseline(data.tracks[:, :9], 18)
    gt, vis = data.tracks[:, 18:27], data.visibility[:, 18:27]
    by_hand = score(cv[:, None, 9:], gt, vis, data.grid_shape, 16.0, frame_size=(80, 96),
                    history_last=data.tracks[:, 17], history_last_visibility=data.visibility[:, 17],
                    prediction_last=cv[:, None, 8])
    for key in ("min_ade", "fvmd", "fvmd_long", "mvd", "pts_within_avg"):
        assert two["constant velocity"]["window_2"][key] == pytest.approx(by_hand[key], rel=1e-6)
    # results.json: the one-window layout unchanged, the rollout's settings only with K > 1
    saved_one = json.loads((tmp_path / "one" / "results.json").read_text())
    saved_two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert "num_windows" not in saved_one["settings"] and saved_one["settings"]["future_frames"] == 9
    s2 = saved_two["settings"]
    assert (s2["num_windows"], s2["window_frames"], s2["future_frames"], s2["rollout_video"]) == (2, 9, 18, "hold_last")
    assert saved_two["results"]["static"]["window_2"]["min_ade"] == pytest.approx(two["static"]["window_2"]["min_ade"])
    md_one, md_two = (tmp_path / "one" / "results.md").read_text(), (tmp_path / "two" / "results.md").read_text()
    assert "## Window" not in md_one and "9 + 9 frames" in md_one
    assert "## Window 1 (future frames 1-9)" in md_two and "## Window 2 (future frames 10-18)" in md_two
    assert md_two.count("| FVMD | constant velocity |") == 2 and "9 + 2 x 9 frames" in md_two
    # the CLI: window 1 goes into the Hub eval-results file (nested windows are left out), every window is printed
    assert main(["evaluate", "--pipeline", str(tmp_path / "pipe"), "--bench", str(bench), "--num-samples", "2",
                 "--steps", "1", "--num-windows", "2", "--out", str(tmp_path / "cli")]) == 0
    cli = json.loads((tmp_path / "cli" / "results.json").read_text())["results"]
    assert cli["static"]["window_2"]["min_ade"] == pytest.approx(two["static"]["window_2"]["min_ade"])
    assert "window 2:" in capsys.readouterr().out
    assert "window_2" not in (tmp_path / "pipe" / ".eval_results" / "trajloombench-synthetic-test.yaml").read_text()
    # clips too short for the horizon: named, before any sampling
    monkeypatch.setattr(evaluation, "forecast_split", lambda *a, **k: pytest.fail("sampled before the check"))
    with pytest.raises(ValueError, match=r"`num_windows` \(--num-windows\) 3 needs 3 x 9 = 27 future frames per clip "
                                         r"after the 9-frame history; the clips of synthetic/test have 18"):
        evaluate_bench(**run, num_windows=3)
    base = ["evaluate", "--pipeline", str(tmp_path / "pipe"), "--bench", str(bench), "--no-eval-results"]
    with pytest.raises(ValueError, match=r"--num-windows\) 3 needs .* have 18"):
        main([*base, "--num-windows", "3", "--out", str(tmp_path / "short")])
    with pytest.raises(ValueError, match="`--num-windows` must be >= 1, got 0"):
        main([*base, "--num-windows", "0", "--out", str(tmp_path / "zero")])
    assert not (tmp_path / "short").exists() and not (tmp_path / "zero").exists()


def _tiny_evaluate_args(tmp_path, monkeypatch):
    """A 2-clip synthetic bench and a tiny pipeline under ``tmp_path``: ``(bench, base trajloom evaluate args)``."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    from tests.test_pipeline_trajloom import tiny_pipeline

    bench = tmp_path / "bench"
    build_trajloombench("synthetic", str(bench), "synthetic", progress=False, counts={"test": 2},
                        settings=BenchSettings(height=80, width=96, history_frames=9, future_frames=9, stride=16, fps=8))
    tiny_pipeline(height=80).save_pretrained(tmp_path / "pipe")
    return bench, ["evaluate", "--pipeline", str(tmp_path / "pipe"), "--bench", str(bench), "--num-samples", "1",
                   "--steps", "2", "--no-eval-results"]


def test_evaluate_fix_first_latent_reaches_every_pipeline_and_is_recorded(tmp_path, monkeypatch):
    """--fix-first-latent (the official --fix_first_frame) changes the forecasts, not the baselines, and is recorded
    in the settings; without it the settings are as before (no key)."""
    from trajloom_hf.evaluation import evaluate_bench

    bench, args = _tiny_evaluate_args(tmp_path, monkeypatch)
    assert main(args + ["--out", str(tmp_path / "plain")]) == 0
    assert main(args + ["--fix-first-latent", "--out", str(tmp_path / "fixed")]) == 0
    plain, fixed = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("plain", "fixed"))
    assert "fix_first_latent" not in plain["settings"] and fixed["settings"]["fix_first_latent"] == {"TrajLoom": True}
    assert fixed["results"]["TrajLoom"]["min_ade"] != plain["results"]["TrajLoom"]["min_ade"]
    assert fixed["results"]["constant velocity"] == plain["results"]["constant velocity"]
    with pytest.raises(TypeError, match="fix_first_latent"):
        evaluate_bench({"TrajLoom": str(tmp_path / "pipe")}, str(bench), "synthetic", "test", fix_first_latent="yes")


def test_evaluate_boundary_continuity_reaches_every_pipeline_and_is_recorded(tmp_path, monkeypatch):
    """--boundary-continuity TAU changes the forecasts, not the baselines, is recorded in the settings (absent when
    off), and a bad TAU is an error before any work."""
    _, args = _tiny_evaluate_args(tmp_path, monkeypatch)
    assert main(args + ["--out", str(tmp_path / "plain")]) == 0
    assert main(args + ["--boundary-continuity", "inf", "--out", str(tmp_path / "joined")]) == 0
    plain, joined = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("plain", "joined"))
    assert "boundary_continuity" not in plain["settings"]
    assert joined["settings"]["boundary_continuity"] == {"TrajLoom": float("inf")}
    assert joined["results"]["TrajLoom"]["min_ade"] != plain["results"]["TrajLoom"]["min_ade"]
    assert joined["results"]["constant velocity"] == plain["results"]["constant velocity"]
    with pytest.raises(ValueError, match="--boundary-continuity"):
        main(args + ["--boundary-continuity", "-1", "--out", str(tmp_path / "bad")])
    assert not (tmp_path / "bad").exists()
