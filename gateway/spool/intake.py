"""Crash-safe spool intake: find complete inbound files, claim them, hand them to a flow, archive.

Theory of operation
-------------------
Candidates are files at ``firms/<firm>/inbound/<flow>/<name>``. Watchdog events, the start-up scan,
the periodic sweep and the SFTP server's upload hint all just *nominate* paths; the intake thread
decides. Temporary names (dot-files, ``*.part``, ``*.filepart``, ``*.tmp``) are ignored until
renamed. A nominated file is taken when our SFTP server reported it complete, or when its size and
mtime have stayed the same for ``stable_interval_s`` (files written in place by another SFTP
server). A file whose flow has no handler is left where it is (logged once per folder).

Claiming writes the intent into the ledger first (state ``received`` with the planned work path),
then renames the file into the spool's ``work`` folder (same filesystem, atomic), hashes it and
records ``claimed``. A worker thread runs the flow handler, which records ``processed`` in the same
ledger
transaction as its results; the intake then moves the original to ``archive/<receipt date>/`` and
records ``archived``. Unreadable inputs (``UnreadableInput``) go to ``quarantine/`` with a
``.reason.json``; transient trouble leaves the file claimed for a retry with backoff. At start-up
every non-terminal ledger row is reconciled with the disk, so ``kill -9`` at any instant loses
nothing and processes nothing twice. The same content from the same firm and flow twice is recorded
as a ``duplicate`` and not processed again.

The receipt instant of a file is the moment its last byte was written (its mtime), expressed on
the daemon's clock, so the stable-size wait never moves an upload at 23:59:59 CT into the next
cycle.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from engine.errors import UnreadableInput
from gateway import metrics
from gateway.alerts import raise_alert
from gateway.errors import TransientError
from gateway.spool.fsio import fsync_dir, write_atomic
from gateway.store import FileRow, Ledger

log = logging.getLogger(__name__)

CHICAGO = ZoneInfo("America/Chicago")
IGNORED_SUFFIXES = (".part", ".filepart", ".tmp", ".upload")
FLOWS = ("dpl", "pmc", "ebe")


def is_temporary_name(name: str) -> bool:
    return name.startswith(".") or name.endswith(IGNORED_SUFFIXES)


@dataclass(frozen=True)
class ClaimedFile:
    """An input file owned by the daemon, in the work area, with its ledger id."""

    file_id: int
    flow: str
    firm: str
    name: str
    path: Path
    sha256: str
    size: int
    received_at: dt.datetime

    @property
    def stem(self) -> str:
        return Path(self.name).stem


class FlowHandler(Protocol):
    """Processes one claimed file and records ``processed`` in the ledger.

    Raises ``UnreadableInput`` for a file that cannot be read at all (quarantined) and
    ``TransientError`` for trouble worth a retry.
    """

    def __call__(self, claimed: ClaimedFile) -> None: ...


Alert = Callable[[str, str, Mapping[str, object]], None]


@dataclass
class _Candidate:
    size: int
    mtime_ns: int
    first_seen: float
    complete: bool = False


class SpoolIntake:
    """The intake component: watcher, scan, sweep, claim, dispatch, archive, quarantine."""

    name = "intake"

    def __init__(
        self,
        *,
        spool_root: Path,
        ledger: Ledger,
        handlers: Mapping[str, FlowHandler],
        clock: Callable[[], dt.datetime],
        stable_interval_s: float,
        sweep_interval_s: float,
        workers: int,
        alert: Alert = raise_alert,
        technical_contact: Callable[[str], str] = lambda firm: "",
        on_internal: Callable[[Path], None] | None = None,
    ) -> None:
        self.root = spool_root
        self.ledger = ledger
        self.handlers = dict(handlers)
        self.clock = clock
        self.stable_interval_s = stable_interval_s
        self.sweep_interval_s = sweep_interval_s
        self.alert = alert
        self.technical_contact = technical_contact
        self.on_internal = on_internal
        self._nominations: queue.Queue[tuple[Path, bool]] = queue.Queue()
        self._candidates: dict[Path, _Candidate] = {}
        self._in_flight: set[int] = set()
        self._retry_at: dict[int, float] = {}
        self._unhandled_logged: set[Path] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="flow")
        self._thread: threading.Thread | None = None
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self._next_sweep = 0.0

    # -- component ---------------------------------------------------------------------------

    def start(self) -> None:
        for folder in ("firms", "work", "archive", "quarantine", "internal"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        self.reconcile()
        self.scan()
        observer = Observer()
        handler = _EventForwarder(self)
        observer.schedule(handler, str(self.root / "firms"), recursive=True)
        observer.schedule(handler, str(self.root / "internal"), recursive=True)
        observer.daemon = True
        observer.start()
        self._observer = observer
        self._thread = threading.Thread(target=self._run, name="intake", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        if self._observer is not None:
            self._observer.stop()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._observer is not None:
            self._observer.join(timeout)

    def healthy(self) -> bool:
        return (
            self._thread is not None
            and self._thread.is_alive()
            and self._observer is not None
            and self._observer.is_alive()
        )

    # -- nominations ---------------------------------------------------------------------------

    def nominate(self, path: Path, complete: bool = False) -> None:
        """A hint that ``path`` may be a new input; ``complete`` when its writer has closed it."""
        self._nominations.put((Path(path), complete))

    def scan(self) -> None:
        """Nominate every file in every inbound folder (start-up scan and periodic sweep)."""
        firms = self.root / "firms"
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
                            self.nominate(Path(entry.path))
        if self.on_internal is not None:
            self.on_internal(self.root / "internal")

    def _route(self, path: Path) -> tuple[str, str] | None:
        """(firm, flow) of an inbound path, or None when it is not one."""
        try:
            rel = path.relative_to(self.root / "firms")
        except ValueError:
            return None
        parts = rel.parts
        if len(parts) != 4 or parts[1] != "inbound" or is_temporary_name(parts[3]):
            return None
        return parts[0], parts[2]

    # -- main loop -------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                path, complete = self._nominations.get(timeout=0.2)
                self._observe(path, complete)
                while True:  # drain what is queued before evaluating
                    path, complete = self._nominations.get_nowait()
                    self._observe(path, complete)
            except queue.Empty:
                pass
            try:
                self._evaluate()
                now = time.monotonic()
                if now >= self._next_sweep:
                    self._next_sweep = now + self.sweep_interval_s
                    self.scan()
                    self._retry_claimed()
            except Exception:
                log.exception("intake loop error")
                time.sleep(1)

    def _observe(self, path: Path, complete: bool) -> None:
        route = self._route(path)
        if route is None:
            return
        firm, flow = route
        if flow not in self.handlers:
            folder = path.parent
            if folder not in self._unhandled_logged:
                self._unhandled_logged.add(folder)
                log.warning("no handler for flow %r yet: leaving files in %s", flow, folder)
            return
        try:
            st = path.lstat()
        except FileNotFoundError:
            self._candidates.pop(path, None)
            return
        if not path.is_file() or path.is_symlink():
            return
        current = self._candidates.get(path)
        if current is None or (current.size, current.mtime_ns) != (st.st_size, st.st_mtime_ns):
            current = _Candidate(st.st_size, st.st_mtime_ns, time.monotonic())
            self._candidates[path] = current
        if complete:
            current.complete = True

    def _evaluate(self) -> None:
        now = time.monotonic()
        ready: list[tuple[int, Path]] = []
        for path, cand in list(self._candidates.items()):
            try:
                st = path.lstat()
            except FileNotFoundError:
                del self._candidates[path]
                continue
            if (st.st_size, st.st_mtime_ns) != (cand.size, cand.mtime_ns):
                self._candidates[path] = _Candidate(st.st_size, st.st_mtime_ns, now)
                continue
            age_s = time.time() - st.st_mtime_ns / 1e9
            if cand.complete or (
                now - cand.first_seen >= self.stable_interval_s and age_s >= self.stable_interval_s
            ):
                ready.append((cand.mtime_ns, path))
        metrics.SPOOL_BACKLOG.set(len(self._candidates) + len(self._in_flight))
        for _, path in sorted(ready):  # oldest first: file ids follow arrival order
            del self._candidates[path]
            try:
                claimed = self._claim(path)
            except Exception:
                log.exception("cannot claim %s; will retry", path)
                continue
            if claimed is not None:
                self._dispatch(claimed)

    # -- claim, process, archive -------------------------------------------------------------------

    def _received_at(self, mtime_ns: int) -> dt.datetime:
        age_s = max(0.0, time.time() - mtime_ns / 1e9)
        return self.clock() - dt.timedelta(seconds=age_s)

    def _claim(self, path: Path) -> ClaimedFile | None:
        route = self._route(path)
        if route is None:
            return None
        firm, flow = route
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        received_at = self._received_at(st.st_mtime_ns)
        work_dir = self.root / "work" / flow / firm
        work_dir.mkdir(parents=True, exist_ok=True)
        work_path = work_dir / f"{secrets.token_hex(8)}__{path.name}"
        file_id = self.ledger.record_file(
            flow=flow,
            firm=firm,
            account=firm,
            name=path.name,
            sha256="",
            size=st.st_size,
            received_at=received_at,
            cycle=None,
            work_path=str(work_path),
            source=str(path),
        )
        try:
            os.rename(path, work_path)
        except FileNotFoundError:
            self.ledger.set_file_state(file_id, "vanished", "gone before it could be claimed")
            return None
        fsync_dir(work_dir)
        fsync_dir(path.parent)
        return self._finish_claim(self.ledger.file(file_id), work_path)

    def _finish_claim(self, row: FileRow, work_path: Path) -> ClaimedFile | None:
        digest, size = _sha256(work_path)
        metrics.FILES_RECEIVED.labels(flow=row.flow, firm=row.firm).inc()
        original = self.ledger.find_processed_duplicate(row.firm, row.flow, digest, row.id)
        if original is not None:
            self.ledger.set_file_state(row.id, "claimed", "hashed", sha256=digest, size=size)
            log.info(
                "duplicate: %s from firm %s has the content of file %d; not processed again",
                row.name,
                row.firm,
                original,
            )
            metrics.FILES_DUPLICATE.labels(flow=row.flow).inc()
            archived = self._archive_path(row)
            self._move(work_path, archived)
            self.ledger.set_file_state(
                row.id,
                "duplicate",
                f"same content as file {original}",
                duplicate_of=original,
                archive_path=str(archived),
            )
            return None
        self.ledger.set_file_state(row.id, "claimed", "hashed", sha256=digest, size=size)
        return ClaimedFile(
            file_id=row.id,
            flow=row.flow,
            firm=row.firm,
            name=row.name,
            path=work_path,
            sha256=digest,
            size=size,
            received_at=row.received_at,
        )

    def _dispatch(self, claimed: ClaimedFile) -> None:
        with self._lock:
            if claimed.file_id in self._in_flight:
                return
            self._in_flight.add(claimed.file_id)
        try:
            self._pool.submit(self._process, claimed)
        except RuntimeError:  # pool shut down: the file stays claimed for the next start
            with self._lock:
                self._in_flight.discard(claimed.file_id)

    def _process(self, claimed: ClaimedFile) -> None:
        started = time.monotonic()
        try:
            self.handlers[claimed.flow](claimed)
        except UnreadableInput as exc:
            self._quarantine(claimed, exc)
        except TransientError as exc:
            metrics.FILES_FAILED.labels(flow=claimed.flow).inc()
            delay = min(300.0, 5.0 * 2 ** min(6, len(self.ledger.file_events(claimed.file_id))))
            self._retry_at[claimed.file_id] = time.monotonic() + delay
            self.alert(
                "processing_retrying",
                f"{claimed.flow} file {claimed.name!r} of firm {claimed.firm} could not be "
                f"finished ({exc}); it stays claimed, retry in {delay:.0f}s",
                {"file_id": claimed.file_id, "error": str(exc)},
            )
        except Exception as exc:
            log.exception("processing %s (file %d) failed", claimed.name, claimed.file_id)
            self.ledger.set_file_state(claimed.file_id, "failed", f"{type(exc).__name__}: {exc}")
            self.alert(
                "processing_failed",
                f"{claimed.flow} file {claimed.name} of firm "
                f"{claimed.firm} could not be processed; kept for retry at restart",
                {"file_id": claimed.file_id, "error": str(exc)},
            )
        else:
            self._archive(claimed.file_id, claimed.path)
        finally:
            metrics.PROCESSING_SECONDS.labels(flow=claimed.flow).observe(time.monotonic() - started)
            with self._lock:
                self._in_flight.discard(claimed.file_id)

    def _archive_path(self, row: FileRow) -> Path:
        day = row.received_at.astimezone(CHICAGO).date().isoformat()
        return self.root / "archive" / day / row.firm / row.flow / f"{row.id}__{row.name}"

    def _archive(self, file_id: int, work_path: Path) -> None:
        row = self.ledger.file(file_id)
        target = self._archive_path(row)
        self._move(work_path, target)
        self.ledger.set_file_state(file_id, "archived", str(target), archive_path=str(target))

    def _move(self, source: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        fsync_dir(target.parent)

    def _quarantine(self, claimed: ClaimedFile, exc: UnreadableInput) -> None:
        target = self.root / "quarantine" / f"{claimed.file_id}__{claimed.name}"
        self._move(claimed.path, target)
        contact = self.technical_contact(claimed.firm)
        reason = {
            "file": claimed.name,
            "firm": claimed.firm,
            "flow": claimed.flow,
            "file_id": claimed.file_id,
            "sha256": claimed.sha256,
            "size": claimed.size,
            "received_at": claimed.received_at.isoformat(),
            "reason": exc.reason,
            "message": exc.message,
            "technical_contact": contact,
        }
        write_atomic(
            target.with_name(target.name + ".reason.json"),
            (json.dumps(reason, indent=2) + "\n").encode(),
        )
        self.ledger.set_file_state(
            claimed.file_id, "quarantined", f"{exc.reason}: {exc.message}", reason=exc.reason
        )
        metrics.FILES_QUARANTINED.labels(flow=claimed.flow).inc()
        self.alert(
            "file_quarantined",
            f"{claimed.flow} file {claimed.name!r} from firm {claimed.firm} cannot be read "
            f"({exc.reason}: {exc.message}); contact {contact or 'unknown'}",
            {"file_id": claimed.file_id, "firm": claimed.firm, "technical_contact": contact},
        )

    # -- recovery ----------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Bring every non-terminal ledger row in line with the disk (after a crash)."""
        for row in self.ledger.unfinished_files():
            work = Path(row.work_path) if row.work_path else None
            try:
                if row.state == "received":
                    source = Path(row.source or "")
                    if work is not None and work.exists():
                        claimed = self._finish_claim(row, work)
                    elif source.exists() and work is not None:
                        os.rename(source, work)
                        claimed = self._finish_claim(row, work)
                    else:
                        self.ledger.set_file_state(row.id, "vanished", "not found at restart")
                        claimed = None
                    if claimed is not None:
                        self._dispatch(claimed)
                elif row.state in ("claimed", "failed"):
                    if work is not None and work.exists():
                        self._dispatch(
                            ClaimedFile(
                                file_id=row.id,
                                flow=row.flow,
                                firm=row.firm,
                                name=row.name,
                                path=work,
                                sha256=row.sha256,
                                size=row.size,
                                received_at=row.received_at,
                            )
                        )
                    else:
                        self.ledger.set_file_state(row.id, "vanished", "work file missing")
                elif row.state == "processed":
                    if work is not None and work.exists():
                        self._archive(row.id, work)
                    else:
                        self.ledger.set_file_state(
                            row.id,
                            "archived",
                            "already moved",
                            archive_path=str(self._archive_path(row)),
                        )
            except Exception:
                log.exception("cannot reconcile file %d (%s)", row.id, row.state)

    def _retry_claimed(self) -> None:
        now = time.monotonic()
        for file_id, at in list(self._retry_at.items()):
            if at <= now:
                del self._retry_at[file_id]
                row = self.ledger.file(file_id)
                if row.state == "claimed" and row.work_path and Path(row.work_path).exists():
                    self._dispatch(
                        ClaimedFile(
                            file_id=row.id,
                            flow=row.flow,
                            firm=row.firm,
                            name=row.name,
                            path=Path(row.work_path),
                            sha256=row.sha256,
                            size=row.size,
                            received_at=row.received_at,
                        )
                    )

    def submit_bytes(
        self,
        *,
        firm: str,
        flow: str,
        name: str,
        data: bytes,
        source: str,
        process: Callable[[ClaimedFile], object],
    ) -> tuple[object, int | None]:
        """Take an input that arrived as bytes (AMQP), through the same ledger states as a file.

        The bytes are recorded, written into ``work/``, hashed, checked for duplicates and passed
        to ``process`` in the caller's thread; the original is archived like any upload. Returns
        ``(process result, None)``, or ``(None, original file id)`` for a duplicate.
        ``UnreadableInput`` is quarantined and re-raised so the caller can answer with it.
        """
        name = Path(name).name or "submission"
        if is_temporary_name(name):
            name = name.lstrip(".") or "submission"
        work_dir = self.root / "work" / flow / firm
        work_dir.mkdir(parents=True, exist_ok=True)
        work_path = work_dir / f"{secrets.token_hex(8)}__{name}"
        file_id = self.ledger.record_file(
            flow=flow,
            firm=firm,
            account=firm,
            name=name,
            sha256="",
            size=len(data),
            received_at=self.clock(),
            cycle=None,
            work_path=str(work_path),
            source=source,
        )
        write_atomic(work_path, data)
        claimed = self._finish_claim(self.ledger.file(file_id), work_path)
        if claimed is None:
            return None, self.ledger.duplicate_of(file_id)
        with self._lock:
            self._in_flight.add(file_id)
        started = time.monotonic()
        try:
            result = process(claimed)
        except UnreadableInput as exc:
            self._quarantine(claimed, exc)
            raise
        finally:
            metrics.PROCESSING_SECONDS.labels(flow=flow).observe(time.monotonic() - started)
            with self._lock:
                self._in_flight.discard(file_id)
        self._archive(file_id, work_path)
        return result, None

    def retry_now(self, flow: str | None = None) -> None:
        """Retry files waiting after a transient failure at the next sweep tick (e.g. margin
        files that waited for a theo set that has just been loaded)."""
        self._next_sweep = 0.0
        for file_id in list(self._retry_at):
            self._retry_at[file_id] = 0.0

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is queued, pending or in flight (for tests and orderly stops)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                busy = bool(self._in_flight)
            if not busy and not self._candidates and self._nominations.empty():
                return True
            time.sleep(0.05)
        return False


class _EventForwarder(FileSystemEventHandler):
    def __init__(self, intake: SpoolIntake) -> None:
        self.intake = intake

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            if not raw:
                continue
            path = Path(os.fsdecode(raw))
            if self.intake.on_internal is not None and "internal" in path.parts:
                self.intake.on_internal(path)
            else:
                self.intake.nominate(path)


def _sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
