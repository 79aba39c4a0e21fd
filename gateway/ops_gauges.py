"""Gauges the daemon samples from the machine rather than from its work: free disk space on the
spool and the newest complete theo P&L set.

They are refreshed from the daemon's periodic tick, at most every ``interval_s``, so that a
Prometheus rule can alert on a full disk or stale inputs before anything fails. (Whether today's
expiring positions are loaded is the exercise-by-exception flow's own gauge.)
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from engine.calendar import BusinessCalendar
from gateway import metrics

log = logging.getLogger(__name__)

_DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def newest_complete_date(root: Path) -> dt.date | None:
    try:
        names = [
            e.name for e in root.iterdir() if _DATE_DIR.match(e.name) and (e / "meta.csv").is_file()
        ]
    except OSError:
        return None
    for name in sorted(names, reverse=True):
        try:
            return dt.date.fromisoformat(name)
        except ValueError:
            continue
    return None


def _midnight_utc(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC).timestamp()


class OpsGauges:
    """``tick()`` from the daemon loop; samples every ``interval_s`` seconds."""

    def __init__(
        self,
        spool_root: Path,
        clock: Callable[[], dt.datetime],
        calendar: Callable[[], BusinessCalendar],
        interval_s: float = 15.0,
    ) -> None:
        self.spool_root = spool_root
        self.clock = clock
        self.calendar = calendar
        self.interval_s = interval_s
        self._last = float("-inf")

    def tick(self) -> None:
        if time.monotonic() - self._last < self.interval_s:
            return
        self._last = time.monotonic()
        self.sample()

    def sample(self) -> None:
        try:
            stat = os.statvfs(self.spool_root)
        except OSError as exc:
            log.warning("cannot read free space of spool=%s: %s", self.spool_root, exc)
        else:
            metrics.SPOOL_FREE_BYTES.set(stat.f_bavail * stat.f_frsize)
            metrics.SPOOL_SIZE_BYTES.set(stat.f_blocks * stat.f_frsize)
        internal = self.spool_root / "internal"
        theo = newest_complete_date(internal / "theo")
        if theo is not None:
            metrics.PMC_THEO_SET_DATE.set(_midnight_utc(theo))
