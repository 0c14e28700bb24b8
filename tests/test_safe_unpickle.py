"""The restricted unpickler reads TAP-Vid-style data pickles and refuses anything that could run code."""

import os
import pickle

import numpy as np
import pytest

from trajloom_hf.safe_unpickle import UntrustedPickleError, load_data_pickle


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # what a crafted file does: call os.system while loading
        return (os.system, (f"touch {self.marker}",))


def _tapvid_like():
    rng = np.random.default_rng(0)
    return {"bear": {"video": rng.integers(0, 255, (3, 8, 8, 3), dtype=np.uint8),
                     "points": rng.random((4, 3, 2)).astype(np.float32), "occluded": rng.random((4, 3)) < 0.3,
                     "fps": np.float32(24.0), "frames_jpeg": [b"\xff\xd8 a", b"\xff\xd8 b"], "name": "bear"}}


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_real_format_loads_at_every_protocol(tmp_path, protocol):
    data = _tapvid_like()
    path = tmp_path / "davis.pkl"
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    back = load_data_pickle(path)
    for key in ("video", "points", "occluded"):
        np.testing.assert_array_equal(back["bear"][key], data["bear"][key])
        assert back["bear"][key].dtype == data["bear"][key].dtype
    assert back["bear"]["frames_jpeg"] == data["bear"]["frames_jpeg"] and back["bear"]["fps"] == np.float32(24)


def test_numpy1_pickles_load():
    """Files written by numpy 1.x name numpy.core.multiarray (the released TAP-Vid pickles)."""
    raw = pickle.dumps({"points": np.arange(6.0).reshape(3, 2)}, protocol=2)
    old = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in old
    np.testing.assert_array_equal(load_data_pickle(old)["points"], np.arange(6.0).reshape(3, 2))


def test_malicious_pickle_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"bear": {"video": _Payload(marker)}}))
    with pytest.raises(UntrustedPickleError, match=r"system`.*--trust-pickle"):
        load_data_pickle(path)
    assert not marker.exists()
    # a global hidden inside an object array is refused too
    arr = np.empty(1, object)
    arr[0] = _Payload(marker)
    with pytest.raises(UntrustedPickleError):
        load_data_pickle(pickle.dumps(arr))
    assert not marker.exists()
    # the explicit opt-in is plain pickle (the code runs: that is what trusting a file means)
    load_data_pickle(path, trust_pickle=True)
    assert marker.exists()


@pytest.mark.parametrize("name", ["builtins eval", "builtins getattr", "numpy load", "numpy.lib.npyio load",
                                  "subprocess Popen", "numpy.core.multiarray frombuffer_evil"])
def test_only_array_reconstruction_is_allowed(name):
    module, attr = name.split()
    raw = b"\x80\x02c" + module.encode() + b"\n" + attr.encode() + b"\n."
    with pytest.raises(UntrustedPickleError, match=attr):
        load_data_pickle(raw)
