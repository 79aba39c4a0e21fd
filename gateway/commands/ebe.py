"""Verbs ``ebe query`` (the daemon's state) and ``ebe compute`` (offline, from files)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from gateway.cli import EX_CONFIG, EX_DATAERR, EX_OK


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ebe = subparsers.add_parser("ebe", help="exercise by exception: query and compute")
    verbs = ebe.add_subparsers(dest="ebe_verb", metavar="VERB", required=True)
    query = verbs.add_parser("query", help="a firm's expiring positions on the daemon's state")
    query.add_argument("--date", required=True, help="expiration date YYYY-MM-DD")
    query.add_argument("--firm", required=True)
    _filters(query)
    query.set_defaults(func=run_query)
    compute = verbs.add_parser("compute", help="outcomes from an input folder, no daemon")
    compute.add_argument("--inputs", required=True, help="folder with the three CSV files")
    compute.add_argument("--instructions", action="append", default=[], metavar="FILE")
    compute.add_argument("--firm", required=True)
    compute.add_argument(
        "--at", default=None, help="judge instructions as received at ISO8601 (default: now)"
    )
    _filters(compute)
    compute.set_defaults(func=run_compute)


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--account")
    p.add_argument("--account-type", choices=("C", "F", "M"))
    p.add_argument("--symbol")
    p.add_argument("--underlying")
    p.add_argument("--put-call", choices=("C", "P"))
    p.add_argument("--moneyness", choices=("ITM", "ATM", "OTM"))
    p.add_argument("--min-itm-amount")
    p.add_argument("--contrary-only", action="store_true")
    p.add_argument("--format", choices=("csv", "json"), default="json")


def _raw_filters(args: argparse.Namespace, day: str) -> dict[str, Any]:
    return {
        "expiration_date": day,
        "account": args.account,
        "account_type": args.account_type,
        "symbol": args.symbol,
        "underlying": args.underlying,
        "put_call": args.put_call,
        "moneyness": args.moneyness,
        "min_itm_amount": args.min_itm_amount,
        "contrary_only": args.contrary_only,
    }


def _print(doc: dict[str, Any], fmt: str) -> None:
    from engine.ebe.query import render_csv, render_json

    data = render_csv(doc["rows"]) if fmt == "csv" else render_json(doc)
    sys.stdout.buffer.write(data)
    sys.stdout.flush()
    if fmt == "csv":
        for problem in doc["problems"]:
            print(f"note: {problem}", file=sys.stderr)


def run_query(args: argparse.Namespace) -> int:
    from engine.ebe.query import Filters
    from engine.errors import InputRejected
    from gateway.commands.common import load_config_or_report
    from gateway.ebe_store import ExpiringStore
    from gateway.ledger import Ledger
    from gateway.pipelines.ebe import EbeFlow

    config = load_config_or_report(args.config)
    if config is None:
        return EX_CONFIG
    try:
        filters = Filters.parse(_raw_filters(args, args.date))
    except InputRejected as exc:
        print(f"posgate ebe query: {exc.reason}: {exc.message}", file=sys.stderr)
        return EX_DATAERR
    store = ExpiringStore(config.spool.root / "internal" / "ebe")
    store.refresh()
    ledger = Ledger(config.spool.ledger_path) if config.spool.ledger_path.exists() else None
    flow = EbeFlow(
        spool_root=config.spool.root,
        ledger=ledger,
        store=store,
        config=lambda: config,
        clock=lambda: dt.datetime.now(dt.UTC),
        emit=lambda key, body: None,
    )
    _print(flow.query(args.firm, filters), args.format)
    return EX_OK


def run_compute(args: argparse.Namespace) -> int:
    from engine.ebe.answer import answer, kept_from_verdicts
    from engine.ebe.day import cutoff_instant
    from engine.ebe.instructions import judge, read_instruction_csv
    from engine.ebe.positions import ExpiringSetInvalid
    from engine.ebe.query import Filters
    from engine.errors import InputRejected
    from gateway.config import ConfigError, load_config
    from gateway.config.settings import default_ebe_settings
    from gateway.ebe_store import load_expiring_set

    try:
        settings = load_config(args.config).ebe
    except ConfigError:
        # Offline use needs no working daemon config: the defaults of [ebe] apply.
        settings = default_ebe_settings()
    folder = Path(args.inputs)
    try:
        positions = load_expiring_set(folder, dated_folder=False)
    except ExpiringSetInvalid as exc:
        for problem in exc.problems:
            print(f"{folder}: {problem}", file=sys.stderr)
        return EX_DATAERR
    day = positions.expiration_date.isoformat()
    try:
        filters = Filters.parse(_raw_filters(args, day))
        at = dt.datetime.fromisoformat(args.at) if args.at else dt.datetime.now(dt.UTC)
        if at.tzinfo is None:
            raise InputRejected("LAYOUT", f"--at {args.at!r} needs a UTC offset")
    except (InputRejected, ValueError) as exc:
        print(f"posgate ebe compute: {exc}", file=sys.stderr)
        return EX_DATAERR
    verdicts = []
    kept = []
    for name in args.instructions:
        path = Path(name)
        try:
            lines = read_instruction_csv(path.read_bytes(), path.name)
        except (OSError, InputRejected) as exc:
            print(f"posgate ebe compute: {path}: {exc}", file=sys.stderr)
            return EX_DATAERR
        judged = judge(
            lines,
            firm=args.firm,
            received_at=at,
            sets={day: positions}.get,
            cutoff=lambda d: cutoff_instant(d, settings.instruction_cutoff),
        )
        verdicts.extend(judged)
        kept.extend(kept_from_verdicts(judged, at, path.name))
    doc = answer(
        positions,
        firm=args.firm,
        filters=filters,
        thresholds=settings.thresholds,
        cutoff_at=settings.instruction_cutoff,
        now=at,
        kept=kept,
        verdicts=verdicts,
    )
    _print(doc, args.format)
    return EX_OK
