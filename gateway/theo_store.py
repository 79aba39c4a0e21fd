"""Theoretical P&L sets on disk: loading one folder, and the store of the newest few.

``load_theo_set(folder)`` reads the five CSV files of a set and hands their bytes to
``engine.pmc.theo.read.parse_theo_set``; problems surface as ``TheoSetInvalid`` naming file, line,
column and value. ``TheoStore(root, keep)`` watches ``spool/internal/theo/<YYYY-MM-DD>/``: a
folder is loaded once its ``meta.csv`` exists (the producer writes it last), the newest ``keep``
dates stay in memory, and ``latest()`` / ``get(date)`` are safe to call from any thread. A set
that fails to load is logged once and retried only when its ``meta.csv`` changes.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

from engine.errors import Location
from engine.pmc.theo.model import FILES, TheoSet
from engine.pmc.theo.read import TheoSetInvalid, parse_theo_set

log = logging.getLogger(__name__)

_DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def load_theo_set(folder: Path | str) -> TheoSet:
    """Read and parse the theo set in ``folder``; raises ``TheoSetInvalid`` when unusable."""
    path = Path(folder)
    if not path.is_dir():
        raise TheoSetInvalid([f"{path}: not a folder"], Location(file=str(path)))
    files: dict[str, bytes] = {}
    missing: list[str] = []
    for name in FILES:
        try:
            files[name] = (path / name).read_bytes()
        except FileNotFoundError:
            missing.append(name)
        except OSError as exc:
            raise TheoSetInvalid(
                [f"{path / name}: cannot be read ({exc.strerror or exc})"],
                Location(file=name),
            ) from exc
    if missing:
        raise TheoSetInvalid(
            [f"{path}: {name} is missing" for name in missing], Location(file=missing[0])
        )
    return parse_theo_set(files, name=path.name)


class TheoStore:
    """The newest ``keep`` theo sets under ``root`` (one folder per activity date)."""

    def __init__(self, root: Path | str, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.root = Path(root)
        self.keep = keep
        self._sets: dict[str, TheoSet] = {}
        self._failed: dict[str, float] = {}  # date -> meta.csv mtime at the failed attempt
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()

    def _complete_dates(self) -> list[str]:
        try:
            entries = list(self.root.iterdir())
        except FileNotFoundError:
            return []
        return sorted(
            e.name for e in entries if _DATE_DIR.match(e.name) and (e / "meta.csv").is_file()
        )

    def refresh(self) -> list[str]:
        """Load complete sets not loaded yet among the newest ``keep``; returns dates loaded."""
        loaded: list[str] = []
        with self._load_lock:
            wanted = self._complete_dates()[-self.keep :]
            for day in wanted:
                with self._lock:
                    if day in self._sets:
                        continue
                meta = self.root / day / "meta.csv"
                try:
                    mtime = meta.stat().st_mtime
                except OSError:
                    continue
                if self._failed.get(day) == mtime:
                    continue
                try:
                    theo = load_theo_set(self.root / day)
                except TheoSetInvalid as exc:
                    self._failed[day] = mtime
                    log.error(
                        "theo set rejected date=%s problems=%d first=%s",
                        day,
                        len(exc.problems),
                        exc.problems[0] if exc.problems else exc,
                    )
                    continue
                with self._lock:
                    self._sets[day] = theo
                self._failed.pop(day, None)
                loaded.append(day)
                log.info("theo set loaded date=%s instruments=%d", day, theo.size)
            with self._lock:
                keep = set(sorted(self._sets)[-self.keep :])
                for day in list(self._sets):
                    if day not in keep:
                        del self._sets[day]
                        log.info("theo set dropped date=%s", day)
        return loaded

    def latest(self) -> TheoSet | None:
        """The set with the newest activity date, or None when none is loaded."""
        with self._lock:
            if not self._sets:
                return None
            return self._sets[max(self._sets)]

    def get(self, day: str) -> TheoSet | None:
        """The set of one date (YYYY-MM-DD), loading it if it is complete on disk."""
        with self._lock:
            theo = self._sets.get(day)
        if theo is not None or not _DATE_DIR.match(day):
            return theo
        if (self.root / day / "meta.csv").is_file():
            self.refresh()
            with self._lock:
                theo = self._sets.get(day)
            if theo is None:
                # an older date than the newest `keep`: load it on demand without keeping it
                try:
                    return load_theo_set(self.root / day)
                except TheoSetInvalid:
                    return None
        return theo

    def dates(self) -> list[str]:
        """Dates currently in memory, oldest first."""
        with self._lock:
            return sorted(self._sets)
