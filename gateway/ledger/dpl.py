"""DPL in the ledger: the records of each file, the publishable set of a cycle, publications.

How a file's records are stored (rowids, packed fields, staging) is ``dpl_store``. Every query
here joins the file row and reads only files that are ``processed`` or ``archived`` (or that a
publication was built from, which were), so the rows a file in the intake has staged so far are
never seen.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from engine.dpl.records import DplFields
from gateway.ledger.database import (
    DPL_DELIVERIES,
    DPL_PUBLICATIONS,
    DPL_PUBLISHED_FILES,
    DPL_RECORDS,
    FILES,
    iso,
    utc_now,
)
from gateway.ledger.dpl_store import (
    _LINE_BITS,
    _LINE_MASK,
    FIELD_SEP,
    DplRecordStore,
    unpack_fields,
)

# The publishable records of a cycle (valid, of current files) and the order of publication:
# firm numeric-aware, aggregation unit, symbol, SubTyp, with a deterministic tie-break.
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
_AS_UTF8 = "SELECT CAST(r.fields AS BLOB)"  # the stored UTF-8 text as it is, not decoded
# The same, restricted to a given set of files (a JSON array of ids): what a publication is built
# from, so that the file set recorded with it is exactly what it holds.
_PUBLISHABLE_OF_FILES = (
    f" FROM {FILES} f JOIN {DPL_RECORDS} r ON {_RECORDS_OF_FILE}"
    " WHERE f.id IN (SELECT value FROM json_each(?)) AND r.status = 'valid'"
)
_CURRENT_FILES = (
    f"SELECT id FROM {FILES} WHERE flow = 'dpl' AND cycle = ? AND superseded_by IS NULL"
    " AND state IN ('processed', 'archived') ORDER BY id"
)


class DplLedger(DplRecordStore):
    """DPL records (see ``DplRecordStore``), report queries and publications."""

    def iter_dpl_report(
        self, cycle: str, *, firm: str | None = None, status: str = "all"
    ) -> Iterator[sqlite3.Row]:
        """Records of the cycle by submitter and line: of the files its publication was built
        from (with ``rpt_seq``, the record's sequence number in the published file), or of the
        current files when it has never been published (``rpt_seq`` None)."""
        published = self.published_dpl_files(cycle)
        params: list[Any] = []
        if published is not None:
            files_json = json.dumps(published)
            head = (
                "WITH pub AS (SELECT r.id AS rid, ROW_NUMBER() OVER"
                f" (ORDER BY r.sort_key, r.id) AS seq{_PUBLISHABLE_OF_FILES}) "
            )
            params.append(files_json)
            clauses = ["f.id IN (SELECT value FROM json_each(?))"]
            params.append(files_json)
            join = " LEFT JOIN pub ON pub.rid = r.id"
            seq = "pub.seq"
        else:
            head = ""
            clauses = [
                "f.flow = 'dpl'",
                "f.cycle = ?",
                "f.superseded_by IS NULL",
                "f.state IN ('processed', 'archived')",
            ]
            params.append(cycle)
            join = ""
            seq = "NULL"
        if firm is not None:
            clauses.append("f.firm = ?")
            params.append(firm)
        if status != "all":
            clauses.append("r.status = ?")
            params.append(status)
        cursor = self.connect().execute(
            f"{head}SELECT {_RECORD_COLUMNS}, r.*, f.cycle AS cycle, f.firm AS submitter,"
            f" f.name AS file_name, f.received_at, {seq} AS rpt_seq FROM {FILES} f"
            f" JOIN {DPL_RECORDS} r ON {_RECORDS_OF_FILE}{join} WHERE "
            + " AND ".join(clauses)
            + " ORDER BY f.firm, r.id",
            params,
        )
        while True:
            rows = cursor.fetchmany(2000)
            if not rows:
                return
            yield from rows

    def current_dpl_files(self, cycle: str) -> list[int]:
        """Ids of the cycle's current files (processed, not superseded), ascending."""
        return [int(r[0]) for r in self.connect().execute(_CURRENT_FILES, (cycle,)).fetchall()]

    def published_dpl_files(self, cycle: str) -> list[int] | None:
        """Ids of the files the cycle's last publication was built from (None: not published)."""
        if self.publication(cycle) is None:
            return None
        rows = (
            self.connect()
            .execute(
                f"SELECT file_id FROM {DPL_PUBLISHED_FILES} WHERE cycle = ? ORDER BY file_id",
                (cycle,),
            )
            .fetchall()
        )
        return [int(r[0]) for r in rows]

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
        self,
        *,
        cycle: str,
        delivery_date: str,
        sha256: str,
        records: int,
        path: str,
        files: Sequence[int] = (),
        preliminary: bool = False,
    ) -> None:
        """Record a built publication and the files it was built from (one transaction)."""
        with self.transaction() as conn:
            conn.execute(
                f"INSERT INTO {DPL_PUBLICATIONS} (cycle, published_at, delivery_date, sha256,"
                " records, path, runs, preliminary) VALUES (?, ?, ?, ?, ?, ?, 1, ?)"
                " ON CONFLICT(cycle) DO UPDATE SET published_at = excluded.published_at,"
                " delivery_date = excluded.delivery_date, sha256 = excluded.sha256,"
                " records = excluded.records, path = excluded.path, runs = runs + 1,"
                " preliminary = excluded.preliminary",
                (cycle, iso(utc_now()), delivery_date, sha256, records, path, int(preliminary)),
            )
            conn.execute(f"DELETE FROM {DPL_PUBLISHED_FILES} WHERE cycle = ?", (cycle,))
            conn.executemany(
                f"INSERT INTO {DPL_PUBLISHED_FILES} (cycle, file_id) VALUES (?, ?)",
                ((cycle, f) for f in files),
            )

    def mark_publication_final(self, cycle: str) -> None:
        """A preliminary publication found unchanged after the cutoff becomes the final one."""
        with self.transaction() as conn:
            conn.execute(f"UPDATE {DPL_PUBLICATIONS} SET preliminary = 0 WHERE cycle = ?", (cycle,))

    def record_delivery(
        self,
        *,
        cycle: str,
        exchange: str,
        sha256: str,
        target: str,
        event: tuple[str, Mapping[str, Any], str] | None = None,
    ) -> None:
        """Record a delivery; ``event`` (routing key, payload, message id) in the same
        transaction."""
        with self.transaction() as conn:
            conn.execute(
                f"INSERT INTO {DPL_DELIVERIES} (cycle, exchange, delivered_at, sha256, target)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT(cycle, exchange) DO UPDATE SET"
                " delivered_at = excluded.delivered_at, sha256 = excluded.sha256,"
                " target = excluded.target",
                (cycle, exchange, iso(utc_now()), sha256, target),
            )
            if event is not None:
                self.write_event(conn, *event)

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
        self,
        cycle: str,
        names: Sequence[str],
        batch: int = 5000,
        files: Sequence[int] | None = None,
    ) -> Iterator[Sequence[Any]]:
        """Valid records of the cycle's current files (or of ``files``), in publication order,
        streamed: the values of the named fields (names of ``engine.dpl.records.DplFields``, the
        packed order)."""
        order = {name: i for i, name in enumerate(DplFields._fields)}
        try:
            picks = [order[name] for name in names]
        except KeyError as exc:
            raise ValueError(f"not a field name: {exc.args[0]!r}") from None
        cursor = self.connect().cursor()
        cursor.row_factory = None
        if files is None:
            cursor.execute("SELECT r.fields" + _PUBLISHABLE_DPL + _PUBLICATION_ORDER, (cycle,))
        else:
            cursor.execute(
                "SELECT r.fields" + _PUBLISHABLE_OF_FILES + _PUBLICATION_ORDER,
                (json.dumps(list(files)),),
            )
        everything = picks == list(range(len(DplFields._fields)))
        while True:
            rows = cursor.fetchmany(batch)
            if not rows:
                return
            for (text,) in rows:
                values = unpack_fields(text) or ()
                yield values if everything else tuple(values[i] for i in picks)

    def iter_publishable_dpl_packed(
        self, cycle: str, batch: int = 5000, files: Sequence[int] | None = None
    ) -> Iterator[tuple[int, bytes]]:
        """``iter_publishable_dpl_values``, every field, ``batch`` records at a time as stored:
        (how many, their packed fields in UTF-8 joined by ``FIELD_SEP``; ``ABSENT`` for None).
        The publication's hot path: nothing decoded, no step per record."""
        cursor = self.connect().cursor()
        cursor.row_factory = None
        where, param = (
            (_PUBLISHABLE_DPL, cycle)
            if files is None
            else (_PUBLISHABLE_OF_FILES, json.dumps(list(files)))
        )
        cursor.execute(_AS_UTF8 + where + _PUBLICATION_ORDER, (param,))
        join = FIELD_SEP.encode().join
        while rows := cursor.fetchmany(batch):
            yield len(rows), join([text for (text,) in rows])

    def count_publishable_dpl(self, cycle: str, files: Sequence[int] | None = None) -> int:
        """How many records ``iter_publishable_dpl_values(cycle, ...)`` yields (for progress)."""
        if files is not None:
            query, params = "SELECT count(*)" + _PUBLISHABLE_OF_FILES, (json.dumps(list(files)),)
        else:
            query, params = "SELECT count(*)" + _PUBLISHABLE_DPL, (cycle,)
        return int(self.connect().execute(query, params).fetchone()[0])

    def count_unfinished_dpl_files(self, received_before: dt.datetime) -> int:
        """DPL files received before an instant but not processed yet (still in the intake)."""
        return len(self.unfinished_dpl_files(received_before))

    def unfinished_dpl_files(self, received_before: dt.datetime) -> list[tuple[int, str, str, str]]:
        """(id, firm, name, state) of the DPL files received before an instant and not processed
        yet: still in the intake, retrying after a full disk, or ``failed``."""
        rows = (
            self.connect()
            .execute(
                f"SELECT id, firm, name, state FROM {FILES} WHERE flow = 'dpl'"
                " AND state IN ('received', 'claimed', 'failed') AND received_at < ? ORDER BY id",
                (iso(received_before),),
            )
            .fetchall()
        )
        return [(int(r["id"]), r["firm"], r["name"], r["state"]) for r in rows]

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
