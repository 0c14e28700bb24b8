"""TrajLoomBench as a ``datasets`` dataset: Parquet shards + a dataset card, loadable with ``load_dataset``.

    trajloom bench build --source synthetic --out trajloombench --config synthetic
    >>> load_dataset("trajloombench", "synthetic", split="test")          # from the parent folder
    >>> load_dataset("/path/to/trajloombench", "synthetic", split="test")  # from anywhere

Layout: ``<out>/data/<config>/<split>-<index>.parquet`` and ``<out>/README.md`` whose YAML ``configs:`` lists every
config found under ``data/`` (datasets 4+ has no loading scripts). Every clip is standardised (paper §4.1.4):
frames resized to ``height x width`` (tracks rescaled with them) and cut to ``history_frames + future_frames``
frames from the clip start; tracks are queried at frame 0 of the clip.

Columns (one row per clip):

* ``video``: mp4 bytes (H.264) of the ``T`` frames; ``fps``, ``height``, ``width``;
* ``tracks`` ``[T, N, 2]`` float32 px, ``visibility`` ``[T, N]`` bool, ``query_xy`` ``[N, 2]`` float32 px;
* ``stride``: the grid stride for grid sources (rows are the row-major grid), 0 for sparse TAP-Vid points;
* ``caption``, ``source``, ``clip_id``.

Grid sources (``synthetic``, ``trajloom-official``, ``videos``) have a fixed ``N`` per config and use fixed-shape
``Array3D``/``Array2D`` features; ``tapvid`` clips carry their own sparse query points (``N`` varies per video) and
use nested sequences.

Visibility is False where a point is occluded, non-finite or outside ``[0, W-1] x [0, H-1]`` after resizing
(reference §1.7), whatever the source said.

Builds are resumable: a shard is written atomically once complete and recorded in ``manifest.json``; a re-run skips
the clips of finished shards. A re-run first checks the recorded shards (a missing or unreadable one is rebuilt under
its own name) and deletes shard files that no record names (a crash between writing a shard and recording it), so the
folder always holds exactly the recorded clips. A config keeps its source, settings and (synthetic) seed: a re-run with
other ones is refused. Corrupt or too-short inputs are skipped and listed in the manifest.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import numpy as np
from tqdm.auto import tqdm

from ..encoding import in_frame, make_query_grid
from ..json_files import read_json_object
from ..tracking import TRACKER_NAMES
from ..validation import as_bool_mask, check_frame_size

SOURCES = ("synthetic", "physics", "tapvid", "trajloom-official", "videos")
GENERATED = ("synthetic", "physics")  # sources drawn from seeds, with clip counts per split
SPLITS = ("train", "validation", "test")
_SPLIT_NAME = re.compile(r"^\w+$")  # datasets split names; no "-", which separates the shard name parts
_SHARD_NAME = re.compile(r"^\w+-\d{5,}-[0-9a-f]{8}\.parquet$")  # "<split>-<index>-<digest>.parquet" (_flush)
_CARD_MARK = "pretty_name: TrajLoomBench"  # in the YAML header of every card write_dataset_card writes


@dataclass
class BenchSettings:
    """Standardised resolution and horizon (paper defaults: 480x832, 81 history + 81 future, stride 32)."""

    height: int = 480
    width: int = 832
    history_frames: int = 81
    future_frames: int = 81
    stride: int = 32
    fps: float = 16.0
    shard_size: int = 32

    @property
    def num_frames(self) -> int:
        return self.history_frames + self.future_frames

    def validate(self) -> None:
        check_frame_size(self.height, self.width, self.stride)
        for name in ("history_frames", "future_frames", "shard_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"`{name}` must be an integer, got {value!r}")
        if isinstance(self.fps, bool) or not isinstance(self.fps, (int, float, np.number)) or not np.isfinite(self.fps) \
                or self.fps <= 0:
            raise ValueError(f"`fps` must be a positive finite number, got {self.fps!r}")
        if self.history_frames < 1 or self.future_frames < 0:
            raise ValueError(f"`history_frames` must be >= 1 and `future_frames` >= 0, got {self.history_frames}, {self.future_frames}")
        if self.shard_size < 1:
            raise ValueError(f"`shard_size` must be >= 1, got {self.shard_size}")


@dataclass
class Clip:
    clip_id: str
    frames: np.ndarray  # [T, H, W, 3] uint8 at the standard size
    tracks: np.ndarray  # [T, N, 2] float32 px
    visibility: np.ndarray  # [T, N] bool
    query_xy: np.ndarray  # [N, 2] float32 px
    caption: str
    source: str
    stride: int


class SkipClip(Exception):
    """An input that cannot become a clip (corrupt, too short, wrong grid): skipped and reported."""


def bench_features(settings: BenchSettings, grid: bool):
    """``datasets.Features`` of a config (fixed-shape arrays for grid sources, sequences for sparse points)."""
    from datasets import Array2D, Array3D, Features, Sequence, Value

    t = settings.num_frames
    if grid:
        n = (settings.height // settings.stride) * (settings.width // settings.stride)
        arrays = {"tracks": Array3D((t, n, 2), "float32"), "visibility": Array2D((t, n), "bool"),
                  "query_xy": Array2D((n, 2), "float32")}
    else:
        arrays = {"tracks": Sequence(Sequence(Sequence(Value("float32")))), "visibility": Sequence(Sequence(Value("bool"))),
                  "query_xy": Sequence(Sequence(Value("float32")))}
    return Features({"clip_id": Value("string"), "source": Value("string"), "caption": Value("string"),
                     "video": Value("binary"), "fps": Value("float32"), "height": Value("int32"),
                     "width": Value("int32"), "stride": Value("int32"), **arrays})


# ----------------------------------------------------------------------------------------------------------------
# standardisation shared by the sources


def standardise(frames: np.ndarray, tracks: np.ndarray, visibility: np.ndarray, settings: BenchSettings, what: str):
    """Cut to ``settings.num_frames`` from the start, resize frames, rescale tracks; ``SkipClip`` if too short."""
    from ..video_io import resize_video

    t = settings.num_frames
    if frames.shape[0] < t or tracks.shape[0] < t:
        raise SkipClip(f"{what}: {min(frames.shape[0], tracks.shape[0])} frames, needs {t}")
    h0, w0 = frames.shape[1:3]
    frames = resize_video(frames[:t], settings.height, settings.width)
    scale = np.array([settings.width / w0, settings.height / h0], np.float64)
    # pixel centres map to pixel centres: x' + 0.5 = (x + 0.5) * scale
    tracks = ((tracks[:t].astype(np.float64) + 0.5) * scale - 0.5).astype(np.float32)
    visibility = visibility[:t].astype(bool) & np.isfinite(tracks).all(-1)
    return frames, np.nan_to_num(tracks), visibility


# ----------------------------------------------------------------------------------------------------------------
# sources: each yields (clip_id, callable building the Clip) so a resumed build skips inputs without decoding them


def synthetic_source(split: str, count: int, settings: BenchSettings, seed: int = 0, tracks: str = "analytic") -> Iterator:
    """Our generator with fixed, disjoint seed ranges per split (train 0.., validation 1e6.., test 2e6..).

    ``tracks="analytic"`` stores the exact scene geometry. A tracker name (``trajloom_hf.tracking.get_tracker``)
    instead tracks the rendered frames on the stride grid, as the paper does for every dataset, synthetic Kubric
    included (§4.1.2: AllTracker tracks for training and evaluation). Tracked data carries a tracker's jitter and
    drift; analytic data is exactly smooth, which FVMD's log-magnitude weighting rewards for zero-noise
    extrapolation (a 0.3 px jitter on moving points alone costs as much FVMD as constant velocity's whole error).
    """
    from .synthetic import SceneConfig, generate_clip

    if tracks != "analytic" and tracks not in TRACKER_NAMES:
        raise ValueError(f"`tracks` must be 'analytic' or one of {TRACKER_NAMES}, got {tracks!r}")
    cfg = SceneConfig(height=settings.height, width=settings.width, num_frames=settings.num_frames, stride=settings.stride)
    yield from _seeded_clips("synthetic", lambda s: generate_clip(s, cfg), split, count, settings, seed,
                             None if tracks == "analytic" else tracks)


def _seeded_clips(source: str, generate, split: str, count: int, settings: BenchSettings, seed: int,
                  tracker: Optional[str]) -> Iterator:
    """``(clip_id, build)`` pairs of a generated source: clip seeds ``seed + {0, 1e6, 2e6}[split] + i``, so the splits
    never share a scene; ``generate(seed)`` gives a clip with ``frames``, ``tracks``, ``visibility``, ``query_xy`` and
    ``caption``; with ``tracker`` the stored tracks are that tracker's on the rendered frames (paper §4.1.2)."""
    base = seed + {"train": 0, "validation": 1_000_000, "test": 2_000_000}[split]
    for s in range(base, base + count):
        def build(s=s):
            c = generate(s)
            xy, vis = c.tracks, c.visibility
            if tracker is not None:
                from ..tracking import get_tracker

                xy, vis = get_tracker(tracker).track(c.frames, c.query_xy)
            return Clip(f"{source}-{s:08d}", c.frames, xy, vis, c.query_xy, c.caption, source, settings.stride)
        yield f"{source}-{s:08d}", build


def physics_scene_config(settings: BenchSettings, camera: str = "static", launch: bool = False):
    """The :class:`~trajloom_hf.data.physics.PhysicsSceneConfig` a physics config is built with (frame rate = ``fps``;
    ``launch``: a launch scene pushed at the forecast start, ``launch_frame = history_frames``)."""
    from .physics import PhysicsSceneConfig

    if not isinstance(launch, bool):
        raise TypeError(f"`launch` must be a bool, got {type(launch).__name__}")
    return PhysicsSceneConfig(height=settings.height, width=settings.width, num_frames=settings.num_frames,
                              stride=settings.stride, fps=settings.fps, camera=camera,
                              launch_frame=settings.history_frames if launch else 0)


def physics_source(split: str, count: int, settings: BenchSettings, seed: int = 0, camera: str = "static",
                   tracks: str = "exact", launch: bool = False) -> Iterator:
    """MuJoCo-simulated MOVi-A-like clips (:mod:`trajloom_hf.data.physics`), seeds per split as :func:`synthetic_source`.

    ``camera="static"`` (MOVi-A) or ``"moving"`` (MOVi-E style). ``tracks="exact"`` stores the simulated geometry's
    tracks; a tracker name tracks the rendered frames instead (the paper's protocol, §4.1.2). ``launch``: objects at
    rest through the history, pushed at the forecast start the way their colour points (the future motion is written
    only in the appearance: :mod:`trajloom_hf.data.physics.scene`).
    """
    from .physics import generate_physics_clip

    if tracks != "exact" and tracks not in TRACKER_NAMES:
        raise ValueError(f"`tracks` must be 'exact' or one of {TRACKER_NAMES}, got {tracks!r}")
    cfg = physics_scene_config(settings, camera, launch)
    yield from _seeded_clips("physics", lambda s: generate_physics_clip(s, cfg), split, count, settings, seed,
                             None if tracks == "exact" else tracks)


def _physics_generator(settings: BenchSettings, camera: str, launch: bool = False) -> dict:
    """The generator's description for the manifest and card (JSON values; sizes and frames are in the settings)."""
    from dataclasses import fields

    from .physics import LAUNCH, MATERIAL_PARAMS
    from .physics.scene import FLOOR_PARAMS, GRAVITY, SAMPLING, TEXTURES

    cfg = physics_scene_config(settings, camera, launch)
    skip = {"height", "width", "num_frames", "stride", "render"}
    if not launch:  # the thrown scene's record stays as it was before launch scenes existed (old configs resume)
        skip |= {"launch_frame", "launch_speed"}
    out = {"config": {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name not in skip},
           "substeps": cfg.substeps, "timestep": 1.0 / (cfg.fps * cfg.substeps), "floor_half_size": cfg.floor_half_size,
           "gravity": GRAVITY, "material_params": MATERIAL_PARAMS, "floor": FLOOR_PARAMS, "sampling": SAMPLING,
           "texture_params": TEXTURES}
    if launch:
        out["launch"] = LAUNCH
    return json.loads(json.dumps(out))


def tapvid_source(path: str, settings: BenchSettings, trust_pickle: bool = False) -> Iterator:
    """TAP-Vid pickles (DAVIS, RoboTAP: ``{name: {...}}``; Kinetics: ``[{...}, ...]``) and TAP-Vid ``.npz`` files
    (one video each, named by the file), a file or a folder of them (:mod:`trajloom_hf.data.tapvid`).

    Pickles are read with :func:`trajloom_hf.safe_unpickle.load_data_pickle`: only numpy arrays, dicts, lists,
    strings and numbers load; a file naming any other global (which could run code) is refused unless
    ``trust_pickle``. ``.npz`` files are read with ``allow_pickle=False`` (one holding object arrays is skipped, named).

    Per video: ``video`` ``[T, H, W, 3]`` uint8 (or a list of JPEG bytes), ``points`` ``[N, T, 2]`` normalised
    ``[0, 1]`` (x, y) or ``target_points`` px, raster convention (pixel ``x`` covers ``[x, x + 1)``, so our pixel
    centre is ``p * W - 0.5``), ``occluded`` ``[N, T]`` bool. Points are kept as given (sparse, not a grid).
    """
    if os.path.isdir(path):
        files = sorted(glob.glob(os.path.join(path, "*.pkl")) + glob.glob(os.path.join(path, "*.npz")))
        if not files:
            raise FileNotFoundError(f"`input` {path!r} holds no .pkl or .npz files")
    else:
        files = [path]
    from ..safe_unpickle import UntrustedPickleError, load_data_pickle
    from .tapvid import read_tapvid_npz, tapvid_arrays

    def builder(name, read):
        def build():
            try:
                frames, tracks, vis = tapvid_arrays(read(), name)
            except Exception as err:
                raise SkipClip(f"{name}: unreadable TAP-Vid entry ({err})") from err
            fr, tr, vis = standardise(frames, tracks, vis, settings, name)
            return Clip(f"tapvid-{name}", fr, tr, vis, tr[0].copy(), "", "tapvid", 0)
        return build

    for file in files:
        if file.endswith(".npz"):
            yield f"tapvid-{Path(file).stem}", builder(Path(file).stem, lambda file=file: read_tapvid_npz(file))
            continue
        try:
            data = load_data_pickle(file, trust_pickle=trust_pickle)
        except UntrustedPickleError:
            raise  # never skipped quietly: the user must decide whether to trust the file
        except Exception as err:  # corrupt pickle: report and go on
            yield os.path.basename(file), _raiser(SkipClip(f"{file}: not a readable pickle ({err})"))
            continue
        items = data.items() if isinstance(data, dict) else ((f"{Path(file).stem}-{i:05d}", v) for i, v in enumerate(data))
        for name, item in items:
            yield f"tapvid-{name}", builder(name, lambda item=item: item)


def _raiser(err):
    def f():
        raise err
    return f


def trajloom_official_source(
    path: str,
    settings: BenchSettings,
    *,
    tracks_key: Optional[str] = None,
    visibility_key: Optional[str] = None,
    axis_order: str = "xy",
    captions: Optional[Dict[str, str]] = None,
) -> Iterator:
    """The official TrajLoomDatasets layout (reference §1.1): ``<id>.mp4`` and ``<id>.npz`` with tracks ``[N, T, 2]``
    (px, row-major stride grid queried at frame 0) and visibility ``[N, T]``.

    Keys: ``tracks_key``/``visibility_key`` when given, else the official lookup order (``trajectory``,
    ``trajectories``, ``tracks`` / ``visibility``, ``visibilities``, ``vis``). ``axis_order="yx"`` swaps the last dim.
    """
    from ..video_io import read_video

    if axis_order not in ("xy", "yx"):
        raise ValueError(f"`axis_order` must be 'xy' or 'yx', got {axis_order!r}")
    videos = sorted(Path(path).glob("*.mp4"))
    if not videos:
        raise FileNotFoundError(f"`input` {path!r} holds no .mp4 videos")
    n_expected = (settings.height // settings.stride) * (settings.width // settings.stride)
    for video in videos:
        def build(video=video):
            npz = video.with_suffix(".npz")
            if not npz.exists():
                raise SkipClip(f"{video.name}: no track file {npz.name}")
            try:
                frames, _ = read_video(video, max_frames=settings.num_frames)
            except ValueError as err:
                raise SkipClip(f"{video.name}: {err}") from err
            try:
                with open(npz, "rb") as fh, np.load(fh) as f:
                    tk = tracks_key or next((k for k in ("trajectory", "trajectories", "tracks") if k in f), None)
                    vk = visibility_key or next((k for k in ("visibility", "visibilities", "vis") if k in f), None)
                    if tk is None or tk not in f:
                        raise SkipClip(f"{npz.name}: no tracks key {tk or ''} (has {sorted(f.files)})")
                    if visibility_key is not None and visibility_key not in f:  # explicit key: never assume all visible
                        raise SkipClip(f"{npz.name}: no visibility key {visibility_key!r} (has {sorted(f.files)})")
                    tracks = np.asarray(f[tk], np.float64)
                    # no visibility array: the in-frame test alone decides, as in the official loader (reference §1.7)
                    vis = as_bool_mask(f[vk], f"{npz.name} {vk}") if vk is not None else np.ones(tracks.shape[:2], bool)
            except SkipClip:
                raise
            except Exception as err:  # truncated zip, pickled objects, bad dtype: report and go on
                raise SkipClip(f"{npz.name}: unreadable track file ({type(err).__name__}: {err})") from err
            if tracks.ndim != 3 or tracks.shape[-1] != 2 or vis.shape != tracks.shape[:2]:
                raise SkipClip(f"{npz.name}: tracks {list(tracks.shape)} / visibility {list(vis.shape)}, expected [N, T, 2] / [N, T]")
            if tracks.shape[0] != n_expected:
                raise SkipClip(f"{npz.name}: N={tracks.shape[0]} points, the {settings.height}x{settings.width} stride-"
                               f"{settings.stride} grid has {n_expected}")
            if axis_order == "yx":
                tracks = tracks[..., ::-1]
            fr, tr, vi = standardise(frames, tracks.transpose(1, 0, 2), vis.T, settings, video.name)
            cap = (captions or {}).get(video.stem, "")
            return Clip(f"official-{video.stem}", fr, tr, vi, make_query_grid(settings.height, settings.width, settings.stride),
                        cap, "trajloom-official", settings.stride)
        yield f"official-{video.stem}", build


def videos_source(path: str, settings: BenchSettings, tracker: str = "auto") -> Iterator:
    """Raw videos (``.mp4/.avi/.mov/.webm/.mkv``) tracked with the embedded tracker on the stride grid; the caption is
    the camera-motion phrase estimated from the tracks (App. E.2)."""
    from ..camera_motion import estimate_camera_motion
    from ..tracking import get_tracker
    from ..video_io import read_video, resize_video

    exts = (".mp4", ".avi", ".mov", ".webm", ".mkv")
    videos = sorted(p for p in Path(path).iterdir() if p.suffix.lower() in exts) if Path(path).is_dir() else []
    if not videos:
        raise FileNotFoundError(f"`input` {path!r} holds no videos ({', '.join(exts)})")
    for video in videos:
        def build(video=video):
            try:
                frames, _ = read_video(video, max_frames=settings.num_frames)
            except ValueError as err:
                raise SkipClip(str(err)) from err
            if frames.shape[0] < settings.num_frames:
                raise SkipClip(f"{video.name}: {frames.shape[0]} frames, needs {settings.num_frames}")
            frames = resize_video(frames, settings.height, settings.width)
            q = make_query_grid(settings.height, settings.width, settings.stride)
            tracks, vis = get_tracker(tracker).track(frames, q)
            caption = estimate_camera_motion(tracks, vis, settings.height, settings.width).phrase
            return Clip(f"video-{video.stem}", frames, tracks, vis, q, caption, "videos", settings.stride)
        yield f"video-{video.stem}", build


# ----------------------------------------------------------------------------------------------------------------
# writing


def _row(clip: Clip, settings: BenchSettings) -> dict:
    from ..video_io import encode_mp4_bytes

    return {"clip_id": clip.clip_id, "source": clip.source, "caption": clip.caption,
            "video": encode_mp4_bytes(clip.frames, settings.fps), "fps": float(settings.fps),
            "height": settings.height, "width": settings.width, "stride": clip.stride,
            "tracks": clip.tracks.astype(np.float32), "visibility": clip.visibility.astype(bool),
            "query_xy": clip.query_xy.astype(np.float32)}


def _write_shard(rows: List[dict], features, path: Path) -> None:
    import pyarrow.parquet as pq
    from datasets import Dataset

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    table = Dataset.from_list(rows, features=features).data.table  # schema metadata carries the `features`
    pq.write_table(table, str(tmp))
    os.replace(tmp, path)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_dataset_card(out_dir: Path) -> None:
    """(Re)write ``README.md`` with a ``configs:`` entry for every config under ``data/``."""
    configs = []
    for cdir in sorted(p for p in (out_dir / "data").iterdir() if p.is_dir()):
        splits = sorted({f.name.split("-")[0] for f in cdir.glob("*.parquet")}, key=lambda s: (SPLITS + (s,)).index(s))
        if splits:
            configs.append((cdir.name, splits))
    lines = ["---", "configs:"]
    for name, splits in configs:
        lines += [f"- config_name: {name}", "  data_files:"]
        lines += [f"  - split: {s}\n    path: data/{name}/{s}-*.parquet" for s in splits]
    lines += ["license: other", "task_categories:", "- other", "tags:", "- point-tracking", "- trajectory-forecasting",
              "- video", "pretty_name: TrajLoomBench", "---", ""]
    manifests = {name: json.loads((out_dir / "data" / name / "manifest.json").read_text())
                 for name, _ in configs if (out_dir / "data" / name / "manifest.json").exists()}
    body = ["# TrajLoomBench", "",
            "Dense future point-trajectory forecasting benchmark (TrajLoom, arXiv 2603.22606, §4.1.4), built with "
            "the `trajloom-hf` package (`trajloom bench build`, command below). Each row is one clip standardised to a fixed resolution and horizon: "
            "the first `history_frames` frames are the observed history, the rest the future to forecast.", "",
            "## Columns", "",
            "| column | type | meaning |", "|---|---|---|",
            "| `video` | mp4 bytes | the clip's frames (H.264, `fps`) |",
            "| `tracks` | float32 `[T, N, 2]` | point positions in pixels (x, y), queried at frame 0 |",
            "| `visibility` | bool `[T, N]` | False when occluded or outside the frame |",
            "| `query_xy` | float32 `[N, 2]` | query points (px); for grid configs the row-major stride grid |",
            "| `stride` | int | grid stride in px (0: sparse TAP-Vid points) |",
            "| `caption`, `source`, `clip_id`, `fps`, `height`, `width` | | provenance and size |", "",
            "## Configs", ""]
    for name, splits in configs:
        m = manifests.get(name, {})
        counts = ", ".join(f"{s}: {m.get('counts', {}).get(s, '?')}" for s in splits)
        s = m.get("settings", {})
        opts = m.get("source_options") or {}
        origin = ""
        if m.get("source") in GENERATED:
            how = opts.get("tracks", "analytic" if m.get("source") == "synthetic" else "exact")
            origin = (" Tracks: exact scene geometry." if how in ("analytic", "exact") else
                      f" Tracks: the `{how}` tracker run on the rendered frames (as the paper does for all data).")
        body.append(f"* `{name}` (source `{m.get('source', '?')}`): {counts} clips; {s.get('height')}x{s.get('width')} px, "
                    f"{s.get('history_frames')} history + {s.get('future_frames')} future frames, stride {s.get('stride')}. "
                    f"Built with `{m.get('command', '')}`.{origin}")
        if m.get("source") == "physics":
            body += _physics_card(name, m)
        if m.get("skipped"):
            body.append(f"  {len(m['skipped'])} inputs were skipped (see `data/{name}/manifest.json`).")
    body += ["", "## Usage", "", "```python", "from datasets import load_dataset",
             f"ds = load_dataset(\"path/to/{out_dir.name}\", \"{configs[0][0] if configs else 'synthetic'}\", split=\"test\").with_format(\"numpy\")",
             "tracks, visibility = ds[0][\"tracks\"], ds[0][\"visibility\"]", "```", "",
             "## Limitations", "",
             "Synthetic clips are procedural 2-D scenes (affine motions, no 3-D effects). Physics clips are rigid "
             "primitives with noise textures on a flat floor under one light, rasterised without shadows or "
             "anti-aliasing (MOVi-A's level of realism, not Kubric's path tracing); "
             "their exact tracks have none of a tracker's jitter. Tracks of real videos come "
             "from a tracker and inherit its errors. TAP-Vid clips are sparse and usually shorter than the default "
             "horizon (build them with smaller `--history-frames/--future-frames`); their `query_xy` is each annotated "
             "point's position at frame 0, where it may be occluded (`visibility[0]` False). Only the first "
             "`history_frames + future_frames` frames of each input video are used.", ""]
    _atomic_text(out_dir / "README.md", "\n".join(lines + body))


def _physics_card(name: str, m: dict) -> List[str]:
    """The generator of a physics config in words and numbers, enough to rebuild it bit for bit."""
    gen, st = m.get("generator", {}), m.get("settings", {})
    if not gen:
        return []
    g = {**gen, **gen["config"]}
    mats = g["material_params"]
    smp = g["sampling"]
    rng = lambda v, unit="": f"{v[0]:g}-{v[1]:g}{unit}"  # noqa: E731
    seed = m.get("seed", 0)
    lines = ["", f"  **Generator of `{name}`** (`trajloom_hf.data.physics`, MuJoCo rigid-body physics, MOVi-A-like"
             f"{'; moving camera, MOVi-E style' if g['camera'] == 'moving' else ''}):", "",
             f"  * physics: MuJoCo, gravity {g['gravity']:g} m/s^2, time step {g['timestep']:.6g} s "
             f"({g['substeps']} steps per frame at {g['fps']:g} frames per simulated second); frame 0 is the initial state;",
             f"  * objects: {rng(g['num_objects'])} per clip (uniform), shapes {', '.join(g['shapes'])}, materials "
             f"{', '.join(g['materials'])}, each drawn uniformly; half extent {rng(g['object_size'], ' m')} (cube half side, "
             f"sphere radius, cylinder radius with half height {rng(smp['cylinder_height'])} x radius); colour HSV with "
             f"uniform hue, saturation {rng(smp['colour_saturation'])}, value {rng(smp['colour_value'])};",
             *[f"  * {k}: friction {v['friction']:g}, solref ({v['solref'][0]:g} s, damping ratio {v['solref'][1]:g}), density "
               f"{v['density']:g} kg/m^3, specular {v['specular']:g}, shininess {v['shininess']:g}" for k, v in mats.items()],
             (f"  * launch scene: objects upright at rest on the floor (centres uniform over [-{g['spawn_extent']:g}, "
              f"{g['spawn_extent']:g}]^2 m, uniform heading about z, no overlap), still until frame {g['launch_frame']} "
              f"(the forecast start), then pushed {g['launch_speed']:g} m/s along the floor and "
              f"{g['launch']['vertical_speed']:g} m/s up in the image direction their colour names (hue -> heading in "
              f"degrees, 0 right, 90 away from the camera: {', '.join(f'{h:g} -> {d:g}' for h, d in g['launch']['palette'])}; "
              "the hue replaces the uniform one), relative to the camera at the last still frame;"
              if g.get("launch_frame") else
              f"  * start: centres uniform over [-{g['spawn_extent']:g}, {g['spawn_extent']:g}]^2 m, lowest point "
              f"{rng(g['spawn_height'], ' m')} above the floor, no overlap (bounding spheres {smp['min_gap']:g} m apart, 50 tries, "
              f"else the object is left out); uniformly random orientation; horizontal velocity uniform in "
              f"[-{g['max_speed']:g}, {g['max_speed']:g}] m/s minus {smp['centre_pull']:g}/s x start position (thrown back "
              f"towards the centre), vertical {rng(smp['vertical_speed'], ' m/s')} up, angular uniform in "
              f"[-{smp['angular_speed']:g}, {smp['angular_speed']:g}] rad/s per body axis;"),
             f"  * floor: grey plane z = 0, half side {g['floor_half_size']:.4g} m, friction {g['floor']['friction']:g} "
             f"(a contact takes the larger friction and the object's solref)" + (
                 f"; textures (`textures`): seeded smooth grey noise (octaves of (cell px, weight) "
                 f"{g['texture_params']['floor_octaves']} on a {g['texture_params']['floor_size']} px tile of {g['texture_params']['floor_tile']:g} m, "
                 f"values {g['texture_params']['floor_low']:g}-1 x floor grey {g['floor']['textured_rgb'][0]:g}) and per object a "
                 f"{g['texture_params']['object_size']} px cube map ({g['texture_params']['object_octaves']}, {g['texture_params']['object_low']:g}-1) "
                 "tinted by its colour, from the scene's texture seed" if g["textures"] else
                 (", 2 m grey checker squares" if g['floor_checker'] else "")) + ";",
             f"  * camera: pinhole, vertical field of view {g['fovy']:g} deg, distance {rng(g['camera_distance'], ' m')}, "
             f"elevation {rng(g['camera_elevation'], ' deg')}, uniform azimuth, looking at a point uniform in "
             f"[-{g['look_at_extent']:g}, {g['look_at_extent']:g}]^2 m on the floor" +
             (f"; moving: orbits {rng(g['camera_orbit_speed'], ' deg/s')} (random sense), distance x (1 +- up to "
              f"{g['camera_dolly']:g}), elevation +- up to {g['camera_tilt']:g} deg and a new look-at point over the clip, "
              "smooth-step eased;" if g["camera"] == "moving" else "; static;"),
             f"  * light: headlight plus one directional light pointing down (horizontal components N(0, "
             f"{smp['light_tilt']:g})), shadows {'on' if g['shadows'] else 'off'}; MuJoCo's OpenGL renderer at "
             f"{st.get('height')}x{st.get('width')} px, no anti-aliasing;",
             f"  * tracks: the frame-0 query grid (stride {st.get('stride')}, origin {g['grid_origin']}) ray-cast onto the "
             "analytic geometry, moved rigidly with the body they lie on (the floor's points stay in the world) and "
             "projected; visible when in front of the camera, in the frame and the first surface along the camera ray;",
             f"  * seeds: clip `physics-<s>` is `generate_physics_clip(s, PhysicsSceneConfig(**generator['config'], "
             f"height={st.get('height')}, width={st.get('width')}, num_frames={st.get('history_frames', 0) + st.get('future_frames', 0)}, "
             f"stride={st.get('stride')}))` with `generator` from `data/{name}/manifest.json` and s = {seed} + i (train), "
             f"{seed} + 1000000 + i (validation), {seed} + 2000000 + i (test).",
             "  * renderers used: " + "; ".join(f"MuJoCo {r['mujoco']}, {r['gl']}" for r in m.get("renderers", [])) +
             " (tracks depend on the MuJoCo version only, so a config is built with one MuJoCo release (`mujoco` in the "
             "manifest; `pip install mujoco==<that version>` to rebuild it bit for bit); frames also on the GL "
             "implementation).", ""]
    return lines


def build_trajloombench(
    source: str,
    out_dir: str,
    config_name: str,
    *,
    settings: Optional[BenchSettings] = None,
    split: str = "test",
    counts: Optional[Dict[str, int]] = None,
    input_path: Optional[str] = None,
    seed: int = 0,
    source_kwargs: Optional[dict] = None,
    command: str = "",
    progress: bool = True,
) -> dict:
    """Build (or resume) one config of TrajLoomBench; returns the manifest.

    Args:
        source: one of ``SOURCES``.
        out_dir: the dataset folder (``load_dataset(out_dir, config_name)``).
        split: the split non-synthetic sources are written to.
        counts: synthetic clips per split, e.g. ``{"train": 64, "validation": 8, "test": 16}``.
        input_path: the input folder/file of the other sources.
        source_kwargs: extra source options (``tracks_key``, ``visibility_key``, ``axis_order``, ``tracker``).
    """
    if source not in SOURCES:
        raise ValueError(f"`source` must be one of {SOURCES}, got {source!r}")
    if not config_name or "/" in config_name or config_name.startswith("."):
        raise ValueError(f"`config_name` must be a plain folder name, got {config_name!r}")
    if not isinstance(split, str) or not _SPLIT_NAME.match(split):
        raise ValueError(f"`split` must be a split name of letters, digits and '_' (e.g. 'test'), got {split!r}")
    settings = settings or BenchSettings()
    settings.validate()
    source_kwargs = dict(source_kwargs or {})
    if counts is not None:
        for s, n in counts.items():
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
                raise ValueError(f"`counts[{s!r}]` (--num-{s}) must be a non-negative integer, got {n!r}")
    # what a config must keep across re-runs besides the settings (JSON-able options only; captions maps are not)
    # (trust_pickle says how to read the inputs, not what the clips are: a re-run may change it)
    build_id = {"source": source, "seed": seed if source in GENERATED else None,
                "source_options": {k: v for k, v in sorted(source_kwargs.items())
                                   if k != "trust_pickle" and isinstance(v, (str, int, float, bool, type(None)))}}
    if source not in GENERATED:
        if input_path is None:
            raise ValueError(f"source {source!r} needs `input_path` (--input)")
        if not os.path.exists(input_path):
            raise FileNotFoundError(f"`input` {input_path!r} does not exist")
    renderer = None
    if source == "physics":  # before anything is written: no GL context, no build (the error says what to install)
        from .physics import check_gl

        build_id["generator"] = _physics_generator(settings, source_kwargs.get("camera", "static"),
                                                   source_kwargs.get("launch", False))
        renderer = check_gl()
        import mujoco

        # the simulated motion depends on the exact MuJoCo release (4.0.0 and 4.0.1 differ by up to 172 px on one clip
        # by frame 65): a resume with another one would mix two clip sets under one config
        build_id["mujoco"] = mujoco.__version__
    out = Path(out_dir)
    cdir = out / "data" / config_name
    _check_bench_folder(out, cdir)
    manifest_path = cdir / "manifest.json"
    manifest = _read_manifest(manifest_path)
    if manifest and manifest.get("settings") != asdict(settings):
        raise ValueError(f"config {config_name!r} in {out_dir!r} was built with other settings {manifest['settings']}; "
                         "use another --config name or delete that folder")
    for key, value in build_id.items():
        if manifest and key in manifest and manifest[key] != value:  # mixing them would mix schemas or clip sets
            raise ValueError(f"config {config_name!r} in {out_dir!r} was built with {key}={manifest[key]!r}, not {value!r}; "
                             "use another --config name or delete that folder")
    manifest.update(settings=asdict(settings), command=command or manifest.get("command", ""), **build_id)
    if renderer is not None:  # frames depend on the MuJoCo and GL (Mesa) versions; tracks on MuJoCo's only
        import mujoco

        used = {"mujoco": mujoco.__version__, "gl": renderer}
        manifest["renderers"] = manifest.get("renderers", []) + ([used] if used not in manifest.get("renderers", []) else [])
    manifest.setdefault("shards", {})
    manifest.setdefault("skipped", {})
    manifest.setdefault("counts", {})
    lost = _check_shards(cdir, manifest) if cdir.is_dir() else {}
    grid = source != "tapvid"
    features = bench_features(settings, grid)

    if source in GENERATED:
        counts = counts or {"train": 64, "validation": 8, "test": 16}
        bad = [s for s in counts if s not in SPLITS]
        if bad:
            raise ValueError(f"`counts` splits must be in {SPLITS}, got {bad}")
        jobs = []
        for s, n in counts.items():
            maker = synthetic_source if source == "synthetic" else physics_source
            items = list(maker(s, n, settings, seed, **source_kwargs))  # clips are built lazily
            have = {cid for shard in manifest["shards"].get(s, []) for cid in shard["clip_ids"]}
            if have - {cid for cid, _ in items}:
                raise ValueError(f"config {config_name!r} already holds {len(have)} {s!r} clips, more than the {n} asked "
                                 "for; use another --config name or delete that folder")
            if items:
                jobs.append((s, items))
    else:
        maker = {"tapvid": tapvid_source, "trajloom-official": trajloom_official_source, "videos": videos_source}[source]
        jobs = [(split, _first_checked(maker(input_path, settings, **source_kwargs)))]

    query = make_query_grid(settings.height, settings.width, settings.stride) if grid else None
    cdir.mkdir(parents=True, exist_ok=True)  # only now: every refusal above leaves the folder untouched
    for split_name, items in jobs:
        done = manifest["shards"].setdefault(split_name, [])  # [{"file", "clip_ids"}] of finished shards
        done_ids = {cid for shard in done for cid in shard["clip_ids"]}
        this_run = set()
        rows, ids = [], []
        total = len(items) if isinstance(items, list) else None
        bar = tqdm(items, total=total, desc=f"{config_name}/{split_name}", disable=not progress)
        for clip_id, build in bar:
            if clip_id in done_ids:
                continue
            if clip_id in this_run:  # e.g. clip.mp4 and clip.avi in one folder
                manifest["skipped"][f"{clip_id} (duplicate)"] = "another input has the same clip id; the first is kept"
                continue
            this_run.add(clip_id)
            try:
                clip = build()
            except SkipClip as err:
                manifest["skipped"][clip_id] = str(err)
                continue
            # out-of-frame or non-finite points are invisible for every source (reference §1.7)
            clip.visibility = clip.visibility.astype(bool) & in_frame(clip.tracks, settings.height, settings.width)
            why = _unusable(clip, query)
            if why:
                manifest["skipped"][clip_id] = why
                continue
            manifest["skipped"].pop(clip_id, None)  # an input fixed since an earlier run
            rows.append(_row(clip, settings))
            ids.append(clip_id)
            if len(rows) == settings.shard_size:
                _flush(rows, ids, features, cdir, split_name, _shard_index(ids, done, lost.get(split_name, [])),
                       manifest, manifest_path)
                rows, ids = [], []
        if rows:
            _flush(rows, ids, features, cdir, split_name, _shard_index(ids, done, lost.get(split_name, [])),
                   manifest, manifest_path)
        manifest["counts"][split_name] = sum(len(s["clip_ids"]) for s in manifest["shards"][split_name])
    _atomic_text(manifest_path, json.dumps(manifest, indent=2))
    write_dataset_card(out)
    return manifest


def _shard_number(name: str) -> int:
    return int(name.split("-")[1])  # "<split>-<index>-<digest>.parquet"; split names hold no "-"


def _check_shards(cdir: Path, manifest: dict) -> Dict[str, List[dict]]:
    """Make the folder hold exactly the recorded shards; return the records dropped per split (to rebuild).

    A recorded shard whose file is missing, unreadable or of another row count is dropped (its clips are built
    again); a shard file no record names (a crash between writing and recording it) is deleted, since ``load_dataset``
    would read it too.
    """
    import pyarrow.parquet as pq

    lost: Dict[str, List[dict]] = {}
    recorded = {"manifest.json"}
    for split, shards in manifest["shards"].items():
        keep = []
        for shard in shards:
            try:
                ok = pq.read_metadata(str(cdir / shard["file"])).num_rows == len(shard["clip_ids"])
            except Exception:  # missing, truncated or not Parquet
                ok = False
            (keep.append(shard), recorded.add(shard["file"])) if ok else lost.setdefault(split, []).append(shard)
        shards[:] = keep
    for f in cdir.iterdir():  # only names this builder writes (_check_bench_folder refused a folder with others)
        if f.name not in recorded and _written_here(f.name):
            f.unlink()
    return lost


def _first_checked(items: Iterator) -> Iterator:
    """Start a lazy source before the progress bar does, so that an input refused outright (a pickle naming code,
    an unreadable folder) ends the build with its own message, not after a progress line."""
    import itertools

    try:
        first = next(items)
    except StopIteration:
        return iter(())
    return itertools.chain([first], items)


def _unusable(clip: Clip, query: Optional[np.ndarray]) -> str:
    """Why a built clip must not be stored ('' if it is fine): no visible point at all, or (grid sources) frame 0 off
    the query grid, which means (y, x) read as (x, y), another frame size or point order (reference §1.2-1.3)."""
    from ..track_files import check_query_alignment

    if not clip.visibility.any():
        return f"{clip.clip_id}: no point is visible in any frame"
    if query is not None:
        try:
            check_query_alignment(clip.tracks, clip.visibility, query, clip.stride, name=clip.clip_id)
        except ValueError as err:
            return str(err)
    return ""


def _written_here(name: str) -> bool:
    """A file name this builder writes into a config folder: its shards, the manifest, their temporary files."""
    inner = name[1:-4] if name.startswith(".") and name.endswith(".tmp") else name
    return inner == "manifest.json" or bool(_SHARD_NAME.match(inner))


def _check_bench_folder(out: Path, cdir: Path) -> None:
    """Refuse an ``out_dir`` whose card or config folder this builder did not write (it rewrites and prunes them)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"`out_dir` {str(out)!r} exists and is not a folder")
    card = out / "README.md"
    if card.is_file() and _CARD_MARK not in card.read_text(errors="replace"):
        raise ValueError(f"{str(card)!r} exists and is not a TrajLoomBench dataset card; the build rewrites the card, "
                         "so give an empty or new folder (or an earlier TrajLoomBench build) as --out")
    if not cdir.exists():
        return
    if not cdir.is_dir():
        raise ValueError(f"{str(cdir)!r} exists and is not a folder")
    names = sorted(f.name for f in cdir.iterdir())
    foreign = [n for n in names if not _written_here(n)]
    if foreign or (names and "manifest.json" not in names):
        shown = ", ".join((foreign or names)[:3]) + (" ..." if len(foreign or names) > 3 else "")
        raise ValueError(f"{str(cdir)!r} holds files no TrajLoomBench build wrote ({shown}); the build prunes that "
                         "folder, so use another --config name or --out folder")


def _read_manifest(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        manifest = read_json_object(path, "TrajLoomBench manifest", "finished shards")
    except ValueError as err:
        raise ValueError(f"{err}: the manifest is corrupt; it records the finished shards of this config: restore "
                         f"it, or delete the folder {str(path.parent)!r} to rebuild the config") from None
    if not isinstance(manifest.get("shards", {}), dict):
        raise ValueError(f"{str(path)!r} is not a TrajLoomBench manifest (expected a JSON object with 'shards'); "
                         f"delete the folder {str(path.parent)!r} to rebuild the config")
    return manifest


def _shard_index(ids: List[str], done: List[dict], lost: List[dict]) -> int:
    """The index of a lost shard holding exactly these clips (it gets its old name back), else the next free one."""
    for shard in lost:
        if shard["clip_ids"] == ids:
            return _shard_number(shard["file"])
    return 1 + max((_shard_number(s["file"]) for s in done + lost), default=-1)


def _flush(rows, ids, features, cdir: Path, split: str, index: int, manifest: dict, manifest_path: Path) -> None:
    # the name covers the clip ids and the build settings, so shards of different builds never share a name
    digest = hashlib.sha1(("".join(ids) + json.dumps(manifest["settings"], sort_keys=True)).encode()).hexdigest()[:8]
    name = f"{split}-{index:05d}-{digest}.parquet"
    _write_shard(rows, features, cdir / name)
    manifest["shards"][split].append({"file": name, "clip_ids": list(ids)})
    manifest["shards"][split].sort(key=lambda s: s["file"])  # a rebuilt shard goes back to its place
    _atomic_text(manifest_path, json.dumps(manifest, indent=2))  # the shard counts as done only once recorded


def load_trajloombench(path: str, config_name: str, split: str = "test", *, numpy: bool = True):
    """A split as a ``datasets.Dataset`` read straight from its Parquet shards (in memory, features from the shards).

    ``datasets.load_dataset(path, config_name)`` gives the same rows, but it caches a local folder by its name and
    config only: after a rebuild in place (other sizes or clips) it can return the stale cached data and features.
    This reader never consults that cache.
    """
    import pyarrow.parquet as pq
    from datasets import Dataset, concatenate_datasets

    folder = Path(path) / "data" / config_name
    files = sorted(folder.glob(f"{split}-*.parquet"))
    if not files:
        have = sorted({f.name.split("-")[0] for f in folder.glob("*.parquet")}) if folder.is_dir() else []
        raise ValueError(f"no {split!r} shards for config {config_name!r} in {str(path)!r} (splits there: {have})")
    ds = concatenate_datasets([Dataset(pq.read_table(f)) for f in files])
    return ds.with_format("numpy") if numpy else ds
