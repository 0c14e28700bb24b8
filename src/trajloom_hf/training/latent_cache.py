"""The on-disk cache of the frozen encoders' latents (one file per window), and the normalised latents of a batch.

Each window is encoded once by the frozen TrajLoom-VAE (posterior mean, eq. 6; with video conditioning also the Wan
latents); every later epoch and the visibility-head stage read the file. A cache is tied to the VAE that wrote it
(:func:`vae_fingerprint`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from typing import Dict, Optional

import torch

from ..json_files import read_json_object
from ..video_io import atomic_path
from .window_datasets import KeyedWindows, collate_windows

__all__ = ["CACHE_FORMAT_VERSION", "LatentCache", "batch_latents", "fill_latent_cache", "open_latent_cache", "vae_fingerprint"]

logger = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1


def vae_fingerprint(vae) -> str:
    """Hash of the VAE config and weights: a latent cache is valid only for the VAE that wrote it. The config's
    private keys (``_name_or_path``: the folder it was loaded from, ``_diffusers_version``, ...) are left out: the
    same VAE loaded through another path (relative vs absolute, a moved run folder) is the same VAE."""
    config = {k: v for k, v in dict(vae.config).items() if not str(k).startswith("_")}
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for name, p in sorted(vae.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().flatten()[:1024].float().cpu().numpy().tobytes())
        h.update(str(float(p.detach().float().sum())).encode())
    return h.hexdigest()[:16]


class LatentCache:
    """One ``.pt`` file per window (read with ``weights_only=True``): raw (unnormalised) posterior means of history
    and future ``[K, N, C]``, token visibilities ``[K, N]`` and, with video conditioning, the token-aligned video
    latents. Files are written atomically; ``cache_meta.json`` records the VAE fingerprint and format."""

    def __init__(self, root: str, fingerprint: str, video_key: Optional[str] = None):
        self.root = root
        os.makedirs(root, exist_ok=True)
        meta_path = os.path.join(root, "cache_meta.json")
        meta = {"format": CACHE_FORMAT_VERSION, "vae": fingerprint, "video": video_key}
        if os.path.exists(meta_path):
            found = read_json_object(meta_path, "latent cache metadata", "the cache format and VAE fingerprint")
            if found.get("vae") != fingerprint or found.get("format") != CACHE_FORMAT_VERSION:
                raise ValueError(f"latent cache {root!r} was written by another VAE/format ({found}); use a new --latent_cache_dir")
            self.meta = found
        else:
            with atomic_path(meta_path) as tmp, open(tmp, "w") as fh:
                json.dump(meta, fh, indent=2)
            self.meta = meta
        self.video_key = video_key

    def path(self, key: str) -> str:
        return os.path.join(self.root, f"{key}.pt")

    def has(self, key: str) -> bool:
        if not os.path.exists(self.path(key)):
            return False
        return self.video_key is None or "video_latents" in self.get(key)

    def get(self, key: str) -> Dict[str, torch.Tensor]:
        return torch.load(self.path(key), map_location="cpu", weights_only=True)

    def put(self, key: str, entry: Dict[str, torch.Tensor]) -> None:
        with atomic_path(self.path(key)) as tmp:
            torch.save({k: v.detach().cpu().contiguous() for k, v in entry.items()}, tmp)


def fill_latent_cache(encoders, cache: LatentCache, dataset: KeyedWindows, accelerator, batch_size: int) -> None:
    """Encode every window missing from the cache once (sharded over processes), then synchronise."""
    missing = [i for i in range(len(dataset)) if not cache.has(dataset.key(i))]
    mine = missing[accelerator.process_index :: accelerator.num_processes]
    for start in range(0, len(mine), batch_size):
        batch = collate_windows([dataset[i] for i in mine[start : start + batch_size]])
        entries = encoders.encode_windows(batch)
        for j, key in enumerate(batch["key"]):
            cache.put(key, {k: v[j] for k, v in entries.items()})
    if mine:
        logger.info("process %d cached %d windows", accelerator.process_index, len(mine))
    accelerator.wait_for_everyone()


def open_latent_cache(encoders, root: Optional[str], datasets, accelerator, batch_size: int) -> Optional[LatentCache]:
    """The run's cache under ``root`` (``None``: no cache), filled for every dataset in ``datasets``. The key holds
    the VAE fingerprint and, for the WHN-style baseline, the history mode (its history latents differ)."""
    if not root:
        return None
    fingerprint = vae_fingerprint(encoders.vae) + ("" if encoders.history_mode == "tracks" else f"-{encoders.history_mode}")
    cache = LatentCache(root, fingerprint, "wan" if encoders.video_vae is not None else None)
    for dataset in datasets:
        fill_latent_cache(encoders, cache, dataset, accelerator, batch_size)
    return cache


def batch_latents(batch, encoders, cache: Optional[LatentCache], device) -> Dict[str, torch.Tensor]:
    """Normalised latents ``[B, K, N, C]`` + token visibilities ``[B, K, N]`` of a collated batch, from the cache or
    encoded now."""
    if cache is not None:
        entries = [cache.get(key) for key in batch["key"]]
        raw = {k: torch.stack([e[k] for e in entries]).to(device) for k in entries[0]}
    else:
        raw = {k: v.to(device) for k, v in encoders.encode_windows(batch).items()}
    raw["history_latents"] = encoders.normalise(raw["history_latents"])
    raw["future_latents"] = encoders.normalise(raw["future_latents"])
    return raw
