"""Exercise-by-exception pipeline (SPEC §8): sets -> ledger, instructions -> receipts, queries ->
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
* Publication: after the cutoff of an expiration date whose set is loaded, the loader writes
  ``CIR_<YYYYMMDD>.fixml`` (plus ``.sha256``, written last) into ``outbound/ebe/`` of every
  exchange with ``receives_ebe=Y`` and records it; a restart after the cutoff publishes what is
  missing (catch-up), the same content is never written twice, and a changed content (a newer set
  after the cutoff) is written again.
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

from engine.calendar import CHICAGO
from engine.ebe.answer import answer
from engine.ebe.day import cutoff_instant
from engine.ebe.fixml import contrary_intention_file
from engine.ebe.instructions import Instruction, Verdict, judge, read_instruction_csv
from engine.ebe.positions import ExpiringSet, ExpiringSetInvalid
from engine.ebe.query import Filters, render_csv, render_json
from engine.errors import InputRejected, UnreadableInput
from gateway import metrics
from gateway.alerts import raise_alert
from gateway.config import Config
from gateway.ebe_store import ExpiringStore
from gateway.ledger import Ledger
from gateway.pipelines.set_loader import SetLoader
from gateway.spool.claims import ClaimedFile
from gateway.spool.fsio import write_atomic
from gateway.spool.naming import upload_output_base

log = logging.getLogger(__name__)

QUERY_SUFFIX = ".query.json"
RECEIPT_SUFFIX = ".ebe-receipt.json"
ANSWER_SUFFIX = ".answer.csv"
ERROR_SUFFIX = ".error.json"
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
    ) -> None:
        self.root = spool_root
        self.ledger = ledger
        self.store = store
        self.config = config
        self.clock = clock
        self.emit = emit

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
        """The JSON form of SPEC §8.4 for ``firm`` (rows of that firm only)."""
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
        """Publish the contrary-intention file of every loaded date past its cutoff that has
        not been delivered with this content to every receiving exchange; returns exchanges
        written."""
        written = []
        now = self.clock()
        config = self.config()
        receivers = [e for e in config.reference.exchanges if e.receives_ebe]
        for day in self.store.dates():
            positions = self.store.get(day)
            if positions is None or now <= self.cutoff(positions.expiration_date):
                continue
            kept = self.ledger.kept_instructions(day) if self.ledger is not None else []
            data, records = contrary_intention_file(
                positions, kept, config.ebe.thresholds, generated_at=now
            )
            digest = hashlib.sha256(data).hexdigest()
            for exchange in receivers:
                done = (
                    self.ledger.ebe_publication(day, exchange.exchange_id)
                    if self.ledger is not None
                    else None
                )
                if done is not None and done["sha256"] == digest:
                    metrics.EBE_PUBLICATION_LATE.labels(exchange=exchange.exchange_id).set(0)
                    continue
                # Late until this content is delivered: a failure below leaves the gauge at 1.
                metrics.EBE_PUBLICATION_LATE.labels(exchange=exchange.exchange_id).set(1)
                if exchange.delivery != "spool":
                    log.error(
                        "contrary-intention file %s for %s: delivery %s is not supported for "
                        "this file; deliver from the spool",
                        day,
                        exchange.exchange_id,
                        exchange.delivery,
                    )
                    continue
                folder = self.root / "exchanges" / exchange.exchange_id / "outbound" / "ebe"
                target = folder / f"CIR_{day.replace('-', '')}.fixml"
                write_atomic(target, data)
                write_atomic(
                    target.with_name(target.name + ".sha256"),
                    f"{digest}  {target.name}\n".encode(),
                )
                if self.ledger is not None:
                    self.ledger.record_ebe_publication(
                        day, exchange.exchange_id, sha256=digest, records=records, path=str(target)
                    )
                metrics.EBE_LAST_PUBLICATION.labels(exchange=exchange.exchange_id).set(time.time())
                metrics.EBE_PUBLICATION_LATE.labels(exchange=exchange.exchange_id).set(0)
                self.emit(
                    f"exchange.{exchange.exchange_id}.ebe.published",
                    {
                        "expiration_date": day,
                        "file": target.name,
                        "records": records,
                        "sha256": digest,
                    },
                )
                log.info(
                    "contrary-intention file published exchange=%s date=%s records=%d",
                    exchange.exchange_id,
                    day,
                    records,
                )
                written.append(exchange.exchange_id)
        return written

    def update_overdue(self) -> None:
        """Positions for today not loaded past the expected time (business days only)."""
        config = self.config()
        local = self.clock().astimezone(CHICAGO)
        today = local.date().isoformat()
        business = local.weekday() < 5
        due = business and local.time() >= config.ebe.positions_expected_time
        metrics.EBE_POSITIONS_OVERDUE.set(1 if due and self.store.get(today) is None else 0)


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
        super().__init__("ebe", self._refresh, interval_s=interval_s, settle_s=0.3)
        self.flow = flow

    def _refresh(self) -> None:
        self.flow.store.refresh()
        self.flow.update_overdue()
        self.flow.publish_due()
