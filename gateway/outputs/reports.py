"""On-demand DPL reports and the missing-submitters view.

Owns the queries that turn ledger rows into report rows (plain dicts) and their CSV and JSON
renderings. Shared by the CLI (``posgate report ...``: operators, any firm or all) and the AMQP
``dpl.report`` request, where the caller passes the requesting firm so that a firm sees only the
records it submitted. Rows stream from the ledger and are written as they come, so a report of
millions of records never sits in memory.

A record report exists only for a published cycle (reports are available once the
aggregated file has been sent); ``CycleNotPublished`` says so otherwise. It is exactly what was
published: the records of the files the last publication of the cycle was built from, each valid
record with the ``RptID`` and ``DlvDt`` the exchanges received (rejected records keep the values
as sent). The missing-submitters
view needs no publication: operators look at it before and after the cutoff.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

from engine.calendar import BusinessCalendar
from engine.dpl.records import DplFields, firm_sort_text
from gateway.ledger import Ledger, unpack_fields

log = logging.getLogger(__name__)

REPORT_SCHEMA_VERSION = 1
STATUSES = ("valid", "rejected", "all")
FIELD_NAMES: tuple[str, ...] = DplFields._fields
RECORD_COLUMNS: tuple[str, ...] = (
    "cycle",
    "submitter",
    "file",
    "received_at",
    "line",
    "status",
    "reasons",
    "details",
    *FIELD_NAMES,
)
MISSING_COLUMNS: tuple[str, ...] = (
    "cycle",
    "firm",
    "last_cycle",
    "cycles_submitted",
    "lookback_cycles",
    "technical_contact",
)

ReportRow = dict[str, Any]


class CycleNotPublished(Exception):
    """Reports of a cycle open only once its aggregated file is published."""

    def __init__(self, cycle: dt.date) -> None:
        super().__init__(f"cycle {cycle.isoformat()} is not published yet")
        self.cycle = cycle


def is_published(ledger: Ledger, cycle: dt.date) -> bool:
    return ledger.publication(cycle.isoformat()) is not None


def dpl_report_rows(
    ledger: Ledger, cycle: dt.date, firm: str | None = None, status: str = "all"
) -> Iterator[ReportRow]:
    """Current records of ``cycle`` (superseded files left out), by submitter, file and line.

    ``firm`` restricts to the records that firm submitted (the spool/AMQP identity, compared as
    given); ``status`` is ``valid``, ``rejected`` or ``all``. Raises ``CycleNotPublished`` at
    once (not on first iteration) and ``ValueError`` for an unknown status.
    """
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    if not is_published(ledger, cycle):
        raise CycleNotPublished(cycle)
    return _rows(ledger, cycle, firm, status)


def _rows(ledger: Ledger, cycle: dt.date, firm: str | None, status: str) -> Iterator[ReportRow]:
    publication = ledger.publication(cycle.isoformat())
    dlv_dt = publication["delivery_date"] if publication is not None else None
    prefix = f"{cycle:%Y%m%d}"
    for row in ledger.iter_dpl_report(cycle.isoformat(), firm=firm, status=status):
        values = unpack_fields(row["fields"])
        fields = dict(zip(FIELD_NAMES, values, strict=True)) if values is not None else None
        if fields is not None and row["rpt_seq"] is not None:
            # what the exchanges received for this record (same rule as the publication's build)
            fields["rpt_id"] = f"{prefix}{int(row['rpt_seq']):09d}"
            fields["dlv_dt"] = dlv_dt
        yield {
            "cycle": row["cycle"],
            "submitter": row["submitter"],
            "file": row["file_name"],
            "received_at": row["received_at"],
            "line": row["line"],
            "status": row["status"],
            "reasons": (row["reasons"] or "").split(),
            "details": [describe_problem(p) for p in json.loads(row["details"] or "[]")],
            "fields": fields,
        }


def describe_problem(problem: Any) -> str:
    """``CODE: message`` for a stored problem dict (``engine.dpl.records.Problem._asdict()``)."""
    if isinstance(problem, dict) and "message" in problem:
        code = problem.get("code") or problem.get("reason") or ""
        return f"{code}: {problem['message']}" if code else str(problem["message"])
    return json.dumps(problem, ensure_ascii=False) if not isinstance(problem, str) else problem


def flatten(row: ReportRow) -> dict[str, Any]:
    """One CSV row: lists joined (reasons by spaces, details by ``; ``), fields as columns."""
    fields = row.get("fields") or {}
    out = {
        "cycle": row["cycle"],
        "submitter": row["submitter"],
        "file": row["file"],
        "received_at": row["received_at"],
        "line": row["line"],
        "status": row["status"],
        "reasons": " ".join(row["reasons"]),
        "details": "; ".join(row["details"]),
    }
    for name in FIELD_NAMES:
        value = fields.get(name)
        out[name] = "" if value is None else value
    return out


def render_csv(rows: Iterable[ReportRow], out: TextIO) -> int:
    """Write a header and one line per record; returns the number of records."""
    writer = csv.DictWriter(out, fieldnames=RECORD_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow(flatten(row))
        count += 1
    return count


def render_json(
    rows: Iterable[ReportRow],
    out: TextIO,
    *,
    cycle: dt.date,
    firm: str | None = None,
    status: str = "all",
) -> int:
    """Write ``{"schema_version", "cycle", "firm", "status", "records": [...], "count"}``.

    Streamed: one record per line inside the array. Returns the number of records.
    """
    head = {
        "schema_version": REPORT_SCHEMA_VERSION,
        "cycle": cycle.isoformat(),
        "firm": firm,
        "status": status,
    }
    out.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "records": [')
    count = 0
    for row in rows:
        out.write(("\n" if count == 0 else ",\n") + json.dumps(row, ensure_ascii=False))
        count += 1
    out.write(f'\n], "count": {count}}}\n')
    return count


# ---------------------------------------------------------------------------------------------
# missing submitters


def lookback_cycles(calendar: BusinessCalendar, cycle: dt.date, count: int) -> list[dt.date]:
    """The ``count`` business-day cycles before ``cycle``, most recent first."""
    out: list[dt.date] = []
    day = cycle
    for _ in range(count):
        day = calendar.previous_business_day(day)
        out.append(day)
    return out


def missing_submitters(
    ledger: Ledger,
    calendar: BusinessCalendar,
    cycle: dt.date,
    lookback: int,
    contact: Callable[[str], str] | None = None,
) -> list[ReportRow]:
    """Firms that submitted in one of the ``lookback`` previous cycles but not in ``cycle``.

    Sorted in aggregation order of firm ids; ``contact`` names each firm's technical contact.
    """
    previous = lookback_cycles(calendar, cycle, lookback)
    keys = [cycle.isoformat(), *(c.isoformat() for c in previous)]
    submitters = ledger.dpl_submitters(keys)
    present = submitters.get(cycle.isoformat(), set())
    seen: dict[str, list[str]] = {}
    for key in keys[1:]:
        for firm in submitters.get(key, set()):
            seen.setdefault(firm, []).append(key)
    rows: list[ReportRow] = []
    for firm in sorted(set(seen) - present, key=firm_sort_text):
        cycles = seen[firm]  # most recent first, as ``keys``
        rows.append(
            {
                "cycle": cycle.isoformat(),
                "firm": firm,
                "last_cycle": cycles[0],
                "cycles_submitted": len(cycles),
                "lookback_cycles": lookback,
                "technical_contact": contact(firm) if contact is not None else "",
            }
        )
    return rows


def render_missing_csv(rows: Iterable[ReportRow], out: TextIO) -> int:
    writer = csv.DictWriter(out, fieldnames=MISSING_COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    return count


def render_missing_json(
    rows: list[ReportRow], out: TextIO, *, cycle: dt.date, lookback: int
) -> int:
    json.dump(
        {
            "schema_version": REPORT_SCHEMA_VERSION,
            "cycle": cycle.isoformat(),
            "lookback_cycles": lookback,
            "missing": rows,
            "count": len(rows),
        },
        out,
        ensure_ascii=False,
        indent=2,
    )
    out.write("\n")
    return len(rows)
