"""Test-wide settings."""

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_hf_caches(tmp_path_factory):
    """Give the whole run its own `datasets`/`evaluate` caches.

    `load_dataset(folder)` caches by folder path; pytest reuses tmp folder names across runs, so a shared
    ~/.cache could serve an earlier run's rows for a folder rebuilt in place.
    """

    root = tmp_path_factory.mktemp("hf_cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_DATASETS_CACHE", str(root / "datasets"))
    mp.setenv("HF_EVALUATE_CACHE", str(root / "evaluate"))
    mp.setenv("HF_MODULES_CACHE", str(root / "modules"))
    try:
        import datasets.config

        mp.setattr(datasets.config, "HF_DATASETS_CACHE", root / "datasets")
    except ImportError:
        pass
    try:  # diffusers reads HF_MODULES_CACHE at import (remote-code entry points of saved pipelines are copied there)
        import diffusers.utils.dynamic_modules_utils as dynamic_modules

        mp.setattr(dynamic_modules, "HF_MODULES_CACHE", str(root / "modules"))
    except ImportError:
        pass
    yield
    mp.undo()


@pytest.fixture(autouse=True)
def _cli_raises(monkeypatch):
    """In-process `trajloom_hf.cli.main([...])` calls raise the package's errors (``TRAJLOOM_DEBUG=1``) so tests can
    match them; tests of what a person sees (one line on stderr, exit code 2) unset it (tests/test_cli_errors.py)."""
    monkeypatch.setenv("TRAJLOOM_DEBUG", "1")
