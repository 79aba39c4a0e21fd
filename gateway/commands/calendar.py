"""Verb ``calendar``: business-day facts of a date or an instant, as one JSON object.

``posgate calendar --date 2026-11-27`` describes that Chicago date; ``--at`` describes the instant
(default: now), whose Chicago date and submission cycle are derived from it. Times of the output
are in America/Chicago with their offset.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from typing import Any

from engine.calendar import CHICAGO, BusinessCalendar
from gateway.cli import EX_CONFIG, EX_OK, EX_USAGE
from gateway.commands.common import load_calendar_or_report
from gateway.commands.dpl_validate import SubParsers, parse_instant
from gateway.config import DplSettings


def register(subparsers: SubParsers) -> None:
    parser = subparsers.add_parser(
        "calendar",
        help="business-day facts: business day?, submission cycle, allowed BizDt",
        description="Business-day facts of a date or an instant (America/Chicago).",
    )
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--date", metavar="YYYY-MM-DD", help="a Chicago calendar date")
    when.add_argument("--at", metavar="ISO8601", help="an instant with its offset (default: now)")
    parser.set_defaults(func=run_calendar)


def calendar_facts(
    calendar: BusinessCalendar,
    dpl: DplSettings,
    *,
    day: dt.date | None = None,
    at: dt.datetime | None = None,
) -> dict[str, Any]:
    """The facts printed by the verb, for a date or (exclusively) an aware instant."""
    facts: dict[str, Any] = {}
    if at is not None:
        day = calendar.chicago_date(at)
        cycle = calendar.cycle_of(at)
        facts["at"] = at.isoformat()
        facts["at_chicago"] = at.astimezone(CHICAGO).isoformat()
    elif day is not None:
        cycle = day if calendar.is_business_day(day) else calendar.next_business_day(day)
    else:
        raise ValueError("calendar_facts needs a date or an instant")
    previous, current = calendar.allowed_bizdts(cycle)
    facts.update(
        {
            "date": day.isoformat(),
            "weekday": day.strftime("%A"),
            "business_day": calendar.is_business_day(day),
            "why": calendar.explain(day),
            "previous_business_day": calendar.previous_business_day(day).isoformat(),
            "next_business_day": calendar.next_business_day(day).isoformat(),
            "cycle": cycle.isoformat(),
            "allowed_bizdt": [previous.isoformat(), current.isoformat()],
            "cutoff": calendar.cutoff(cycle).isoformat(),
            "publication": calendar.publication_instant(cycle, dpl.publish_time).isoformat(),
            "deadline": calendar.publication_instant(cycle, dpl.deadline_time).isoformat(),
        }
    )
    return facts


def run_calendar(args: argparse.Namespace) -> int:
    day: dt.date | None = None
    at: dt.datetime | None = None
    try:
        if args.date:
            if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", args.date):
                raise ValueError(f"{args.date!r} is not YYYY-MM-DD")
            day = dt.date.fromisoformat(args.date)
        else:
            at = parse_instant(args.at) if args.at else dt.datetime.now(dt.UTC)
    except ValueError as exc:
        print(f"posgate calendar: {exc}", file=sys.stderr)
        return EX_USAGE
    loaded = load_calendar_or_report(args.config)
    if loaded is None:
        return EX_CONFIG
    config, calendar = loaded
    facts = calendar_facts(calendar, config.dpl, day=day, at=at)
    sys.stdout.write(json.dumps(facts, indent=2) + "\n")
    return EX_OK
