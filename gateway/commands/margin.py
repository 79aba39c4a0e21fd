"""CLI verbs of the portfolio margin flow: ``margin`` and ``theo generate``.

``theo contracts`` and ``positions convert`` live in ``gateway.commands.pmc_tools``.

Neither needs the config: ``margin`` takes a theo set folder and a 346 position file, and
``theo generate`` a market snapshot. Bad input data (unreadable position file, theo set or market
snapshot) exits 65 with a message naming file, line and column; a usage mistake exits 2.
Long work (reading, computing, each output; pricing and writing a theo set) shows a progress
bar when stderr is a terminal and plain log lines otherwise (``gateway.progress``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from datetime import date
from pathlib import Path

from engine.errors import UnreadableInput
from engine.pmc.compare import margin_as, parse_account_types
from engine.pmc.market import parse_market_snapshot
from engine.pmc.positions.model import PositionFile
from engine.pmc.positions.read import parse_position_file
from engine.pmc.pricing import DEFAULT_STEPS
from engine.pmc.report import margin_for_file
from engine.pmc.theo.generate import generate_instruments
from engine.pmc.theo.model import TheoSet
from engine.pmc.theo.read import TheoSetInvalid, parse_theo_set
from engine.pmc.theo.write import render_theo_set
from gateway.commands.common import fail, input_exit_code, write_output
from gateway.progress import progress_bar

log = logging.getLogger(__name__)

EX_OK = 0
EX_FAILURE = 1
EX_USAGE = 2
EX_DATAERR = 65
FORMATS = ("table", "csv", "json", "pdf")
PROGRESS_MIN_BYTES = 2_000_000


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``margin`` and ``theo generate``."""
    p = subparsers.add_parser(
        "margin",
        help="portfolio margin (CPM/RBH) of a 346 position file",
        description="Compute portfolio margin requirements of a CSV or ASCII 346 position file "
        "against a theoretical P&L set.",
    )
    p.add_argument("--theo", required=True, metavar="DIR", help="theo set folder (five CSV files)")
    p.add_argument("--positions", required=True, metavar="FILE", help="346 position file")
    p.add_argument("--format", choices=FORMATS, default="table", help="output (default: table)")
    p.add_argument("--out", metavar="PATH", help="write here instead of standard output")
    p.add_argument(
        "--firm",
        metavar="ID",
        help="clearing firm number for records that leave it blank",
    )
    p.add_argument(
        "--as",
        dest="as_types",
        metavar="C,F,M",
        help="compute every position under each of these account types, side by side",
    )
    p.add_argument(
        "--part",
        choices=("detail", "summary"),
        default="detail",
        help="csv/pdf: every level (detail, default) or accounts, firms and units (summary)",
    )
    p.add_argument(
        "--wide",
        action="store_true",
        help="table: every P&L point of every group (needs about 160 columns)",
    )
    p.set_defaults(func=run_margin)

    t = subparsers.add_parser("theo", help="theoretical P&L sets")
    tsub = t.add_subparsers(dest="theo_verb", metavar="VERB")
    g = tsub.add_parser(
        "generate",
        help="build a theo set from a market snapshot",
        description="Price every instrument of a market snapshot at the 10 points of its "
        "product group's move range (CRR binomial for American, Black-Scholes for European) "
        "and write a theo set; meta.csv is written last.",
    )
    g.add_argument("--market", required=True, metavar="FILE", help="market snapshot CSV")
    g.add_argument("--date", required=True, metavar="YYYY-MM-DD", help="activity date")
    g.add_argument("--out", required=True, metavar="DIR", help="folder of the new set")
    g.add_argument(
        "--equity-product-group",
        default="999",
        metavar="ID",
        help="product group of stocks not in the set (default 999)",
    )
    g.add_argument(
        "--steps", type=int, default=DEFAULT_STEPS, help="binomial steps (default %(default)s)"
    )
    g.add_argument("--force", action="store_true", help="replace an existing set in DIR")
    g.set_defaults(func=run_theo_generate)

    from gateway.commands.pmc_tools import add_theo_contracts

    add_theo_contracts(tsub)


def describe_unreadable(exc: UnreadableInput) -> str:
    """The reason and every located problem of an unreadable input, for stderr."""
    problems = getattr(exc, "problems", None)
    if problems:
        return "\n  ".join([f"{exc.reason}:"] + list(problems))
    where = exc.location.describe()
    return f"{exc.reason}: {exc.message}" + (f" ({where})" if where else "")


def run_margin(args: argparse.Namespace) -> int:
    from gateway.theo_store import load_theo_set

    try:
        theo = load_theo_set(args.theo)
    except UnreadableInput as exc:
        return fail(f"theo set {args.theo} cannot be used: {describe_unreadable(exc)}", EX_DATAERR)
    try:
        data = Path(args.positions).read_bytes()
    except OSError as exc:
        return fail(
            f"position file {args.positions} cannot be read: {exc.strerror or exc}",
            input_exit_code(exc, EX_DATAERR),
        )
    try:
        with progress_bar("reading positions", len(data) >= PROGRESS_MIN_BYTES) as progress:
            parsed = parse_position_file(data, default_firm=args.firm, progress=progress)
    except UnreadableInput as exc:
        return fail(
            f"position file {args.positions} cannot be read: {describe_unreadable(exc)}", EX_DATAERR
        )
    fmt = args.format
    if fmt == "pdf" and not args.out and sys.stdout.isatty():
        return fail("--format pdf writes binary data: give --out PATH", EX_USAGE)
    if args.as_types:
        return _run_margin_as(args, parsed, theo)
    with progress_bar("computing margin", len(data) >= PROGRESS_MIN_BYTES) as progress:
        if progress is not None:
            progress(0, 1)
        report = margin_for_file(parsed, theo)
        if progress is not None:
            progress(1, 1)

    from gateway.outputs.margin.data import report_json, results_csv_chunks, summary_csv
    from gateway.outputs.margin.pdf import report_pdf
    from gateway.outputs.margin.table import table_text

    big = len(data) >= PROGRESS_MIN_BYTES
    with progress_bar(f"writing {fmt}", big) as progress:
        if fmt == "table":
            payload = table_text(report, wide=args.wide).encode("utf-8")
        elif fmt == "csv" and args.part == "detail":
            payload = b"".join(results_csv_chunks(report, progress))
        elif fmt == "csv":
            payload = summary_csv(report)
        elif fmt == "json":
            payload = report_json(report)
        else:
            payload = report_pdf(report, part=args.part)
        if progress is not None:
            progress(1, 1)
    return write_output(payload, args.out)


def _run_margin_as(args: argparse.Namespace, parsed: PositionFile, theo: TheoSet) -> int:
    from gateway.outputs.margin.compare import comparison_csv, comparison_json, comparison_table

    try:
        types = parse_account_types(args.as_types)
    except ValueError as exc:
        return fail(f"--as: {exc}", EX_USAGE)
    reports = margin_as(parsed, theo, types)
    if args.format == "csv":
        payload = comparison_csv(reports)
    elif args.format == "json":
        payload = comparison_json(reports)
    elif args.format == "table":
        payload = comparison_table(reports).encode("utf-8")
    else:
        return fail("--as gives a table, csv or json (not pdf)", EX_USAGE)
    return write_output(payload, args.out)


def run_theo_generate(args: argparse.Namespace) -> int:
    from gateway.errors import TransientError
    from gateway.spool.fsio import write_atomic

    try:
        activity = date.fromisoformat(args.date)
    except ValueError:
        return fail(f"--date {args.date!r} is not YYYY-MM-DD", EX_USAGE)
    if args.steps < 1:
        return fail("--steps must be at least 1", EX_USAGE)
    out_dir = Path(args.out)
    if (out_dir / "meta.csv").exists() and not args.force:
        return fail(f"{out_dir} already holds a theo set (meta.csv); use --force", EX_FAILURE)
    try:
        data = Path(args.market).read_bytes()
    except OSError as exc:
        return fail(
            f"market snapshot {args.market} cannot be read: {exc.strerror or exc}",
            input_exit_code(exc, 65),
        )
    try:
        snap = parse_market_snapshot(data, file=Path(args.market).name)
        log.info(
            "pricing underlyings=%d series=%d date=%s",
            len(snap.und_symbol),
            len(snap.ser_symbol),
            activity.isoformat(),
        )
        with progress_bar("pricing", len(snap.ser_symbol) >= 100_000) as progress:
            instruments = generate_instruments(
                snap, activity.isoformat(), steps=args.steps, progress=progress
            )
        big = len(instruments.symbol) >= 200_000
        with progress_bar("writing pnl.csv", big) as progress:
            files = render_theo_set(
                activity_date=activity.isoformat(),
                source=f"posgate theo generate {Path(args.market).name}",
                equity_product_group=args.equity_product_group,
                groups=snap.groups,
                instruments=instruments,
                progress=progress,
            )
        parse_theo_set(files, name=activity.isoformat())  # a generated set must load
    except TheoSetInvalid as exc:
        return fail(f"market snapshot {args.market} cannot be used: {describe_unreadable(exc)}", 65)
    try:
        with contextlib.suppress(FileNotFoundError):
            (out_dir / "meta.csv").unlink()  # the set is incomplete until meta.csv is back
        for name, payload in files.items():
            if name != "meta.csv":
                write_atomic(out_dir / name, payload)
        write_atomic(out_dir / "meta.csv", files["meta.csv"])
    except (TransientError, OSError) as exc:
        return fail(f"cannot write the set into {out_dir}: {exc}", EX_FAILURE)
    log.info("theo set written dir=%s instruments=%d", out_dir, len(instruments.symbol))
    return EX_OK
