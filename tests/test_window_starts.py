"""Training windows that start anywhere in a clip (``window_start="random"``), for models rolled out past one window."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from trajloom_hf.data.track_windows import TrackClip, TrackSegmentDataset, TrackWindowDataset
from trajloom_hf.training.window_datasets import KeyedWindows

ROOT = Path(__file__).resolve().parents[1]


def clips(lengths, n=6):
    out = []
    for i, t in enumerate(lengths):
        tracks = (np.arange(t, dtype=np.float32)[:, None, None] + 1000 * i) * np.ones((1, n, 2), np.float32)
        vis = (np.arange(t)[:, None] % 3 != 0) & np.ones((1, n), bool)
        frames = np.broadcast_to(np.arange(t, dtype=np.uint8)[:, None, None, None], (t, 4, 4, 3)).copy()
        out.append(TrackClip(tracks, vis, f"clip {i}", frames))
    return out


def test_random_starts_cover_every_start_and_cut_the_right_frames():
    h, f = 3, 2
    ds = TrackWindowDataset(clips([12, 5, 9]), h, f, window_start="random", with_frames=True)
    starts = {c: sorted(s for cc, s in ds.windows if cc == c) for c in range(3)}
    assert starts == {0: list(range(0, 12 - h - f + 1)), 1: [0], 2: list(range(0, 9 - h - f + 1))}
    assert len(ds) == 8 + 1 + 5
    for idx, (c, s) in enumerate(ds.windows):
        item = ds[idx]
        np.testing.assert_array_equal(item["history_tracks"][:, 0, 0].numpy(), np.arange(s, s + h) + 1000 * c)
        np.testing.assert_array_equal(item["future_tracks"][:, 0, 0].numpy(), np.arange(s + h, s + h + f) + 1000 * c)
        np.testing.assert_array_equal(item["history_visibility"][:, 0].numpy(), np.arange(s, s + h) % 3 != 0)
        np.testing.assert_array_equal(item["history_frames"][:, 0, 0, 0].numpy(), np.arange(s, s + h))
    thin = TrackWindowDataset(clips([12]), h, f, window_start="random", window_start_stride=3)
    assert [s for _, s in thin.windows] == [0, 3, 6]
    # the default stays one window per clip at frame 0
    first = TrackWindowDataset(clips([12, 5]), h, f)
    assert first.windows == [(0, 0), (1, 0)] and len(first) == 2
    np.testing.assert_array_equal(first[0]["history_tracks"][:, 0, 0].numpy(), [0, 1, 2])
    # VAE segments: the history and future of every window
    seg = TrackSegmentDataset(TrackWindowDataset(clips([8]), 2, 2, window_start="random"))
    assert len(seg) == 2 * 5 and sorted({int(seg[i]["tracks"][0, 0, 0]) for i in range(len(seg))}) == list(range(7))


def test_keys_name_clip_and_start_and_the_default_keys_are_unchanged():
    rnd = KeyedWindows(TrackWindowDataset(clips([7, 6]), 2, 2, window_start="random", window_start_stride=2), "train")
    keys = [rnd.key(i) for i in range(len(rnd))]
    assert keys == ["train_00000000_s0000", "train_00000000_s0002", "train_00000001_s0000", "train_00000001_s0002"]
    assert rnd[1]["key"] == keys[1] and rnd.layout == "random/2"
    first = KeyedWindows(TrackWindowDataset(clips([7, 6]), 2, 2), "val")
    assert [first.key(i) for i in range(2)] == ["val_00000000", "val_00000001"] and first.layout == "first"


def test_windows_too_short_and_bad_options_are_named():
    with pytest.raises(ValueError, match=r"`clips\[1\]` has 4 frames, needs history \+ future = 5"):
        TrackWindowDataset(clips([9, 4]), 3, 2, window_start="random")
    with pytest.raises(ValueError, match=r"`window_start='random'` needs clips longer than history \+ future = 5"):
        TrackWindowDataset(clips([5, 5]), 3, 2, window_start="random")
    with pytest.raises(ValueError, match="at least 8"):  # a stride past the last start leaves only frame 0
        TrackWindowDataset(clips([7]), 3, 2, window_start="random", window_start_stride=3)
    with pytest.raises(ValueError, match="`window_start` must be one of"):
        TrackWindowDataset(clips([9]), 3, 2, window_start="anywhere")
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="`window_start_stride`"):
            TrackWindowDataset(clips([9]), 3, 2, window_start="random", window_start_stride=bad)


@pytest.fixture(scope="module")
def long_bench(tmp_path_factory):
    """A synthetic TrajLoomBench of 64x96 clips, 9 history + 27 future frames (three 9-frame windows), and a tiny VAE."""
    from trajloom_hf.data.trajloombench import BenchSettings, build_trajloombench
    from trajloom_hf.models.autoencoder_traj import AutoencoderTraj

    root = tmp_path_factory.mktemp("long_bench")
    settings = BenchSettings(height=64, width=96, history_frames=9, future_frames=27, stride=16, fps=8.0)
    build_trajloombench("synthetic", str(root / "bench"), "long", settings=settings,
                        counts={"train": 3, "validation": 1, "test": 1}, seed=0)
    torch.manual_seed(0)
    vae = AutoencoderTraj(height=64, width=96, patch_size=16, num_frames=9, hidden_size=32, num_heads=4, encoder_depth=4,
                          decoder_depth=4, latent_channels=4, pos_embed_dim=8, latents_mean=[0.0] * 4, latents_std=[1.0] * 4)
    vae.save_pretrained(root / "vae")
    return root


def test_build_windows_random_on_long_clips_keeps_validation_at_frame_0(long_bench):
    from trajloom_hf.models.autoencoder_traj import AutoencoderTraj
    from trajloom_hf.training.window_datasets import build_segment_datasets, build_windows

    cfg = AutoencoderTraj.from_pretrained(long_bench / "vae").config
    train, val = build_windows(cfg, bench=str(long_bench / "bench"), bench_config="long", window_start="random",
                               window_start_stride=6)
    assert train.windows.windows == [(c, s) for c in range(3) for s in (0, 6, 12, 18)]  # starts 0..36-18
    assert val.windows.windows == [(0, 0)]
    seg, _ = build_segment_datasets(height=64, width=96, stride=16, num_frames=9, bench=str(long_bench / "bench"),
                                    bench_config="long", window_start="random", window_start_stride=9)
    assert len(seg) == 3 * 3 * 2  # starts 0, 9, 18 of 3 clips, history and future segments


def test_flow_script_with_random_window_starts_caches_every_start(long_bench, tmp_path):
    (tmp_path / "tr.json").write_text('{"num_layers": 2, "hidden_size": 32, "num_heads": 4}')
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, str(ROOT / "examples" / "train_trajloom_flow.py"), "--vae_path", str(long_bench / "vae"),
            "--bench", str(long_bench / "bench"), "--bench_config", "long", "--transformer_config", str(tmp_path / "tr.json"),
            "--train_batch_size", "2", "--validation_steps", "0", "--report_to", "none", "--window_start", "random"]
    args = base + ["--output_dir", str(tmp_path / "flow"), "--latent_cache_dir", str(tmp_path / "lat"),
                   "--window_start_stride", "9", "--max_train_steps", "2"]
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    names = sorted(p.stem for p in (tmp_path / "lat").glob("*.pt"))
    assert names == [f"train_{c:08d}_s{s:04d}" for c in range(3) for s in (0, 9, 18)] + ["val_00000000"]
    # the cached latents are those of the window at its start
    from trajloom_hf.models.autoencoder_traj import AutoencoderTraj
    from trajloom_hf.data.trajloombench import load_trajloombench
    from trajloom_hf.encoding import normalize_tracks

    vae = AutoencoderTraj.from_pretrained(long_bench / "vae").eval()
    row = load_trajloombench(str(long_bench / "bench"), "long", "train")[1]
    hist = torch.as_tensor(np.asarray(row["tracks"], np.float32)[9:18])[None]
    with torch.no_grad():
        z = vae.encode(normalize_tracks(hist, 64, 96)).latent_dist.mean[0]
    cached = torch.load(tmp_path / "lat" / "train_00000001_s0009.pt", weights_only=True)["history_latents"]
    torch.testing.assert_close(cached, z, rtol=1e-4, atol=1e-5)
    bad = subprocess.run(base + ["--window_start_stride", "30", "--output_dir", str(tmp_path / "bad")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode != 0 and "`window_start='random'` needs clips longer" in bad.stderr
