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


# FFmpeg renders text files as "video" (the tty/ANSI-art demuxers pick .txt, .ans, .nfo, ... by extension), and
# treats a lone picture as a one-frame stream: neither is footage to forecast from.
_TEXT_FORMATS = {"tty", "bin", "xbin", "adf", "idf"}
_TEXT_CODECS = {"ansi", "bintext", "xbin", "idf"}


def _video_stream(container):
    """The first video stream of an open PyAV container, or ``ValueError`` when there is no real one."""
    fmt = getattr(container.format, "name", "") or ""
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise ValueError(f"it has no video stream (streams: {', '.join(kinds)}; container format {fmt!r})")
    stream = container.streams.video[0]
    codec = getattr(stream.codec_context, "name", "") or ""
    if set(fmt.split(",")) & _TEXT_FORMATS or codec in _TEXT_CODECS:
        raise ValueError(f"it is a text file, not a video (FFmpeg would render the text as pictures: container "
                         f"format {fmt!r}, codec {codec!r})")
    return stream


def _decode(container, max_frames: Optional[int], start: int) -> Tuple[np.ndarray, float]:
    stream = _video_stream(container)
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

    Refuses (``ValueError``) files that are not footage: no video stream, or text that FFmpeg would render as
    pictures (its tty demuxer reads any ``.txt``).

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
        # a TrajLoomBench build must be bit-identical from run to run: multi-threaded x264 output depends on thread
        # timing, and x264's macroblock-tree rate control on where its buffers land in memory (measured: one clip
        # encoded from 16 array offsets gave 3 different byte streams; 1 with mbtree=0 on one thread)
        stream.options = {"crf": str(crf), "preset": "medium", "threads": "1", "x264-params": "mbtree=0"}
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


FIT_MODES = ("crop", "pad", "stretch")


class FrameFit:
    """How frames of one size are fitted to another (the model's), and the pixel transform that goes with it.

    A *view box* ``(x0, y0, width, height)`` in input pixels is resampled to the output frame: ``"crop"`` keeps the
    aspect ratio and cuts the centre (the box lies inside the input), ``"pad"`` keeps the aspect ratio and adds black
    bars (the box extends past the input), ``"stretch"`` maps the whole frame (aspect ratio changes). Coordinates
    follow the package's convention (``x / W`` is what a model sees, :func:`trajloom_hf.encoding.normalize_tracks`):
    ``output = (input - (x0, y0)) * (out_w / width, out_h / height)``.

    Args:
        input_hw: ``(H, W)`` of the input frames; output_hw: ``(h, w)`` of the output frames; mode: one of
            :data:`FIT_MODES`.
    """

    def __init__(self, input_hw: Tuple[int, int], output_hw: Tuple[int, int], mode: str = "crop"):
        if mode not in FIT_MODES:
            raise ValueError(f"`mode` must be one of {FIT_MODES}, got {mode!r}")
        (H, W), (h, w) = (int(v) for v in input_hw), (int(v) for v in output_hw)
        if min(H, W, h, w) < 1:
            raise ValueError(f"frame sizes must be positive, got input {H}x{W}, output {h}x{w}")
        self.input_hw, self.output_hw, self.mode = (H, W), (h, w), mode
        wider = W * h > w * H  # the input is wider than the output's aspect ratio
        if mode == "stretch":
            box = (0, 0, W, H)
        elif (mode == "crop") == wider:  # crop a wide input's sides / pad a tall input's sides
            bw = min(W, round(H * w / h)) if mode == "crop" else max(W, round(H * w / h))
            box = ((W - bw) // 2, 0, bw, H)
        else:  # crop a tall input's top and bottom / pad a wide input's top and bottom
            bh = min(H, round(W * h / w)) if mode == "crop" else max(H, round(W * h / w))
            box = (0, (H - bh) // 2, W, bh)
        self.box = tuple(int(v) for v in box)

    @property
    def scale(self) -> np.ndarray:
        """``(sx, sy)``: output pixels per input pixel."""
        return np.array([self.output_hw[1] / self.box[2], self.output_hw[0] / self.box[3]], np.float64)

    @property
    def offset(self) -> np.ndarray:
        """``(bx, by)`` of ``output = input * scale + offset``."""
        return -np.array(self.box[:2], np.float64) * self.scale

    def to_output(self, xy) -> np.ndarray:
        """Input pixels ``[..., 2]`` (x, y) -> output pixels (float32)."""
        return (np.asarray(xy, np.float64) * self.scale + self.offset).astype(np.float32)

    def to_input(self, xy) -> np.ndarray:
        """Output pixels ``[..., 2]`` (x, y) -> input pixels (float32)."""
        return ((np.asarray(xy, np.float64) - self.offset) / self.scale).astype(np.float32)

    def apply(self, frames, output_hw: Optional[Tuple[int, int]] = None) -> np.ndarray:
        """Resample the view box of ``frames [T, H, W, 3]`` to the output size (or to ``output_hw``, e.g. a video
        generator's frame: the same view at another resolution); areas outside the input are black."""
        frames = _as_uint8_frames(frames)
        if tuple(frames.shape[1:3]) != self.input_hw:
            raise ValueError(f"`frames` must be {self.input_hw[0]}x{self.input_hw[1]}, got "
                             f"{frames.shape[1]}x{frames.shape[2]}")
        x0, y0, bw, bh = self.box
        H, W = self.input_hw
        pad = ((0, 0), (max(0, -y0), max(0, y0 + bh - H)), (max(0, -x0), max(0, x0 + bw - W)), (0, 0))
        if any(p != (0, 0) for p in pad):
            frames = np.pad(frames, pad)
        x0, y0 = x0 + pad[2][0], y0 + pad[1][0]
        view = frames[:, y0 : y0 + bh, x0 : x0 + bw]
        return resize_video(view, *(output_hw or self.output_hw))

    def to_dict(self) -> dict:
        """What ``meta.json`` records: ``output = input * scale + offset`` and the view box."""
        return {"fit": self.mode, "input_size": list(self.input_hw), "output_size": list(self.output_hw),
                "view_box_xywh": list(self.box), "scale_xy": [float(v) for v in self.scale],
                "offset_xy": [float(v) + 0.0 for v in self.offset],
                "formula": "output_px = input_px * scale_xy + offset_xy"}
