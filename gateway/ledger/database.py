"""The ledger database: table names, the versioned schema and per-thread connections.

Theory of operation: one database file under ``spool/state/`` in WAL mode with
``synchronous=FULL``, so a committed transaction survives ``kill -9`` and power loss. Each thread
gets its own connection (``sqlite3`` connections are not shared across threads). The schema is
versioned with ``PRAGMA user_version``; ``MIGRATIONS`` is an append-only list and opening a ledger
applies whatever its file has not seen yet. Tables are created through sqlite-utils; hot paths
(bulk record inserts) use ``executemany``, a DPL file's records in short transactions of
``dpl_store.STAGE_ROWS`` rows so that no file holds the write lock for long. The queries of each
flow live in the sibling modules (``files``, ``dpl_store``, ``dpl``, ``runs``); only this package
knows table names.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import sqlite_utils

FILES = "files"
FILE_EVENTS = "file_events"
DPL_RECORDS = "dpl_records"
DPL_PUBLICATIONS = "dpl_publications"
DPL_DELIVERIES = "dpl_deliveries"
DPL_PUBLISHED_FILES = "dpl_published_files"
PMC_RESULTS = "pmc_results"
SCHEDULER_RUNS = "scheduler_runs"
EBE_SETS = "ebe_sets"
EBE_INSTRUCTIONS = "ebe_instructions"
EBE_PUBLICATIONS = "ebe_publications"


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(instant: dt.datetime) -> str:
    return instant.astimezone(dt.UTC).isoformat(timespec="microseconds")


def _migration_1(db: sqlite_utils.Database) -> None:
    db[FILES].create(  # type: ignore[union-attr]
        {
            "id": int,
            "flow": str,
            "firm": str,
            "account": str,
            "name": str,
            "sha256": str,
            "size": int,
            "received_at": str,
            "cycle": str,
            "state": str,
            "work_path": str,
            "archive_path": str,
            "reason": str,
            "superseded_by": int,
            "duplicate_of": int,
            "total": int,
            "valid": int,
            "rejected": int,
            "source": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"flow", "firm", "name", "sha256", "received_at", "state"},
        if_not_exists=True,
    )
    db[FILES].create_index(["firm", "flow", "sha256"], if_not_exists=True)  # type: ignore[union-attr]
    db[FILES].create_index(["state"], if_not_exists=True)  # type: ignore[union-attr]
    db[FILES].create_index(["flow", "cycle", "firm"], if_not_exists=True)  # type: ignore[union-attr]
    db[FILE_EVENTS].create(  # type: ignore[union-attr]
        {"id": int, "file_id": int, "state": str, "at": str, "detail": str},
        pk="id",
        foreign_keys=[("file_id", FILES, "id")],
        if_not_exists=True,
    )
    db[FILE_EVENTS].create_index(["file_id"], if_not_exists=True)  # type: ignore[union-attr]
    # One row per record, keyed by (file, line); cycle, submitter and superseding live on the
    # file row. Kept lean on purpose: this insert is on the hot path of the intake.
    # The rowid encodes (file id, line) as file_id << 32 | line: the table is one append-only
    # b-tree, and a file's records are a rowid range.
    db[DPL_RECORDS].create(  # type: ignore[union-attr]
        {
            "id": int,
            "raw": bytes,
            "status": str,
            "reasons": str,
            "details": str,
            "fields": str,
            "sort_key": str,
        },
        pk="id",
        if_not_exists=True,
    )
    db[DPL_PUBLICATIONS].create(  # type: ignore[union-attr]
        {
            "cycle": str,
            "published_at": str,
            "delivery_date": str,
            "sha256": str,
            "records": int,
            "path": str,
            "runs": int,
        },
        pk="cycle",
        if_not_exists=True,
    )
    db[DPL_DELIVERIES].create(  # type: ignore[union-attr]
        {"cycle": str, "exchange": str, "delivered_at": str, "sha256": str, "target": str},
        pk=("cycle", "exchange"),
        if_not_exists=True,
    )
    db[PMC_RESULTS].create(  # type: ignore[union-attr]
        {
            "file_id": int,
            "theo_date": str,
            "accepted": int,
            "rejected": int,
            "invalid_series": int,
            "warnings": int,
            "requirement": float,
            "outputs": str,
        },
        pk="file_id",
        if_not_exists=True,
    )
    db[SCHEDULER_RUNS].create(  # type: ignore[union-attr]
        {"id": int, "job": str, "cycle": str, "at": str, "outcome": str, "detail": str},
        pk="id",
        if_not_exists=True,
    )


def _add_column(db: sqlite_utils.Database, table: str, column: str, kind: type) -> None:
    if column not in db[table].columns_dict:
        db[table].add_column(column, kind)  # type: ignore[union-attr]


def _migration_2(db: sqlite_utils.Database) -> None:
    """Cycle integrity: the output name an upload got, whether a publication was preliminary
    (made before the cutoff), and which files each publication of a cycle was built from."""
    _add_column(db, FILES, "output_base", str)
    _add_column(db, DPL_PUBLICATIONS, "preliminary", int)
    db[DPL_PUBLISHED_FILES].create(  # type: ignore[union-attr]
        {"cycle": str, "file_id": int},
        pk=("cycle", "file_id"),
        if_not_exists=True,
    )


def _migration_3(db: sqlite_utils.Database) -> None:
    """Exercise by exception: loaded sets, accepted and rejected instructions, publications."""
    db[EBE_SETS].create(  # type: ignore[union-attr]
        {
            "expiration_date": str,
            "source": str,
            "folder": str,
            "fingerprint": str,
            "rows": int,
            "loaded_at": str,
        },
        pk="expiration_date",
        if_not_exists=True,
    )
    # One row per judged instruction line; only accepted ones count for outcomes, in id order
    # (= receipt order), the latest per (firm, account, series) winning.
    db[EBE_INSTRUCTIONS].create(  # type: ignore[union-attr]
        {
            "id": int,
            "file_id": int,
            "origin": str,
            "line": int,
            "firm": str,
            "expiration_date": str,
            "account": str,
            "symbol": str,
            "put_call": str,
            "strike": int,
            "action": str,
            "quantity": int,
            "status": str,
            "reasons": str,
            "received_at": str,
        },
        pk="id",
        if_not_exists=True,
    )
    db[EBE_INSTRUCTIONS].create_index(  # type: ignore[union-attr]
        ["expiration_date", "status"], if_not_exists=True
    )
    db[EBE_PUBLICATIONS].create(  # type: ignore[union-attr]
        {
            "expiration_date": str,
            "exchange": str,
            "published_at": str,
            "sha256": str,
            "records": int,
            "path": str,
        },
        pk=("expiration_date", "exchange"),
        if_not_exists=True,
    )


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _migration_1,
    _migration_2,
    _migration_3,
]
EXTRA_TABLE_CREATORS: list[Callable[[sqlite3.Connection], None]] = []
"""Adapters that own tables of their own (AMQP outbox, processed ids) register creators here."""


EventWriter = Callable[[sqlite3.Connection, str, Mapping[str, Any], str], None]
"""Writes one notification (routing key, payload, message id) on the given connection, inside
the caller's transaction: the AMQP outbox's ``insert_event``."""


def schema_version() -> int:
    return len(MIGRATIONS)


class LedgerDatabase:
    """Thread-safe access to the ledger file: one sqlite3 connection per thread.

    Notifications are part of the state change they report: ``write_event`` stores one in the
    open transaction through the ``event_writer`` (the AMQP outbox, in this same database file),
    so a transaction commits both or neither; ``events_committed`` is called after a commit that
    wrote any, to wake the sender. Without a writer (AMQP off) events are dropped.
    """

    event_writer: EventWriter | None = None
    events_committed: Callable[[], None] | None = None

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._migrate()

    # -- connections --------------------------------------------------------------------------

    def connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            # Checkpoints run off the hot path (``checkpoint``, from the daemon's ledger
            # component), so a big intake commit never pays for copying the WAL back.
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        conn = self.connect()
        conn.execute("BEGIN IMMEDIATE")
        self._local.events = 0
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        if getattr(self._local, "events", 0) and self.events_committed is not None:
            self.events_committed()

    def write_event(
        self,
        conn: sqlite3.Connection,
        routing_key: str,
        payload: Mapping[str, Any],
        message_id: str,
    ) -> None:
        """Store a notification in the open transaction of ``conn`` (see the class docstring).

        ``message_id`` is derived from what the event reports, so a re-send carries the same one.
        """
        if self.event_writer is None:
            return
        self.event_writer(conn, routing_key, payload, message_id)
        self._local.events = getattr(self._local, "events", 0) + 1

    def checkpoint(self, mode: str = "PASSIVE") -> tuple[int, int, int]:
        """Copy the WAL back into the database (``PASSIVE`` never waits for writers;
        ``TRUNCATE`` at shutdown also empties the WAL file). Returns SQLite's
        (busy, wal pages, pages checkpointed)."""
        if mode not in ("PASSIVE", "FULL", "RESTART", "TRUNCATE"):
            raise ValueError(mode)
        row = self.connect().execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.checkpoint("PASSIVE")
        with self._lock:
            for conn in self._all:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            self._all.clear()
        self._local = threading.local()

    def _migrate(self) -> None:
        conn = self.connect()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"ledger {self.path} has schema version {version}, newer than this posgate "
                f"({len(MIGRATIONS)}); refusing to touch it"
            )
        db = sqlite_utils.Database(conn)
        for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
            # sqlite-utils commits per statement, so migrations are written to be idempotent
            # (if_not_exists): a crash halfway simply reruns the migration at the next start.
            migration(db)
            conn.execute(f"PRAGMA user_version={number}")
        for creator in EXTRA_TABLE_CREATORS:
            creator(conn)

    def schema_version(self) -> int:
        return int(self.connect().execute("PRAGMA user_version").fetchone()[0])
