"""The daemon component that keeps a folder of reference sets loaded (theo P&L sets, expiring
positions): one thread that runs a ``tick`` at start, whenever it is poked and on a timer.

Watchdog events and intake sweeps only ``poke`` it; the tick (seconds for a big set) runs on the
loader's own thread, so it never holds up the intake. A poke waits ``settle_s`` before the tick
so a set still being copied can settle (its ``meta.csv`` is written last anyway). A tick that
raises is logged and the loop goes on: one bad moment never stops the loader.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class SetLoader:
    """Runs ``tick`` on its own thread: at ``start``, after each ``poke`` and every
    ``interval_s``."""

    def __init__(
        self,
        name: str,
        tick: Callable[[], None],
        *,
        interval_s: float,
        settle_s: float = 0.3,
        first_tick: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._first_tick = first_tick
        self.interval_s = interval_s
        self.settle_s = settle_s
        self._tick_fn = tick
        self._poke = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poke(self, _path: object = None) -> None:
        """Something changed in the watched folder (called from any thread)."""
        self._poke.set()

    def start(self) -> None:
        """First tick on the caller's thread (the daemon starts with the sets loaded), then
        the loop on the loader's own. With ``first_tick`` that lighter tick runs at start and
        the full one follows at once on the loader's thread (work that may wait on the network
        never holds up the start)."""
        self.tick(self._first_tick)
        self._thread = threading.Thread(target=self._run, name=f"{self.name}-loader", daemon=True)
        self._thread.start()
        if self._first_tick is not None:
            self.poke()

    def tick(self, fn: Callable[[], None] | None = None) -> None:
        try:
            (fn or self._tick_fn)()
        except Exception:
            log.exception("%s loader: tick failed", self.name)

    def _run(self) -> None:
        while not self._stop.is_set():
            poked = self._poke.wait(self.interval_s)
            self._poke.clear()
            if poked and self._stop.wait(self.settle_s):
                break
            if not self._stop.is_set():
                self.tick()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._poke.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def healthy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
