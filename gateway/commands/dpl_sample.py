"""Verb ``dpl sample``: write a small demonstration DPL submission for a cycle.

The file has valid records for the firm and, so the walkthrough shows what comes back, one record
with a BizDt out of range and one with both Long and Short. BizDt values follow the cycle of the
given instant (default: now), so the sample stays valid whatever day it is made.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from xml.sax.saxutils import escape

from gateway.cli import EX_CONFIG, EX_OK
from gateway.commands.common import load_calendar_or_report
from gateway.commands.dpl_validate import dpl_group

TEMPLATE = (
    '<FIXML><PosRpt BizDt="{biz}" ReqTyp="6" ModelTyp="{model}"><Pty ID="{firm}" R="4"/>'
    '<Pty ID="{unit}" R="38"/><Pty ID="{crd}" R="82"><Sub ID="{name}" Typ="5"/></Pty>'
    '<Instrmt Sym="{sym}" SubTyp="{sub}"/><Qty Typ="DLT" {qty}/></PosRpt></FIXML>'
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = dpl_group(subparsers).add_parser(
        "sample", help="write a demonstration DPL file for the current cycle"
    )
    parser.add_argument("--firm", default="00005", help="clearing member number (default 00005)")
    parser.add_argument("--at", default=None, help="instant whose cycle to use (ISO 8601)")
    parser.add_argument("--out", type=Path, default=None, help="output file (default: stdout)")
    parser.set_defaults(func=run_sample)


def sample_lines(firm: str, crd: str, name: str, cycle: dt.date, previous: dt.date) -> list[str]:
    too_old = previous - dt.timedelta(days=7)
    rows = [
        (cycle, "1", "AU-100", "GOOG", "ETO", 'Long="1250"'),
        (cycle, "1", "AU-100", "IBM", "CMB", 'Short="500"'),
        (previous, "0", "AU-200", "AAPL", "OTC", 'Long="0" Short="0"'),
        (too_old, "1", "AU-200", "MSFT", "ETO", 'Long="300"'),
        (cycle, "1", "AU-300", "TSLA", "ETO", 'Long="10" Short="20"'),
    ]
    return [
        TEMPLATE.format(
            biz=b.isoformat(), model=m, firm=firm, unit=u, crd=crd, name=name, sym=s, sub=t, qty=q
        )
        for b, m, u, s, t, q in rows
    ]


def parse_at(text: str | None, now: dt.datetime) -> dt.datetime:
    """``--at``: ISO 8601 (an instant, or a date meaning its noon in Chicago), or ``now``,
    ``today``, ``yesterday``, ``tomorrow`` (the same hour of that Chicago day)."""
    from zoneinfo import ZoneInfo

    chicago = ZoneInfo("America/Chicago")
    if not text or text == "now":
        return now
    words = {"today": 0, "yesterday": -1, "tomorrow": 1}
    if text in words:
        return now + dt.timedelta(days=words[text])
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text)
            return dt.datetime.combine(day, dt.time(12), tzinfo=chicago)
        at = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither ISO 8601 (2026-11-20 or 2026-11-20T15:00:00-06:00)"
            " nor now/today/yesterday/tomorrow"
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)


def run_sample(args: argparse.Namespace) -> int:
    loaded = load_calendar_or_report(args.config)
    if loaded is None:
        return EX_CONFIG
    config, calendar = loaded
    try:
        at = parse_at(args.at, dt.datetime.now(dt.UTC))
    except ValueError as exc:
        print(f"posgate dpl sample: --at: {exc}", file=sys.stderr)
        return 2
    cycle = calendar.cycle_of(at)
    previous = calendar.previous_business_day(cycle)
    member = next(
        (cm for cm in config.reference.clearing_members if cm.cm_number == args.firm), None
    )
    crd, name = (member.crd, member.name) if member else ("0", "Demo Firm")
    name = escape(name, {'"': "&quot;"})
    text = "\n".join(sample_lines(args.firm, crd, name, cycle, previous)) + "\n"
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        print(
            f"wrote {args.out} (cycle {cycle}: 3 valid records, 2 to be rejected)", file=sys.stderr
        )
    return EX_OK
