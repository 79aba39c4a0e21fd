"""The firms' reports of a published cycle, written after the exchanges are served.

Each firm of the cycle finds ``outbound/dpl/reports/DPL_<YYYYMMDD>.report.csv``: its valid records
with the published ``RptID`` and ``DlvDt`` and its rejected records with reasons, read from the
ledger (not from the exchange file). They are a job of their own: the publication run delivers
the exchange file and returns; the scheduler writes the reports next (``dpl-reports``), and
``posgate dpl publish`` writes them after it has reported the deliveries.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import logging
from pathlib import Path
from typing import Protocol

from gateway.config import Config
from gateway.errors import TransientError
from gateway.ledger import Ledger
from gateway.outputs.reports import dpl_report_rows, render_csv
from gateway.spool.fsio import atomic_writer

log = logging.getLogger(__name__)

REPORTS_DIR = "reports"
REPORTS_JOB = "dpl-reports"
"""The scheduler job (and ledger run name) that writes the reports."""


class ReportsRuntime(Protocol):
    @property
    def config(self) -> Config: ...

    @property
    def ledger(self) -> Ledger: ...


def report_name(cycle: dt.date) -> str:
    return f"DPL_{cycle:%Y%m%d}.report.csv"


def write_firm_reports(runtime: ReportsRuntime, cycle: dt.date) -> list[Path]:
    """Each firm's on-demand report of the published cycle into the firm's
    ``outbound/dpl/reports/``; a republication replaces it. One pass over the cycle's report
    (ordered by submitting firm), one file open at a time. A firm whose report cannot be written
    is logged and skipped. Records the run (``dpl-reports``, with the publication's sha256)."""
    root = runtime.config.spool.root
    ledger = runtime.ledger
    publication = ledger.publication(cycle.isoformat())
    written: list[Path] = []
    rows = dpl_report_rows(ledger, cycle)
    for firm, firm_rows in itertools.groupby(rows, key=lambda row: str(row["submitter"])):
        target = root / "firms" / firm / "outbound" / "dpl" / REPORTS_DIR / report_name(cycle)
        try:
            with atomic_writer(target) as fh:
                text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
                render_csv(firm_rows, text)
                text.flush()
                text.detach()
        except (OSError, TransientError) as exc:
            log.error("dpl cycle %s: report for firm %s not written: %s", cycle, firm, exc)
            continue  # groupby moves on to the next firm
        written.append(target)
    sha256 = publication["sha256"] if publication is not None else ""
    ledger.record_scheduler_run(
        REPORTS_JOB, cycle.isoformat(), "written", f"sha256={sha256} firms={len(written)}"
    )
    log.info("dpl cycle %s: %d firm report(s) written", cycle, len(written))
    return written


def reports_written(ledger: Ledger, cycle: dt.date) -> bool:
    """Whether the reports of the cycle's current publication were written (a republication
    needs them again)."""
    publication = ledger.publication(cycle.isoformat())
    if publication is None:
        return False
    last = ledger.last_scheduler_detail(REPORTS_JOB, cycle.isoformat())
    return last is not None and last.startswith(f"sha256={publication['sha256']} ")
