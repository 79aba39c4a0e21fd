"""The SQLite ledger: the only module that knows table names.

Theory of operation: one database file under ``spool/state/`` in WAL mode with
``synchronous=FULL``, so a committed transaction survives ``kill -9`` and power loss. Each thread
gets its own connection (``sqlite3`` connections are not shared across threads). The schema is
versioned with ``PRAGMA user_version``; ``MIGRATIONS`` is an append-only list and ``open`` applies
whatever a ledger file has not seen yet. Tables are created through sqlite-utils; hot paths (bulk
record inserts) use ``executemany`` inside one transaction.

Every state change of an input file is a row in ``file_events`` as well as the current state in
``files``; states are ``received -> claimed -> processed -> archived`` or ``quarantined`` or
``duplicate``. Non-terminal rows are reconciled with the disk at start-up by the intake.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from engine.dpl.validate import DplFields

FILES = "files"
FILE_EVENTS = "file_events"
DPL_RECORDS = "dpl_records"
DPL_PUBLICATIONS = "dpl_publications"
DPL_DELIVERIES = "dpl_deliveries"
PMC_RESULTS = "pmc_results"
SCHEDULER_RUNS = "scheduler_runs"

TERMINAL_STATES = frozenset({"archived", "quarantined", "duplicate", "vanished"})

# The publishable records of a cycle (valid, of current files) and the order of publication:
# SPEC §6.6 (firm numeric-aware, aggregation unit, symbol, SubTyp) with a deterministic tie-break.
_LINE_BITS = 32
_LINE_MASK = (1 << _LINE_BITS) - 1
# The records of file f: rowids from f.id << 32 to f.id << 32 | 0xffffffff.
_RECORDS_OF_FILE = (
    f"r.id BETWEEN (f.id << {_LINE_BITS}) AND ((f.id << {_LINE_BITS}) | {_LINE_MASK})"
)
_RECORD_COLUMNS = f"r.id >> {_LINE_BITS} AS file_id, r.id & {_LINE_MASK} AS line"
_PUBLISHABLE_DPL = (
    f" FROM {FILES} f JOIN {DPL_RECORDS} r ON {_RECORDS_OF_FILE}"
    " WHERE f.flow = 'dpl' AND f.cycle = ? AND f.superseded_by IS NULL"
    " AND f.state IN ('processed', 'archived') AND r.status = 'valid'"
)
_PUBLICATION_ORDER = " ORDER BY r.sort_key, r.id"

# Record fields are stored packed: values joined by US (0x1f), None written as STX (0x02). Neither
# character can occur in an XML attribute value, and this is several times cheaper than JSON.
_FIELD_SEP = "\x1f"
_NONE = "\x02"
_SORT_SEP = "\x01"


def pack_fields(values: Sequence[str | None]) -> str:
    return _FIELD_SEP.join([_NONE if v is None else v for v in values])


def unpack_fields(text: str | None) -> tuple[str | None, ...] | None:
    if text is None:
        return None
    return tuple(None if v == _NONE else v for v in text.split(_FIELD_SEP))


def dpl_sort_key(firm_sort: str, agg_unit: str, symbol: str, sub_typ: str) -> str:
    """One text whose order is the publication order (SPEC §6.6): the parts joined by SOH,
    which sorts before every character an attribute value can hold."""
    return _SORT_SEP.join((firm_sort, agg_unit, symbol, sub_typ))


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(instant: dt.datetime) -> str:
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


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [_migration_1]
EXTRA_TABLE_CREATORS: list[Callable[[sqlite3.Connection], None]] = []
"""Adapters that own tables of their own (AMQP outbox, processed ids) register creators here."""


def schema_version() -> int:
    return len(MIGRATIONS)


@dataclass(frozen=True)
class FileRow:
    id: int
    flow: str
    firm: str
    account: str
    name: str
    sha256: str
    size: int
    received_at: dt.datetime
    cycle: str | None
    state: str
    work_path: str | None
    archive_path: str | None
    reason: str | None
    source: str | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> FileRow:
        return cls(
            id=row["id"],
            flow=row["flow"],
            firm=row["firm"],
            account=row["account"] or "",
            name=row["name"],
            sha256=row["sha256"],
            size=row["size"] or 0,
            received_at=dt.datetime.fromisoformat(row["received_at"]),
            cycle=row["cycle"],
            state=row["state"],
            work_path=row["work_path"],
            archive_path=row["archive_path"],
            reason=row["reason"],
            source=row["source"],
        )


class Ledger:
    """Thread-safe access to the ledger file: one sqlite3 connection per thread."""

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
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

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

    # -- files --------------------------------------------------------------------------------

    def record_file(
        self,
        *,
        flow: str,
        firm: str,
        account: str,
        name: str,
        sha256: str,
        size: int,
        received_at: dt.datetime,
        cycle: str | None,
        work_path: str,
        source: str,
    ) -> int:
        """Record the intent to claim a file (state ``received``) and return its id."""
        with self.transaction() as conn:
            cur = conn.execute(
                f"INSERT INTO {FILES} (flow, firm, account, name, sha256, size, received_at,"
                " cycle, state, work_path, source, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'received', ?, ?, ?)",
                (
                    flow,
                    firm,
                    account,
                    name,
                    sha256,
                    size,
                    _iso(received_at),
                    cycle,
                    work_path,
                    source,
                    _iso(utc_now()),
                ),
            )
            file_id = int(cur.lastrowid or 0)
            self._event(conn, file_id, "received", f"{source} -> {work_path}")
        return file_id

    def set_file_state(self, file_id: int, state: str, detail: str = "", **columns: Any) -> None:
        with self.transaction() as conn:
            self._set_state(conn, file_id, state, detail, **columns)

    def _set_state(
        self, conn: sqlite3.Connection, file_id: int, state: str, detail: str, **columns: Any
    ) -> None:
        assignments = ", ".join(f"{name} = ?" for name in columns)
        conn.execute(
            f"UPDATE {FILES} SET state = ?, updated_at = ?"
            + (f", {assignments}" if assignments else "")
            + " WHERE id = ?",
            (state, _iso(utc_now()), *columns.values(), file_id),
        )
        self._event(conn, file_id, state, detail)

    def _event(self, conn: sqlite3.Connection, file_id: int, state: str, detail: str) -> None:
        conn.execute(
            f"INSERT INTO {FILE_EVENTS} (file_id, state, at, detail) VALUES (?, ?, ?, ?)",
            (file_id, state, _iso(utc_now()), detail),
        )

    def file(self, file_id: int) -> FileRow:
        row = self.connect().execute(f"SELECT * FROM {FILES} WHERE id = ?", (file_id,)).fetchone()
        if row is None:
            raise KeyError(file_id)
        return FileRow.from_row(row)

    def find_processed_duplicate(
        self, firm: str, flow: str, sha256: str, exclude_id: int
    ) -> int | None:
        """Id of an earlier file with the same content from the same firm and flow, if any."""
        row = (
            self.connect()
            .execute(
                f"SELECT id FROM {FILES} WHERE firm = ? AND flow = ? AND sha256 = ? AND id != ?"
                " AND state IN ('processed', 'archived') ORDER BY id LIMIT 1",
                (firm, flow, sha256, exclude_id),
            )
            .fetchone()
        )
        return int(row["id"]) if row else None

    def duplicate_of(self, file_id: int) -> int | None:
        row = (
            self.connect()
            .execute(f"SELECT duplicate_of FROM {FILES} WHERE id = ?", (file_id,))
            .fetchone()
        )
        return int(row[0]) if row and row[0] is not None else None

    def unfinished_files(self) -> list[FileRow]:
        placeholders = ", ".join("?" for _ in TERMINAL_STATES)
        rows = (
            self.connect()
            .execute(
                f"SELECT * FROM {FILES} WHERE state NOT IN ({placeholders}) ORDER BY id",
                tuple(sorted(TERMINAL_STATES)),
            )
            .fetchall()
        )
        return [FileRow.from_row(r) for r in rows]

    def files(
        self, *, flow: str | None = None, firm: str | None = None, state: str | None = None
    ) -> list[FileRow]:
        clauses, params = [], []
        for column, value in (("flow", flow), ("firm", firm), ("state", state)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        rows = (
            self.connect().execute(f"SELECT * FROM {FILES}{where} ORDER BY id", params).fetchall()
        )
        return [FileRow.from_row(r) for r in rows]

    def file_events(self, file_id: int) -> list[tuple[str, str]]:
        rows = (
            self.connect()
            .execute(
                f"SELECT state, detail FROM {FILE_EVENTS} WHERE file_id = ? ORDER BY id", (file_id,)
            )
            .fetchall()
        )
        return [(r["state"], r["detail"]) for r in rows]

    # -- DPL records ---------------------------------------------------------------------------

    def replace_dpl_records(
        self,
        file_id: int,
        rows: Iterable[Sequence[Any]],
        *,
        cycle: str,
        submitter: str,
        totals: tuple[int, int, int] | Callable[[], tuple[int, int, int]],
        before_commit: Callable[[int | None], None] | None = None,
    ) -> int | None:
        """Store a file's records, mark it processed and supersede the submitter's older files.

        ``rows`` are ``(line, raw, status, reasons, details_json, packed_fields, sort_key)``
        (see ``pack_fields`` and ``dpl_sort_key``) and may be a generator (consumed inside the
        transaction); ``totals`` (total, valid, rejected) may be a callable read after the rows
        are consumed. ``before_commit(superseded_id)`` runs inside the transaction, so outputs
        it writes exist whenever the ledger says ``processed``. All in one transaction: a crash
        leaves either nothing or everything. Returns the id of the file this one superseded, if
        any. Idempotent: a rerun first deletes what an earlier attempt may have stored.
        """
        with self.transaction() as conn:
            base = file_id << _LINE_BITS
            conn.execute(
                f"DELETE FROM {DPL_RECORDS} WHERE id BETWEEN ? AND ?", (base, base | _LINE_MASK)
            )
            conn.execute(f"UPDATE {FILES} SET cycle = ? WHERE id = ?", (cycle, file_id))
            conn.executemany(
                f"INSERT INTO {DPL_RECORDS} (id, raw, status, reasons, details, fields, sort_key)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                ((base | r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows),
            )
            total, valid, rejected = totals() if callable(totals) else totals
            older = conn.execute(
                f"SELECT id FROM {FILES} WHERE flow = 'dpl' AND firm = ? AND cycle = ?"
                " AND id < ? AND state IN ('processed', 'archived') AND superseded_by IS NULL"
                " ORDER BY id",
                (submitter, cycle, file_id),
            ).fetchall()
            superseded = None
            for row in older:
                superseded = int(row["id"])
                conn.execute(
                    f"UPDATE {FILES} SET superseded_by = ? WHERE id = ?", (file_id, superseded)
                )
                self._event(conn, superseded, "superseded", f"by file {file_id}")
            newer = conn.execute(
                f"SELECT id FROM {FILES} WHERE flow = 'dpl' AND firm = ? AND cycle = ?"
                " AND id > ? AND state IN ('processed', 'archived') ORDER BY id DESC LIMIT 1",
                (submitter, cycle, file_id),
            ).fetchone()
            if newer is not None:  # processed out of order after a restart: newer one wins
                conn.execute(
                    f"UPDATE {FILES} SET superseded_by = ? WHERE id = ?",
                    (int(newer["id"]), file_id),
                )
            self._set_state(
                conn,
                file_id,
                "processed",
                f"{total} records",
                total=total,
                valid=valid,
                rejected=rejected,
            )
            if before_commit is not None:
                before_commit(superseded)
        return superseded

    def dpl_records_for_file(self, file_id: int) -> list[sqlite3.Row]:
        base = file_id << _LINE_BITS
        return (
            self.connect()
            .execute(
                f"SELECT {_RECORD_COLUMNS}, r.* FROM {DPL_RECORDS} r WHERE r.id BETWEEN ? AND ?"
                " ORDER BY r.id",
                (base, base | _LINE_MASK),
            )
            .fetchall()
        )

    def iter_dpl_report(
        self, cycle: str, *, firm: str | None = None, status: str = "all"
    ) -> Iterator[sqlite3.Row]:
        clauses = [
            "f.flow = 'dpl'",
            "f.cycle = ?",
            "f.superseded_by IS NULL",
            "f.state IN ('processed', 'archived')",
        ]
        params: list[Any] = [cycle]
        if firm is not None:
            clauses.append("f.firm = ?")
            params.append(firm)
        if status != "all":
            clauses.append("r.status = ?")
            params.append(status)
        cursor = self.connect().execute(
            f"SELECT {_RECORD_COLUMNS}, r.*, f.cycle AS cycle, f.firm AS submitter,"
            f" f.name AS file_name, f.received_at FROM {FILES} f JOIN {DPL_RECORDS} r"
            f" ON {_RECORDS_OF_FILE} WHERE " + " AND ".join(clauses) + " ORDER BY f.firm, r.id",
            params,
        )
        while True:
            rows = cursor.fetchmany(2000)
            if not rows:
                return
            yield from rows

    def dpl_submitters(self, cycles: Sequence[str]) -> dict[str, set[str]]:
        """cycle -> the submitting firms that have a current (not superseded) file for it."""
        if not cycles:
            return {}
        placeholders = ", ".join("?" for _ in cycles)
        rows = (
            self.connect()
            .execute(
                f"SELECT DISTINCT cycle, firm FROM {FILES} WHERE flow = 'dpl'"
                f" AND cycle IN ({placeholders}) AND state IN ('processed', 'archived')",
                tuple(cycles),
            )
            .fetchall()
        )
        out: dict[str, set[str]] = {c: set() for c in cycles}
        for row in rows:
            out[row["cycle"]].add(row["firm"])
        return out

    # -- publications ---------------------------------------------------------------------------

    def publication(self, cycle: str) -> sqlite3.Row | None:
        return (
            self.connect()
            .execute(f"SELECT * FROM {DPL_PUBLICATIONS} WHERE cycle = ?", (cycle,))
            .fetchone()
        )

    def record_publication(
        self, *, cycle: str, delivery_date: str, sha256: str, records: int, path: str
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                f"INSERT INTO {DPL_PUBLICATIONS} (cycle, published_at, delivery_date, sha256,"
                " records, path, runs) VALUES (?, ?, ?, ?, ?, ?, 1)"
                " ON CONFLICT(cycle) DO UPDATE SET published_at = excluded.published_at,"
                " delivery_date = excluded.delivery_date, sha256 = excluded.sha256,"
                " records = excluded.records, path = excluded.path, runs = runs + 1",
                (cycle, _iso(utc_now()), delivery_date, sha256, records, path),
            )

    def record_delivery(self, *, cycle: str, exchange: str, sha256: str, target: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                f"INSERT INTO {DPL_DELIVERIES} (cycle, exchange, delivered_at, sha256, target)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(cycle, exchange) DO UPDATE SET"
                " delivered_at = excluded.delivered_at, sha256 = excluded.sha256,"
                " target = excluded.target",
                (cycle, exchange, _iso(utc_now()), sha256, target),
            )

    def forget_delivery(self, cycle: str, exchange: str) -> None:
        """Drop the delivery row before the target is touched again (redelivery), so the ledger
        never claims a delivery that a crash midway left incomplete."""
        with self.transaction() as conn:
            conn.execute(
                f"DELETE FROM {DPL_DELIVERIES} WHERE cycle = ? AND exchange = ?", (cycle, exchange)
            )

    def deliveries(self, cycle: str) -> dict[str, str]:
        rows = (
            self.connect()
            .execute(f"SELECT exchange, sha256 FROM {DPL_DELIVERIES} WHERE cycle = ?", (cycle,))
            .fetchall()
        )
        return {r["exchange"]: r["sha256"] for r in rows}

    def last_deliveries(self) -> dict[str, dt.datetime]:
        rows = (
            self.connect()
            .execute(
                f"SELECT exchange, max(delivered_at) AS at FROM {DPL_DELIVERIES} GROUP BY exchange"
            )
            .fetchall()
        )
        return {r["exchange"]: dt.datetime.fromisoformat(r["at"]) for r in rows}

    def iter_publishable_dpl_values(
        self, cycle: str, names: Sequence[str], batch: int = 5000
    ) -> Iterator[Sequence[Any]]:
        """Valid records of the cycle's current files, in publication order, streamed: the
        values of the named fields (names of ``engine.dpl.validate.DplFields``, the packed
        order)."""
        order = {name: i for i, name in enumerate(DplFields._fields)}
        try:
            picks = [order[name] for name in names]
        except KeyError as exc:
            raise ValueError(f"not a field name: {exc.args[0]!r}") from None
        cursor = self.connect().cursor()
        cursor.row_factory = None
        cursor.execute("SELECT r.fields" + _PUBLISHABLE_DPL + _PUBLICATION_ORDER, (cycle,))
        everything = picks == list(range(len(DplFields._fields)))
        while True:
            rows = cursor.fetchmany(batch)
            if not rows:
                return
            for (text,) in rows:
                values = unpack_fields(text) or ()
                yield values if everything else tuple(values[i] for i in picks)

    def count_publishable_dpl(self, cycle: str) -> int:
        """How many records ``iter_publishable_dpl_values(cycle, ...)`` yields (for progress)."""
        return int(
            self.connect().execute("SELECT count(*)" + _PUBLISHABLE_DPL, (cycle,)).fetchone()[0]
        )

    def count_unfinished_dpl_files(self, received_before: dt.datetime) -> int:
        """DPL files received before an instant but not processed yet (still in the intake)."""
        return int(
            self.connect()
            .execute(
                f"SELECT count(*) FROM {FILES} WHERE flow = 'dpl'"
                " AND state IN ('received', 'claimed') AND received_at < ?",
                (_iso(received_before),),
            )
            .fetchone()[0]
        )

    def earliest_dpl_cycle(self) -> str | None:
        """The oldest cycle with a DPL file or a publication, or None for a fresh ledger."""
        row = (
            self.connect()
            .execute(
                f"SELECT min(c) FROM (SELECT min(cycle) AS c FROM {FILES} WHERE flow = 'dpl'"
                f" AND cycle IS NOT NULL UNION ALL SELECT min(cycle) FROM {DPL_PUBLICATIONS})"
            )
            .fetchone()
        )
        return str(row[0]) if row and row[0] is not None else None

    # -- pmc and scheduler ------------------------------------------------------------------------

    def record_pmc_result(
        self,
        file_id: int,
        *,
        theo_date: str,
        counts: dict[str, int],
        requirement: float,
        outputs: Sequence[str],
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO {PMC_RESULTS} (file_id, theo_date, accepted, rejected,"
                " invalid_series, warnings, requirement, outputs) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    file_id,
                    theo_date,
                    counts.get("accepted", 0),
                    counts.get("rejected", 0),
                    counts.get("invalid_series", 0),
                    counts.get("warnings", 0),
                    requirement,
                    json.dumps(list(outputs)),
                ),
            )
            self._set_state(conn, file_id, "processed", f"theo {theo_date}")

    def record_scheduler_run(self, job: str, cycle: str, outcome: str, detail: str = "") -> None:
        with self.transaction() as conn:
            conn.execute(
                f"INSERT INTO {SCHEDULER_RUNS} (job, cycle, at, outcome, detail)"
                " VALUES (?, ?, ?, ?, ?)",
                (job, cycle, _iso(utc_now()), outcome, detail),
            )

    def scheduler_outcomes(self, job: str, cycle: str) -> list[str]:
        """Outcomes of the recorded runs of ``job`` for ``cycle``, oldest first."""
        rows = (
            self.connect()
            .execute(
                f"SELECT outcome FROM {SCHEDULER_RUNS} WHERE job = ? AND cycle = ? ORDER BY id",
                (job, cycle),
            )
            .fetchall()
        )
        return [r["outcome"] for r in rows]
