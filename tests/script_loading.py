"""Import a repository script (``examples/``, ``benchmarks/``) as a module, for tests of its functions."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Optional

ROOT = Path(__file__).resolve().parents[1]


def load_script(path, name: Optional[str] = None, add_parent_to_path: bool = False) -> ModuleType:
    """The script at ``path`` (absolute, or relative to the repository root) as a fresh module named ``name``
    (default: its file stem); ``add_parent_to_path`` puts its folder first on ``sys.path`` for its sibling imports."""
    path = Path(path)
    if not path.is_absolute():
        path = ROOT / path
    if add_parent_to_path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
