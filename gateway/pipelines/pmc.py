"""Portfolio margin pipeline (SPEC §7.5, spool entry point): one position file -> outputs.

``process_position_file`` parses a 346 file (engine), computes its margin against a theo set and
writes, each atomically (temp name, fsync, rename, fsync folder), into the firm's
``outbound/pmc/``: ``<stem>.results.csv``, ``<stem>.summary.csv``, ``<stem>.errors.csv`` (always,
header only when clean) and ``<stem>.pdf`` when configured. A file that cannot be read at all
raises ``UnreadableInput`` and writes nothing: the caller quarantines it. Per-line problems never
stop the file. ``TransientError`` from the disk propagates for a retry.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.margin import MarginReport, PositionCounts, margin_for_file
from engine.positions import parse_position_file
from engine.theo import TheoSet
from gateway.fsio import write_atomic
from gateway.margin_outputs import errors_csv, report_pdf, results_csv, summary_csv

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PmcOutcome:
    """What one position file produced: counts, outputs written, totals (positive USD)."""

    name: str
    firm: str
    theo_date: str
    format: str
    counts: PositionCounts
    outputs: dict[str, Path]
    requirement: float
    nav: float
    minimum: float
    accounts: int
    firm_requirements: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        """Plain data for an event or a log line."""
        return {
            "name": self.name,
            "firm": self.firm,
            "theo_date": self.theo_date,
            "format": self.format,
            "counts": self.counts.as_dict(),
            "outputs": {k: p.name for k, p in self.outputs.items()},
            "requirement": round(self.requirement, 2),
            "nav": round(self.nav, 2),
            "minimum": round(self.minimum, 2),
            "accounts": self.accounts,
            "firms": {f: round(v, 2) for f, v in self.firm_requirements.items()},
        }


def output_stem(name: str) -> str:
    """The stem outputs are named by: the file name without folders and its last extension."""
    base = Path(name).name
    stem = Path(base).stem
    return stem or base or "positions"


def compute_report(
    data: bytes, *, theo: TheoSet, firm: str | None = None
) -> tuple[MarginReport, str]:
    """Parse and compute one file; returns the report and the detected format."""
    parsed = parse_position_file(data, default_firm=firm)
    return margin_for_file(parsed, theo), parsed.format


def process_position_file(
    data: bytes,
    *,
    name: str,
    firm: str,
    theo: TheoSet,
    outbound_dir: Path,
    write_pdf: bool,
) -> PmcOutcome:
    """Process one position file's bytes for ``firm`` into ``outbound_dir`` (see module doc).

    Raises ``UnreadableInput`` for a file that cannot be read at all.
    """
    started = time.monotonic()
    report, fmt = compute_report(data, theo=theo, firm=firm)
    stem = output_stem(name)
    outbound_dir = Path(outbound_dir)
    outputs = {
        "results": outbound_dir / f"{stem}.results.csv",
        "summary": outbound_dir / f"{stem}.summary.csv",
        "errors": outbound_dir / f"{stem}.errors.csv",
    }
    write_atomic(outputs["results"], results_csv(report))
    write_atomic(outputs["summary"], summary_csv(report))
    write_atomic(outputs["errors"], errors_csv(report.problems))
    if write_pdf:
        outputs["pdf"] = outbound_dir / f"{stem}.pdf"
        write_atomic(outputs["pdf"], report_pdf(report))
    r = report.result
    outcome = PmcOutcome(
        name=name,
        firm=firm,
        theo_date=report.theo_date,
        format=fmt,
        counts=report.counts,
        outputs=outputs,
        requirement=r.requirement,
        nav=r.nav,
        minimum=r.minimum,
        accounts=int(r.account_firm.shape[0]),
        firm_requirements={
            str(f): float(v) for f, v in zip(r.firm_ids, r.firm_requirement, strict=True)
        },
        seconds=time.monotonic() - started,
    )
    c = report.counts
    log.info(
        "pmc file processed firm=%s name=%s theo=%s accepted=%d rejected=%d invalid_series=%d "
        "warnings=%d total=%d requirement=%.2f seconds=%.3f",
        firm,
        name,
        report.theo_date,
        c.accepted,
        c.rejected,
        c.invalid_series,
        c.warnings,
        c.total,
        outcome.requirement,
        outcome.seconds,
    )
    return outcome
