"""The publication decisions: when a cycle is due, and what its run has to do (the republish
decision, read from the ledger).

The ledger's publication row (sha256, delivery date, preliminary flag), the files it was built
from and the delivery rows say what each exchange already holds. Without ``force``, a cycle whose
every receiving exchange (``receives_dpl=Y``) holds the recorded sha256 is left alone, unless the
cycle *changed*: its current files (latest per firm, processed) are not the files the publication
was built from. A preliminary publication (made before the cutoff) that is unchanged after the
cutoff simply becomes final. The file is built again when there is no publication yet, with
``force``, when the cycle changed, when a preliminary publication meets its cutoff, or when the
built file is gone or no longer matches the ledger. ``DlvDt`` is reused while the cycle's files
stay the same (so rebuilding an unchanged cycle gives identical bytes); a first publication or
one with other records is dated today (Chicago).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from engine.calendar import BusinessCalendar
from gateway.config import Config, Exchange
from gateway.ledger import Ledger
from gateway.publication.build import file_has_sha256

CHICAGO = ZoneInfo("America/Chicago")
_CALENDAR = BusinessCalendar()  # only for cutoff(), which no holiday affects


def receiving_exchanges(config: Config) -> list[Exchange]:
    return [e for e in config.reference.exchanges if e.receives_dpl]


def missing_exchanges(ledger: Ledger, config: Config, cycle: dt.date) -> list[str]:
    """Receiving exchanges that do not hold the recorded publication of ``cycle`` (all, if none)."""
    receivers = [e.exchange_id for e in receiving_exchanges(config)]
    publication = ledger.publication(cycle.isoformat())
    if publication is None:
        return receivers
    delivered = ledger.deliveries(cycle.isoformat())
    return [e for e in receivers if delivered.get(e) != publication["sha256"]]


def cycle_complete(
    ledger: Ledger, config: Config, cycle: dt.date, now: dt.datetime | None = None
) -> bool:
    """The cycle is published, every receiving exchange holds that publication, and it is what
    the cycle holds now: no file changed it since, and it is not a preliminary publication
    whose cutoff has passed (at ``now``; without ``now`` preliminary counts as done)."""
    key = cycle.isoformat()
    publication = ledger.publication(key)
    if publication is None:
        return False
    if now is not None and publication["preliminary"] and now >= _CALENDAR.cutoff(cycle):
        return False
    if ledger.published_dpl_files(key) != ledger.current_dpl_files(key):
        return False
    return not missing_exchanges(ledger, config, cycle)


@dataclass(frozen=True)
class PublicationPlan:
    """What one run does for a cycle (see the module docstring)."""

    publication: sqlite3.Row | None
    """The recorded publication before this run, if any."""
    delivered: dict[str, str]
    """exchange -> the sha256 it holds."""
    current: list[int]
    """The cycle's current files: what a build reads."""
    changed: bool
    was_preliminary: bool
    after_cutoff: bool
    leave_alone: bool
    """Every receiving exchange holds the publication and nothing changed: nothing to send."""
    finalize: bool
    """Left alone, and a preliminary publication past its cutoff becomes the final one."""
    build: bool
    delivery_date: dt.date


def plan_publication(
    ledger: Ledger,
    receivers: list[Exchange],
    cycle: dt.date,
    now: dt.datetime,
    built_path: Path,
    *,
    force: bool,
) -> PublicationPlan:
    """Decide what a run at ``now`` does for ``cycle`` (called under the publication lock)."""
    key = cycle.isoformat()
    after_cutoff = now >= _CALENDAR.cutoff(cycle)
    publication = ledger.publication(key)
    delivered = ledger.deliveries(key)
    current = ledger.current_dpl_files(key)
    changed = publication is not None and ledger.published_dpl_files(key) != current
    was_preliminary = publication is not None and bool(publication["preliminary"])
    everyone = publication is not None and all(
        delivered.get(e.exchange_id) == publication["sha256"] for e in receivers
    )
    leave_alone = publication is not None and not force and everyone and not changed
    if publication is not None and not changed:
        delivery_date = dt.date.fromisoformat(publication["delivery_date"])
    else:  # a first publication, or a replacement with other records: dated today
        delivery_date = now.astimezone(CHICAGO).date()
    build = not leave_alone and (
        force
        or publication is None
        or changed
        or (was_preliminary and after_cutoff)
        or not file_has_sha256(built_path, publication["sha256"])
    )
    return PublicationPlan(
        publication=publication,
        delivered=delivered,
        current=current,
        changed=changed,
        was_preliminary=was_preliminary,
        after_cutoff=after_cutoff,
        leave_alone=leave_alone,
        finalize=leave_alone and was_preliminary and after_cutoff,
        build=build,
        delivery_date=delivery_date,
    )


CATCH_UP_DAYS = 7


# -- when a cycle is due (pure) -----------------------------------------------------------------


def due_cycles(
    now: dt.datetime,
    calendar: BusinessCalendar,
    publish_time: dt.time,
    published: Iterable[dt.date],
    *,
    lookback_days: int = CATCH_UP_DAYS,
    earliest: dt.date | None = None,
) -> list[dt.date]:
    """Cycles to publish at ``now``, oldest first.

    A cycle D is due when D is a business day, ``publish_time`` (Chicago wall clock) on the day
    after D has passed (``<= now``), D lies within ``lookback_days`` calendar days before the
    Chicago date of ``now``, D is not before ``earliest`` and D is not in ``published``. With
    ``deadline_time`` in place of ``publish_time`` the same function answers which cycles have
    reached their deadline.
    """
    done = set(published)
    today = calendar.chicago_date(now)
    out: list[dt.date] = []
    for back in range(lookback_days, 0, -1):
        day = today - dt.timedelta(days=back)
        if earliest is not None and day < earliest:
            continue
        if day in done or not calendar.is_business_day(day):
            continue
        if calendar.publication_instant(day, publish_time) <= now:
            out.append(day)
    return out


def last_due_cycle(
    now: dt.datetime, calendar: BusinessCalendar, publish_time: dt.time
) -> dt.date | None:
    """The most recent cycle whose publication time has passed at ``now`` (None if none in a
    fortnight, which only a broken calendar can cause)."""
    today = calendar.chicago_date(now)
    for back in range(0, 15):
        day = today - dt.timedelta(days=back)
        if calendar.is_business_day(day) and calendar.publication_instant(day, publish_time) <= now:
            return day
    return None
