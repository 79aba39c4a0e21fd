"""Verbs ``report dpl`` (on-demand record report) and ``report dpl-missing``.

``report dpl --date D [--firm ID] [--status valid|rejected|all] [--format csv|json]`` lists the
records of a published cycle with their submitting firm, file, line, status, reasons, detail
messages and fields; exit 1 with "cycle D is not published yet" before publication.
``report dpl-missing --date D`` lists firms that submitted in the last
``dpl.missing_lookback_cycles`` business-day cycles but not in D. Output goes to stdout, or with
``--out PATH`` to a file written atomically.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from gateway.cli import EX_CONFIG, EX_FAILURE, EX_OK
from gateway.commands.common import load_calendar_or_report, load_config_or_report
from gateway.commands.dpl_publish import parse_date
from gateway.commands.dpl_validate import SubParsers
from gateway.errors import TransientError
from gateway.ledger import Ledger


def register(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "report",
        help="on-demand reports: dpl, dpl-missing",
        description="Operator reports over the ledger.",
    )
    actions = parser.add_subparsers(dest="report_action", metavar="REPORT")
    parser.set_defaults(func=lambda _args: _usage(parser))

    dpl = actions.add_parser(
        "dpl",
        help="valid and rejected records of a published cycle, with reasons",
        description="Records of a published DPL cycle: submitting firm, file, line, status, "
        "reasons, detail messages and the record's fields.",
    )
    dpl.add_argument(
        "--date", required=True, type=parse_date, metavar="YYYY-MM-DD", help="the cycle"
    )
    dpl.add_argument("--firm", metavar="ID", help="only the records this firm submitted")
    dpl.add_argument("--status", choices=("valid", "rejected", "all"), default="all")
    dpl.add_argument("--format", choices=("csv", "json"), default="csv")
    dpl.add_argument("--out", metavar="PATH", help="write to this file instead of stdout")
    dpl.set_defaults(func=run_report_dpl)

    missing = actions.add_parser(
        "dpl-missing",
        help="firms that submitted in recent cycles but not in this one",
        description="Firms that submitted in one of the last dpl.missing_lookback_cycles "
        "business-day cycles but not in the given cycle.",
    )
    missing.add_argument(
        "--date", required=True, type=parse_date, metavar="YYYY-MM-DD", help="the cycle"
    )
    missing.add_argument("--format", choices=("csv", "json"), default="csv")
    missing.add_argument("--out", metavar="PATH", help="write to this file instead of stdout")
    missing.set_defaults(func=run_report_missing)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


class OutputRefused(Exception):
    """``--out`` names something that must not be written (see ``output_problem``)."""


@contextlib.contextmanager
def _output(path: str | None) -> Iterator[TextIO]:
    """stdout, or a text stream whose content lands atomically in ``path`` on success."""
    if path is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    from gateway.commands.common import output_problem
    from gateway.spool.fsio import atomic_writer

    problem = output_problem(path)
    if problem:
        raise OutputRefused(problem)
    with atomic_writer(Path(path)) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        yield text
        text.flush()
        text.detach()


def run_report_dpl(args: argparse.Namespace) -> int:
    from gateway.outputs.reports import CycleNotPublished, dpl_report_rows, render_csv, render_json

    config = load_config_or_report(args.config)
    if config is None:
        return EX_CONFIG
    cycle: dt.date = args.date
    if not config.spool.ledger_path.exists():
        print(
            f"posgate report dpl: cycle {cycle} is not published yet (no ledger yet)",
            file=sys.stderr,
        )
        return EX_FAILURE
    ledger = Ledger(config.spool.ledger_path)
    try:
        rows = dpl_report_rows(ledger, cycle, args.firm, args.status)
        with _output(args.out) as out:
            if args.format == "json":
                count = render_json(rows, out, cycle=cycle, firm=args.firm, status=args.status)
            else:
                count = render_csv(rows, out)
    except CycleNotPublished as exc:
        print(f"posgate report dpl: {exc}", file=sys.stderr)
        return EX_FAILURE
    except OutputRefused as exc:
        print(f"posgate report dpl: {exc}", file=sys.stderr)
        return 73  # EX_CANTCREAT
    except (TransientError, OSError) as exc:
        print(f"posgate report dpl: {exc}", file=sys.stderr)
        return EX_FAILURE
    finally:
        ledger.close()
    if args.out:
        print(f"{count} record(s) written to {args.out}", file=sys.stderr)
    return EX_OK


def run_report_missing(args: argparse.Namespace) -> int:
    from gateway.outputs.reports import missing_submitters, render_missing_csv, render_missing_json

    loaded = load_calendar_or_report(args.config)
    if loaded is None:
        return EX_CONFIG
    config, calendar = loaded
    cycle: dt.date = args.date
    if not calendar.is_business_day(cycle):
        print(
            f"posgate report dpl-missing: {cycle} is not a business day "
            f"({calendar.explain(cycle)}), so it is not a cycle",
            file=sys.stderr,
        )
        return EX_FAILURE
    lookback = config.dpl.missing_lookback_cycles
    ledger = Ledger(config.spool.ledger_path) if config.spool.ledger_path.exists() else None
    try:
        rows = (
            missing_submitters(ledger, calendar, cycle, lookback, contact=config.technical_contact)
            if ledger is not None
            else []  # nothing was ever received
        )
        with _output(args.out) as out:
            if args.format == "json":
                render_missing_json(rows, out, cycle=cycle, lookback=lookback)
            else:
                render_missing_csv(rows, out)
    except OutputRefused as exc:
        print(f"posgate report dpl-missing: {exc}", file=sys.stderr)
        return 73  # EX_CANTCREAT
    except (TransientError, OSError) as exc:
        print(f"posgate report dpl-missing: {exc}", file=sys.stderr)
        return EX_FAILURE
    finally:
        if ledger is not None:
            ledger.close()
    return EX_OK
