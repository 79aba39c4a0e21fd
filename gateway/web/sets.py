"""Where the web calculator finds its theoretical P&L sets.

``TheoSets(folder)`` accepts either one set folder (it holds ``meta.csv``) or a folder of
``<YYYY-MM-DD>/`` sets (the spool's ``internal/theo/``). In the second case the newest ``keep``
sets stay loaded (inside ``serve`` the daemon's store is shared), and the folder is looked at
again at most every ``refresh_s`` seconds when a request asks, so a new set published by the
daemon is served without a restart and a process behind a load balancer needs no signal.
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

from engine.pmc.theo.model import TheoSet
from gateway.theo_store import TheoStore, load_theo_set

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class TheoSets:
    """The sets one web process serves; safe to call from any thread."""

    def __init__(
        self,
        folder: Path | str,
        keep: int = 3,
        refresh_s: float = 30.0,
        store: TheoStore | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.refresh_s = refresh_s
        self._single: TheoSet | None = None
        self._store: TheoStore | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()
        if store is not None:
            self._store = store  # the daemon's own store, shared with the margin flow
        elif (self.folder / "meta.csv").is_file():
            self._single = load_theo_set(self.folder)
        else:
            self._store = TheoStore(self.folder, keep=keep)

    def _fresh(self) -> None:
        store = self._store
        if store is None:
            return
        now = time.monotonic()
        with self._lock:
            if now - self._checked < self.refresh_s:
                return
            self._checked = now
        store.refresh()

    def all(self) -> list[TheoSet]:
        """The loaded sets, newest first."""
        if self._single is not None:
            return [self._single]
        self._fresh()
        assert self._store is not None
        found = [self._store.get(d) for d in reversed(self._store.dates())]
        return [t for t in found if t is not None]

    def get(self, day: str | None) -> TheoSet | None:
        """The set of ``day`` (YYYY-MM-DD), the newest when ``day`` is None; None when absent."""
        if self._single is not None:
            single = self._single
            return single if day in (None, single.activity_date, single.name) else None
        self._fresh()
        assert self._store is not None
        if day is None:
            return self._store.latest()
        if not _DATE.match(day):
            return None
        return self._store.get(day)
