"""Adversarial checks of the language model cache (monitor/profile/language_cache.py).

The Docker image makes the cache at build time, as root, in DRIFT_MONITOR_CACHE_DIR, and the
worker runs as user `drift`: a cache file only its maker can read is, for the worker, a file
"unreadable: made again" at every start (and not writable either), so the cache never works
where it was made for."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from py3langid.langid import MODEL_DIR, MODEL_FILE

from monitor.profile import language_cache

MODEL = MODEL_DIR / MODEL_FILE


def test_a_cache_made_by_one_user_is_readable_by_others(tmp_path: Path) -> None:
    language_cache.load_model(MODEL, tmp_path / "cache")
    (path,) = (tmp_path / "cache").glob("langid-*.npz")
    mode = path.stat().st_mode & 0o777
    assert mode & 0o044 == 0o044, f"cache file mode {mode:o}: other users cannot read it"


def test_the_worker_user_reads_the_cache_the_image_build_made(tmp_path: Path) -> None:
    """As the Dockerfile does: made by root, read by another user (here `nobody`), who must
    neither decompress the model again nor warn about the cache."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:  # only root can play both users
        return test_a_cache_made_by_one_user_is_readable_by_others(tmp_path)
    shared = Path(tempfile.mkdtemp(prefix="break14-"))  # pytest's tmp_path is root's alone
    try:
        worker_reads(setpriv, shared)
    finally:
        shutil.rmtree(shared)


def worker_reads(setpriv: str, shared: Path) -> None:
    shared.chmod(0o755)
    cache = shared / "cache"
    language_cache.load_model(MODEL, cache)
    script = ("import logging, sys; logging.basicConfig(level=logging.INFO); "
              "from py3langid import modelio; "
              "modelio.load_model = lambda p: sys.exit('decompressed again'); "
              "from monitor.profile import language_cache as c; "
              f"c.load_model(c.Path({str(MODEL)!r}), c.Path({str(cache)!r}))")
    done = subprocess.run(
        [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
         script], capture_output=True, text=True, timeout=60,
        cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0 and "unreadable" not in done.stderr, done.stderr
