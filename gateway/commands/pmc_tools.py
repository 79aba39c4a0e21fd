"""CLI verbs around the calculator's editor: ``theo contracts`` and ``positions convert``.

``posgate theo contracts`` lists the available contracts of a theo set for one account type with
the list's filters and required-field rules (``engine.pmc.contracts``); a filter that breaks a
rule exits 2 naming the field. ``posgate positions convert`` reads a 346 file (CSV or ASCII,
detected) and writes it in the other layout; a record the reader rejects is listed on stderr and
nothing is written (exit 65) unless ``--drop-rejected`` is given, so nothing is lost silently.
Zero quantities are kept: a file being converted is not computed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from engine.errors import UnreadableInput
from engine.pmc.contracts import (
    CONTRACT_COLUMNS,
    Contract,
    ContractFilter,
    ContractFilterInvalid,
    list_contracts,
    sort_contracts,
)
from engine.pmc.positions.model import REJECTED
from engine.pmc.positions.read import parse_position_file
from engine.pmc.positions.write import PositionNotWritable, render_position_file
from engine.pmc.theo.model import OPTION_TYPES
from gateway.commands.common import fail, write_output

EX_OK = 0
EX_FAILURE = 1
EX_USAGE = 2
EX_DATAERR = 65
CONTRACT_FORMATS = ("table", "csv", "json")


def add_theo_contracts(tsub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``theo contracts`` under the ``theo`` verb."""
    c = tsub.add_parser(
        "contracts",
        help="available contracts of a theo set for one account type",
        description="List the instruments of a theo set for one account type. Required: "
        "--account-type and one of --class-group, --underlying or --symbol; --product-group "
        "needs --class-group. Sorted by product group, class group, underlying, type, symbol, "
        "series date, expiration date, strike, put/call unless --sort is given.",
    )
    c.add_argument("--theo", required=True, metavar="DIR", help="theo set folder")
    c.add_argument("--account-type", required=True, metavar="C|F|M", help="account type")
    c.add_argument("--product-group", default="", metavar="G")
    c.add_argument("--class-group", default="", metavar="G")
    c.add_argument("--underlying", default="", metavar="U")
    c.add_argument("--symbol", default="", metavar="S")
    c.add_argument("--type", dest="security_type", default="", metavar="F|I|O|S|W")
    c.add_argument("--series-date", default="", metavar="D")
    c.add_argument("--expiration-date", default="", metavar="D")
    c.add_argument("--put-call", default="", metavar="C|P")
    c.add_argument("--strike", type=float, default=None, metavar="K")
    c.add_argument(
        "--sort",
        default="",
        choices=[""] + [name for name, _ in CONTRACT_COLUMNS],
        metavar="COLUMN",
        help="sort by this column instead of the default sort",
    )
    c.add_argument("--descending", action="store_true", help="with --sort: largest first")
    c.add_argument("--format", choices=CONTRACT_FORMATS, default="table")
    c.add_argument("--out", metavar="PATH", help="write here instead of standard output")
    c.set_defaults(func=run_theo_contracts)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``positions convert``."""
    p = subparsers.add_parser("positions", help="346 position files")
    psub = p.add_subparsers(dest="positions_verb", metavar="VERB")
    c = psub.add_parser(
        "convert",
        help="rewrite a 346 file as CSV or ASCII",
        description="Read a CSV or ASCII 346 position file and write it in the layout asked "
        "for, header and trailer (with total longs and shorts) included. ASCII has no columns "
        "for exercise style, settlement style and expiration date.",
    )
    c.add_argument("file", metavar="FILE", help="346 position file")
    c.add_argument("--to", required=True, choices=("csv", "ascii"), help="layout to write")
    c.add_argument("--out", metavar="PATH", help="write here instead of standard output")
    c.add_argument("--firm", metavar="ID", help="firm for CSV records that leave it blank")
    c.add_argument(
        "--drop-rejected",
        action="store_true",
        help="write the readable records even when some are rejected",
    )
    c.set_defaults(func=run_positions_convert)


def _strike_text(c: Contract) -> str:
    return f"{c.strike:.4f}" if c.security_type in OPTION_TYPES else ""


def contracts_csv(contracts: list[Contract]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["account_type"] + [name for name, _ in CONTRACT_COLUMNS])
    for c in contracts:
        row = [c.account_type]
        for name, _ in CONTRACT_COLUMNS:
            row.append(_strike_text(c) if name == "strike" else str(getattr(c, name)))
        w.writerow(row)
    return buf.getvalue().encode("utf-8")


def contracts_json(theo_date: str, account_type: str, contracts: list[Contract]) -> bytes:
    doc = {
        "theo_date": theo_date,
        "account_type": account_type,
        "count": len(contracts),
        "contracts": [c.as_dict() for c in contracts],
    }
    return (json.dumps(doc, indent=2) + "\n").encode("utf-8")


SHORT_HEADINGS = {
    "product_group": "Prod",
    "class_group": "Class",
    "underlying": "Und",
    "security_type": "T",
    "symbol": "Symbol",
    "exchange": "Exch",
    "exercise_style": "Ex",
    "settlement_style": "St",
    "series_date": "Ser/Ctr",
    "expiration_date": "Exp",
    "strike": "Strike",
    "put_call": "C/P",
}


def contracts_table(theo_date: str, account_type: str, contracts: list[Contract]) -> str:
    """The list as a text table in 80 columns: short headings, no borders, and the columns that
    are blank for every listed contract (often exchange and styles) left out."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    cells = [
        [
            _strike_text(c) if name == "strike" else str(getattr(c, name))
            for name, _ in CONTRACT_COLUMNS
        ]
        for c in contracts
    ]
    shown = [
        j for j, (name, _) in enumerate(CONTRACT_COLUMNS) if any(row[j] for row in cells)
    ] or list(range(len(CONTRACT_COLUMNS)))
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1, 0, 0))
    t.add_column("#", justify="right", overflow="fold")
    for j in shown:
        name = CONTRACT_COLUMNS[j][0]
        t.add_column(
            SHORT_HEADINGS[name], justify="right" if name == "strike" else "left", overflow="fold"
        )
    for i, row in enumerate(cells, 1):
        t.add_row(str(i), *[row[j] for j in shown])
    buf = io.StringIO()
    console = Console(file=buf, width=80, color_system=None, force_terminal=False)
    console.print(
        f"Available contracts: P&L set {theo_date}, account type {account_type}, "
        f"{len(contracts)} contract(s)"
    )
    console.print(t)
    return buf.getvalue()


def run_theo_contracts(args: argparse.Namespace) -> int:
    from gateway.commands.margin import describe_unreadable
    from gateway.theo_store import load_theo_set

    flt = ContractFilter(
        account_type=args.account_type,
        product_group=args.product_group,
        class_group=args.class_group,
        underlying=args.underlying,
        symbol=args.symbol,
        security_type=args.security_type,
        series_date=args.series_date,
        expiration_date=args.expiration_date,
        put_call=args.put_call,
        strike=args.strike,
    )
    try:
        theo = load_theo_set(args.theo)
    except UnreadableInput as exc:
        return fail(f"theo set {args.theo} cannot be used: {describe_unreadable(exc)}", 65)
    try:
        found = list_contracts(theo, flt)
    except ContractFilterInvalid as exc:
        option = (exc.location.field or "").replace("_", "-")
        return fail(f"{exc.reason}: {exc.message} (--{option})", EX_USAGE)
    if args.sort:
        found = sort_contracts(found, args.sort, descending=args.descending)
    acct = flt.account_type.strip().upper()
    if args.format == "csv":
        payload = contracts_csv(found)
    elif args.format == "json":
        payload = contracts_json(theo.activity_date, acct, found)
    else:
        payload = contracts_table(theo.activity_date, acct, found).encode("utf-8")
    return write_output(payload, args.out)


def run_positions_convert(args: argparse.Namespace) -> int:
    from gateway.commands.margin import describe_unreadable

    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        from gateway.commands.common import input_exit_code

        return fail(
            f"position file {args.file} cannot be read: {exc.strerror or exc}",
            input_exit_code(exc, 65),
        )
    try:
        parsed = parse_position_file(data, default_firm=args.firm, allow_zero=True)
    except UnreadableInput as exc:
        return fail(f"position file {args.file} cannot be read: {describe_unreadable(exc)}", 65)
    rejected = [p for p in parsed.problems if p.kind == REJECTED]
    for p in parsed.problems:
        sys.stderr.write(f"posgate: {args.file} line {p.line}: {p.kind} {p.reason}: {p.message}\n")
    if rejected and not args.drop_rejected:
        return fail(
            f"{len(rejected)} record(s) of {args.file} are rejected; nothing written "
            "(fix them, or give --drop-rejected)",
            EX_DATAERR,
        )
    header = parsed.header
    try:
        payload = render_position_file(
            parsed.positions,
            fmt=args.to,
            firm=header.firm if header else "",
            date=header.date if header else "",
        )
    except PositionNotWritable as exc:
        return fail(f"{args.file}: {exc.message}", EX_DATAERR)
    return write_output(payload, args.out)
