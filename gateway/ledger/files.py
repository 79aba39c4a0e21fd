"""Input files in the ledger: ``FileRow`` and the lifecycle of every received file.

Every state change of an input file is a row in ``file_events`` as well as the current state in
``files``; states are ``received -> claimed -> processed -> archived`` or ``quarantined``
(``duplicate`` only in ledgers written before bytes sent again counted as a new submission).
Non-terminal rows are reconciled with the disk at start-up by the intake.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from dataclasses import dataclass
from typing import Any

from gateway.ledger.database import FILE_EVENTS, FILES, LedgerDatabase, iso, utc_now

TERMINAL_STATES = frozenset({"archived", "quarantined", "duplicate", "vanished"})


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
    duplicate_of: int | None = None

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
            duplicate_of=row["duplicate_of"],
        )


class FileLedger(LedgerDatabase):
    """The ``files`` and ``file_events`` tables: recording, state changes, lookups."""

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
                    iso(received_at),
                    cycle,
                    work_path,
                    source,
                    iso(utc_now()),
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
            (state, iso(utc_now()), *columns.values(), file_id),
        )
        self._event(conn, file_id, state, detail)

    def output_base(self, file_id: int) -> str | None:
        """The base name chosen for this upload's outputs (``gateway.spool.naming``), if any."""
        row = (
            self.connect()
            .execute(f"SELECT output_base FROM {FILES} WHERE id = ?", (file_id,))
            .fetchone()
        )
        return str(row[0]) if row and row[0] is not None else None

    def set_output_base(self, file_id: int, base: str) -> None:
        with self.transaction() as conn:
            conn.execute(f"UPDATE {FILES} SET output_base = ? WHERE id = ?", (base, file_id))

    def _event(self, conn: sqlite3.Connection, file_id: int, state: str, detail: str) -> None:
        conn.execute(
            f"INSERT INTO {FILE_EVENTS} (file_id, state, at, detail) VALUES (?, ?, ?, ?)",
            (file_id, state, iso(utc_now()), detail),
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
