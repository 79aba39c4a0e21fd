"""Exercise-by-exception pipeline: sets -> ledger, instructions -> receipts, queries ->
answers, and the contrary-intention file to the exchanges at the cutoff.

Theory of operation
-------------------
``EbeFlow`` is the one place that decides what happens in this flow; the intake, the AMQP
handlers and the CLI all call it.

* Sets: ``EbeLoader`` (a daemon component) refreshes the ``ExpiringStore`` when something lands
  in ``internal/ebe/`` and on a timer. A loaded set is recorded in the ledger and announced with
  ``firm.<id>.ebe.ready`` to each firm that has positions in it; a refused set raises the
  ``ebe_set_rejected`` alert and the previous set of that date stays.
* Instructions (``inbound/ebe/*.csv`` or AMQP ``ebe.instruction``): every line is judged against
  the current set with the receipt instant from the server's clock, every line is kept in the
  ledger (in the transaction that marks the file processed), and the answer is
  ``<name>.ebe-receipt.json`` in ``outbound/ebe/`` (or the AMQP reply), ``<name>`` being the
  upload's output base of ``gateway.spool.naming`` (its full name, e.g. ``dec18.csv``).
* Queries (``inbound/ebe/*.query.json``, answered with ``<name>.answer.csv`` or, for a bad
  query, ``<name>.error.json``; AMQP ``ebe.query``; ``posgate ebe query``): the answer
  is computed from the current set and the firm's kept instructions; a firm only ever gets rows of
  its own firm id.
* Publication: after the cutoff of an expiration date whose set is loaded, the loader builds
  ``CIR_<YYYYMMDD>.fixml`` and delivers it, with the DPL file's delivery, to every exchange with
  ``receives_ebe=Y``: into its ``outbound/ebe/`` or pushed to its ``sftp://`` folder, the
  ``.sha256`` sidecar written last; each delivery is recorded. A restart after the cutoff
  publishes what is missing (catch-up), the same content is never delivered twice, a changed
  content (a newer set after the cutoff) is delivered again, and a failed delivery is retried.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.calendar import CHICAGO, BusinessCalendar
from engine.ebe.answer import answer
from engine.ebe.day import cutoff_instant
from engine.ebe.expirations import is_expiration_day
from engine.ebe.fixml import contrary_intention_file
from engine.ebe.instructions import Instruction, Verdict, judge, read_instruction_csv
from engine.ebe.positions import ExpiringSet, ExpiringSetInvalid
from engine.ebe.query import Filters, render_csv, render_json
from engine.errors import InputRejected, UnreadableInput
from gateway import metrics
from gateway.alerts import raise_alert
from gateway.config import Config
from gateway.ebe_store import ExpiringStore
from gateway.errors import TransientError
from gateway.ledger import Ledger
from gateway.pipelines.set_loader import SetLoader
from gateway.publication.build import KEEP_BUILT, file_has_sha256, prune_built, publications_dir
from gateway.publication.deliver import deliver
from gateway.publication.errors import DeliveryRefused, ExchangeUnreachable
from gateway.spool.claims import ClaimedFile
from gateway.spool.fsio import write_atomic
from gateway.spool.naming import upload_output_base

log = logging.getLogger(__name__)

QUERY_SUFFIX = ".query.json"
RECEIPT_SUFFIX = ".ebe-receipt.json"
ANSWER_SUFFIX = ".answer.csv"
ERROR_SUFFIX = ".error.json"
RETRY_FIRST_S = 30.0
RETRY_MAX_S = 600.0
Emit = Callable[[str, Mapping[str, Any]], None]


class EbeFlow:
    """Instructions, queries and publication over one store and the ledger."""

    def __init__(
        self,
        *,
        spool_root: Path,
        ledger: Ledger | None,
        store: ExpiringStore,
        config: Callable[[], Config],
        clock: Callable[[], dt.datetime],
        emit: Emit,
        calendar: Callable[[], BusinessCalendar] | None = None,
    ) -> None:
        self.root = spool_root
        self.calendar = calendar or BusinessCalendar
        self.ledger = ledger
        self.store = store
        self.config = config
        self.clock = clock
        self.emit = emit
        self._files: dict[str, tuple[ExpiringSet, tuple[object, ...], tuple[bytes, int, str]]] = {}
        """expiration date -> (set, (newest kept instruction id, thresholds), its file)"""
        self._retry_at: dict[tuple[str, str], tuple[float, int]] = {}
        """(expiration date, exchange) -> (monotonic time of the next try, failures so far)"""

    # -- instructions ---------------------------------------------------------------------------

    def cutoff(self, day: dt.date) -> dt.datetime:
        return cutoff_instant(day, self.config().ebe.instruction_cutoff)

    def submit(
        self,
        lines: Sequence[Instruction],
        *,
        firm: str,
        received_at: dt.datetime,
        origin: str,
        file_id: int | None = None,
    ) -> dict[str, Any]:
        """Judge, keep and count one submission; returns its receipt document."""
        verdicts = judge(
            lines, firm=firm, received_at=received_at, sets=self.store.get, cutoff=self.cutoff
        )
        if self.ledger is not None:
            self.ledger.record_ebe_instructions(
                verdicts, firm=firm, received_at=received_at, origin=origin, file_id=file_id
            )
        for v in verdicts:
            metrics.EBE_INSTRUCTIONS.labels(outcome=v.status).inc()
            for reason in v.reasons:
                metrics.EBE_INSTRUCTION_REJECTS.labels(reason=reason).inc()
        receipt = receipt_document(verdicts, origin=origin, received_at=received_at)
        self.emit(
            f"firm.{firm}.ebe.instruction",
            {k: receipt[k] for k in ("name", "received_at", "accepted", "rejected")},
        )
        log.info(
            "ebe instructions firm=%s origin=%s accepted=%d rejected=%d",
            firm,
            origin,
            receipt["accepted"],
            receipt["rejected"],
        )
        return receipt

    # -- queries --------------------------------------------------------------------------------

    def query(self, firm: str, filters: Filters) -> dict[str, Any]:
        """The stable JSON answer for ``firm`` (rows of that firm only)."""
        kept = (
            self.ledger.kept_instructions(filters.expiration_date, firm)
            if self.ledger is not None
            else []
        )
        settings = self.config().ebe
        return answer(
            self.store.get(filters.expiration_date),
            firm=firm,
            filters=filters,
            thresholds=settings.thresholds,
            cutoff_at=settings.instruction_cutoff,
            now=self.clock(),
            kept=kept,
        )

    # -- files from the intake ------------------------------------------------------------------

    def __call__(self, claimed: ClaimedFile) -> None:
        outbound = self.root / "firms" / claimed.firm / "outbound" / "ebe"
        data = claimed.path.read_bytes()
        if claimed.name.endswith(QUERY_SUFFIX):
            try:
                raw = json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise UnreadableInput(
                    "LAYOUT", f"{claimed.name}: not a JSON query ({exc})"
                ) from None
            with self._base(claimed, outbound) as base:
                self._query_file(claimed, raw, outbound / f"{base}{ANSWER_SUFFIX}")
            return
        lines = read_instruction_csv(data, claimed.name)
        with self._base(claimed, outbound) as base:
            receipt = self.submit(
                lines,
                firm=claimed.firm,
                received_at=claimed.received_at,
                origin=claimed.name,
                file_id=claimed.file_id,
            )
            write_atomic(outbound / f"{base}{RECEIPT_SUFFIX}", render_json(receipt))

    def _base(self, claimed: ClaimedFile, outbound: Path) -> contextlib.AbstractContextManager[str]:
        """The upload's output base by the rule every flow shares (full name, never reused
        while the firm has not fetched the earlier outputs)."""
        if self.ledger is None:
            return contextlib.nullcontext(Path(claimed.name).name)
        return upload_output_base(self.ledger, claimed.file_id, claimed.name, outbound)

    def _query_file(self, claimed: ClaimedFile, raw: Any, target: Path) -> None:
        error = target.with_name(target.name[: -len(ANSWER_SUFFIX)] + ERROR_SUFFIX)
        try:
            if not isinstance(raw, dict):
                raise InputRejected("LAYOUT", "the query must be a JSON object")
            doc = self.query(claimed.firm, Filters.parse(raw))
        except InputRejected as exc:
            write_atomic(
                error,
                render_json(
                    {"schema_version": 1, "error": {"reason": exc.reason, "message": exc.message}}
                ),
            )
            if self.ledger is not None:
                self.ledger.set_file_state(claimed.file_id, "processed", f"query {exc.reason}")
            return
        write_atomic(target, render_csv(doc["rows"]))
        if self.ledger is not None:
            self.ledger.set_file_state(
                claimed.file_id, "processed", f"query answered: {len(doc['rows'])} rows"
            )

    # -- sets -----------------------------------------------------------------------------------

    def set_loaded(self, positions: ExpiringSet, fingerprint: str) -> None:
        day = positions.expiration_date.isoformat()
        if self.ledger is not None:
            self.ledger.record_ebe_set(
                day,
                source=positions.source,
                folder=str(self.store.root / day),
                fingerprint=fingerprint,
                rows=len(positions),
            )
        metrics.EBE_POSITIONS_LOADED.set(len(positions))
        metrics.EBE_LAST_LOAD.set(time.time())
        for firm in positions.firms():
            self.emit(
                f"firm.{firm}.ebe.ready",
                {
                    "expiration_date": day,
                    "positions": int((positions.firm == firm).sum()),
                    "cutoff": self.cutoff(positions.expiration_date).isoformat(),
                },
            )

    def set_rejected(self, day: str, exc: ExpiringSetInvalid) -> None:
        metrics.EBE_SET_REJECTED.inc()
        raise_alert(
            "ebe_set_rejected",
            f"expiring-position set {day} refused: {len(exc.problems)} problem(s), first: "
            f"{exc.problems[0] if exc.problems else exc}",
            {"expiration_date": day, "problems": exc.problems[:50]},
        )

    # -- publication ----------------------------------------------------------------------------

    def publish_due(self) -> list[str]:
        """Publish the contrary-intention file of every loaded date past its cutoff to every
        receiving exchange that does not hold this content yet; returns the exchanges served.

        The file is built once into ``state/publications/CIR_<YYYYMMDD>.fixml`` and carried by
        the DPL file's delivery (``gateway.publication.deliver``): the spool folder
        ``exchanges/<id>/outbound/ebe/`` or the ``sftp://`` push, each atomic with the sidecar
        last. A failed delivery leaves ``posgate_ebe_publication_late`` at 1 and is tried again
        on a later tick, after a delay that doubles up to ten minutes."""
        written = []
        now = self.clock()
        config = self.config()
        receivers = [e for e in config.reference.exchanges if e.receives_ebe]
        for day in self.store.dates():
            positions = self.store.get(day)
            if positions is None or now <= self.cutoff(positions.expiration_date):
                continue
            data, records, digest = self._contrary_file(day, positions, config, now)
            name = f"CIR_{day.replace('-', '')}.fixml"
            built: Path | None = None
            for exchange in receivers:
                exchange_id = exchange.exchange_id
                done = (
                    self.ledger.ebe_publication(day, exchange_id)
                    if self.ledger is not None
                    else None
                )
                if done is not None and done["sha256"] == digest:
                    metrics.EBE_PUBLICATION_LATE.labels(exchange=exchange_id).set(0)
                    continue
                # Late until this content is delivered: a failure below leaves the gauge at 1.
                metrics.EBE_PUBLICATION_LATE.labels(exchange=exchange_id).set(1)
                if not self._retry_due(day, exchange_id):
                    continue
                if built is None:
                    built = publications_dir(config) / name
                    if not file_has_sha256(built, digest):
                        write_atomic(built, data)
                try:
                    target = deliver(config, exchange, built, name, digest, flow="ebe", attempts=1)
                except (ExchangeUnreachable, DeliveryRefused, TransientError, OSError) as exc:
                    delay = self._failed(day, exchange_id)
                    log.error(
                        "contrary-intention file %s to %s (%s) failed, next try in %.0fs: %s",
                        day,
                        exchange_id,
                        exchange.delivery,
                        delay,
                        exc,
                    )
                    continue
                self._retry_at.pop((day, exchange_id), None)
                if self.ledger is not None:
                    self.ledger.record_ebe_publication(
                        day, exchange_id, sha256=digest, records=records, path=target
                    )
                metrics.EBE_LAST_PUBLICATION.labels(exchange=exchange_id).set(time.time())
                metrics.EBE_PUBLICATION_LATE.labels(exchange=exchange_id).set(0)
                self.emit(
                    f"exchange.{exchange_id}.ebe.published",
                    {
                        "expiration_date": day,
                        "file": name,
                        "records": records,
                        "sha256": digest,
                        "target": target,
                    },
                )
                log.info(
                    "contrary-intention file published exchange=%s date=%s records=%d target=%s",
                    exchange_id,
                    day,
                    records,
                    target,
                )
                written.append(exchange_id)
            if built is not None:
                prune_built(built.parent, keep=KEEP_BUILT, pattern="CIR_*.fixml")
        return written

    def _contrary_file(
        self, day: str, positions: ExpiringSet, config: Config, now: dt.datetime
    ) -> tuple[bytes, int, str]:
        """(bytes, reports, sha256) of a date's file, rebuilt only when the set, the kept
        instructions or the thresholds changed since the last tick (a big set costs seconds to
        recompute)."""
        last = self.ledger.last_kept_instruction_id(day) if self.ledger is not None else -1
        version = (last, tuple(sorted(config.ebe.thresholds.items())))
        cached = self._files.get(day)
        if cached is not None and cached[0] is positions and cached[1] == version and last >= 0:
            return cached[2]
        kept = self.ledger.kept_instructions(day) if self.ledger is not None else []
        data, records = contrary_intention_file(
            positions, kept, config.ebe.thresholds, generated_at=now
        )
        built = (data, records, hashlib.sha256(data).hexdigest())
        self._files[day] = (positions, version, built)
        return built

    def _retry_due(self, day: str, exchange_id: str) -> bool:
        at = self._retry_at.get((day, exchange_id))
        return at is None or time.monotonic() >= at[0]

    def _failed(self, day: str, exchange_id: str) -> float:
        """Note a failed delivery; returns the delay before the next try (30 s doubling to
        ten minutes)."""
        _, failures = self._retry_at.get((day, exchange_id), (0.0, 0))
        delay = min(RETRY_FIRST_S * 2**failures, RETRY_MAX_S)
        self._retry_at[(day, exchange_id)] = (time.monotonic() + delay, failures + 1)
        return delay

    def update_overdue(self) -> None:
        """Today's expiring positions not loaded past the expected time, on expiration days only
        (``[ebe] expiration_days`` and ``expiration_dates``)."""
        settings = self.config().ebe
        local = self.clock().astimezone(CHICAGO)
        expiring = is_expiration_day(
            local.date(), settings.expiration_days, settings.expiration_dates, self.calendar()
        )
        metrics.EBE_EXPIRATION_TODAY.set(1 if expiring else 0)
        due = expiring and local.time() >= settings.positions_expected_time
        missing = self.store.get(local.date().isoformat()) is None
        metrics.EBE_POSITIONS_OVERDUE.set(1 if due and missing else 0)


def receipt_document(
    verdicts: Sequence[Verdict], *, origin: str, received_at: dt.datetime
) -> dict[str, Any]:
    accepted = sum(v.status == "accepted" for v in verdicts)
    return {
        "schema_version": 1,
        "name": origin,
        "received_at": received_at.astimezone(dt.UTC).isoformat(),
        "accepted": accepted,
        "rejected": len(verdicts) - accepted,
        "lines": [v.as_dict() for v in verdicts],
    }


class EbeLoader(SetLoader):
    """Daemon component: loads sets as they land, publishes at the cutoff, keeps gauges (the
    loop and its thread are ``SetLoader``'s)."""

    def __init__(self, flow: EbeFlow, interval_s: float = 15.0) -> None:
        super().__init__(
            "ebe", self._refresh, interval_s=interval_s, settle_s=0.3, first_tick=self._load
        )
        self.flow = flow

    def _load(self) -> None:
        """At start: the sets and the gauges; the publication (maybe a push) follows on the
        loader's thread."""
        self.flow.store.refresh()
        self.flow.update_overdue()

    def _refresh(self) -> None:
        self._load()
        self.flow.publish_due()
