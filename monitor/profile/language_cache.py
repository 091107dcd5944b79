"""py3langid's model, kept uncompressed in a cache file: the wheel ships it as LZMA, whose
decompression costs about half a second of CPU at every start of a worker or a replay (its
arrays are 68 MB once decompressed); reading them back from the cache costs a few hundredths.

The cache file is named after the model file it was made from (its path, size and time), so a
new py3langid makes a new one. It is written once, atomically (a temporary file renamed, readable
by every user: the Docker image makes it as root for a worker that runs as another), by
whichever process needs it first; one that cannot be read (cut short, corrupted: the zip format
checks each array's CRC) is made again, and one that cannot be written (a read-only home) only
costs the decompression. Where: `DRIFT_MONITOR_CACHE_DIR`, else `$XDG_CACHE_HOME/drift-monitor`,
else `~/.cache/drift-monitor`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from array import array
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

_TYPECODES = {np.dtype(np.uint16): "H", np.dtype(np.uint32): "I", np.dtype(np.uint64): "L"}
_KEYS = ("ptc", "pc", "classes", "nextmove", "row", "output")


def cache_dir(environ: dict[str, str] | None = None) -> Path:
    """Where the cache files go.

    >>> str(cache_dir({"DRIFT_MONITOR_CACHE_DIR": "/x"})), str(cache_dir({"XDG_CACHE_HOME": "/y"}))
    ('/x', '/y/drift-monitor')
    """
    env = os.environ if environ is None else environ
    if env.get("DRIFT_MONITOR_CACHE_DIR"):
        return Path(env["DRIFT_MONITOR_CACHE_DIR"])
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "drift-monitor"


def cache_file(model: Path, directory: Path) -> Path:
    st = model.stat()
    key = f"{model.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()
    return directory / f"langid-{hashlib.sha256(key).hexdigest()[:16]}.npz"


def load_model(model: Path, directory: Path | None = None) -> tuple[Any, ...]:
    """py3langid's `load_model(model)`, read from the cache (made first if it must be)."""
    from py3langid import modelio

    cached = cache_file(model, cache_dir() if directory is None else directory)
    try:
        return _read(cached)
    except FileNotFoundError:
        pass
    except Exception as exc:  # any way a file can be unreadable: it is made again
        log.warning("language model cache %s unreadable (%s): made again", cached, exc)
    arrays = modelio.load_model(model)
    _write(cached, arrays)
    return arrays


def _read(path: Path) -> tuple[Any, ...]:
    with np.load(path, allow_pickle=False) as data:
        ptc, pc, classes, nextmove, row, output = (data[k] for k in _KEYS)
    if not (ptc.ndim == 2 and ptc.shape[1] == pc.shape[0] == classes.shape[0]
            and row.shape == output.shape):
        raise ValueError("arrays of mismatched shapes")
    return (ptc, pc, classes.tolist(), _to_array(nextmove), _to_array(row), output.tolist())


def _to_array(values: np.ndarray) -> array:
    out = array(_TYPECODES[values.dtype])
    out.frombytes(memoryview(np.ascontiguousarray(values)).cast("B"))
    return out


def _write(path: Path, arrays: tuple[Any, ...]) -> None:
    ptc, pc, classes, nextmove, row, output = arrays
    columns = {"ptc": ptc, "pc": pc, "classes": np.array(classes),
               "nextmove": np.frombuffer(nextmove, dtype=_dtype(nextmove)),
               "row": np.frombuffer(row, dtype=_dtype(row)),
               "output": np.asarray(output, dtype=np.int32)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.stem, suffix=".tmp",
                                         delete=False) as tmp:
            try:
                # Readable by all, as a plain open() makes it (mkstemp's is 0600): the Docker
                # image makes the cache as root and its worker reads it as another user.
                os.fchmod(tmp.fileno(), 0o644)
                np.savez(tmp, **columns)
                tmp.flush()
                os.fsync(tmp.fileno())
            except BaseException:
                os.unlink(tmp.name)
                raise
        os.replace(tmp.name, path)
    except OSError as exc:
        log.info("language model cache not written (%s): the model is decompressed at each "
                 "start", exc)


def _dtype(values: array) -> np.dtype:
    return next(d for d, code in _TYPECODES.items() if code == values.typecode
                and d.itemsize == values.itemsize)
