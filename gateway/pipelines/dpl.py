"""DPL arrival: read a claimed submission -> engine -> ledger -> rejects file, receipt, events.

One submission, whether it came over SFTP, dropped into the spool, or over AMQP, goes through
``DplArrival.process``: the cycle comes from the receipt instant; every record is
validated and stored with its raw bytes, status and all reasons; the firm gets, in
``outbound/dpl/``, ``<name>.rejects.fixml`` (rejected records byte-identical, input order, no error
text; the input's own line ending), ``<name>.reasons.csv`` (line, reason code, field and value as
sent, one row per reason) and ``<name>.receipt.json``, ``<name>`` being the upload's output base
(``gateway.spool.naming``: its full name, never shared with another upload). Outputs are written
inside the ledger transaction that marks the file processed, so after a crash either all exist or
the file is processed again (outputs are rewritten identically, under the same names). The records
are stored in chunks while the file is parsed (``gateway.ledger.dpl_store``): a big file never
holds the ledger's write lock for its whole intake, and no reader sees them before that final
transaction. Latest file wins per (submitting firm, cycle): the ledger marks the older file
superseded in the same transaction. Bytes sent before are a new submission too: the receipt
names the earlier identical file (``identical_to``).

A file that cannot be read at all raises ``UnreadableInput``; the intake quarantines it and the
alert names the firm's technical contact. No records are returned for it.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from engine.calendar import BusinessCalendar
from engine.dpl.records import VALID, DplReference, ValidationResult, firm_sort_text, id_key
from engine.dpl.validate import iter_validate
from engine.errors import UnreadableInput
from gateway import metrics
from gateway.config import Config, ReferenceData
from gateway.errors import Interrupted
from gateway.ledger import Ledger, StoreRejected, pack_fields, valid_row
from gateway.reference import business_calendar, dpl_reference, firm_entitlements
from gateway.spool.claims import ClaimedFile
from gateway.spool.fsio import atomic_writer, write_atomic
from gateway.spool.naming import upload_output_base

log = logging.getLogger(__name__)

Emit = Callable[[str, Mapping[str, Any]], None]
CHUNK_BYTES = 1 << 20
TOO_MANY_RECORDS = "TOO_MANY_RECORDS"
STOP_CHECK_RECORDS = 4096
"""How often (in records) a file in hand asks whether the daemon is stopping."""


def _never() -> bool:
    return False


def no_events(routing_key: str, payload: Mapping[str, Any]) -> None:
    """The event sink when AMQP is off: events are only logged at debug level."""
    log.debug("event %s (AMQP off)", routing_key)


@dataclass(frozen=True)
class Receipt:
    file: str
    firm: str
    cycle: dt.date
    received_at: dt.datetime
    sha256: str
    total: int
    valid: int
    rejected: int
    superseded: Mapping[str, Any] | None
    rejects_file: str | None
    reasons_file: str | None = None
    identical_to: Mapping[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "schema_version": 1,
            "file": self.file,
            "firm": self.firm,
            "cycle": self.cycle.isoformat(),
            "received_at": self.received_at.isoformat(),
            "sha256": self.sha256,
            "counts": {"total": self.total, "valid": self.valid, "rejected": self.rejected},
            "superseded": self.superseded,
            "rejects_file": self.rejects_file,
            "reasons_file": self.reasons_file,
            "identical_to": self.identical_to,
        }


class _ReferenceCache:
    """Engine views of the reference data, rebuilt only when a reload replaced it."""

    def __init__(self) -> None:
        self._source: ReferenceData | None = None
        self._calendar: BusinessCalendar | None = None
        self._reference: DplReference | None = None

    def get(self, reference: ReferenceData) -> tuple[BusinessCalendar, DplReference]:
        if reference is not self._source or self._calendar is None or self._reference is None:
            self._calendar = business_calendar(reference)
            self._reference = dpl_reference(reference)
            self._source = reference
        return self._calendar, self._reference


class _RejectsWriter:
    """Streams rejected raw records into ``<name>.rejects.fixml``; opened on the first reject."""

    def __init__(self, path: Path, newline: bytes) -> None:
        self.path = path
        self.newline = newline
        self._stack = contextlib.ExitStack()
        self._fh: BinaryIO | None = None
        self.count = 0

    def add(self, raw: bytes) -> None:
        if self._fh is None:
            self._fh = self._stack.enter_context(atomic_writer(self.path))
        self._fh.write(raw + self.newline)
        self.count += 1

    def finish(self) -> None:
        if self._fh is None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # no rejects now: remove a stale file of an earlier upload
        self._stack.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)


REASONS_HEADER = ("line", "reason", "field", "value", "message")


class _ReasonsWriter:
    """Streams ``<name>.reasons.csv``: one row per reason of every rejected record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stack = contextlib.ExitStack()
        self._fh: BinaryIO | None = None
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, lineterminator="\n")

    def add(self, result: ValidationResult) -> None:
        if self._fh is None:
            self._fh = self._stack.enter_context(atomic_writer(self.path))
            self._csv.writerow(REASONS_HEADER)
        problems = result.problems or ()
        if problems:
            for p in problems:
                self._csv.writerow((result.line, p.code, p.field, p.value or "", p.message))
        else:
            for code in result.reasons:
                self._csv.writerow((result.line, code, "", "", ""))
        self._fh.write(self._buffer.getvalue().encode("utf-8"))
        self._buffer.seek(0)
        self._buffer.truncate()

    def finish(self) -> None:
        if self._fh is None:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # an earlier attempt at this very upload had rejects
        self._stack.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)


class DplArrival:
    """The DPL flow handler for claimed files."""

    def __init__(
        self,
        *,
        spool_root: Path,
        ledger: Ledger,
        config: Callable[[], Config],
        stopping: Callable[[], bool] = _never,
    ) -> None:
        self.spool_root = spool_root
        self.ledger = ledger
        self.config = config
        # Asked every STOP_CHECK_RECORDS records: a stopping daemon rolls a long file back
        # (``Interrupted``) instead of outliving its grace; the next start does it again.
        self.stopping = stopping
        self._cache = _ReferenceCache()

    def __call__(self, claimed: ClaimedFile) -> None:
        """A file the intake claimed: rolled back (``Interrupted``) when the daemon stops."""
        self.process(claimed, stoppable=True)

    def outbound_dir(self, firm: str) -> Path:
        return self.spool_root / "firms" / firm / "outbound" / "dpl"

    def process(self, claimed: ClaimedFile, *, stoppable: bool = False) -> Receipt:
        """Process one submission (see the module doc). ``stoppable``: give up with
        ``Interrupted`` when the daemon stops (files in ``work/``; an AMQP submission in hand
        is always finished and answered)."""
        outbound = self.outbound_dir(claimed.firm)
        outbound.mkdir(parents=True, exist_ok=True)
        stopping = self.stopping if stoppable else _never
        with upload_output_base(self.ledger, claimed.file_id, claimed.name, outbound) as base:
            return self._process(claimed, outbound, base, stopping)

    def _process(
        self, claimed: ClaimedFile, outbound: Path, base: str, stopping: Callable[[], bool]
    ) -> Receipt:
        config = self.config()
        calendar, reference = self._cache.get(config.reference)
        cycle = calendar.cycle_of(claimed.received_at)
        entitled = firm_entitlements(config.accounts, claimed.firm)
        rejects = _RejectsWriter(outbound / f"{base}.rejects.fixml", _newline_of(claimed.path))
        reasons = _ReasonsWriter(outbound / f"{base}.reasons.csv")
        counts = {"total": 0, "valid": 0, "rejected": 0}
        by_reason: dict[str, int] = {}
        notify = _wants_notification(config, claimed.firm)

        results = iter_validate(
            _chunks(claimed.path),
            reference=reference,
            cycle=cycle,
            calendar=calendar,
            entitled_firms=entitled,
            max_line_bytes=config.dpl.max_line_bytes,
            name=claimed.name,
        )

        max_records = config.dpl.max_records

        def rows(store_rejected: StoreRejected) -> Iterator[tuple[int, bytes, str, str]]:
            # The hot loop of the intake: a valid record is one tuple of four values.
            total = valid = 0
            pack = pack_fields
            sort_texts: dict[str, str] = {}  # firm id -> its part of the sort key
            for result in results:
                total += 1
                if not total % STOP_CHECK_RECORDS and stopping():
                    raise Interrupted(f"stopped at record {total} of {claimed.name}")
                if total > max_records:
                    # The ledger deletes the rows staged so far: nothing of the file is kept.
                    raise UnreadableInput(
                        TOO_MANY_RECORDS,
                        f"more than {max_records} records ([dpl] max_records); record"
                        f" {max_records + 1} is on line {result.line}",
                    )
                line, raw, status, reasons_of, fields, problems = result
                if status == VALID:
                    valid += 1
                    assert fields is not None  # a valid record has every field
                    firm = fields.firm_id or ""
                    sort_text = sort_texts.get(firm)
                    if sort_text is None:
                        sort_text = sort_texts[firm] = firm_sort_text(firm)
                    yield valid_row(line, raw, fields, sort_text)
                    continue
                rejects.add(raw)
                reasons.add(result)
                for reason in reasons_of:
                    by_reason[reason] = by_reason.get(reason, 0) + 1
                store_rejected(
                    line,
                    raw,
                    " ".join(reasons_of),
                    json.dumps([p._asdict() for p in problems]) if problems else None,
                    pack(fields) if fields is not None else None,
                )
            counts.update(total=total, valid=valid, rejected=total - valid)

        receipt_holder: list[Receipt] = []

        identical = (
            self.ledger.file(claimed.identical_to) if claimed.identical_to is not None else None
        )

        def write_outputs(superseded_id: int | None) -> None:
            rejects.finish()
            reasons.finish()
            # the file this one superseded, as decided in this very transaction
            superseded = self.ledger.file(superseded_id) if superseded_id is not None else None
            receipt = Receipt(
                file=claimed.name,
                firm=claimed.firm,
                cycle=cycle,
                received_at=claimed.received_at,
                sha256=claimed.sha256,
                total=counts["total"],
                valid=counts["valid"],
                rejected=counts["rejected"],
                superseded=(
                    {
                        "file": superseded.name,
                        "received_at": superseded.received_at.isoformat(),
                        "sha256": superseded.sha256,
                    }
                    if superseded is not None
                    else None
                ),
                rejects_file=rejects.path.name if rejects.count else None,
                reasons_file=reasons.path.name if rejects.count else None,
                identical_to=(
                    {
                        "file": identical.name,
                        "received_at": identical.received_at.isoformat(),
                        "cycle": identical.cycle,
                    }
                    if identical is not None
                    else None
                ),
            )
            write_atomic(
                outbound / f"{base}.receipt.json",
                (json.dumps(receipt.as_json(), indent=2) + "\n").encode(),
            )
            receipt_holder.append(receipt)
            if notify:
                # In this transaction: the events commit with the state they report, or not at
                # all. Rejected records are read back from the ledger, never held in memory.
                conn = self.ledger.connect()
                file_id = claimed.file_id
                self.ledger.write_event(
                    conn,
                    f"firm.{claimed.firm}.dpl.receipt",
                    receipt.as_json(),
                    f"dpl.receipt.{file_id}.{claimed.sha256[:16]}",
                )
                for n, (line, raw) in enumerate(self.ledger.rejected_dpl_lines(file_id), 1):
                    if not n % STOP_CHECK_RECORDS and stopping():
                        raise Interrupted(f"stopped at rejected event {n} of {claimed.name}")
                    self.ledger.write_event(
                        conn,
                        f"firm.{claimed.firm}.dpl.rejected",
                        _rejected_event(claimed, cycle, line, raw),
                        f"dpl.rejected.{file_id}.{line}.{claimed.sha256[:16]}",
                    )

        try:
            self.ledger.replace_dpl_records(
                claimed.file_id,
                rows,
                cycle=cycle.isoformat(),
                submitter=claimed.firm,
                totals=lambda: (counts["total"], counts["valid"], counts["rejected"]),
                before_commit=write_outputs,
            )
        except BaseException:
            rejects.abort()
            reasons.abort()
            raise
        receipt = receipt_holder[0]
        metrics.RECORDS_VALID.labels(flow="dpl").inc(receipt.valid)
        metrics.RECORDS_REJECTED.labels(flow="dpl").inc(receipt.rejected)
        for reason, n in by_reason.items():
            metrics.DPL_REJECTS_BY_REASON.labels(reason=reason).inc(n)
        log.info(
            "dpl %s from firm %s: cycle %s, %d records (%d valid, %d rejected)%s",
            claimed.name,
            claimed.firm,
            cycle,
            receipt.total,
            receipt.valid,
            receipt.rejected,
            f", supersedes {receipt.superseded['file']}" if receipt.superseded else "",
        )
        return receipt


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            yield chunk


def _newline_of(path: Path) -> bytes:
    """The line ending the sender used (CRLF when its first line ends so), for the rejects file."""
    with open(path, "rb") as fh:
        head = fh.read(CHUNK_BYTES)
    end = head.find(b"\n")
    return b"\r\n" if end > 0 and head[end - 1 : end] == b"\r" else b"\n"


def _wants_notification(config: Config, firm: str) -> bool:
    key = id_key(firm)
    for cm in config.reference.clearing_members:
        if id_key(cm.cm_number) == key:
            return cm.notify
    for nco in config.reference.ncos:
        if id_key(nco.nco_id) == key:
            return nco.notify
    return False


def _rejected_event(claimed: ClaimedFile, cycle: dt.date, line: int, raw: bytes) -> dict[str, Any]:
    """One rejected record as sent, for the firm's notification (reasons stay in the report)."""
    return {
        "schema_version": 1,
        "file": claimed.name,
        "cycle": cycle.isoformat(),
        "line": line,
        "record": raw.decode("utf-8", errors="replace"),
    }
