"""Reading a JSON file that must hold one JSON object (a model config, a ``model_index.json``, a results table).

Every reader of such a file goes through :func:`read_json_object`, so a missing, corrupt or mis-shaped file gets the
same kind of message everywhere: which file (and the flag or role it was given as), what was expected, what was found.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict

__all__ = ["json_type_name", "read_json_object"]

_JSON_NAMES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}


def json_type_name(value: Any) -> str:
    """The JSON name of a parsed value's type (``"array"`` for a list, ``"null"`` for None, ...)."""
    return _JSON_NAMES.get(type(value), type(value).__name__)


def read_json_object(path, what: str, holding: str = "") -> Dict[str, Any]:
    """The JSON object in the file ``path``.

    ``what`` names the file in errors (a flag such as ``"--model_config"`` or a role such as ``"pipeline index"``);
    ``holding`` says what the object should contain (``"model arguments"``). Raises ``FileNotFoundError`` when
    ``path`` is not a file and ``ValueError`` when it is not UTF-8 JSON text or holds something other than an object.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        found = "is a folder, not a file" if os.path.isdir(path) else "does not exist"
        raise FileNotFoundError(f"{what} {path!r}: the file {found}")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except UnicodeDecodeError as err:
        raise ValueError(f"{what} {path!r} is not valid JSON (not UTF-8 text: {err})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} {path!r} is not valid JSON ({err})") from None
    if not isinstance(data, dict):
        of = f" of {holding}" if holding else ""
        raise ValueError(f"{what} {path!r} must hold a JSON object{of} ({{...}}), got a JSON {json_type_name(data)}")
    return data
