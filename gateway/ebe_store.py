"""Expiring-position sets on disk: loading ``internal/ebe/<YYYY-MM-DD>/``.

A folder is complete once its ``meta.csv`` exists (the producer writes it last). A set is loaded
when it first appears and again whenever its files change (a newer set for the same date replaces
the older one). A set that fails to load is refused whole: the previous set of that date stays in
use, the problems are logged and raised as one alert, and the set is retried only when its files
change again. The store keeps every date it has loaded (sets are small next to the ledger and an
expiration date's set is needed until its file is published); ``forget_before`` drops old ones.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path

from engine.ebe.positions import FILES, META, ExpiringSet, ExpiringSetInvalid, parse_expiring_set

log = logging.getLogger(__name__)

_DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_PROBLEMS_LOGGED = 50


def load_expiring_set(folder: Path, *, dated_folder: bool = True) -> ExpiringSet:
    """Read and parse the set in ``folder``; ``ExpiringSetInvalid`` when unusable. With
    ``dated_folder`` (the spool's ``internal/ebe/<date>/``) the folder must be named after the
    set's expiration date."""
    files: dict[str, bytes] = {}
    problems = []
    for name in FILES:
        try:
            files[name] = (folder / name).read_bytes()
        except FileNotFoundError:
            problems.append(f"{folder.name}/{name}: missing")
        except OSError as exc:
            problems.append(f"{folder.name}/{name}: cannot be read ({exc.strerror or exc})")
    if problems:
        raise ExpiringSetInvalid(problems)
    loaded = parse_expiring_set(files)
    if dated_folder and loaded.expiration_date.isoformat() != folder.name:
        raise ExpiringSetInvalid(
            [
                f"{META}: expiration_date {loaded.expiration_date.isoformat()} is not the "
                f"folder's date {folder.name}"
            ]
        )
    return loaded


def fingerprint(folder: Path) -> str:
    """Size and mtime of the set's files: changes when the producer writes a new set."""
    parts = []
    for name in FILES:
        try:
            st = (folder / name).stat()
        except OSError:
            parts.append(f"{name}:-")
            continue
        parts.append(f"{name}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


class ExpiringStore:
    """The loaded sets under ``root``, by expiration date; thread-safe."""

    def __init__(
        self,
        root: Path,
        *,
        on_loaded: Callable[[ExpiringSet, str], None] | None = None,
        on_rejected: Callable[[str, ExpiringSetInvalid], None] | None = None,
    ) -> None:
        self.root = Path(root)
        self.on_loaded = on_loaded
        self.on_rejected = on_rejected
        self._sets: dict[str, ExpiringSet] = {}
        self._seen: dict[str, str] = {}  # date -> fingerprint of the last attempt
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()

    def refresh(self) -> list[str]:
        """Load every complete set that is new or changed; returns the dates loaded."""
        loaded = []
        with self._load_lock:
            try:
                entries = sorted(self.root.iterdir())
            except FileNotFoundError:
                return []
            for folder in entries:
                day = folder.name
                if not _DATE_DIR.match(day) or not (folder / META).is_file():
                    continue
                mark = fingerprint(folder)
                if self._seen.get(day) == mark:
                    continue
                self._seen[day] = mark
                try:
                    positions = load_expiring_set(folder)
                except ExpiringSetInvalid as exc:
                    self._rejected(day, exc)
                    continue
                with self._lock:
                    self._sets[day] = positions
                loaded.append(day)
                log.info("expiring positions loaded date=%s rows=%d", day, len(positions))
                if self.on_loaded is not None:
                    self.on_loaded(positions, mark)
        return loaded

    def _rejected(self, day: str, exc: ExpiringSetInvalid) -> None:
        kept = "the previous set stays" if day in self._sets else "no set for that date"
        log.error(
            "expiring-position set refused date=%s problems=%d (%s)", day, len(exc.problems), kept
        )
        for problem in exc.problems[:MAX_PROBLEMS_LOGGED]:
            log.error("expiring-position set %s: %s", day, problem)
        if self.on_rejected is not None:
            self.on_rejected(day, exc)

    def get(self, day: str) -> ExpiringSet | None:
        with self._lock:
            return self._sets.get(day)

    def dates(self) -> list[str]:
        with self._lock:
            return sorted(self._sets)

    def forget_before(self, day: str) -> None:
        with self._lock:
            for d in [d for d in self._sets if d < day]:
                del self._sets[d]
