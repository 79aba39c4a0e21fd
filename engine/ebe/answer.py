"""The answer to one query: set + kept instructions + filters -> its stable JSON form.

Both the daemon (instructions from the ledger) and ``posgate ebe compute`` (instructions from
files, judged as if received at ``--at``) end here, so the two can never disagree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from engine.ebe.day import KeptInstruction, effective_for, status_at
from engine.ebe.instructions import Verdict
from engine.ebe.outcome import compute_outcomes
from engine.ebe.positions import ExpiringSet
from engine.ebe.query import Filters, document, result_rows, select


def answer(
    positions: ExpiringSet | None,
    *,
    firm: str,
    filters: Filters,
    thresholds: Mapping[str, int],
    cutoff_at: dt.time,
    now: dt.datetime,
    kept: Sequence[KeptInstruction] = (),
    verdicts: Sequence[Verdict] = (),
    problems: Sequence[str] = (),
) -> dict[str, Any]:
    """The document for ``firm``. Without a set for the date the rows are empty and the problems
    say so (a query is not an error just because the positions are not in yet)."""
    day = dt.date.fromisoformat(filters.expiration_date)
    status = status_at(day, cutoff_at, now)
    notes = list(problems)
    rows: list[dict[str, Any]] = []
    if positions is None:
        notes.append(
            f"NO_POSITIONS_LOADED: no expiring positions loaded for {filters.expiration_date}"
        )
    else:
        mine = [k for k in kept if k.key[0] == firm]
        effective, not_applied = effective_for(positions, mine)
        notes.extend(not_applied)
        outcomes = compute_outcomes(positions, thresholds, effective)
        rows = result_rows(positions, outcomes, select(positions, outcomes, firm, filters))
    return document(filters.expiration_date, status, rows, [v.as_dict() for v in verdicts], notes)


def kept_from_verdicts(
    verdicts: Sequence[Verdict], received_at: dt.datetime, origin: str
) -> list[KeptInstruction]:
    """The accepted lines of one submission, as the ledger would keep them."""
    return [
        KeptInstruction(v.key, v.action, v.quantity, received_at, f"{origin} line {v.line}")
        for v in verdicts
        if v.status == "accepted" and v.key is not None
    ]
