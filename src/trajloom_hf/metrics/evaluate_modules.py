"""Where the ``evaluate`` modules live: the repository's ``metrics/<name>/`` folders (one per metric, with a card).

    import evaluate
    from trajloom_hf.metrics.evaluate_modules import metric_path
    fvmd = evaluate.load(metric_path("fvmd"))
"""

from __future__ import annotations

from pathlib import Path

METRIC_NAMES = ("fvmd", "fvmd_long", "flow_tv", "div_curl_energy", "vepe", "min_ade")


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
