"""Exercise by exception in the ledger: which set is loaded per date, every judged instruction
line (with its receipt time from the server's clock), and the contrary-intention publications."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from engine.ebe.day import KeptInstruction
from engine.ebe.instructions import Verdict
from gateway.ledger.database import (
    EBE_INSTRUCTIONS,
    EBE_PUBLICATIONS,
    EBE_SETS,
    iso,
    utc_now,
)
from gateway.ledger.files import FileLedger


class EbeLedger(FileLedger):
    """The ``ebe_sets``, ``ebe_instructions`` and ``ebe_publications`` tables."""

    def record_ebe_set(
        self, expiration_date: str, *, source: str, folder: str, fingerprint: str, rows: int
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO {EBE_SETS} (expiration_date, source, folder, fingerprint,"
                " rows, loaded_at) VALUES (?, ?, ?, ?, ?, ?)",
                (expiration_date, source, folder, fingerprint, rows, iso(utc_now())),
            )

    def ebe_sets(self) -> dict[str, dict[str, Any]]:
        rows = self.connect().execute(f"SELECT * FROM {EBE_SETS}").fetchall()
        return {r["expiration_date"]: dict(r) for r in rows}

    def record_ebe_instructions(
        self,
        verdicts: Sequence[Verdict],
        *,
        firm: str,
        received_at: dt.datetime,
        origin: str,
        file_id: int | None = None,
    ) -> None:
        """Keep every judged line of one submission; with ``file_id`` the file becomes
        ``processed`` in the same transaction."""
        at = iso(received_at)
        values = []
        for v in verdicts:
            key = v.key
            values.append(
                (
                    file_id,
                    origin,
                    v.line,
                    firm,
                    v.expiration_date,
                    key[1] if key else None,
                    key[2] if key else None,
                    key[3] if key else None,
                    key[4] if key else None,
                    v.action or None,
                    v.quantity,
                    v.status,
                    json.dumps(list(v.reasons)),
                    at,
                )
            )
        with self.transaction() as conn:
            conn.executemany(
                f"INSERT INTO {EBE_INSTRUCTIONS} (file_id, origin, line, firm, expiration_date,"
                " account, symbol, put_call, strike, action, quantity, status, reasons,"
                " received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            if file_id is not None:
                accepted = sum(v.status == "accepted" for v in verdicts)
                self._set_state(
                    conn, file_id, "processed", f"{accepted} of {len(verdicts)} accepted"
                )

    def last_kept_instruction_id(self, expiration_date: str) -> int:
        """The id of the newest accepted instruction of a date (0 without any): it changes
        whenever the kept instructions do."""
        row = (
            self.connect()
            .execute(
                f"SELECT max(id) FROM {EBE_INSTRUCTIONS}"
                " WHERE expiration_date = ? AND status = 'accepted'",
                (expiration_date,),
            )
            .fetchone()
        )
        return int(row[0] or 0)

    def kept_instructions(
        self, expiration_date: str, firm: str | None = None
    ) -> list[KeptInstruction]:
        """Accepted instructions of a date (of one firm, or all), in receipt order."""
        sql = f"SELECT * FROM {EBE_INSTRUCTIONS} WHERE expiration_date = ? AND status = 'accepted'"
        args: list[Any] = [expiration_date]
        if firm is not None:
            sql += " AND firm = ?"
            args.append(firm)
        rows = self.connect().execute(sql + " ORDER BY id", args).fetchall()
        return [
            KeptInstruction(
                key=(r["firm"], r["account"], r["symbol"], r["put_call"], int(r["strike"])),
                action=r["action"],
                quantity=int(r["quantity"]),
                received_at=dt.datetime.fromisoformat(r["received_at"]),
                origin=f"{r['origin']} line {r['line']}",
            )
            for r in rows
        ]

    def record_ebe_publication(
        self, expiration_date: str, exchange: str, *, sha256: str, records: int, path: str
    ) -> None:
        with self.transaction() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO {EBE_PUBLICATIONS} (expiration_date, exchange,"
                " published_at, sha256, records, path) VALUES (?, ?, ?, ?, ?, ?)",
                (expiration_date, exchange, iso(utc_now()), sha256, records, path),
            )

    def ebe_publication(self, expiration_date: str, exchange: str) -> dict[str, Any] | None:
        row = (
            self.connect()
            .execute(
                f"SELECT * FROM {EBE_PUBLICATIONS} WHERE expiration_date = ? AND exchange = ?",
                (expiration_date, exchange),
            )
            .fetchone()
        )
        return dict(row) if row is not None else None
