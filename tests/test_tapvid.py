"""TAP-Vid ``.npz`` files (``trajloom_hf.data.tapvid``): read without unpickling, validated key by key, and built into
TrajLoomBench like the TAP-Vid pickles."""

import pickle

import numpy as np
import pytest

from tests.test_trajloombench import S, load
from trajloom_hf.data.tapvid import read_tapvid_npz, tapvid_arrays
from trajloom_hf.data.trajloombench import build_trajloombench


def _entry(t=12, n=7, h=32, w=48, seed=0):
    rng = np.random.default_rng(seed)
    return {"video": rng.integers(0, 255, (t, h, w, 3), dtype=np.uint8), "points": rng.uniform(0.1, 0.9, (n, t, 2)),
            "occluded": rng.random((n, t)) < 0.2}


def test_npz_with_normalised_or_pixel_points_gives_the_same_tracks(tmp_path):
    e = _entry()
    np.savez(tmp_path / "norm.npz", **e, query_points=np.zeros((7, 3)))  # other TAP-Vid keys are ignored
    px = {"video": e["video"], "target_points": e["points"] * np.array([48, 32]), "occluded": e["occluded"]}
    np.savez_compressed(tmp_path / "px.npz", **px)
    read = read_tapvid_npz(tmp_path / "norm.npz")
    assert sorted(read) == ["occluded", "points", "video"]
    frames, tracks, vis = tapvid_arrays(read, "norm.npz")
    np.testing.assert_array_equal(frames, e["video"])
    # raster convention: pixel x covers [x, x + 1), so the centre of the first pixel (normalised 0.5 / W) is 0
    np.testing.assert_allclose(tracks, e["points"].transpose(1, 0, 2) * np.array([48, 32]) - 0.5, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(vis, ~e["occluded"].T)
    assert tracks.shape == (12, 7, 2) and vis.dtype == bool
    frames2, tracks2, vis2 = tapvid_arrays(read_tapvid_npz(tmp_path / "px.npz"), "px.npz")
    np.testing.assert_allclose(tracks2, tracks, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(vis2, vis)
    centre = {"video": e["video"][:1], "points": np.array([[[0.5 / 48, 0.5 / 32]]]), "occluded": np.zeros((1, 1), bool)}
    np.testing.assert_allclose(tapvid_arrays(centre, "c")[1], [[[0.0, 0.0]]], atol=1e-12)


@pytest.mark.parametrize("edit, match", [
    (lambda e: e.update(video=e["video"].astype(np.float32)), r"'video' must be uint8 \[T, H, W, 3\], got float32"),
    (lambda e: e.update(video=e["video"][..., 0]), r"'video' must be uint8 \[T, H, W, 3\], got uint8 \[12, 32, 48\]"),
    (lambda e: e.update(points=e["points"][..., :1]), r"'points' must be real numbers \[N, T, 2\] \(x, y\), got float64 \[7, 12, 1\]"),
    (lambda e: e.update(points=e["points"][:, :10]), r"'points' has T=10 frames, 'video' has 12"),
    (lambda e: e.update(points=e["points"].astype(str)), r"'points' must be real numbers"),
    (lambda e: e.update(occluded=e["occluded"][:5]), r"'occluded' must be \[N, T\] = \[7, 12\] bool, got bool \[5, 12\]"),
    (lambda e: e.update(occluded=e["occluded"] * 0.5), r"'occluded'` must be boolean or 0/1"),
    (lambda e: e.update(points=e["points"] * 48), r"'points' must be normalised \[0, 1\], got visible values in .*"
                                                 r"\(pixels belong under 'target_points'\)"),
    (lambda e: e.update(target_points=e["points"]), r"must hold 'points' .* or 'target_points' .*, found both"),
    (lambda e: e.pop("points"), r"must hold 'points' .* or 'target_points' .*, found neither \(keys: \['occluded', 'video'\]\)"),
    (lambda e: e.pop("occluded"), r"has no 'occluded'"),
])
def test_bad_npz_names_the_key_expected_and_received(tmp_path, edit, match):
    e = _entry()
    edit(e)
    np.savez(tmp_path / "v.npz", **e)
    with pytest.raises((ValueError, TypeError), match=rf"^`?v.npz {match}"):
        tapvid_arrays(read_tapvid_npz(tmp_path / "v.npz"), "v.npz")


def test_npz_with_pickled_objects_or_other_files_are_refused(tmp_path):
    e = _entry()
    np.savez(tmp_path / "obj.npz", video=e["video"], points=e["points"].astype(object), occluded=e["occluded"])
    with pytest.raises(ValueError, match=r"obj.npz' key 'points' holds pickled Python objects \(dtype object\).*refused"):
        read_tapvid_npz(tmp_path / "obj.npz")
    # an object array under a key the reader does not use is never loaded
    np.savez(tmp_path / "extra.npz", **e, notes=np.array([{"a": 1}], dtype=object))
    assert sorted(read_tapvid_npz(tmp_path / "extra.npz")) == ["occluded", "points", "video"]
    with open(tmp_path / "p.npz", "wb") as fh:
        pickle.dump(e, fh)
    with pytest.raises(ValueError, match=r"p.npz' is not an .npz archive: a pickle \(read it as a TAP-Vid .pkl\)"):
        read_tapvid_npz(tmp_path / "p.npz")
    np.save(tmp_path / "a.npy", e["points"])
    with pytest.raises(ValueError, match=r"a.npy' is not an .npz archive: starts with b'\\x93NUM'"):
        read_tapvid_npz(tmp_path / "a.npy")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "extra.npz").read_bytes()[:200])
    with pytest.raises(ValueError, match=r"cut.npz' is not a readable .npz archive \(BadZipFile"):
        read_tapvid_npz(tmp_path / "cut.npz")
    with pytest.raises(FileNotFoundError, match=r"TAP-Vid file '.*nope.npz' does not exist"):
        read_tapvid_npz(tmp_path / "nope.npz")


def test_bench_builds_a_folder_of_tapvid_npz_files(tmp_path):
    folder = tmp_path / "tapvid"
    folder.mkdir()
    e = _entry()
    np.savez(folder / "bear.npz", video=e["video"], target_points=e["points"] * np.array([48, 32]),
             occluded=e["occluded"])
    np.savez(folder / "evil.npz", video=e["video"], points=e["points"].astype(object), occluded=e["occluded"])
    m = build_trajloombench("tapvid", str(tmp_path / "b"), "davis", settings=S, input_path=str(folder), progress=False)
    assert m["counts"] == {"test": 1} and "pickled Python objects" in m["skipped"]["tapvid-evil"]
    row = load(tmp_path / "b", "davis", "test")[0]
    assert row["clip_id"] == "tapvid-bear" and row["stride"] == 0
    expected = e["points"].transpose(1, 0, 2)[:10] * np.array([96, 64]) - 0.5  # resized 48x32 -> 96x64
    np.testing.assert_allclose(np.asarray(row["tracks"], float), expected, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(row["visibility"]), ~e["occluded"].T[:10])
