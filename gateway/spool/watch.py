"""Finding complete inbound files: which paths are inputs, and when a nominated one is finished.

Watchdog events, the start-up scan, the periodic sweep and the SFTP server's upload hint all just
*nominate* paths. Candidates are files at ``firms/<firm>/inbound/<flow>/<name>`` (and
``inbound/pmc/<YYYY-MM-DD>/<name>``, a position file for that date's P&L set); temporary names
(dot-files, ``*.part``, ``*.filepart``, ``*.tmp``, ``*.upload``) are ignored until renamed. A
nominated file is ready when its writer reported it complete (our SFTP server), or when its size
and mtime have stayed the same, as observed here, for ``stable_interval_s`` (files written in place
by another SFTP server). The mtime only tells that a file is still changing; it never dates it,
since a client can set it (``put -p``, lftp) to any past or future time.

Each candidate carries its receipt instant on the daemon's clock: the instant its writer reported
it complete (the embedded server's close instant), else the moment a nomination first named it
(watchdog event, scan or sweep). Nothing here touches the ledger or moves a file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler

IGNORED_SUFFIXES = (".part", ".filepart", ".tmp", ".upload")
_DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def is_temporary_name(name: str) -> bool:
    return name.startswith(".") or name.endswith(IGNORED_SUFFIXES)


def inbound_route(root: Path, path: Path) -> tuple[str, str] | None:
    """(firm, flow) of an inbound path under the spool ``root``, or None when it is not one."""
    try:
        rel = path.relative_to(root / "firms")
    except ValueError:
        return None
    parts = rel.parts
    if len(parts) == 5 and parts[2] == "pmc" and _DATE_DIR.match(parts[3]):
        # inbound/pmc/<YYYY-MM-DD>/<name>: a position file for that date's P&L set
        parts = (*parts[:3], parts[4])
    if len(parts) != 4 or parts[1] != "inbound" or is_temporary_name(parts[3]):
        return None
    return parts[0], parts[2]


def scan_inbound(root: Path, nominate: Callable[[Path], object]) -> None:
    """Nominate every file in every inbound folder under the spool ``root``."""
    firms = root / "firms"
    if not firms.is_dir():
        return
    for firm_dir in firms.iterdir():
        inbound = firm_dir / "inbound"
        if not inbound.is_dir():
            continue
        for flow_dir in inbound.iterdir():
            if not flow_dir.is_dir():
                continue
            with contextlib.suppress(OSError):
                for entry in os.scandir(flow_dir):
                    if entry.is_file(follow_symlinks=False):
                        nominate(Path(entry.path))
                    elif (
                        flow_dir.name == "pmc"
                        and _DATE_DIR.match(entry.name)
                        and entry.is_dir(follow_symlinks=False)
                    ):
                        for dated in os.scandir(entry.path):
                            if dated.is_file(follow_symlinks=False):
                                nominate(Path(dated.path))


@dataclass
class Candidate:
    size: int
    mtime_ns: int
    stable_since: float
    received_at: dt.datetime
    complete: bool = False


class StableFiles:
    """Nominated files being watched until they are complete (intake thread only)."""

    def __init__(self, stable_interval_s: float) -> None:
        self.stable_interval_s = stable_interval_s
        self._candidates: dict[Path, Candidate] = {}

    def __len__(self) -> int:
        return len(self._candidates)

    def observe(self, path: Path, complete: bool, at: dt.datetime) -> None:
        """Start or go on watching ``path``, named by a nomination made at ``at`` (daemon clock).

        ``complete`` when its writer has closed it; ``at`` is then the writer's close instant and
        becomes the receipt instant. Otherwise ``at`` counts only for a name not watched yet.
        """
        try:
            st = path.lstat()
        except FileNotFoundError:
            self._candidates.pop(path, None)
            return
        if not path.is_file() or path.is_symlink():
            return
        current = self._candidates.get(path)
        if current is None:
            current = Candidate(st.st_size, st.st_mtime_ns, time.monotonic(), at)
            self._candidates[path] = current
        elif (current.size, current.mtime_ns) != (st.st_size, st.st_mtime_ns):
            current.size, current.mtime_ns = st.st_size, st.st_mtime_ns
            current.stable_since = time.monotonic()
        if complete:
            current.complete = True
            current.received_at = at

    def ready(self) -> list[tuple[Path, dt.datetime]]:
        """Files complete or stable now with their receipt instants, in order of receipt (file
        ids then follow arrival order).

        They stay watched until ``discard``; files that changed restart their wait (keeping the
        instant they were first seen) and files that vanished are forgotten.
        """
        now = time.monotonic()
        ready: list[tuple[dt.datetime, Path]] = []
        for path, cand in list(self._candidates.items()):
            try:
                st = path.lstat()
            except FileNotFoundError:
                del self._candidates[path]
                continue
            if (st.st_size, st.st_mtime_ns) != (cand.size, cand.mtime_ns):
                cand.size, cand.mtime_ns, cand.stable_since = st.st_size, st.st_mtime_ns, now
                continue
            if cand.complete or now - cand.stable_since >= self.stable_interval_s:
                ready.append((cand.received_at, path))
        return [(path, at) for at, path in sorted(ready)]

    def discard(self, path: Path) -> None:
        del self._candidates[path]


class EventForwarder(FileSystemEventHandler):
    """Turns watchdog events into nominations (or internal-folder hints)."""

    def __init__(
        self, nominate: Callable[[Path], None], on_internal: Callable[[Path], None] | None
    ) -> None:
        self.nominate = nominate
        self.on_internal = on_internal

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if not raw:
                continue
            path = Path(os.fsdecode(raw))
            if self.on_internal is not None and "internal" in path.parts:
                self.on_internal(path)
            else:
                self.nominate(path)
