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
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.pmc.positions.read import parse_position_file
from engine.pmc.report import MarginReport, PositionCounts, margin_for_file
from engine.pmc.theo.model import TheoSet
from gateway import metrics
from gateway.errors import TransientError
from gateway.ledger import Ledger
from gateway.outputs.margin.data import errors_csv, results_csv, summary_csv
from gateway.outputs.margin.pdf import report_pdf
from gateway.spool.claims import ClaimedFile
from gateway.spool.fsio import write_atomic
from gateway.theo_store import TheoStore

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


class PmcArrival:
    """The pmc flow handler for claimed files: latest theo set -> outputs -> ledger -> event.

    Without any theo set loaded the file waits (``TransientError``: the intake retries with
    backoff) rather than being rejected for something that is not the firm's fault.
    """

    def __init__(
        self,
        *,
        spool_root: Path,
        ledger: Ledger,
        theo: TheoStore,
        write_pdf: Callable[[], bool],
    ) -> None:
        self.spool_root = spool_root
        self.ledger = ledger
        self.theo = theo
        self.write_pdf = write_pdf

    def __call__(self, claimed: ClaimedFile) -> None:
        self.process(claimed)

    def process(self, claimed: ClaimedFile) -> PmcOutcome:
        theo = self.theo.latest()
        if theo is None:
            raise TransientError("no theoretical P&L set is loaded yet (spool/internal/theo/)")
        outcome = process_position_file(
            claimed.path.read_bytes(),
            name=claimed.name,
            firm=claimed.firm,
            theo=theo,
            outbound_dir=self.spool_root / "firms" / claimed.firm / "outbound" / "pmc",
            write_pdf=self.write_pdf(),
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


class TheoLoader:
    """Daemon component that loads theo sets as they land in ``internal/theo/``.

    Watchdog events and sweeps only ``poke`` it; loading (seconds for a big set) happens on its
    own thread so it never holds up the intake.
    """

    name = "theo"

    def __init__(self, store: TheoStore, interval_s: float = 30.0) -> None:
        self.store = store
        self.interval_s = interval_s
        self.on_loaded: Callable[[], None] | None = None
        self._poke = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poke(self, _path: object = None) -> None:
        self._poke.set()

    def start(self) -> None:
        self._load()
        self._thread = threading.Thread(target=self._run, name="theo-loader", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        try:
            loaded = self.store.refresh()
        except Exception:
            log.exception("loading theo sets failed")
            return
        for day in loaded:
            log.info("theo set %s loaded", day)
        if loaded and self.on_loaded is not None:
            self.on_loaded()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._poke.wait(self.interval_s)
            self._poke.clear()
            if not self._stop.is_set():
                time.sleep(0.5)  # let a set being copied settle; meta.csv comes last anyway
                self._load()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self._poke.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def healthy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
