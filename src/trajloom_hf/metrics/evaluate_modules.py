"""Where the ``evaluate`` modules live: the repository's ``metrics/<name>/`` folders (one per metric, with a card).

    import evaluate
    from trajloom_hf.metrics.evaluate_modules import metric_path
    fvmd = evaluate.load(metric_path("fvmd"))
"""

from __future__ import annotations

from pathlib import Path

METRIC_NAMES = ("fvmd", "fvmd_long", "flow_tv", "div_curl_energy", "vepe", "min_ade", "points_within", "mvd")


def metrics_dir() -> Path:
    """The ``metrics/`` folder of the source tree this package was installed from (editable installs)."""
    return Path(__file__).resolve().parents[3] / "metrics"


def metric_path(name: str) -> str:
    """Absolute path of the ``evaluate`` module folder ``metrics/<name>`` (pass it to ``evaluate.load``)."""
    if name not in METRIC_NAMES:
        raise ValueError(f"`name` must be one of {METRIC_NAMES}, got {name!r}")
    path = metrics_dir() / name
    if not (path / f"{name}.py").is_file():
        raise FileNotFoundError(
            f"the evaluate module {name!r} was not found at {path}: the modules ship with the trajloom-hf source "
            "repository (install it with `pip install -e .` from a clone), or load them from the Hub"
        )
    return str(path)


class DirectComputeMixin:
    """For the ``evaluate`` modules: ``compute(predictions=..., references=...)`` on in-memory arrays calls
    ``_compute`` on them directly, without evaluate's Arrow round trip (encoding ``[V, T, N, 2]`` tracks as nested
    ``float32`` lists, writing a cache file and reading it back cost 10-80x the metric itself: bench_metrics).

    The Features still document the inputs, and the accumulate path is unchanged: after ``add_batch``/``add`` calls,
    or with ``num_process > 1``, ``compute`` goes through evaluate as usual. Put it before ``evaluate.Metric``.
    """

    def compute(self, *, predictions=None, references=None, **kwargs):
        """Compute the metric (numpy arrays or nested lists; see the module's inputs below).
"""  # evaluate appends the module's inputs description to this docstring
        pending = getattr(self, "writer", None) is not None or getattr(self, "buf_writer", None) is not None
        if getattr(self, "num_process", 1) != 1 or pending or predictions is None:
            return super().compute(predictions=predictions, references=references, **kwargs)
        names = list(self._feature_names())
        given = {"predictions": predictions, "references": references, **kwargs}
        missing = [k for k in names if given.get(k) is None]
        if missing:
            raise ValueError(f"Evaluation module inputs are missing: {missing}. All required inputs are {names}")
        return self._compute(**{k: given[k] for k in names}, **{k: v for k, v in kwargs.items() if k not in names})


# the per-row shapes of the modules' inputs (a row is one video): nested float32 lists of this depth
_INPUT_DEPTH = {"tracks": 3, "samples": 4}  # tracks [T, N, 2]; samples: K sampled futures [K, T, N, 2]


def metric_info(description: str, citation: str, inputs_description: str, *, reference_urls=(), **inputs: str):
    """The ``evaluate.MetricInfo`` of a module whose inputs are track arrays: ``inputs`` maps each input name to
    ``"tracks"`` (per video ``[T, N, 2]`` px) or ``"samples"`` (per video ``[K, T, N, 2]`` px), float32; ``reference_urls`` as in ``evaluate.MetricInfo``."""
    import datasets
    import evaluate

    features = {}
    for name, kind in inputs.items():
        if kind not in _INPUT_DEPTH:
            raise ValueError(f"input {name!r} must be one of {sorted(_INPUT_DEPTH)}, got {kind!r}")
        feature = datasets.Value("float32")
        for _ in range(_INPUT_DEPTH[kind]):
            feature = datasets.Sequence(feature)
        features[name] = feature
    return evaluate.MetricInfo(description=description, citation=citation, inputs_description=inputs_description,
                               features=datasets.Features(features), reference_urls=list(reference_urls))
