"""Storing a DPL file's records: the packed row shape and ``replace_dpl_records``.

A record's rowid encodes (file id, line) as ``file_id << 32 | line``, so ``dpl_records`` is one
append-only b-tree and a file's records are a rowid range. Record fields are stored packed
(``pack_fields``) with a ``sort_key`` whose order is the publication order (``dpl_sort_key``).

Staging: the records of a file that is not processed yet are written ``STAGE_ROWS`` at a time,
each chunk in a short transaction of its own, and the file is parsed and validated between them
with no transaction open. So a big file never holds the ledger's write lock for its whole intake:
another firm's claim, the scheduler, AMQP requests and EBE instructions get their turn between
two chunks. Staged rows are invisible: every reader of records joins the file row and reads only
files in ``VISIBLE_STATES`` (the intake stages while the file is ``claimed``). One short final
transaction then sets the cycle and totals, supersedes, marks the file ``processed`` and runs the
caller's ``before_commit`` (outputs, events); it also stores the last chunk (fewer than
``STAGE_ROWS`` records), so a small file is one transaction. Readers see all of the file's
records at that commit or none. A crash or a stop (``Interrupted``) midway leaves staged rows
of a file that is still claimed; its next run deletes them first. Any other failure deletes them
at once.
"""

from __future__ import annotations

import bisect
import contextlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from operator import itemgetter
from typing import Any

from engine.dpl.records import DplFields
from gateway.errors import Interrupted
from gateway.ledger.database import DPL_RECORDS, FILES
from gateway.ledger.files import FileLedger

_LINE_BITS = 32
_LINE_MASK = (1 << _LINE_BITS) - 1

VISIBLE_STATES = ("processed", "archived")
"""The states of a file whose records readers see; staged rows of any other file are hidden."""
_VISIBLE = "('processed', 'archived')"
STAGE_ROWS = 20_000
"""Records per staging transaction (and per batch of a discard): about 0.1 s of the write lock."""

# Record fields are stored packed: values joined by US (0x1f), None written as STX (0x02). Neither
# character can occur in an XML attribute value, and this is several times cheaper than JSON.
FIELD_SEP = "\x1f"
ABSENT = "\x02"
_SORT_SEP = "\x01"
_UNPACK: dict[str, str | None] = {ABSENT: None}


def pack_fields(values: Sequence[str | None]) -> str:
    return FIELD_SEP.join([ABSENT if v is None else v for v in values])


def unpack_fields(text: str | None) -> tuple[str | None, ...] | None:
    if text is None:
        return None
    parts = text.split(FIELD_SEP)
    return tuple(map(_UNPACK.get, parts, parts))  # STX -> None, every other value as it is


def valid_row(
    line: int, raw: bytes, fields: DplFields, firm_sort: str
) -> tuple[int, bytes, str, str]:
    """A valid record as ``DplRows`` yields it: (line, raw, packed fields, sort key), the same
    as ``pack_fields`` and ``dpl_sort_key`` give, in one step (the intake's hot path). A valid
    record has every required field, so only the optional ones can be None."""
    rpt_id, biz, dlv_dt, req, model, firm, role, agg, crd, name, sym, sub, long, short = fields
    packed = FIELD_SEP.join(
        (
            ABSENT if rpt_id is None else rpt_id,
            biz,
            ABSENT if dlv_dt is None else dlv_dt,
            req,
            model,
            firm,
            role,
            agg,
            crd,
            name,
            sym,
            sub,
            ABSENT if long is None else long,
            ABSENT if short is None else short,
        )  # type: ignore[arg-type]
    )
    return line, raw, packed, f"{firm_sort}{_SORT_SEP}{agg}{_SORT_SEP}{sym}{_SORT_SEP}{sub}"


def dpl_sort_key(firm_sort: str, agg_unit: str, symbol: str, sub_typ: str) -> str:
    """One text whose order is the publication order: the parts joined by SOH,
    which sorts before every character an attribute value can hold."""
    return _SORT_SEP.join((firm_sort, agg_unit, symbol, sub_typ))


# Stores one rejected record of the file ``DplLedger.replace_dpl_records`` is storing:
# (line, raw, reasons joined by spaces, details JSON or None, packed fields or None).
StoreRejected = Callable[[int, bytes, str, "str | None", "str | None"], None]
# What the intake gives ``replace_dpl_records``: called with ``StoreRejected``, it yields the
# file's valid records as (line, raw, packed fields, sort key) and stores each rejected one
# through the callable, all in line order.
DplRows = Callable[[StoreRejected], Iterable[Sequence[Any]]]


def _split_rows(rows: Iterable[Sequence[Any]]) -> DplRows:
    """Rows ``(line, raw, status, reasons, details, fields, sort_key)`` as ``DplRows``."""

    def produce(store_rejected: StoreRejected) -> Iterator[Sequence[Any]]:
        for line, raw, status, reasons, details, fields, sort_key in rows:
            if status == "valid":
                yield line, raw, fields, sort_key
            elif status == "rejected":
                store_rejected(line, raw, reasons, details, fields)
            else:
                raise ValueError(f"not a record status: {status!r}")

    return produce


def _inserts(file_id: int) -> tuple[str, str]:
    """The insert statements of a file's valid and rejected rows. The file's base rowid is an
    integer of ours, written into the statements, and a valid record's constant columns too:
    valid rows go to SQLite as they are, with four values each."""
    base = int(file_id) << _LINE_BITS
    return (
        f"INSERT INTO {DPL_RECORDS} (id, raw, status, reasons, fields, sort_key)"
        f" VALUES ({base} | ?, ?, 'valid', '', ?, ?)",
        f"INSERT INTO {DPL_RECORDS} (id, raw, status, reasons, details, fields)"
        f" VALUES ({base} | ?, ?, 'rejected', ?, ?, ?)",
    )


_line = itemgetter(0)


def _insert_in_line_order(
    conn: sqlite3.Connection,
    inserts: tuple[str, str],
    valid: list[Sequence[Any]],
    rejected: list[tuple[int, bytes, str, str | None, str | None]],
) -> None:
    """One chunk's valid and rejected rows (each list in line order) stored in line order, so
    rowids arrive ascending (appends to the b-tree)."""
    insert_valid, insert_rejected = inserts
    start = 0
    for row in rejected:
        end = bisect.bisect_left(valid, row[0], lo=start, key=_line)
        if end > start:
            conn.executemany(insert_valid, valid[start:end])
            start = end
        conn.execute(insert_rejected, row)
    if start < len(valid):
        conn.executemany(insert_valid, valid[start:] if start else valid)


class DplRecordStore(FileLedger):
    """A DPL file's records: staged in chunks, made visible with the file's state change."""

    def replace_dpl_records(
        self,
        file_id: int,
        rows: Iterable[Sequence[Any]] | DplRows,
        *,
        cycle: str,
        submitter: str,
        totals: tuple[int, int, int] | Callable[[], tuple[int, int, int]],
        before_commit: Callable[[int | None], None] | None = None,
    ) -> int | None:
        """Store a file's records, mark it processed and supersede the submitter's older files.

        ``rows`` are ``(line, raw, status, reasons, details_json, packed_fields, sort_key)``
        (see ``pack_fields`` and ``dpl_sort_key``), or, on the hot path of the intake, a
        ``DplRows`` callable (valid rows yielded, rejected ones stored through the callable it
        is given); either may be lazy. ``totals`` (total, valid, rejected) may be a callable
        read after the rows are consumed.

        The rows are consumed with no transaction open and stored ``STAGE_ROWS`` per short
        transaction while the file is not processed (invisible to every reader; see the module
        doc). Then one short final transaction stores the last chunk, sets the cycle and totals,
        supersedes, marks the file ``processed`` and runs ``before_commit(superseded_id)``, so
        outputs it writes exist whenever the ledger says ``processed``: readers see all of the
        file's records or none.
        A file that is processed already (stored again) gets everything in one transaction.
        Returns the id of the file this one superseded, if any.

        Idempotent: a rerun first deletes what an earlier attempt may have stored. When this
        raises, the staged rows are deleted again, except on ``Interrupted`` (the daemon is
        stopping: the file stays claimed, and its next run deletes them first).
        """
        produce = rows if callable(rows) else _split_rows(rows)
        if self._records_visible(file_id):
            with self.transaction() as conn:
                base = file_id << _LINE_BITS
                conn.execute(
                    f"DELETE FROM {DPL_RECORDS} WHERE id BETWEEN ? AND ?",
                    (base, base | _LINE_MASK),
                )
                insert_valid, insert_rejected = _inserts(file_id)

                def store_rejected(
                    line: int, raw: bytes, reasons: str, details: str | None, fields: str | None
                ) -> None:
                    conn.execute(insert_rejected, (line, raw, reasons, details, fields))

                conn.executemany(insert_valid, produce(store_rejected))
                return self._mark_processed(conn, file_id, cycle, submitter, totals, before_commit)
        try:
            store_last = self._stage(file_id, produce)
            with self.transaction() as conn:
                store_last(conn)
                return self._mark_processed(conn, file_id, cycle, submitter, totals, before_commit)
        except Interrupted:
            raise
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self.discard_dpl_records(file_id)
            raise

    def _records_visible(self, file_id: int) -> bool:
        row = (
            self.connect()
            .execute(f"SELECT 1 FROM {FILES} WHERE id = ? AND state IN {_VISIBLE}", (file_id,))
            .fetchone()
        )
        return row is not None

    def _stage(self, file_id: int, produce: DplRows) -> Callable[[sqlite3.Connection], None]:
        """Delete an earlier attempt's rows, then store the file's rows ``STAGE_ROWS`` per
        transaction; the rows are produced (parsed, validated) between the transactions.
        Returns what stores the last, partial chunk in the final transaction (so a small file
        is one transaction, as it always was)."""
        if self.staged_dpl_rows(file_id, limit=1):
            self.discard_dpl_records(file_id)
        inserts = _inserts(file_id)
        rejected: list[tuple[int, bytes, str, str | None, str | None]] = []

        def write(valid: list[Sequence[Any]]) -> None:
            if valid or rejected:
                with self.transaction() as conn:
                    _insert_in_line_order(conn, inserts, valid, rejected)
                rejected.clear()

        def store_rejected(
            line: int, raw: bytes, reasons: str, details: str | None, fields: str | None
        ) -> None:
            rejected.append((line, raw, reasons, details, fields))
            if len(rejected) >= STAGE_ROWS:  # a long run of rejects: stored on their own
                write([])

        valid_rows = iter(produce(store_rejected))
        while len(valid := list(islice(valid_rows, STAGE_ROWS))) == STAGE_ROWS:
            write(valid)
        last = rejected[:]

        def store_last(conn: sqlite3.Connection) -> None:
            _insert_in_line_order(conn, inserts, valid, last)

        return store_last

    def _mark_processed(
        self,
        conn: sqlite3.Connection,
        file_id: int,
        cycle: str,
        submitter: str,
        totals: tuple[int, int, int] | Callable[[], tuple[int, int, int]],
        before_commit: Callable[[int | None], None] | None,
    ) -> int | None:
        """The end of ``replace_dpl_records``, in its final transaction: cycle, supersede,
        totals, state ``processed``, ``before_commit``."""
        conn.execute(f"UPDATE {FILES} SET cycle = ? WHERE id = ?", (cycle, file_id))
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

    def discard_dpl_records(self, file_id: int) -> int:
        """Delete the rows staged for a file that is not processed (a failed or abandoned
        attempt), ``STAGE_ROWS`` per transaction; the records of a processed file are never
        touched. Returns how many rows were deleted."""
        base = file_id << _LINE_BITS
        removed = 0
        while True:
            with self.transaction() as conn:
                count = conn.execute(
                    f"DELETE FROM {DPL_RECORDS} WHERE id IN (SELECT id FROM {DPL_RECORDS}"
                    f" WHERE id BETWEEN ? AND ? LIMIT {STAGE_ROWS}) AND NOT EXISTS"
                    f" (SELECT 1 FROM {FILES} WHERE id = ? AND state IN {_VISIBLE})",
                    (base, base | _LINE_MASK, file_id),
                ).rowcount
            removed += count
            if count < STAGE_ROWS:
                return removed

    def staged_dpl_rows(self, file_id: int, limit: int = -1) -> int:
        """How many rows the ledger holds for a file, staged or visible, counting up to
        ``limit`` (-1: all) (for checks and tests)."""
        base = file_id << _LINE_BITS
        row = (
            self.connect()
            .execute(
                f"SELECT count(*) FROM (SELECT 1 FROM {DPL_RECORDS} WHERE id BETWEEN ? AND ?"
                " LIMIT ?)",
                (base, base | _LINE_MASK, limit),
            )
            .fetchone()
        )
        return int(row[0])

    def rejected_dpl_lines(self, file_id: int) -> Iterator[tuple[int, bytes]]:
        """(line, raw) of a processed file's rejected records in line order, streamed from the
        ledger (``replace_dpl_records``'s ``before_commit`` sees them: it runs in the transaction
        that marked the file processed)."""
        base = file_id << _LINE_BITS
        cursor = self.connect().execute(
            f"SELECT id & {_LINE_MASK}, raw FROM {DPL_RECORDS} WHERE id BETWEEN ? AND ?"
            f" AND status != 'valid' AND EXISTS (SELECT 1 FROM {FILES} WHERE id = ?"
            f" AND state IN {_VISIBLE}) ORDER BY id",
            (base, base | _LINE_MASK, file_id),
        )
        for line, raw in cursor:
            yield int(line), bytes(raw)

    def dpl_records_for_file(self, file_id: int) -> list[sqlite3.Row]:
        """A processed file's records in line order (none while it is not processed: rows being
        staged are not shown)."""
        base = file_id << _LINE_BITS
        return (
            self.connect()
            .execute(
                f"SELECT r.id >> {_LINE_BITS} AS file_id, r.id & {_LINE_MASK} AS line, r.*"
                f" FROM {DPL_RECORDS} r WHERE r.id BETWEEN ? AND ? AND EXISTS"
                f" (SELECT 1 FROM {FILES} WHERE id = ? AND state IN {_VISIBLE}) ORDER BY r.id",
                (base, base | _LINE_MASK, file_id),
            )
            .fetchall()
        )
