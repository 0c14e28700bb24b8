"""Mean ± std over seeds and which method differences exceed the spread (trajloom_hf.seed_spread)."""

import math

import pytest

from trajloom_hf.seed_spread import aggregate, differences, higher_is_better, spread_markdown

RESULTS = {  # seed -> method -> metric (results.json["results"] layout)
    0: {"TrajLoom": {"fvmd": 130.0, "ade": 3.0, "vis_accuracy": 0.80, "num_samples": 4},
        "WHN-style": {"fvmd": 300.0, "ade": 3.1, "vis_accuracy": 0.70, "num_samples": 4},
        "static": {"fvmd": 500.0, "ade": 7.0, "vis_accuracy": 0.90, "num_samples": 1}},
    1: {"TrajLoom": {"fvmd": 150.0, "ade": 3.4, "vis_accuracy": 0.84, "num_samples": 4},
        "WHN-style": {"fvmd": 280.0, "ade": 2.9, "vis_accuracy": 0.74, "num_samples": 4},
        "static": {"fvmd": 500.0, "ade": 7.0, "vis_accuracy": 0.90, "num_samples": 1}},
    2: {"TrajLoom": {"fvmd": 140.0, "ade": 3.2, "vis_accuracy": 0.82, "num_samples": 4},
        "WHN-style": {"fvmd": 290.0, "ade": 3.3, "vis_accuracy": 0.72, "num_samples": 4},
        "static": {"fvmd": 500.0, "ade": 7.0, "vis_accuracy": 0.90, "num_samples": 1}},
}


def test_mean_and_sample_std():
    spread = aggregate(RESULTS)
    fvmd = spread["TrajLoom"]["fvmd"]
    assert fvmd.values == (130.0, 150.0, 140.0) and fvmd.n == 3
    assert fvmd.mean == pytest.approx(140.0)
    assert fvmd.std == pytest.approx(10.0)  # ddof = 1: sqrt((100 + 100 + 0) / 2)
    assert spread["static"]["fvmd"].std == 0.0  # a deterministic baseline has no spread
    assert math.isclose(spread["WHN-style"]["ade"].std, 0.2)


def test_differences_against_the_reference():
    diffs = {(d.other, d.metric): d for d in differences(aggregate(RESULTS), "TrajLoom")}
    fvmd = diffs[("WHN-style", "fvmd")]
    assert fvmd.delta == pytest.approx(150.0) and fvmd.spread == pytest.approx(20.0)
    assert fvmd.exceeds and fvmd.same_sign == 3 and fvmd.reference_better
    ade = diffs[("WHN-style", "ade")]  # 3.1 vs 3.2, stds 0.2 each: noise
    assert not ade.exceeds and ade.same_sign == 1 and not ade.reference_better
    vis = diffs[("static", "vis_accuracy")]  # higher is better: static wins
    assert vis.exceeds and not vis.reference_better
    assert ("WHN-style", "num_samples") not in diffs  # only the table's metrics
    assert all(higher_is_better(m) for m in ("vis_accuracy_head", "occlusion_f1_hold_last", "pts_within_4"))
    assert not any(higher_is_better(m) for m in ("fvmd", "ade", "vae_vepe", "fde_last_frame"))


def test_markdown_table_in_table_units():
    text = spread_markdown(aggregate(RESULTS), [0, 1, 2], reference="TrajLoom")
    assert "Mean ± std over 3 seeds (0, 1, 2)." in text
    assert "| TrajLoom | 140 ± 10 |" in text
    assert "* FVMD, WHN-style: 150 (spread 20): exceeds the spread; TrajLoom better on average, same ordering in 3/3 seeds" in text
    assert "* ADE (px), WHN-style: -0.1 (spread 0.4): within the spread" in text


def test_bad_input():
    with pytest.raises(ValueError, match="at least 2 seeds"):
        aggregate({0: RESULTS[0]})
    with pytest.raises(ValueError, match="reference"):
        differences(aggregate(RESULTS), "nope")
    missing = {0: {"A": {"fvmd": 1.0}}, 1: {"B": {"fvmd": 1.0}}}
    with pytest.raises(ValueError, match="no method"):
        aggregate(missing)
