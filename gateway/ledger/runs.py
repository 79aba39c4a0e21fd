"""Outcome rows in the ledger: PMC results of portfolio files and runs of scheduled jobs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.ledger.database import PMC_RESULTS, SCHEDULER_RUNS, iso, utc_now
from gateway.ledger.files import FileLedger


class RunLedger(FileLedger):
    """The ``pmc_results`` and ``scheduler_runs`` tables."""

    def record_pmc_result(
        self,
        file_id: int,
        *,
        theo_date: str,
        counts: dict[str, int],
        requirement: float,
        outputs: Sequence[str],
        event: tuple[str, Mapping[str, Any], str] | None = None,
    ) -> None:
        """Store a file's PMC result and mark it processed; ``event`` (routing key, payload,
        message id) is written in the same transaction."""
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
            if event is not None:
                self.write_event(conn, *event)

    def record_pmc_not_computed(
        self, file_id: int, detail: str, event: tuple[str, Mapping[str, Any], str]
    ) -> None:
        """Mark a pmc file processed without a margin (no P&L set of the requested date); its
        answer ``event`` (routing key, payload, message id) is written in the same transaction."""
        with self.transaction() as conn:
            self._set_state(conn, file_id, "processed", detail)
            self.write_event(conn, *event)

    def record_scheduler_run(self, job: str, cycle: str, outcome: str, detail: str = "") -> None:
        with self.transaction() as conn:
            conn.execute(
                f"INSERT INTO {SCHEDULER_RUNS} (job, cycle, at, outcome, detail)"
                " VALUES (?, ?, ?, ?, ?)",
                (job, cycle, iso(utc_now()), outcome, detail),
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

    def last_scheduler_detail(self, job: str, cycle: str) -> str | None:
        """The detail of the last recorded run of ``job`` for ``cycle`` (None: never run)."""
        row = (
            self.connect()
            .execute(
                f"SELECT detail FROM {SCHEDULER_RUNS} WHERE job = ? AND cycle = ?"
                " ORDER BY id DESC LIMIT 1",
                (job, cycle),
            )
            .fetchone()
        )
        return None if row is None else str(row["detail"] or "")
