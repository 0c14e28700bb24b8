"""Reading pickled *data* files (TAP-Vid ships its benchmarks as pickles) without running code from them.

A pickle can name any importable callable and call it while loading (``os.system``, ``builtins.eval``, ...).
:class:`DataUnpickler` resolves only the globals that plain numpy data needs (arrays, dtypes, numpy scalars, the
latin-1 codec of protocol 2 byte strings, ``OrderedDict``); containers (dict, list, tuple, str, bytes, numbers) need
no global at all. Any other global is refused before it is imported or called, with an error that names it.
``trust_pickle=True`` is the explicit opt-in to a plain :func:`pickle.load` for files the user trusts.
"""

from __future__ import annotations

import importlib
import io
import os
import pickle
from typing import BinaryIO, Union

# (module, name) pairs a numpy data pickle refers to; numpy 1.x writes numpy.core.*, numpy 2.x numpy._core.*
_NUMPY_GLOBALS = {
    ("multiarray", "_reconstruct"),  # ndarray, protocols 0-4
    ("multiarray", "scalar"),  # numpy scalars (np.float32(1.0))
    ("numeric", "_frombuffer"),  # ndarray, protocol 5
}
_ALLOWED = {
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # protocol 2 writes bytes as _codecs.encode(str, "latin1")
    ("collections", "OrderedDict"),
}


class UntrustedPickleError(ValueError):
    """The pickle needs a global that plain array data never needs (it could run code): refused."""


class DataUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` that resolves numpy array/scalar/dtype reconstruction only (see the module docstring)."""

    def __init__(self, file: BinaryIO, *, source: str = "pickle"):
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str):
        parts = module.split(".")
        if (module, name) in _ALLOWED:
            return getattr(importlib.import_module(module), name)
        if len(parts) == 3 and parts[0] == "numpy" and parts[1] in ("core", "_core") and (parts[2], name) in _NUMPY_GLOBALS:
            try:  # numpy 2 keeps numpy.core only as a deprecated alias of numpy._core
                mod = importlib.import_module(f"numpy._core.{parts[2]}")
            except ImportError:  # numpy 1.x
                mod = importlib.import_module(f"numpy.core.{parts[2]}")
            return getattr(mod, name)
        raise UntrustedPickleError(
            f"{self._source} refers to `{module}.{name}`, which plain array data never needs (a pickle can run code "
            "while it loads): refused. Pass --trust-pickle (trust_pickle=True) only if you trust the file."
        )


def load_data_pickle(file: Union[str, os.PathLike, bytes, BinaryIO], *, trust_pickle: bool = False):
    """Load a pickle of numpy arrays, dicts, lists, strings and numbers.

    Args:
        file: a path, the pickle's bytes, or an open binary file.
        trust_pickle: use plain :func:`pickle.load` (any object, and any code the file names, runs).

    Raises:
        UntrustedPickleError: the file needs another global and ``trust_pickle`` is False.
    """
    if isinstance(file, (bytes, bytearray)):
        fh, source, close = io.BytesIO(file), "the pickle", True
    elif isinstance(file, (str, os.PathLike)):
        fh, source, close = open(file, "rb"), os.fspath(file), True
    else:
        fh, source, close = file, getattr(file, "name", "the pickle"), False
    try:
        if trust_pickle:
            return pickle.load(fh)  # noqa: S301 (explicit opt-in)
        return DataUnpickler(fh, source=str(source)).load()
    finally:
        if close:
            fh.close()
