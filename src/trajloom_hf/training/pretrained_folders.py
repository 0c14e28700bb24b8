"""Checks of the ``from_pretrained`` folders a training run starts from, before anything is loaded.

diffusers reports a folder that does not exist as an internet problem (it then tries the Hub) and a missing
``diffusion_pytorch_model.safetensors`` as a missing ``.bin``; these checks name the flag and the missing piece.
"""

from __future__ import annotations

import os
import re

__all__ = ["check_pretrained_folder"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
DIFFUSERS_WEIGHTS = "diffusion_pytorch_model.safetensors"


def check_pretrained_folder(path: str, flag: str, weights: str | None = DIFFUSERS_WEIGHTS, hub_ok: bool = False) -> None:
    """Raise ``FileNotFoundError`` naming ``flag`` unless ``path`` is a folder with ``config.json`` and ``weights``
    (or its sharded ``<weights>.index.json``; ``weights=None``: not checked, e.g. for transformers folders).

    ``hub_ok``: a path shaped like a Hub repository id (``owner/name``) that is not a local folder is left to
    ``from_pretrained`` to download."""
    if not os.path.exists(path):
        if hub_ok and _HUB_ID.match(path) and not path.startswith((".", "~")):
            return
        raise FileNotFoundError(f"{flag} {path!r}: the folder does not exist")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{flag} {path!r} is a file; expected a from_pretrained folder (config.json + weights)")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise FileNotFoundError(f"{flag} {path!r} has no config.json: not a save_pretrained folder")
    if weights and not any(os.path.isfile(os.path.join(path, w)) for w in (weights, f"{weights}.index.json")):
        found = sorted(f for f in os.listdir(path) if not f.startswith("."))
        raise FileNotFoundError(f"{flag} {path!r} has no weights file {weights} (found: {', '.join(found) or 'nothing'})")
