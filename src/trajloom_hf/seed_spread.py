"""Spread of benchmark results over training seeds: mean ± std per method and metric, and which differences
between methods are larger than that spread.

Input: one ``results`` mapping per seed, as written by :func:`trajloom_hf.evaluation.evaluate_bench`
(``results.json["results"]``: method -> metric -> value). The std is the sample standard deviation (``ddof = 1``)
over seeds, so at least two seeds are needed. A difference between two methods "exceeds the spread" when the
distance of their means is larger than the sum of their stds (the ``mean ± std`` intervals do not overlap); the
per-seed sign count says in how many seeds the ordering held.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .evaluation import TABLE_ROWS



def higher_is_better(metric: str) -> bool:
    """Scores where a larger value is better: visibility accuracy and occlusion precision / recall / F1 (every
    variant: ``_head``, ``_hold_last``) and the fraction of points within a threshold; the others are errors."""
    return metric.startswith(("vis_accuracy", "occlusion_", "pts_within"))


@dataclass(frozen=True)
class Spread:
    """One metric of one method over ``n`` seeds: ``values`` in seed order, their mean and sample std."""

    values: Tuple[float, ...]
    mean: float
    std: float

    @property
    def n(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Difference:
    """``other`` minus ``reference`` on one metric: ``delta`` of the means, ``spread`` = sum of the two stds,
    ``exceeds`` = ``|delta| > spread``, ``same_sign`` = seeds whose own difference has the sign of ``delta``."""

    metric: str
    reference: str
    other: str
    delta: float
    spread: float
    exceeds: bool
    same_sign: int
    num_seeds: int
    reference_better: bool


def _mean_std(values: Sequence[float]) -> Tuple[float, float]:
    n = len(values)
    mean = math.fsum(values) / n
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


def aggregate(results_by_seed: Mapping[int, Mapping[str, Mapping[str, float]]]) -> Dict[str, Dict[str, Spread]]:
    """``{seed: {method: {metric: value}}}`` -> ``{method: {metric: Spread}}`` over the methods and numeric metrics
    present in every seed (seeds in ascending order)."""
    if len(results_by_seed) < 2:
        raise ValueError(f"results_by_seed: need at least 2 seeds for a spread, got {len(results_by_seed)}")
    seeds = sorted(results_by_seed)
    first = results_by_seed[seeds[0]]
    out: Dict[str, Dict[str, Spread]] = {}
    for method in first:
        if not all(method in results_by_seed[s] for s in seeds):
            continue
        row: Dict[str, Spread] = {}
        for metric, value in first[method].items():
            vals = [results_by_seed[s][method].get(metric) for s in seeds]
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals):
                vals = [float(v) for v in vals]
                row[metric] = Spread(tuple(vals), *_mean_std(vals))
        out[method] = row
    if not out:
        raise ValueError(f"results_by_seed: no method is present in all seeds {seeds}")
    return out


def differences(spread: Mapping[str, Mapping[str, Spread]], reference: str,
                metrics: Optional[Sequence[str]] = None) -> List[Difference]:
    """Every other method against ``reference`` on ``metrics`` (default: the Table 1 rows both have)."""
    if reference not in spread:
        raise ValueError(f"reference: method {reference!r} not in the results ({sorted(spread)})")
    ref = spread[reference]
    metrics = list(metrics) if metrics is not None else [m for m in TABLE_ROWS if m in ref]
    out = []
    for other, row in spread.items():
        if other == reference:
            continue
        for metric in metrics:
            if metric not in row or metric not in ref:
                continue
            a, b = ref[metric], row[metric]
            delta = b.mean - a.mean
            per_seed = [bv - av for av, bv in zip(a.values, b.values)]
            same = sum(1 for d in per_seed if d != 0 and (d > 0) == (delta > 0))
            better = delta < 0 if higher_is_better(metric) else delta > 0
            out.append(Difference(metric, reference, other, delta, a.std + b.std, abs(delta) > a.std + b.std,
                                  same, len(per_seed), better))
    return out


def _fmt(x: float) -> str:
    return "0" if x == 0 else f"{x:.4g}"


def spread_markdown(spread: Mapping[str, Mapping[str, Spread]], seeds: Sequence[int],
                    reference: Optional[str] = None) -> str:
    """A markdown table ``| method | metric ... |`` of ``mean ± std`` in the Table 1 units (``TABLE_ROWS``), then,
    with ``reference``, the list of differences against it and whether each exceeds the spread."""
    metrics = [m for m in TABLE_ROWS if any(m in row for row in spread.values())]
    head = ["method"] + [TABLE_ROWS[m][0] for m in metrics]
    lines = [f"Mean ± std over {len(seeds)} seeds ({', '.join(str(s) for s in seeds)}).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, row in spread.items():
        cells = [method]
        for m in metrics:
            scale = TABLE_ROWS[m][1]
            cells.append(f"{_fmt(row[m].mean * scale)} ± {_fmt(row[m].std * scale)}" if m in row else "–")
        lines.append("| " + " | ".join(cells) + " |")
    if reference is not None:
        lines += ["", f"Differences against {reference} (other minus {reference}; \"exceeds\" when larger than the "
                  "sum of the two stds):", ""]
        for d in differences(spread, reference, metrics):
            scale = TABLE_ROWS[d.metric][1]
            verdict = "exceeds the spread" if d.exceeds else "within the spread"
            who = d.reference if d.reference_better else d.other
            lines.append(f"* {TABLE_ROWS[d.metric][0]}, {d.other}: {_fmt(d.delta * scale)} (spread "
                         f"{_fmt(d.spread * scale)}): {verdict}; {who} better on average, same ordering in "
                         f"{d.same_sign}/{d.num_seeds} seeds")
    return "\n".join(lines) + "\n"
