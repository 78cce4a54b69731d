"""memory:// rate-limit counters without a thread per 10 ms of traffic.

limits' MemoryStorage starts a new threading.Timer on every hit unless the last one
is still running, so a busy worker starts about a hundred threads a second, and each
start waits for the new thread to get the GIL from sixteen request threads. Profiled
under a hot on-sale (py-spy --gil, docs/performance.md) that was 6.5% of the workers'
Python time. This subclass, registered for the same scheme, sweeps expired counters
from one long-lived daemon thread per process instead. Expiry itself is unchanged:
MemoryStorage.get drops an expired counter when it is read, the sweep only frees memory.
"""

import threading
import time
from typing import ClassVar

from limits.storage import MemoryStorage

SWEEP_SECONDS = 1.0


class SweptMemoryStorage(MemoryStorage):
    # Replaces limits' own class for memory:// URIs.
    STORAGE_SCHEME: ClassVar[list[str]] = ["memory"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        threading.Thread(target=self._sweep, name="ratelimit-sweep", daemon=True).start()

    def _MemoryStorage__schedule_expiry(self) -> None:  # what every hit called
        pass

    def _sweep(self) -> None:
        while True:  # a daemon thread: it ends with the process
            time.sleep(SWEEP_SECONDS)
            self._MemoryStorage__expire_events()
