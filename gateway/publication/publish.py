"""Publication of a cycle's aggregated DPL file: build it once, deliver the same bytes.

Theory of operation
-------------------
``publish_cycle`` holds an exclusive ``flock`` on ``spool/state/publication.lock`` for its whole
run, so the daemon's scheduler and ``posgate dpl publish`` never publish at the same time: the
second one waits, then finds the cycle done.

1. **Decide** (``decide``: the republish decision): leave the cycle alone, make a preliminary
   publication final, or build, and with which ``DlvDt``.
2. **Build** when decided. Not while DPL files received before the cycle's cutoff are still in
   the intake (``IntakePending``, unless ``force``): their records belong in the file. The current
   file ids
   are taken first and the build reads exactly those files' valid records from
   ``Ledger.iter_publishable_dpl_values`` (firm, aggregation unit, symbol, SubTyp)
   through ``engine.dpl.canonical.canonical_line`` into a hidden temporary file in
   ``spool/state/publications/``, hashed while written, fsynced and renamed to
   ``DPL_<YYYYMMDD>.fixml``; memory does not grow with the number of records. ``RptID`` is
   ``<YYYYMMDD><9-digit sequence>`` in publication order; ``DlvDt`` is the Chicago date of the
   publication, reused while the cycle's files stay the same, so rebuilding an unchanged cycle
   gives identical bytes; a cycle that changed gets today's date. The publication is recorded
   with the file ids it was built from (the on-demand report reads exactly those) and whether it
   is preliminary.
3. **Deliver** the built file to every receiving exchange that lacks this sha256 (to all of them
   with ``force``). ``spool``: into ``spool/exchanges/<id>/outbound/dpl/``. ``sftp://user@host:port
   /path``: pushed with paramiko using the daemon's own key (``spool/state/push_key``). Either way
   the old ``.sha256`` sidecar is removed first, the file goes to a temporary name and is renamed
   into place, and the new sidecar (``<hex>  DPL_<YYYYMMDD>.fixml``) is written last, so a present
   sidecar always describes the complete file beside it. A redelivery first drops the exchange's
   delivery row, so the ledger never claims a delivery a crash left half-done. Each delivery is
   recorded in the ledger, sets the exchange's last-publication metric and emits
   ``exchange.<id>.dpl.published`` (written in the transaction of the delivery row; with
   ``preliminary`` and, for a replacement, ``replaces``: the earlier sha256). A replacement
   reaches exchanges under the same name with a new sidecar.
4. **Report**, after the run: once every exchange holds the publication
   (``PublicationResult.reports_due``), the caller has each firm's report of the cycle written
   (``firm_reports``): the exchange file never waits for them.

A crash (``kill -9``) at any point leaves under the visible names either the previous complete file
or nothing new: temporaries are hidden (``.DPL_*.tmp``) locally and ``DPL_*.part`` remotely (the
conventional in-progress suffix; the embedded SFTP server refuses names starting with a dot). The
next run removes them and redoes whatever the ledger does not show as done.

This module owns the run: the lock, the recording of each delivery, its metric and event, and the
result. ``decide`` says what to do, ``build`` makes the file, ``deliver`` and ``push`` carry it,
``firm_reports`` writes the firms' reports afterwards, ``errors`` names what can go wrong.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from engine.calendar import BusinessCalendar
from gateway import metrics
from gateway.config import Config, Exchange
from gateway.errors import TransientError
from gateway.ledger import Ledger
from gateway.publication.build import (
    KEEP_BUILT,
    build_file,
    prune_built,
    publication_name,
    publications_dir,
)
from gateway.publication.decide import (
    cycle_complete,
    missing_exchanges,
    plan_publication,
    receiving_exchanges,
)
from gateway.publication.deliver import deliver, remove_local_temporaries
from gateway.publication.errors import (
    DeliveryRefused,
    ExchangeUnreachable,
    IntakePending,
    PublicationBusy,
    PublicationCancelled,
)

log = logging.getLogger(__name__)

CHICAGO = ZoneInfo("America/Chicago")
LOCK_NAME = "publication.lock"
EVENT_SCHEMA_VERSION = 1
_CALENDAR = BusinessCalendar()  # only for cutoff(), which no holiday affects

Emit = Callable[[str, dict[str, Any]], None]


class PublicationRuntime(Protocol):
    """What a publication needs of the daemon's ``Runtime`` (the CLI builds its own)."""

    @property
    def config(self) -> Config: ...

    @property
    def ledger(self) -> Ledger: ...

    @property
    def clock(self) -> Callable[[], dt.datetime]: ...


@dataclass(frozen=True)
class Delivery:
    exchange: str
    target: str
    sha256: str


@dataclass(frozen=True)
class DeliveryFailure:
    exchange: str
    target: str
    error: str
    unreachable: bool


@dataclass(frozen=True)
class PublicationResult:
    """What one ``publish_cycle`` run did."""

    cycle: dt.date
    name: str
    path: Path
    sha256: str
    records: int
    delivery_date: dt.date
    built: bool
    delivered: tuple[Delivery, ...]
    already: tuple[str, ...]
    failures: tuple[DeliveryFailure, ...]
    seconds: float
    preliminary: bool = False
    """Made before the cycle's cutoff: the run after the cutoff publishes it again if changed."""
    replaces: str | None = None
    """The sha256 of the earlier publication of the cycle this one replaced (other records)."""
    finalized: bool = False
    """A preliminary publication found unchanged after the cutoff became final (nothing sent)."""

    @property
    def complete(self) -> bool:
        """Every receiving exchange now holds this publication."""
        return not self.failures

    @property
    def skipped(self) -> bool:
        """Nothing was done: the cycle was already published everywhere."""
        return not self.built and not self.delivered and not self.failures

    @property
    def reports_due(self) -> bool:
        """Every exchange holds a publication this run built, sent or made final: the firms'
        reports of the cycle are to be written (``firm_reports``)."""
        return self.complete and (self.built or bool(self.delivered) or self.finalized)

    @property
    def unreachable(self) -> bool:
        return any(f.unreachable for f in self.failures)

    def as_json(self) -> dict[str, Any]:
        return {
            "cycle": self.cycle.isoformat(),
            "file": self.name,
            "sha256": self.sha256,
            "records": self.records,
            "delivery_date": self.delivery_date.isoformat(),
            "built": self.built,
            "delivered": [dataclasses.asdict(d) for d in self.delivered],
            "already": list(self.already),
            "failures": [dataclasses.asdict(f) for f in self.failures],
            "seconds": round(self.seconds, 3),
            "preliminary": self.preliminary,
            "replaces": self.replaces,
        }


# ---------------------------------------------------------------------------------------------
# the run


def publish_cycle(
    runtime: PublicationRuntime,
    cycle: dt.date,
    *,
    force: bool = False,
    progress: bool = False,
    emit: Emit | None = None,
    cancel: threading.Event | None = None,
    sftp_attempts: int = 3,
    sftp_backoff_s: float = 1.0,
    lock_timeout_s: float = 3600.0,
    ignore_intake: bool = False,
) -> PublicationResult:
    """Build and deliver the aggregated file of ``cycle``; see the module docstring.

    ``ignore_intake`` publishes without the files still in the intake (the scheduler's choice
    once the deadline has passed: they are named in an alert, and a later change of the cycle
    is published again).

    Delivery problems are reported in the result (``failures``), never raised. Raises
    ``IntakePending`` (files of the cycle still being processed), other ``TransientError`` (disk
    full, lock busy), ``PublicationError`` (a stored record that cannot be serialised) and
    ``PublicationCancelled`` when ``cancel`` is set. The firms' reports are not written here:
    when ``reports_due``, the caller has them written (``firm_reports.write_firm_reports``).
    """
    return _publish_locked(
        runtime,
        cycle,
        force=force,
        progress=progress,
        emit=emit,
        cancel=cancel,
        sftp_attempts=sftp_attempts,
        sftp_backoff_s=sftp_backoff_s,
        lock_timeout_s=lock_timeout_s,
        ignore_intake=ignore_intake,
    )


def _publish_locked(
    runtime: PublicationRuntime,
    cycle: dt.date,
    *,
    force: bool,
    progress: bool,
    emit: Emit | None,
    cancel: threading.Event | None,
    sftp_attempts: int,
    sftp_backoff_s: float,
    lock_timeout_s: float,
    ignore_intake: bool = False,
) -> PublicationResult:
    started = time.monotonic()
    config = runtime.config
    ledger = runtime.ledger
    key = cycle.isoformat()
    name = publication_name(cycle)
    receivers = receiving_exchanges(config)
    built_path = publications_dir(config) / name
    with publication_lock(config.spool.state_dir, lock_timeout_s, cancel):
        now = runtime.clock()
        plan = plan_publication(ledger, receivers, cycle, now, built_path, force=force)
        publication, delivered, current = plan.publication, plan.delivered, plan.current
        after_cutoff, was_preliminary = plan.after_cutoff, plan.was_preliminary
        if plan.leave_alone:
            assert publication is not None
            if plan.finalize:
                # nothing arrived since the preliminary file: it is the final one, as delivered
                ledger.mark_publication_final(key)
                log.info("dpl cycle %s: the preliminary publication is final (unchanged)", key)
            else:
                log.info("dpl cycle %s already published to every receiving exchange", key)
            return PublicationResult(
                cycle=cycle,
                name=name,
                path=built_path,
                sha256=publication["sha256"],
                records=int(publication["records"]),
                delivery_date=plan.delivery_date,
                built=False,
                delivered=(),
                already=tuple(e.exchange_id for e in receivers),
                failures=(),
                seconds=time.monotonic() - started,
                preliminary=was_preliminary and not after_cutoff,
                finalized=plan.finalize,
            )
        built_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        remove_local_temporaries(built_path.parent)
        delivery_date, built = plan.delivery_date, plan.build
        if built and not force and not ignore_intake:
            pending = ledger.unfinished_dpl_files(_CALENDAR.cutoff(cycle))
            if pending:
                raise IntakePending(cycle, len(pending), pending)
        replaces: str | None = None
        if built:
            sha256, records = build_file(
                ledger,
                cycle,
                delivery_date,
                built_path,
                progress=progress,
                cancel=cancel,
                files=current,
            )
            ledger.record_publication(
                cycle=key,
                delivery_date=delivery_date.isoformat(),
                sha256=sha256,
                records=records,
                path=str(built_path),
                files=current,
                preliminary=not after_cutoff,
            )
            if publication is not None and publication["sha256"] != sha256:
                replaces = str(publication["sha256"])
            metrics.DPL_PUBLISHED_RECORDS.inc(records)
            log.info(
                "dpl cycle %s built %s records=%d sha256=%s dlvdt=%s%s%s",
                key,
                built_path,
                records,
                sha256,
                delivery_date,
                " preliminary" if not after_cutoff else "",
                f" replaces={replaces}" if replaces else "",
            )
        else:
            assert publication is not None
            sha256, records = publication["sha256"], int(publication["records"])
        preliminary = not after_cutoff if built else was_preliminary

        todo = (
            receivers if force else [e for e in receivers if delivered.get(e.exchange_id) != sha256]
        )
        already = tuple(e.exchange_id for e in receivers if e not in todo)
        done: list[Delivery] = []
        failures: list[DeliveryFailure] = []
        for exchange in todo:
            if cancel is not None and cancel.is_set():
                raise PublicationCancelled(f"cycle {key}: stopped before delivering to all")
            outcome = _deliver_one(
                runtime,
                exchange,
                cycle,
                built_path,
                sha256,
                records=records,
                delivery_date=delivery_date,
                preliminary=preliminary,
                replaces=replaces,
                known=exchange.exchange_id in delivered,
                emit=emit,
                attempts=sftp_attempts,
                backoff_s=sftp_backoff_s,
            )
            if isinstance(outcome, Delivery):
                done.append(outcome)
            else:
                failures.append(outcome)
        if not failures:
            metrics.DPL_LAST_PUBLISHED_CYCLE.set(
                dt.datetime.combine(cycle, dt.time(0), tzinfo=dt.UTC).timestamp()
            )
            prune_built(built_path.parent, keep=KEEP_BUILT)
    seconds = time.monotonic() - started
    metrics.DPL_PUBLICATION_SECONDS.observe(seconds)
    return PublicationResult(
        cycle=cycle,
        name=name,
        path=built_path,
        sha256=sha256,
        records=records,
        delivery_date=delivery_date,
        built=built,
        delivered=tuple(done),
        already=already,
        failures=tuple(failures),
        seconds=seconds,
        preliminary=preliminary,
        replaces=replaces,
    )


def _deliver_one(
    runtime: PublicationRuntime,
    exchange: Exchange,
    cycle: dt.date,
    built: Path,
    sha256: str,
    *,
    records: int,
    delivery_date: dt.date,
    preliminary: bool,
    replaces: str | None,
    known: bool,
    emit: Emit | None,
    attempts: int,
    backoff_s: float,
) -> Delivery | DeliveryFailure:
    """Deliver to one exchange and record it; a failure is returned, never raised."""
    ledger = runtime.ledger
    key = cycle.isoformat()
    name = publication_name(cycle)
    if known:  # the target is about to change: the old delivery row must not outlive it
        ledger.forget_delivery(key, exchange.exchange_id)
    try:
        target = deliver(
            runtime.config, exchange, built, name, sha256, attempts=attempts, backoff_s=backoff_s
        )
    except (ExchangeUnreachable, DeliveryRefused, TransientError, OSError) as exc:
        log.error(
            "dpl cycle %s delivery to %s (%s) failed: %s",
            key,
            exchange.exchange_id,
            _shown_target(exchange),
            exc,
        )
        unreachable = isinstance(exc, ExchangeUnreachable)
        return DeliveryFailure(exchange.exchange_id, _shown_target(exchange), str(exc), unreachable)
    body = {
        "schema_version": EVENT_SCHEMA_VERSION,
        "exchange": exchange.exchange_id,
        "cycle": key,
        "file": name,
        "sha256": sha256,
        "records": records,
        "delivery_date": delivery_date.isoformat(),
        "target": target,
        "preliminary": preliminary,
        "replaces": replaces,
    }
    # The event is written with the delivery row, in one transaction.
    ledger.record_delivery(
        cycle=key,
        exchange=exchange.exchange_id,
        sha256=sha256,
        target=target,
        event=(
            f"exchange.{exchange.exchange_id}.dpl.published",
            body,
            f"dpl.published.{key}.{exchange.exchange_id}.{sha256[:16]}",
        ),
    )
    metrics.DPL_LAST_PUBLICATION.labels(exchange=exchange.exchange_id).set(time.time())
    log.info("dpl cycle %s delivered to %s at %s", key, exchange.exchange_id, target)
    _emit(emit, exchange.exchange_id, body)
    return Delivery(exchange.exchange_id, target, sha256)


def _emit(emit: Emit | None, exchange_id: str, body: dict[str, Any]) -> None:
    if emit is None:
        return
    try:
        emit(f"exchange.{exchange_id}.dpl.published", body)
    except Exception:
        # The event is a courtesy; the delivery itself is done and recorded.
        log.exception("emitting the publication event for %s failed", exchange_id)


@contextlib.contextmanager
def publication_lock(
    state_dir: Path, timeout_s: float, cancel: threading.Event | None = None
) -> Iterator[None]:
    """Exclusive ``flock`` on ``state/publication.lock`` (held across processes and threads)."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + timeout_s
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not announced:
                    log.info("another publication is running; waiting for it")
                    announced = True
                if time.monotonic() >= deadline:
                    raise PublicationBusy(
                        f"another publication held {state_dir / LOCK_NAME} for {timeout_s:.0f}s"
                    ) from None
                if cancel is not None and cancel.wait(0.2):
                    raise PublicationCancelled("stopped while waiting for the lock") from None
                if cancel is None:
                    time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _shown_target(exchange: Exchange) -> str:
    if exchange.delivery == "spool":
        return f"spool:exchanges/{exchange.exchange_id}/outbound/dpl"
    return exchange.delivery


__all__: Sequence[str] = (
    "Delivery",
    "DeliveryFailure",
    "PublicationResult",
    "PublicationRuntime",
    "cycle_complete",
    "missing_exchanges",
    "publish_cycle",
    "receiving_exchanges",
)
