"""TAP-Vid videos (Doersch et al. 2022) in our conventions: one entry of a TAP-Vid pickle, or one ``.npz`` file.

A TAP-Vid entry holds ``video`` ``[T, H, W, 3]`` uint8 (in the pickles also a list of JPEG bytes), the points as
``points`` ``[N, T, 2]`` normalised ``[0, 1]`` (x, y) as released, or ``target_points`` ``[N, T, 2]`` px (x, y) as
the TAP-Vid evaluation code produces them (``points * (W, H)``), and ``occluded`` ``[N, T]`` bool. Both use the
raster convention (pixel ``x`` covers ``[x, x + 1)``), so our pixel centre is ``p * W - 0.5`` / ``target - 0.5``.

Pickles are read by :func:`trajloom_hf.safe_unpickle.load_data_pickle`; ``.npz`` files by :func:`read_tapvid_npz`
with ``allow_pickle=False`` (a pickled object array inside is refused, naming its key).
"""

from __future__ import annotations

import os
import zipfile
from typing import Dict, Mapping, Tuple

import numpy as np

from ..validation import as_bool_mask

__all__ = ["TAPVID_KEYS", "read_tapvid_npz", "tapvid_arrays"]

TAPVID_KEYS = ("video", "points", "target_points", "occluded")


def _decode_frames(video, what: str) -> np.ndarray:
    """``video`` as ``[T, H, W, 3]`` uint8: an array as it is, a list of encoded images (JPEG bytes) decoded."""
    if isinstance(video, np.ndarray) and video.dtype != object:
        if video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
            raise ValueError(f"{what} 'video' must be uint8 [T, H, W, 3], got {video.dtype} {list(video.shape)}")
        return video
    import cv2

    frames = []
    for i, data in enumerate(video):
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if isinstance(data, bytes) else None
        if img is None:
            raise ValueError(f"{what} 'video' frame {i} is not an encoded image (JPEG/PNG bytes)")
        frames.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    if not frames or len({f.shape for f in frames}) != 1:
        raise ValueError(f"{what} 'video' must hold frames of one size, got {len({f.shape for f in frames})} sizes")
    return np.stack(frames)


def tapvid_arrays(entry: Mapping, what: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One TAP-Vid entry (module docstring) -> ``frames`` ``[T, H, W, 3]`` uint8, ``tracks`` ``[T, N, 2]`` float64
    px (our pixel centres) and ``visibility`` ``[T, N]`` bool (``~occluded``). ``what`` names the entry in errors,
    which name the key, the expected and the received shape/dtype."""
    has = [k for k in ("points", "target_points") if k in entry]
    if len(has) != 1:
        found = "both" if has else "neither"
        raise ValueError(f"{what} must hold 'points' ([N, T, 2] normalised) or 'target_points' ([N, T, 2] px), found "
                         f"{found} (keys: {sorted(entry)})")
    for key in ("video", "occluded"):
        if key not in entry:
            raise ValueError(f"{what} has no '{key}' (keys: {sorted(entry)})")
    frames = _decode_frames(entry["video"], what)
    t, h, w = frames.shape[:3]
    key = has[0]
    pts = np.asarray(entry[key])
    if pts.dtype.kind not in "fiu" or pts.ndim != 3 or pts.shape[-1] != 2:
        raise ValueError(f"{what} '{key}' must be real numbers [N, T, 2] (x, y), got {pts.dtype} {list(pts.shape)}")
    n = pts.shape[0]
    if pts.shape[1] != t:
        raise ValueError(f"{what} '{key}' has T={pts.shape[1]} frames, 'video' has {t}")
    occ_raw = np.asarray(entry["occluded"])
    if occ_raw.shape != (n, t):
        raise ValueError(f"{what} 'occluded' must be [N, T] = {[n, t]} bool, got {occ_raw.dtype} {list(occ_raw.shape)}")
    occ = as_bool_mask(occ_raw, f"{what} 'occluded'")
    pts = pts.astype(np.float64)
    if key == "points":
        seen = pts[~occ]
        if seen.size and (np.nanmin(seen) < -0.5 or np.nanmax(seen) > 1.5):  # px stored under the normalised key
            raise ValueError(f"{what} 'points' must be normalised [0, 1], got visible values in [{np.nanmin(seen):.4g}, "
                             f"{np.nanmax(seen):.4g}] (pixels belong under 'target_points')")
        pts = pts * np.array([w, h], np.float64)
    tracks = (pts - 0.5).transpose(1, 0, 2)  # raster -> pixel centres, [T, N, 2]
    return frames, tracks, ~occ.T


def read_tapvid_npz(path) -> Dict[str, np.ndarray]:
    """The TAP-Vid arrays of one ``.npz`` file (:data:`TAPVID_KEYS` that are present; other keys are ignored), read
    with ``allow_pickle=False``. Raises ``ValueError`` naming the file (and the key) for a file that is not an
    ``.npz`` archive or holds a pickled object array; pass the result to :func:`tapvid_arrays`."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"TAP-Vid file {path!r} does not exist")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head != b"PK\x03\x04":  # every .npz is a zip archive
        found = "a pickle (read it as a TAP-Vid .pkl)" if head[:1] == b"\x80" else f"starts with {head!r}"
        raise ValueError(f"TAP-Vid file {path!r} is not an .npz archive: {found}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as err:
        raise ValueError(f"TAP-Vid file {path!r} is not a readable .npz archive ({type(err).__name__}: {err})") from None
    out = {}
    with archive:
        for key in (k for k in TAPVID_KEYS if k in archive.files):
            try:
                out[key] = archive[key]
            except ValueError as err:
                if "allow_pickle" not in str(err):
                    raise ValueError(f"TAP-Vid file {path!r} key '{key}' is unreadable ({err})") from None
                raise ValueError(f"TAP-Vid file {path!r} key '{key}' holds pickled Python objects (dtype object), which "
                                 "could run code while they load: refused (a TAP-Vid .npz holds plain arrays: 'video' "
                                 "uint8, 'points'/'target_points' float, 'occluded' bool)") from None
            except (zipfile.BadZipFile, EOFError, OSError) as err:
                raise ValueError(f"TAP-Vid file {path!r} key '{key}' is unreadable ({type(err).__name__}: {err})") from None
    return out
