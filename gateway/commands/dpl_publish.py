"""Verbs ``dpl publish`` (build and deliver a cycle's aggregated file now) and ``dpl push-key``.

``dpl publish --date D [--force]`` publishes cycle D like the scheduler does, safe to run while the
daemon runs (the two take turns on the publication lock). It accepts only a business day that is
not in the future and lies within the ledger's DPL history (its first file or publication) or the
last ``[dpl] publish_window_days`` days; anything else (a mistyped year, a weekend, next week)
exits 65 and delivers nothing. Without ``--force`` it also refuses (65) a cycle whose cutoff has
not passed (records could still arrive); with ``--force`` such a publication is *preliminary*:
the scheduled run after the cutoff publishes the cycle again when anything changed it.
Exit codes: 0 every receiving exchange has the file, 1 failure, 65 a date that is not a cycle it
may publish, 69 an ``sftp://`` exchange stayed unreachable after retries, 78 bad configuration.

``dpl push-key`` prints the public key posgate uses to push files to ``sftp://`` exchanges
(``spool/state/push_key.pub``, created on first use) for the exchange to authorize.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gateway.cli import EX_CONFIG, EX_DATAERR, EX_FAILURE, EX_OK, EX_UNAVAILABLE
from gateway.commands.common import load_calendar_or_report, load_config_or_report
from gateway.commands.dpl_validate import SubParsers, dpl_group
from gateway.config import Config
from gateway.errors import TransientError
from gateway.ledger import Ledger

if TYPE_CHECKING:
    from gateway.publication.publish import PublicationResult

log = logging.getLogger(__name__)


def register(subparsers: SubParsers) -> None:
    group = dpl_group(subparsers)
    publish = group.add_parser(
        "publish",
        help="build and deliver the aggregated DPL file of a cycle now",
        description="Build DPL_<YYYYMMDD>.fixml for a cycle and deliver it to every exchange "
        "that receives it. Does nothing when every exchange already has it, unless --force.",
    )
    publish.add_argument(
        "--date",
        required=True,
        type=parse_date,
        metavar="YYYY-MM-DD",
        help="the cycle (business day) to publish",
    )
    publish.add_argument(
        "--force",
        action="store_true",
        help="rebuild and redeliver even if published (identical bytes when "
        "nothing changed); also allows a cycle whose cutoff has not passed",
    )
    publish.set_defaults(func=run_publish)
    key = group.add_parser(
        "push-key",
        help="print the public key used to push DPL files to sftp:// exchanges",
        description="Print (creating on first use) the SSH public key posgate authenticates "
        "with when it pushes the aggregated file to an exchange's SFTP server.",
    )
    key.set_defaults(func=run_push_key)


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {text!r}") from None


@dataclass
class CliRuntime:
    """The parts of the daemon's Runtime a publication needs."""

    config: Config
    ledger: Ledger
    clock: Callable[[], dt.datetime]


def run_publish(args: argparse.Namespace) -> int:
    from gateway.app import clock_from_environment
    from gateway.publication.errors import (
        IntakePending,
        PublicationCancelled,
        PublicationError,
    )
    from gateway.publication.publish import publish_cycle

    loaded = load_calendar_or_report(args.config)
    if loaded is None:
        return EX_CONFIG
    config, calendar = loaded
    cycle: dt.date = args.date
    if not calendar.is_business_day(cycle):
        print(
            f"posgate dpl publish: {cycle} is not a business day ({calendar.explain(cycle)}), "
            "so it is not a cycle; nothing delivered",
            file=sys.stderr,
        )
        return EX_DATAERR
    clock = clock_from_environment()
    now = clock()
    current = calendar.cycle_of(now)
    if cycle > current:
        print(
            f"posgate dpl publish: cycle {cycle} is in the future (the current cycle is "
            f"{current}); nothing delivered",
            file=sys.stderr,
        )
        return EX_DATAERR
    cutoff = calendar.cutoff(cycle)
    if now < cutoff and not args.force:
        print(
            f"posgate dpl publish: cycle {cycle} is still open until its cutoff "
            f"{cutoff.isoformat()}; records may still arrive (use --force to publish a "
            "preliminary file now; the run after the cutoff publishes it again if it changed)",
            file=sys.stderr,
        )
        return EX_DATAERR
    try:
        ledger = Ledger(config.spool.ledger_path)
    except Exception as exc:
        print(
            f"posgate dpl publish: cannot open the ledger {config.spool.ledger_path}: {exc}",
            file=sys.stderr,
        )
        return EX_FAILURE
    if config.amqp.enabled:
        _events_through_the_outbox(config, ledger)
    refusal = _outside_history(ledger, config, calendar.chicago_date(now), cycle)
    if refusal is not None:
        ledger.close()
        print(f"posgate dpl publish: {refusal}; nothing delivered", file=sys.stderr)
        return EX_DATAERR
    runtime = CliRuntime(config, ledger, clock)
    try:
        result = publish_cycle(
            runtime, cycle, force=args.force, progress=True, lock_timeout_s=900.0
        )
    except IntakePending as exc:
        ledger.close()
        print(
            f"posgate dpl publish: cycle {cycle}: {exc}; retry in a moment "
            "(or --force to publish without them)",
            file=sys.stderr,
        )
        return EX_FAILURE
    except (TransientError, PublicationError, PublicationCancelled, OSError) as exc:
        ledger.close()
        print(f"posgate dpl publish: cycle {cycle}: {exc}", file=sys.stderr)
        return EX_FAILURE
    try:
        return _report(result, cycle, runtime)
    finally:
        ledger.close()


def _report(result: PublicationResult, cycle: dt.date, runtime: CliRuntime) -> int:
    """Print what the run did; then, the exchanges being served, write the firms' reports."""
    from gateway.publication.firm_reports import write_firm_reports

    if result.skipped:
        print(
            f"cycle {cycle}: already published to every receiving exchange "
            f"({result.name}, {result.records} records, sha256 {result.sha256}); "
            "use --force to publish again"
        )
        if result.reports_due:  # a preliminary publication became final: its reports
            write_firm_reports(runtime, cycle)
        return EX_OK
    verb = "built" if result.built else "reused"
    kind = " (preliminary: the cycle is still open)" if result.preliminary else ""
    print(
        f"cycle {cycle}: {verb} {result.name}: {result.records} records, "
        f"DlvDt {result.delivery_date}, sha256 {result.sha256}{kind}"
    )
    if result.replaces:
        print(f"  replaces the earlier publication sha256 {result.replaces}")
    for delivery in result.delivered:
        print(f"  delivered to {delivery.exchange}: {delivery.target}")
    for exchange in result.already:
        print(f"  {exchange}: already had it")
    for failure in result.failures:
        kind = "UNREACHABLE" if failure.unreachable else "FAILED"
        print(f"  {kind} {failure.exchange} ({failure.target}): {failure.error}", flush=True)
    if result.reports_due:
        sys.stdout.flush()  # the deliveries are shown before the reports are written
        written = write_firm_reports(runtime, cycle)
        print(f"  firm reports written: {len(written)} (outbound/dpl/reports/)")
    if result.complete:
        return EX_OK
    return EX_UNAVAILABLE if result.unreachable else EX_FAILURE


def _events_through_the_outbox(config: Config, ledger: Ledger) -> None:
    """As in the daemon: each ``exchange.<id>.dpl.published`` event is written in the transaction
    of its delivery row, and alerts go to the outbox too; the running daemon's publisher sends
    them (the outbox is a table of the ledger, shared by both processes)."""
    from gateway import alerts
    from gateway.amqp.outbox import Outbox, insert_event

    outbox = Outbox(config.spool.ledger_path)  # creates the table on a ledger the daemon never ran
    ledger.event_writer = insert_event
    alerts.add_event_sink(outbox.emit)


def _outside_history(ledger: Ledger, config: Config, today: dt.date, cycle: dt.date) -> str | None:
    """Why ``cycle`` is too old to publish, or None: it must lie within the ledger's DPL history
    or within ``publish_window_days`` of today (a fresh installation has no history yet)."""
    window_start = today - dt.timedelta(days=config.dpl.publish_window_days)
    if cycle >= window_start:
        return None
    earliest = ledger.earliest_dpl_cycle()
    if earliest is not None and cycle >= dt.date.fromisoformat(earliest):
        return None
    history = f"the ledger's DPL history starts at {earliest}" if earliest else "no DPL history"
    return (
        f"cycle {cycle} is outside the ledger's history ({history}) and older than "
        f"{config.dpl.publish_window_days} days ([dpl] publish_window_days)"
    )


def run_push_key(args: argparse.Namespace) -> int:
    from gateway.publication.errors import DeliveryRefused
    from gateway.publication.push import push_public_key

    config = load_config_or_report(args.config)
    if config is None:
        return EX_CONFIG
    try:
        path, line = push_public_key(config)
    except (DeliveryRefused, OSError) as exc:
        print(f"posgate dpl push-key: {exc}", file=sys.stderr)
        return EX_FAILURE
    print(line)
    print(
        f"(from {path}; the exchange authorizes this key for the sftp:// delivery user)",
        file=sys.stderr,
    )
    return EX_OK
