"""trajloom_hf.evaluation.choose_boundary_continuity and `trajloom choose-continuity`."""

import json
import math

import numpy as np
import pytest

from trajloom_hf.cli import main
from trajloom_hf.data.trajloombench import BenchSettings, build_trajloombench
from trajloom_hf.evaluation import (choose_boundary_continuity, choose_visibility_mode, forecast_split,
                                    load_bench_split)
from trajloom_hf.metrics import displacement_errors, visibility_scores


@pytest.fixture()
def tiny(tmp_path, monkeypatch):
    """A 3-clip synthetic validation split and a tiny pipeline saved under ``tmp_path``: ``(bench, pipeline dir)``."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    from tests.test_pipeline_trajloom import tiny_pipeline

    bench = tmp_path / "bench"
    build_trajloombench("synthetic", str(bench), "synthetic", progress=False, counts={"validation": 3},
                        settings=BenchSettings(height=80, width=96, history_frames=9, future_frames=9, stride=16, fps=8))
    tiny_pipeline(height=80).save_pretrained(tmp_path / "pipe")
    return bench, tmp_path / "pipe"


def test_each_tau_scores_as_the_pipeline_run_with_it(tiny):
    """The post-hoc join of one forecast scores as a forecast made with that tau (same seeds), up to the points the
    pipeline clipped to the frame; the choice is the grid's argmin."""
    from trajloom_hf import TrajLoomPipeline

    bench, folder = tiny
    pipe = TrajLoomPipeline.from_pretrained(folder)
    data = load_bench_split(str(bench), "synthetic", "validation")
    kw = dict(num_samples=2, num_inference_steps=2, solver="euler", seed=3, progress=False)
    choice = choose_boundary_continuity(pipe, data, taus=(0, 2, math.inf), **kw)
    assert list(choice.scores) == [0.0, 2.0, math.inf] and choice.criterion == "min_ade"
    assert choice.tau == min(choice.scores, key=lambda t: choice.scores[t]["min_ade"])
    t_h = pipe.history_frames
    gt, vis = data.tracks[:, t_h:], data.visibility[:, t_h:]
    for tau, sc in choice.scores.items():
        direct = forecast_split(pipe, data, t_h, boundary_continuity=tau, **kw).tracks
        want = displacement_errors(direct, gt, vis).min_ade
        assert sc["min_ade"] == pytest.approx(want, rel=2e-2, abs=1e-3), tau
    assert choice.scores[0.0]["min_ade"] == pytest.approx(
        displacement_errors(forecast_split(pipe, data, t_h, boundary_continuity=0, **kw).tracks, gt, vis).min_ade,
        rel=1e-6)
    assert choice.scores[2.0]["min_ade"] != choice.scores[0.0]["min_ade"]  # the join moves the tracks
    # the visibility readings of the same (unjoined) forecast, scored against the GT
    readings = forecast_split(pipe, data, t_h, boundary_continuity=0, **kw).readings
    assert set(choice.visibility.scores) == {"hold_last", "head"}
    for name, sc in choice.visibility.scores.items():
        assert sc["accuracy"] == pytest.approx(visibility_scores(readings[name], vis).accuracy, abs=1e-12), name


def test_the_head_is_chosen_only_when_it_beats_hold_last_on_both_scores():
    """Hand-made readings: 4 clips x 1 sample x 1 frame x 10 points, GT with 3 occluded points per clip."""
    gt = np.ones((4, 1, 10), bool)
    gt[:, :, :3] = False
    last = gt[:, None].copy()
    last[:, :, :, 0] = True  # hold-last misses one occlusion per clip: accuracy 0.9, F1 0.8
    assert choose_visibility_mode({"hold_last": last}, gt).mode == "hold_last"  # no head
    assert choose_visibility_mode({"hold_last": last, "head": gt[:, None]}, gt).mode == "head"  # perfect head
    tie = choose_visibility_mode({"hold_last": last, "head": last.copy()}, gt)
    assert tie.mode == "hold_last" and tie.scores["head"] == tie.scores["hold_last"]
    all_visible = np.ones_like(last)  # accuracy 0.7, F1 0
    assert choose_visibility_mode({"hold_last": last, "head": all_visible}, gt).mode == "hold_last"
    # higher accuracy but lower occlusion F1 than hold-last: not chosen
    acc_only = gt[:, None].copy()
    acc_only[:, :, :, :3] = True  # misses every occlusion ...
    last_bad = np.zeros_like(last)  # ... while hold-last says "occluded" everywhere: accuracy 0.3, F1 0.46
    pick = choose_visibility_mode({"hold_last": last_bad, "head": acc_only}, gt)
    assert pick.scores["head"]["accuracy"] > pick.scores["hold_last"]["accuracy"]
    assert pick.scores["head"]["occlusion_f1"] < pick.scores["hold_last"]["occlusion_f1"] and pick.mode == "hold_last"
    assert pick.scores["hold_last"]["accuracy"] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="hold_last"):
        choose_visibility_mode({"head": last}, gt)
    with pytest.raises(ValueError, match="only"):
        choose_visibility_mode({"hold_last": last, "oracle": last}, gt)


def test_choice_follows_the_criterion_and_checks_its_arguments(tiny):
    from trajloom_hf import TrajLoomPipeline

    bench, folder = tiny
    pipe = TrajLoomPipeline.from_pretrained(folder)
    data = load_bench_split(str(bench), "synthetic", "validation")
    kw = dict(num_samples=1, num_inference_steps=2, progress=False)
    by_fvmd = choose_boundary_continuity(pipe, data, taus=(0, 5, math.inf), criterion="fvmd", **kw)
    assert by_fvmd.tau == min(by_fvmd.scores, key=lambda t: by_fvmd.scores[t]["fvmd"])
    with pytest.raises(ValueError, match="criterion"):
        choose_boundary_continuity(pipe, data, criterion="ade", **kw)
    with pytest.raises(ValueError, match="taus"):
        choose_boundary_continuity(pipe, data, taus=(0, -1), **kw)
    with pytest.raises(ValueError, match="twice"):
        choose_boundary_continuity(pipe, data, taus=(5, 5.0), **kw)
    with pytest.raises(ValueError, match="taus"):
        choose_boundary_continuity(pipe, data, taus=(), **kw)


def test_cli_writes_the_table_and_a_new_pipeline_with_the_chosen_tau(tiny, tmp_path):
    from trajloom_hf import TrajLoomPipeline

    bench, folder = tiny
    before = {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    args = ["choose-continuity", "--pipeline", str(folder), "--bench", str(bench), "--num-samples", "1",
            "--steps", "2", "--taus", "0", "3", "inf", "--dtype", "float32"]
    assert main(args + ["--out", str(tmp_path / "c"), "--save-pipeline", str(tmp_path / "joined")]) == 0
    record = json.loads((tmp_path / "c" / "continuity.json").read_text())
    assert list(record["scores"]) == ["0", "3", "inf"] and record["settings"]["split"] == "validation"
    best = min(record["scores"], key=lambda t: record["scores"][t]["min_ade"])
    assert record["tau"] == best
    assert "**" in (tmp_path / "c" / "continuity.md").read_text()
    assert record["visibility_mode"] in ("head", "hold_last") and set(record["visibility_scores"]) == {"hold_last", "head"}
    joined = TrajLoomPipeline.from_pretrained(tmp_path / "joined")
    assert joined.resolve_boundary_continuity() == float(best)
    assert joined.config.visibility_mode == record["visibility_mode"]  # the reading chosen on the split is saved
    assert main(args + ["--out", str(tmp_path / "k"), "--save-pipeline", str(tmp_path / "kept"), "--keep-visibility"]) == 0
    assert TrajLoomPipeline.from_pretrained(tmp_path / "kept").config.visibility_mode == "auto"  # the source's
    assert record["saved_visibility_mode"] == record["visibility_mode"]
    kept = json.loads((tmp_path / "k" / "continuity.json").read_text())
    assert kept["saved_visibility_mode"] == "auto" and "keeps its own, visibility_mode='auto'" in \
        (tmp_path / "k" / "continuity.md").read_text()
    assert {p.name: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before  # the source is untouched
    # nothing is overwritten; test is not a split to choose on; both are refused before any work
    with pytest.raises(FileExistsError, match="--save-pipeline"):
        main(["--debug"] + args + ["--out", str(tmp_path / "d"), "--save-pipeline", str(tmp_path / "joined")])
    with pytest.raises(ValueError, match="--split"):
        main(["--debug"] + args + ["--out", str(tmp_path / "e"), "--split", "test"])
    assert not (tmp_path / "d").exists() and not (tmp_path / "e").exists()
    with pytest.raises(SystemExit):  # argparse: a negative tau is not a tau
        main(args + ["--out", str(tmp_path / "f"), "--taus", "-2"])


def test_history_view_is_what_the_model_sees(tiny):
    """history_view holds the last frame still for a last_frame (WHN-style) pipeline."""
    from trajloom_hf import TrajLoomPipeline

    bench, folder = tiny
    pipe = TrajLoomPipeline.from_pretrained(folder)
    data = load_bench_split(str(bench), "synthetic", "validation")
    t_h = pipe.history_frames
    tracks, vis = pipe.history_view(data.tracks[:, :t_h], data.visibility[:, :t_h])
    np.testing.assert_allclose(tracks.numpy(), data.tracks[:, :t_h], atol=1e-5)
    pipe.register_to_config(history_mode="last_frame")
    held, _ = pipe.history_view(data.tracks[:, :t_h], data.visibility[:, :t_h])
    np.testing.assert_allclose(held.numpy(), np.repeat(data.tracks[:, t_h - 1:t_h], t_h, 1), atol=1e-5)


def test_cli_defaults_are_the_librarys():
    """The CLI keeps its parser free of package imports; its criteria and default grid are the library's."""
    import argparse

    from trajloom_hf.cli import choose_continuity
    from trajloom_hf.evaluation import CONTINUITY_CRITERIA, CONTINUITY_TAUS

    parser = argparse.ArgumentParser()
    choose_continuity.add_arguments(parser)
    criterion = next(a for a in parser._actions if a.dest == "criterion")
    assert tuple(criterion.choices) == CONTINUITY_CRITERIA
    assert "0 5 10 20 40 inf" in next(a for a in parser._actions if a.dest == "taus").help
    assert " ".join(f"{t:g}" for t in CONTINUITY_TAUS) == "0 5 10 20 40 inf"
