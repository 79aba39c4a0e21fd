"""Portfolio margin pipeline (spool entry point): one position file -> outputs.

``process_position_file`` parses a 346 file (engine), computes its margin against a theo set and
writes, each atomically (temp name, fsync, rename, fsync folder), into the firm's
``outbound/pmc/``: ``<name>.results.csv``, ``<name>.summary.csv``, ``<name>.errors.csv`` (always,
header only when clean) and, when configured, ``<name>.pdf`` (Detail) and ``<name>.summary.pdf``
(Summary), ``<name>.summary.csv`` last of all, so a firm that sees it can fetch the rest;
``<name>`` being the upload's output base (``gateway.spool.naming``: its full name,
never shared with another upload, never overwriting outputs the firm has not fetched; ``all.csv``
and ``all.txt`` never share outputs). A file that cannot be read at all
raises ``UnreadableInput`` and writes nothing: the caller quarantines it. Per-line problems never
stop the file. ``TransientError`` from the disk propagates for a retry.

Choosing the P&L set: a file uploaded into ``inbound/pmc/<YYYY-MM-DD>/`` is computed against
that date's set. When that set is not loaded the file is answered with ``<name>.errors.csv``
holding one ``THEO_NOT_LOADED`` line naming the dates that are (the file itself is fine, so it is
archived, not quarantined); when the set's folder is complete on disk but not loaded yet, the file
waits for it. Any other file uses the newest set; when that set is older than the previous
business day (America/Chicago) every output and the receipt say so (``THEO_STALE``, a warning on
line 0), and ``posgate_pmc_theo_stale`` is 1.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.calendar import BusinessCalendar
from engine.pmc.positions.model import REJECTED, WARNING, PositionProblem
from engine.pmc.positions.read import parse_position_file
from engine.pmc.report import MarginReport, PositionCounts, margin_for_file
from engine.pmc.theo.model import TheoSet
from gateway import metrics
from gateway.errors import TransientError
from gateway.ledger import Ledger
from gateway.outputs.margin.data import errors_csv, results_csv_chunks, summary_csv
from gateway.outputs.margin.pdf import report_pdf
from gateway.pipelines.set_loader import SetLoader
from gateway.spool.claims import ClaimedFile
from gateway.spool.fsio import atomic_writer, write_atomic
from gateway.spool.naming import upload_output_base
from gateway.theo_store import TheoStore

log = logging.getLogger(__name__)

THEO_STALE = "THEO_STALE"
THEO_NOT_LOADED = "THEO_NOT_LOADED"
_DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")


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
    theo_stale: bool = False
    theo_requested: str | None = None

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
            # firm ids as everywhere else in posgate (five digits), whatever the 346 file wrote
            "firms": {
                (f.zfill(5) if f.isdigit() else f): round(v, 2)
                for f, v in self.firm_requirements.items()
            },
            "theo_stale": self.theo_stale,
            "theo_requested": self.theo_requested,
        }


def output_stem(name: str) -> str:
    """The base outputs are named by: the uploaded file's full name, without folders."""
    return Path(name).name or "positions"


def stale_theo(activity_date: str, now: dt.datetime, calendar: BusinessCalendar) -> bool:
    """Whether a set of ``activity_date`` is older than the previous business day of ``now``."""
    today = calendar.chicago_date(now)
    return dt.date.fromisoformat(activity_date) < calendar.previous_business_day(today)


def stale_problem(theo: TheoSet) -> PositionProblem:
    return PositionProblem(
        0,
        WARNING,
        THEO_STALE,
        None,
        theo.activity_date,
        f"computed against the newest P&L set, {theo.activity_date}, which is older than the "
        "previous business day",
    )


def dated_folder(source: str | None) -> str | None:
    """The YYYY-MM-DD of ``.../inbound/pmc/<YYYY-MM-DD>/<name>``, or None."""
    if not source:
        return None
    parent = Path(source).parent
    if parent.parent.name == "pmc" and _DATE_DIR.match(parent.name):
        return parent.name
    return None


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
    output_base: str | None = None,
    stale: bool = False,
    requested: str | None = None,
    generated_at: dt.datetime | None = None,
) -> PmcOutcome:
    """Process one position file's bytes for ``firm`` into ``outbound_dir`` (see module doc).

    Outputs are named ``<output_base>.<kind>`` (by default the full name of ``name``). ``stale``
    adds the ``THEO_STALE`` warning; ``requested`` is the date of a dated folder. Raises
    ``UnreadableInput`` for a file that cannot be read at all.
    """
    started = time.monotonic()
    report, fmt = compute_report(data, theo=theo, firm=firm)
    if stale:
        report = replace(report, problems=[stale_problem(theo), *report.problems])
    stem = output_base if output_base is not None else output_stem(name)
    outbound_dir = Path(outbound_dir)
    outputs = {
        "results": outbound_dir / f"{stem}.results.csv",
        "summary": outbound_dir / f"{stem}.summary.csv",
        "errors": outbound_dir / f"{stem}.errors.csv",
    }
    with atomic_writer(outputs["results"]) as fh:  # written a block at a time
        for chunk in results_csv_chunks(report):
            fh.write(chunk)
    write_atomic(outputs["errors"], errors_csv(report.problems))
    if write_pdf:
        outputs["pdf"] = outbound_dir / f"{stem}.pdf"
        write_atomic(outputs["pdf"], report_pdf(report, generated_at=generated_at))
        outputs["summary_pdf"] = outbound_dir / f"{stem}.summary.pdf"
        write_atomic(
            outputs["summary_pdf"],
            report_pdf(report, part="summary", generated_at=generated_at),
        )
    # Written last: once ``<name>.summary.csv`` is there, every other output is complete.
    write_atomic(outputs["summary"], summary_csv(report))
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
        theo_stale=stale,
        theo_requested=requested,
    )
    c = report.counts
    log.info(
        "pmc file processed firm=%s name=%s theo=%s stale=%s accepted=%d rejected=%d "
        "invalid_series=%d warnings=%d total=%d requirement=%.2f seconds=%.3f",
        firm,
        name,
        report.theo_date,
        stale,
        c.accepted,
        c.rejected,
        c.invalid_series,
        c.warnings,
        c.total,
        outcome.requirement,
        outcome.seconds,
    )
    return outcome


class PmcArrival:
    """The pmc flow handler for claimed files: the P&L set -> outputs -> ledger -> event.

    Without any theo set loaded the file waits (``TransientError``: the intake retries with
    backoff) rather than being rejected for something that is not the firm's fault. ``clock`` and
    ``calendar`` decide whether the newest set is stale (no calendar: never).
    """

    def __init__(
        self,
        *,
        spool_root: Path,
        ledger: Ledger,
        theo: TheoStore,
        write_pdf: Callable[[], bool],
        emit: Callable[[str, Mapping[str, Any]], None],
        clock: Callable[[], dt.datetime] | None = None,
        calendar: Callable[[], BusinessCalendar] | None = None,
    ) -> None:
        self.spool_root = spool_root
        self.ledger = ledger
        self.theo = theo
        self.write_pdf = write_pdf
        self.emit = emit
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.calendar = calendar

    def __call__(self, claimed: ClaimedFile) -> None:
        self.process(claimed)

    def is_stale(self, theo: TheoSet) -> bool:
        if self.calendar is None:
            return False
        return stale_theo(theo.activity_date, self.clock(), self.calendar())

    def process(self, claimed: ClaimedFile) -> PmcOutcome | None:
        outbound = self.spool_root / "firms" / claimed.firm / "outbound" / "pmc"
        requested = dated_folder(self.ledger.file(claimed.file_id).source)
        stale = False
        if requested is not None:
            theo = self.theo.get(requested)
            if theo is None:
                if (self.theo.root / requested).is_dir() and not (
                    self.theo.root / requested / "meta.csv"
                ).is_file():
                    raise TransientError(f"theo set {requested} is still being written")
                self._not_loaded(claimed, requested, outbound)
                return None
        else:
            theo = self.theo.latest()
            if theo is None:
                raise TransientError("no theoretical P&L set is loaded yet (spool/internal/theo/)")
            stale = self.is_stale(theo)
            metrics.PMC_THEO_STALE.set(1 if stale else 0)
        with upload_output_base(self.ledger, claimed.file_id, claimed.name, outbound) as base:
            outcome = process_position_file(
                claimed.path.read_bytes(),
                name=claimed.name,
                firm=claimed.firm,
                theo=theo,
                outbound_dir=outbound,
                write_pdf=self.write_pdf(),
                output_base=base,
                stale=stale,
                requested=requested,
                generated_at=self.clock(),
            )
        self.ledger.record_pmc_result(
            claimed.file_id,
            theo_date=outcome.theo_date,
            counts=outcome.counts.as_dict(),
            requirement=outcome.requirement,
            outputs=[p.name for p in outcome.outputs.values()],
            event=(
                f"firm.{claimed.firm}.pmc.result",
                outcome.as_dict(),
                f"pmc.result.{claimed.file_id}.{claimed.sha256[:16]}",
            ),
        )
        metrics.RECORDS_VALID.labels(flow="pmc").inc(outcome.counts.accepted)
        metrics.RECORDS_REJECTED.labels(flow="pmc").inc(
            outcome.counts.rejected + outcome.counts.invalid_series
        )
        return outcome

    def _not_loaded(self, claimed: ClaimedFile, requested: str, outbound: Path) -> None:
        loaded = self.theo.dates()
        message = (
            f"no P&L set of {requested} is loaded (loaded: {', '.join(loaded) or 'none'}); "
            "upload into inbound/pmc/ for the newest or into the folder of a loaded date"
        )
        problem = PositionProblem(0, REJECTED, THEO_NOT_LOADED, None, requested, message)
        with upload_output_base(self.ledger, claimed.file_id, claimed.name, outbound) as base:
            errors = outbound / f"{base}.errors.csv"
            write_atomic(errors, errors_csv([problem]))
        log.warning(
            "pmc file not computed firm=%s name=%s theo_requested=%s reason=%s",
            claimed.firm,
            claimed.name,
            requested,
            THEO_NOT_LOADED,
        )
        # The answer commits with the state it reports (processed), or not at all.
        self.ledger.record_pmc_not_computed(
            claimed.file_id,
            f"{THEO_NOT_LOADED}: theo {requested}",
            (
                f"firm.{claimed.firm}.pmc.result",
                {
                    "name": claimed.name,
                    "firm": claimed.firm,
                    "theo_date": None,
                    "theo_requested": requested,
                    "error": {"reason": THEO_NOT_LOADED, "message": message},
                    "outputs": {"errors": errors.name},
                },
                f"pmc.result.{claimed.file_id}.{claimed.sha256[:16]}",
            ),
        )


class TheoLoader(SetLoader):
    """Daemon component that loads theo sets as they land in ``internal/theo/`` (the loop and
    its thread are ``SetLoader``'s) and keeps the staleness gauges."""

    def __init__(
        self,
        store: TheoStore,
        interval_s: float = 30.0,
        *,
        clock: Callable[[], dt.datetime] | None = None,
        calendar: Callable[[], BusinessCalendar] | None = None,
    ) -> None:
        super().__init__("theo", self._load, interval_s=interval_s, settle_s=0.5)
        self.store = store
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.calendar = calendar
        self.on_loaded: Callable[[], None] | None = None

    def _load(self) -> None:
        try:
            loaded = self.store.refresh()
        except Exception:
            log.exception("loading theo sets failed")
            return
        for day in loaded:
            log.info("theo set %s loaded", day)
        self.update_gauges()
        if loaded and self.on_loaded is not None:
            self.on_loaded()

    def update_gauges(self) -> None:
        """``posgate_pmc_theo_stale`` and the newest set's date, from the store and the clock."""
        latest = self.store.latest()
        if latest is None:
            metrics.PMC_THEO_STALE.set(1)
            return
        day = dt.date.fromisoformat(latest.activity_date)
        metrics.PMC_THEO_DATE.set(
            dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()
        )
        if self.calendar is not None:
            try:
                stale = stale_theo(latest.activity_date, self.clock(), self.calendar())
            except ValueError:
                log.exception("cannot tell whether theo set %s is stale", latest.activity_date)
                return
            metrics.PMC_THEO_STALE.set(1 if stale else 0)
