"""Crash-safe spool intake: find complete inbound files, claim them, hand them to a flow, archive.

Theory of operation
-------------------
Watchdog events, the start-up scan, the periodic sweep and the SFTP server's upload hint all just
*nominate* paths; the intake thread decides, with ``watch.StableFiles``, when a nominated file is
complete. A file whose flow has no handler is left where it is (logged once per folder).

A complete file is claimed into ``work/`` (``claims.SpoolFiles``: ledger intent first, then the
atomic rename, the hash and ``claimed``). A worker thread runs the flow handler, which records
``processed`` in the same ledger transaction as its results; the intake then archives the original.
Unreadable inputs (``UnreadableInput``) are quarantined; transient trouble leaves the file claimed
for a retry with backoff. At start-up every non-terminal ledger row is reconciled with the disk.

The receipt instant of a file is always the daemon's clock, never a file time a client can set:
the embedded SFTP server's close instant (passed with its nomination), or for files written by
anyone else the moment a nomination first named the file. The stable-size wait that follows never
moves an upload at 23:59:59 CT into the next cycle. A file that arrived while the daemon was down
is received when the start-up scan finds it.

This module owns the component: its threads and worker pool, the queue of nominations, dispatch
to the flow handlers, retries, inputs that arrive as bytes, and waiting until idle.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import errno
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from watchdog.observers import Observer

from engine.errors import UnreadableInput
from gateway import metrics
from gateway.alerts import raise_alert
from gateway.errors import Interrupted, TransientError
from gateway.ledger import Ledger
from gateway.spool.claims import Alert, ClaimedFile, SpoolFiles
from gateway.spool.fsio import remove_stale_temporaries, write_atomic
from gateway.spool.watch import (
    EventForwarder,
    StableFiles,
    inbound_route,
    is_temporary_name,
    scan_inbound,
)

log = logging.getLogger(__name__)

FLOWS = ("dpl", "pmc", "ebe")


class FlowHandler(Protocol):
    """Processes one claimed file and records ``processed`` in the ledger.

    Raises ``UnreadableInput`` for a file that cannot be read at all (quarantined) and
    ``TransientError`` for trouble worth a retry.
    """

    def __call__(self, claimed: ClaimedFile) -> None: ...


TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.ENOMEM, errno.EAGAIN})
"""OS errors that go away (disk full, I/O error, quota, memory): retried, never a reject."""


def is_transient(exc: BaseException) -> bool:
    """A full disk or a failing device, however it surfaced: ``TransientError``, an ``OSError``
    with one of ``TRANSIENT_ERRNOS``, or SQLite's "disk is full", "disk I/O error", "locked"."""
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, OSError):
        return exc.errno in TRANSIENT_ERRNOS
    if isinstance(exc, sqlite3.OperationalError):
        text = str(exc).lower()
        return any(s in text for s in ("disk is full", "disk i/o error", "locked"))
    return False


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
        retry_max_s: float = 300.0,
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
        self.retry_max_s = retry_max_s
        self.alert = alert
        self.technical_contact = technical_contact
        self.on_internal = on_internal
        self.files = SpoolFiles(
            root=spool_root,
            ledger=ledger,
            clock=clock,
            alert=alert,
            technical_contact=technical_contact,
        )
        self._nominations: queue.Queue[tuple[Path, bool, dt.datetime]] = queue.Queue()
        self._candidates = StableFiles(stable_interval_s)
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
        handler = EventForwarder(self.nominate, self.on_internal)
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

    def stopping(self) -> bool:
        """True once ``stop`` has begun: a flow handler in the middle of a long file may roll it
        back and raise ``Interrupted`` (the file stays claimed for the next start)."""
        return self._stop.is_set()

    def healthy(self) -> bool:
        return (
            self._thread is not None
            and self._thread.is_alive()
            and self._observer is not None
            and self._observer.is_alive()
        )

    # -- nominations ---------------------------------------------------------------------------

    def nominate(
        self, path: Path, complete: bool = False, received_at: dt.datetime | None = None
    ) -> None:
        """A hint that ``path`` may be a new input; ``complete`` when its writer has closed it,
        at ``received_at`` on the daemon's clock (default: now, the moment it is first named)."""
        at = received_at if received_at is not None else self.clock()
        self._nominations.put((Path(path), complete, at))

    def scan(self) -> None:
        """Nominate every file in every inbound folder (start-up scan and periodic sweep)."""
        scan_inbound(self.root, self.nominate)
        if self.on_internal is not None:
            self.on_internal(self.root / "internal")

    # -- main loop -------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                path, complete, at = self._nominations.get(timeout=0.2)
                self._observe(path, complete, at)
                while True:  # drain what is queued before evaluating
                    path, complete, at = self._nominations.get_nowait()
                    self._observe(path, complete, at)
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

    def _observe(self, path: Path, complete: bool, at: dt.datetime) -> None:
        route = inbound_route(self.root, path)
        if route is None:
            return
        firm, flow = route
        if flow not in self.handlers:
            folder = path.parent
            if folder not in self._unhandled_logged:
                self._unhandled_logged.add(folder)
                log.warning("no handler for flow %r yet: leaving files in %s", flow, folder)
            return
        self._candidates.observe(path, complete, at)

    def _evaluate(self) -> None:
        ready = self._candidates.ready()
        metrics.SPOOL_BACKLOG.set(len(self._candidates) + len(self._in_flight))
        for path, received_at in ready:
            self._candidates.discard(path)
            try:
                claimed = self._claim(path, received_at)
            except Exception:
                log.exception("cannot claim %s; will retry", path)
                self._candidates.remember(path, received_at)
                continue
            if claimed is not None:
                self._dispatch(claimed)

    # -- claim, process --------------------------------------------------------------------------

    def _claim(self, path: Path, received_at: dt.datetime) -> ClaimedFile | None:
        route = inbound_route(self.root, path)
        if route is None:
            return None
        firm, flow = route
        return self.files.claim(path, firm, flow, received_at)

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
            self.files.quarantine(claimed, exc)
        except Interrupted as exc:
            log.info(
                "%s file %s of firm %s: %s; rolled back, it stays claimed for the next start",
                claimed.flow,
                claimed.name,
                claimed.firm,
                exc,
            )
        except (TransientError, OSError, sqlite3.OperationalError) as exc:
            if not is_transient(exc):
                self._failed(claimed, exc)
                return
            metrics.FILES_FAILED.labels(flow=claimed.flow).inc()
            attempts = len(self.ledger.file_events(claimed.file_id))
            delay = min(self.retry_max_s, 5.0 * 2 ** min(6, attempts))
            self._retry_at[claimed.file_id] = time.monotonic() + delay
            self.alert(
                "processing_retrying",
                f"{claimed.flow} file {claimed.name!r} of firm {claimed.firm} could not be "
                f"finished ({exc}); it stays claimed, retry in {delay:.0f}s",
                {"file_id": claimed.file_id, "error": str(exc)},
            )
        except Exception as exc:
            self._failed(claimed, exc)
        else:
            try:
                self.files.archive(claimed.file_id, claimed.path)
            except (OSError, sqlite3.OperationalError) as exc:
                # Processed and recorded; only the move into archive/ is left: retried with the
                # claimed files (and at the next start by reconcile).
                metrics.FILES_FAILED.labels(flow=claimed.flow).inc()
                log.warning("cannot archive file %d yet: %s", claimed.file_id, exc)
                self._retry_at[claimed.file_id] = time.monotonic() + min(30.0, self.retry_max_s)
        finally:
            metrics.PROCESSING_SECONDS.labels(flow=claimed.flow).observe(time.monotonic() - started)
            with self._lock:
                self._in_flight.discard(claimed.file_id)

    def _failed(self, claimed: ClaimedFile, exc: BaseException) -> None:
        """Not the sender's fault and not transient: our bug. Kept ``failed`` for the operators
        (retried at the next start), counted and alerted."""
        log.error("processing %s (file %d) failed", claimed.name, claimed.file_id, exc_info=exc)
        metrics.FILES_FAILED.labels(flow=claimed.flow).inc()
        try:
            self.ledger.set_file_state(claimed.file_id, "failed", f"{type(exc).__name__}: {exc}")
        except sqlite3.Error:
            log.exception("cannot record file %d as failed", claimed.file_id)
        self.alert(
            "processing_failed",
            f"{claimed.flow} file {claimed.name} of firm "
            f"{claimed.firm} could not be processed; kept for retry at restart",
            {"file_id": claimed.file_id, "error": str(exc)},
        )

    # -- recovery ----------------------------------------------------------------------------------

    def reconcile(self) -> None:
        """Bring every non-terminal ledger row in line with the disk (after a crash), and remove
        the hidden half-written outputs a crash left in the firms' outbound folders."""
        firms = self.root / "firms"
        if firms.is_dir():
            for firm in firms.iterdir():
                remove_stale_temporaries(firm / "outbound")
        self.files.reconcile(self._dispatch)

    def _retry_claimed(self) -> None:
        now = time.monotonic()
        for file_id, at in list(self._retry_at.items()):
            if at <= now:
                del self._retry_at[file_id]
                try:
                    row = self.ledger.file(file_id)
                    if row.state == "processed" and row.work_path:
                        self.files.archive(file_id, Path(row.work_path))
                    elif row.state == "claimed" and row.work_path and Path(row.work_path).exists():
                        self._dispatch(ClaimedFile.from_row(row, Path(row.work_path)))
                except (OSError, sqlite3.OperationalError) as exc:
                    log.warning("retry of file %d deferred: %s", file_id, exc)
                    self._retry_at[file_id] = now + min(30.0, self.retry_max_s)

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

        The bytes are recorded, written into ``work/``, hashed and passed to ``process`` in the
        caller's thread; the original is archived like any upload. Bytes sent before are a new
        submission (a redelivered AMQP message is answered from its processed-request record
        before it gets here). Returns ``(process result, id of an earlier file with the same
        bytes or None)``.
        ``UnreadableInput`` is quarantined and re-raised so the caller can answer with it.
        """
        name = Path(name).name or "submission"
        if is_temporary_name(name):
            name = name.lstrip(".") or "submission"
        work_path = self.files.work_path(flow, firm, name)
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
        claimed = self.files.finish_claim(self.ledger.file(file_id), work_path)
        with self._lock:
            self._in_flight.add(file_id)
        started = time.monotonic()
        try:
            result = process(claimed)
        except UnreadableInput as exc:
            self.files.quarantine(claimed, exc)
            raise
        finally:
            metrics.PROCESSING_SECONDS.labels(flow=flow).observe(time.monotonic() - started)
            with self._lock:
                self._in_flight.discard(file_id)
        self.files.archive(file_id, work_path)
        return result, claimed.identical_to

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
