"""The AMQP outbox and the record of processed requests, both in SQLite.

Theory of operation
-------------------
Everything posgate announces over AMQP (events on ``posgate.events``, deferred replies) is first a
row in ``amqp_outbox``, written in the caller's thread and committed with ``synchronous=FULL``:
once ``add``/``emit`` returns, a broker outage, a restart or ``kill -9`` cannot lose it. The
publisher thread (``gateway.amqp.publisher``) reads the rows in id order, publishes them with
publisher confirms and persistent delivery, and deletes them only when the broker has confirmed
them (``mark_sent``). Ids come from ``AUTOINCREMENT`` so they never go backwards, which keeps the
order and lets the publisher page with ``pending(limit, after=id)``. Delivery is at least once: a
row whose confirm was lost with the connection goes out again, with the same ``message_id``.

``amqp_processed`` remembers which requests were already answered (key -> the stored reply), so a
redelivered request is answered from the record instead of being worked twice. It is bounded by
count and age. ``ProcessedStore`` is the protocol; ``SqliteProcessedStore`` is the daemon's (it
survives restarts) and ``MemoryProcessedStore`` the workers' and the tests'.

SQLite errors that go away (disk full, database locked) are translated to ``TransientError``.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gateway.errors import TransientError

log = logging.getLogger(__name__)

OUTBOX_TABLE = "amqp_outbox"
PROCESSED_TABLE = "amqp_processed"

EVENTS_EXCHANGE = "posgate.events"
REQUESTS_EXCHANGE = "posgate"
DEFAULT_EXCHANGE = ""
"""The broker's default exchange: routing key = queue name (deferred replies to ``reply_to``)."""

ALLOWED_EXCHANGES = frozenset({EVENTS_EXCHANGE, REQUESTS_EXCHANGE, DEFAULT_EXCHANGE})
"""Exchanges the outbox may target: they always exist, so one row can never wedge the queue."""

SCHEMA_VERSION = 1

_SCHEMA = (
    f"""
    CREATE TABLE IF NOT EXISTS {OUTBOX_TABLE} (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at REAL NOT NULL,
        exchange TEXT NOT NULL,
        routing_key TEXT NOT NULL,
        message_id TEXT NOT NULL,
        correlation_id TEXT,
        content_type TEXT,
        headers TEXT NOT NULL,
        body BLOB NOT NULL
    )
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {PROCESSED_TABLE} (
        key TEXT PRIMARY KEY,
        reply BLOB NOT NULL,
        stored_at REAL NOT NULL
    )
    """,
    f"CREATE INDEX IF NOT EXISTS {PROCESSED_TABLE}_stored_at ON {PROCESSED_TABLE}(stored_at)",
)


def create_tables(db: sqlite3.Connection) -> None:
    """Create the outbox and processed-request tables if missing (idempotent)."""
    for statement in _SCHEMA:
        db.execute(statement)


_WRITE_LOCKS: dict[Path, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(path: Path) -> threading.Lock:
    """One lock per database file: this process's writers queue on it instead of spinning in
    SQLite's busy handler, where a writer can starve behind the others under load."""
    key = path.resolve()
    with _WRITE_LOCKS_GUARD:
        lock = _WRITE_LOCKS.get(key)
        if lock is None:
            lock = _WRITE_LOCKS[key] = threading.Lock()
        return lock


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


class _PerThreadDatabase:
    """One sqlite3 connection per thread to one database file (sqlite3 objects stay in a thread)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.write_lock = _write_lock(self.path)
        create_tables(self.connection())

    def connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = _connect(self.path)
            except sqlite3.OperationalError as exc:
                raise TransientError(f"cannot open {self.path.name}: {exc}") from exc
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close the calling thread's connection (others close with their threads)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


@dataclass(frozen=True)
class OutboxMessage:
    """One row of the outbox, as the publisher sends it."""

    id: int
    exchange: str
    routing_key: str
    body: bytes
    content_type: str | None
    headers: Mapping[str, object]
    message_id: str
    correlation_id: str | None
    created_at: float


def encode_event(payload: Mapping[str, object]) -> bytes:
    """An event body: the payload as JSON with ``schema_version`` (added when missing)."""
    body = dict(payload)
    body.setdefault("schema_version", SCHEMA_VERSION)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), default=str).encode("utf-8")


def insert_event(
    conn: sqlite3.Connection, routing_key: str, payload: Mapping[str, object], message_id: str
) -> None:
    """Queue an event on ``posgate.events`` inside the caller's open transaction on ``conn``
    (a connection to the database that holds the outbox: the ledger's), so the event commits
    with the state change it reports, or not at all."""
    try:
        conn.execute(
            f"INSERT INTO {OUTBOX_TABLE} (created_at, exchange, routing_key, message_id,"
            " correlation_id, content_type, headers, body) VALUES (?, ?, ?, ?, NULL, ?, '{}', ?)",
            (
                time.time(),
                EVENTS_EXCHANGE,
                routing_key,
                message_id,
                "application/json",
                encode_event(payload),
            ),
        )
    except sqlite3.OperationalError as exc:
        raise TransientError(f"outbox write failed: {exc}") from exc


class Outbox:
    """Durable queue of messages to publish; safe from any number of threads and processes."""

    def __init__(self, path: str | Path) -> None:
        self._db = _PerThreadDatabase(path)
        self._listeners: list[Callable[[], None]] = []
        self._listeners_lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._db.path

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` (from the adding thread) after each committed ``add``."""
        with self._listeners_lock:
            self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[], None]) -> None:
        with self._listeners_lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def add(
        self,
        exchange: str,
        routing_key: str,
        body: bytes,
        content_type: str | None,
        headers: Mapping[str, object] | None = None,
        *,
        correlation_id: str | None = None,
        message_id: str | None = None,
    ) -> int:
        """Store one message durably and return its id; the publisher sends it when it can."""
        if exchange not in ALLOWED_EXCHANGES:
            raise ValueError(
                f"outbox exchange {exchange!r} is not one of {sorted(ALLOWED_EXCHANGES)}"
            )
        if not isinstance(body, bytes | bytearray | memoryview):
            raise TypeError(f"outbox body must be bytes, not {type(body).__name__}")
        try:
            headers_json = json.dumps(dict(headers or {}), sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"outbox headers must be JSON values: {exc}") from exc
        conn = self._db.connection()
        try:
            with self._db.write_lock:
                cursor = conn.execute(
                    f"INSERT INTO {OUTBOX_TABLE} (created_at, exchange, routing_key, message_id,"
                    " correlation_id, content_type, headers, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        time.time(),
                        exchange,
                        routing_key,
                        message_id or uuid.uuid4().hex,
                        correlation_id,
                        content_type,
                        headers_json,
                        bytes(body),
                    ),
                )
        except sqlite3.OperationalError as exc:
            raise TransientError(f"outbox write failed: {exc}") from exc
        row_id = cursor.lastrowid
        assert row_id is not None
        self._notify()
        return row_id

    def emit(self, routing_key: str, payload: Mapping[str, object]) -> int:
        """Queue an event on ``posgate.events``, e.g. ``ops.alert.<name>``, in a transaction of
        its own (events that report a ledger state change use ``insert_event`` instead).

        The body is the payload as JSON with ``schema_version`` (added when missing); the event's
        ``message_id`` is stable across re-sends so consumers can drop duplicates.
        """
        return self.add(EVENTS_EXCHANGE, routing_key, encode_event(payload), "application/json", {})

    def notify(self) -> None:
        """Wake the publisher: rows were committed by another writer (``insert_event``)."""
        self._notify()

    def pending(self, limit: int, after: int = 0) -> list[OutboxMessage]:
        """Up to ``limit`` unsent messages with id > ``after``, oldest first."""
        conn = self._db.connection()
        try:
            rows = conn.execute(
                f"SELECT id, exchange, routing_key, body, content_type, headers, message_id,"
                f" correlation_id, created_at FROM {OUTBOX_TABLE} WHERE id > ? ORDER BY id"
                " LIMIT ?",
                (after, limit),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            raise TransientError(f"outbox read failed: {exc}") from exc
        return [
            OutboxMessage(
                id=row[0],
                exchange=row[1],
                routing_key=row[2],
                body=bytes(row[3]),
                content_type=row[4],
                headers=json.loads(row[5]),
                message_id=row[6],
                correlation_id=row[7],
                created_at=row[8],
            )
            for row in rows
        ]

    def mark_sent(self, ids: Iterable[int]) -> None:
        """Forget messages the broker has confirmed."""
        id_list = list(ids)
        if not id_list:
            return
        conn = self._db.connection()
        try:
            with self._db.write_lock:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    for start in range(0, len(id_list), 500):
                        chunk = id_list[start : start + 500]
                        marks = ",".join("?" * len(chunk))
                        conn.execute(f"DELETE FROM {OUTBOX_TABLE} WHERE id IN ({marks})", chunk)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        except sqlite3.OperationalError as exc:
            raise TransientError(f"outbox update failed: {exc}") from exc

    def depth(self) -> int:
        """Messages not yet confirmed by the broker."""
        conn = self._db.connection()
        try:
            return int(conn.execute(f"SELECT COUNT(*) FROM {OUTBOX_TABLE}").fetchone()[0])
        except sqlite3.OperationalError as exc:
            raise TransientError(f"outbox read failed: {exc}") from exc

    def close(self) -> None:
        """Close the calling thread's connection."""
        self._db.close()

    def _notify(self) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener()
            except Exception:
                log.exception("outbox listener failed")


class ProcessedStore(Protocol):
    """Requests already answered: key -> the stored reply (opaque bytes)."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, reply_bytes: bytes) -> None: ...


class MemoryProcessedStore:
    """Bounded in-memory record (a worker's, or a test's): the oldest entries go first."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._max = max_entries
        self._entries: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: str, reply_bytes: bytes) -> None:
        with self._lock:
            self._entries[key] = reply_bytes
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


@dataclass
class _PendingPut:
    key: str
    reply: bytes
    done: bool = False
    error: TransientError | None = None


class SqliteProcessedStore:
    """The daemon's record of answered requests; survives restarts, bounded by count and age.

    ``put`` commits with group commit: concurrent callers' rows go into one transaction (one
    fsync) written by whichever caller got there first, and every caller returns only once its
    row is committed.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_entries: int = 200_000,
        max_age_s: float = 7 * 86400.0,
        prune_every: int = 1000,
    ) -> None:
        self._db = _PerThreadDatabase(path)
        self._max = max_entries
        self._max_age_s = max_age_s
        self._prune_every = prune_every
        self._puts = 0
        self._cv = threading.Condition()
        self._pending: list[_PendingPut] = []
        self._writing = False

    def get(self, key: str) -> bytes | None:
        try:
            row = (
                self._db.connection()
                .execute(f"SELECT reply FROM {PROCESSED_TABLE} WHERE key = ?", (key,))
                .fetchone()
            )
        except sqlite3.OperationalError as exc:
            raise TransientError(f"processed-request read failed: {exc}") from exc
        return None if row is None else bytes(row[0])

    def put(self, key: str, reply_bytes: bytes) -> None:
        mine = _PendingPut(key, bytes(reply_bytes))
        prune_due = False
        with self._cv:
            self._pending.append(mine)
            while not mine.done:
                if self._writing:
                    self._cv.wait()
                    continue
                self._writing = True
                batch, self._pending = self._pending, []
                self._cv.release()
                try:
                    error = self._write(batch)
                except Exception as exc:  # never leave the other callers waiting
                    error = TransientError(f"processed-request write failed: {exc!r}")
                finally:
                    self._cv.acquire()
                for entry in batch:
                    entry.done, entry.error = True, error
                self._writing = False
                self._puts += len(batch)
                prune_due = self._puts >= self._prune_every
                if prune_due:
                    self._puts = 0
                self._cv.notify_all()
        if mine.error is not None:
            raise mine.error
        if prune_due:
            self.prune()

    def _write(self, batch: list[_PendingPut]) -> TransientError | None:
        conn = self._db.connection()
        now = time.time()
        try:
            with self._db.write_lock:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(
                        f"INSERT OR REPLACE INTO {PROCESSED_TABLE} (key, reply, stored_at)"
                        " VALUES (?, ?, ?)",
                        [(entry.key, entry.reply, now) for entry in batch],
                    )
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            return TransientError(f"processed-request write failed: {exc}")
        return None

    def prune(self) -> int:
        """Drop entries older than the age limit or beyond the count limit; return how many."""
        conn = self._db.connection()
        with self._db.write_lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    old = conn.execute(
                        f"DELETE FROM {PROCESSED_TABLE} WHERE stored_at < ?",
                        (time.time() - self._max_age_s,),
                    ).rowcount
                    extra = conn.execute(
                        f"DELETE FROM {PROCESSED_TABLE} WHERE key IN (SELECT key FROM"
                        f" {PROCESSED_TABLE} ORDER BY stored_at DESC LIMIT -1 OFFSET ?)",
                        (self._max,),
                    ).rowcount
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                raise TransientError(f"processed-request prune failed: {exc}") from exc
        if old or extra:
            log.debug("processed-request record pruned: %d old, %d over limit", old, extra)
        return old + extra

    def __len__(self) -> int:
        row = self._db.connection().execute(f"SELECT COUNT(*) FROM {PROCESSED_TABLE}").fetchone()
        return int(row[0])

    def close(self) -> None:
        self._db.close()
