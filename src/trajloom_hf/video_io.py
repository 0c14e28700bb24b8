"""Reading and writing videos (PyAV / H.264 mp4, Pillow GIF). Frames are ``[T, H, W, 3]`` uint8 RGB.

Every writer is atomic: it writes a temporary file in the destination folder and renames it, so an interrupted
run never leaves a truncated video behind.
"""

from __future__ import annotations

import io
import os
import tempfile
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Tuple, Union

import cv2
import numpy as np

from .validation import check_video

PathLike = Union[str, os.PathLike]


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it; done once, at import
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()


@contextmanager
def atomic_path(path: PathLike, suffix: Optional[str] = None) -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success rename it onto ``path``, on error delete it.

    The file gets the permissions of an ordinary ``open(path, "w")`` (``0o666`` minus the umask), not the private
    ``0o600`` of ``mkstemp``, so results and weights stay readable by the people they are shared with.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _as_uint8_frames(frames, name: str = "frames") -> np.ndarray:
    frames = np.asarray(frames)
    check_video(frames, name)
    if frames.dtype != np.uint8:
        if not np.issubdtype(frames.dtype, np.number) or frames.min() < 0 or frames.max() > 255:
            raise ValueError(f"`{name}` must be uint8 or numbers in [0, 255], got dtype {frames.dtype}")
        frames = np.round(frames).astype(np.uint8)
    return frames


def _check_fps(fps) -> Fraction:
    """``fps`` as an exact frame rate (29.97 stays 2997/100 instead of being rounded to 30)."""
    if not isinstance(fps, (int, float, np.integer, np.floating, Fraction)) or not np.isfinite(float(fps)) or fps <= 0:
        raise ValueError(f"`fps` must be a positive finite number, got {fps!r}")
    return Fraction(fps).limit_denominator(1001)


def _decode(container, max_frames: Optional[int], start: int) -> Tuple[np.ndarray, float]:
    stream = container.streams.video[0]
    fps = float(stream.average_rate) if stream.average_rate else 0.0
    out = []
    for i, frame in enumerate(container.decode(stream)):
        if i < start:
            continue
        out.append(frame.to_ndarray(format="rgb24"))
        if max_frames is not None and len(out) >= max_frames:
            break
    if not out:
        raise ValueError("no frames could be decoded" + (f" at or after frame `start`={start}" if start else ""))
    return np.stack(out), fps


def read_video(
    path: PathLike, *, max_frames: Optional[int] = None, start: int = 0, resize_hw: Optional[Tuple[int, int]] = None
) -> Tuple[np.ndarray, float]:
    """Decode a video file to ``(frames [T, H, W, 3] uint8 RGB, fps)``.

    Args:
        path: video file (anything FFmpeg reads: mp4, avi, webm, ...).
        max_frames / start: decode at most ``max_frames`` frames starting at frame ``start``.
        resize_hw: optional ``(height, width)`` to resize to (see :func:`resize_video`).
    """
    import av

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"`video` file not found: {str(p)!r}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"`max_frames` must be >= 1 or None, got {max_frames}")
    if start < 0:
        raise ValueError(f"`start` must be >= 0, got {start}")
    try:
        with av.open(str(p)) as container:
            frames, fps = _decode(container, max_frames, start)
    except (av.error.FFmpegError, ValueError, IndexError) as err:
        raise ValueError(f"`video` {str(p)!r} could not be decoded as a video: {err}") from err
    if resize_hw is not None:
        frames = resize_video(frames, *resize_hw)
    return frames, fps


def decode_mp4_bytes(data: bytes, *, max_frames: Optional[int] = None) -> np.ndarray:
    """Decode in-memory video bytes (e.g. a TrajLoomBench ``video`` cell) to ``[T, H, W, 3]`` uint8."""
    import av

    if not isinstance(data, (bytes, bytearray, memoryview)) or not len(data):
        size = f" of length {len(data)}" if isinstance(data, (bytes, bytearray, memoryview)) else ""
        raise ValueError(f"`data` must be non-empty video bytes, got {type(data).__name__}{size}")
    try:
        with av.open(io.BytesIO(bytes(data))) as container:
            return _decode(container, max_frames, 0)[0]
    except (av.error.FFmpegError, ValueError, IndexError) as err:
        raise ValueError(f"`data` could not be decoded as a video: {err}") from err


def _encode(target, frames: np.ndarray, fps: Fraction, crf: int) -> None:
    import av

    t, h, w, _ = frames.shape
    # yuv420p needs even sizes; pad by edge replication rather than silently resizing
    ph, pw = h % 2, w % 2
    if ph or pw:
        frames = np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")
    with av.open(target, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_video(path: PathLike, frames, fps: float = 16.0, *, crf: int = 18) -> Path:
    """Write frames ``[T, H, W, 3]`` as an H.264 mp4 (yuv420p; odd sizes padded by one edge pixel), atomically."""
    frames = _as_uint8_frames(frames)
    rate = _check_fps(fps)
    with atomic_path(path, ".mp4") as tmp:
        _encode(tmp, frames, rate, crf)
    return Path(path)


def encode_mp4_bytes(frames, fps: float = 16.0, *, crf: int = 18) -> bytes:
    """Encode frames ``[T, H, W, 3]`` to H.264 mp4 bytes (what the dataset stores)."""
    frames = _as_uint8_frames(frames)
    rate = _check_fps(fps)
    buf = io.BytesIO()
    _encode(buf, frames, rate, crf)
    return buf.getvalue()


def write_gif(path: PathLike, frames, fps: float = 12.0) -> Path:
    """Write frames ``[T, H, W, 3]`` as a looping GIF, atomically."""
    from PIL import Image

    frames = _as_uint8_frames(frames)
    _check_fps(fps)
    images = [Image.fromarray(f) for f in frames]
    with atomic_path(path, ".gif") as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=int(round(1000 / fps)),
                       loop=0, optimize=False)
    return Path(path)


def save_png(path: PathLike, image) -> Path:
    """Write one RGB image ``[H, W, 3]`` uint8 as PNG, atomically."""
    from PIL import Image

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"`image` must be uint8 [H, W, 3], got {image.dtype} {list(image.shape)}")
    with atomic_path(path, ".png") as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return Path(path)


def resize_video(frames, height: int, width: int) -> np.ndarray:
    """Resize every frame to ``height x width`` (area filter when shrinking, bilinear when enlarging)."""
    frames = _as_uint8_frames(frames)
    if height <= 0 or width <= 0:
        raise ValueError(f"`height`/`width` must be positive, got {height}x{width}")
    t, h, w, _ = frames.shape
    if (h, w) == (height, width):
        return frames
    interp = cv2.INTER_AREA if height * width < h * w else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (width, height), interpolation=interp) for f in frames])
