"""scipy.stats, imported when first needed: importing it costs most of a second (more than the
rest of drift-monitor together), which a replay of a few hundred thousand records would spend
before reading its first line. `warm_up()` imports it in the background meanwhile.

>>> bool(stats().kstwo.isf(0.05, 50) > 0)
True
"""

from __future__ import annotations

import threading
from types import ModuleType


def stats() -> ModuleType:
    """The scipy.stats module (imported on the first call; later calls are a lookup)."""
    from scipy import stats as module

    return module


def special() -> ModuleType:
    from scipy import special as module

    return module


def warm_up() -> threading.Thread:
    """Import scipy.stats in a background thread (the import lock makes a caller that needs it
    meanwhile wait for that import, not start another); the thread, to join when it must be in.

    >>> warm_up().join(); stats().__name__
    'scipy.stats'
    """
    thread = threading.Thread(target=stats, name="scipy-import", daemon=True)
    thread.start()
    return thread
