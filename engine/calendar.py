"""The business calendar: business days, submission cycles, allowed BizDt, cutoffs.

Theory of operation: a business day is a Monday-Friday that is not an NYSE holiday (from the
``holidays`` library, computed lazily per year and cached) and not an OCC closure; an OCC ``open``
override turns an NYSE holiday back into a business day. All wall-clock reasoning happens in
``America/Chicago``: an instant is converted to its Chicago date, and instants this module returns
(cutoff, publication) are aware datetimes in that zone. Nothing here reads the clock: every instant
arrives as an argument, and naive datetimes are refused because their meaning is a guess.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from zoneinfo import ZoneInfo

import holidays

CHICAGO = ZoneInfo("America/Chicago")
_ONE_DAY = dt.timedelta(days=1)
# No plausible override list closes more than this many consecutive days; a longer search means the
# overrides are broken, and stopping beats looping for years.
_MAX_SEARCH_DAYS = 366


class BusinessCalendar:
    """NYSE holidays plus OCC overrides; answers business-day and cycle questions.

    ``closes`` adds non-business days; ``opens`` makes NYSE holidays business days. An ``open`` on a
    weekend, or a date both closed and opened, is a configuration error (``ValueError``): a weekend
    is never a business day, and a contradictory override has no meaning. ``notes``
    optionally maps override dates to their description for :meth:`explain`.
    """

    def __init__(
        self,
        closes: Iterable[dt.date] = (),
        opens: Iterable[dt.date] = (),
        *,
        notes: Mapping[dt.date, str] | None = None,
        market: str = "NYSE",
    ) -> None:
        self._closes = frozenset(closes)
        self._opens = frozenset(opens)
        both = self._closes & self._opens
        if both:
            listed = ", ".join(sorted(d.isoformat() for d in both))
            raise ValueError(f"OCC override both closes and opens {listed}")
        weekend = sorted(d.isoformat() for d in self._opens if d.weekday() >= 5)
        if weekend:
            raise ValueError(f"OCC open override on a weekend: {', '.join(weekend)}")
        self._notes = dict(notes or {})
        self._market = market
        self._years: set[int] = set()
        self._holidays: dict[dt.date, str] = {}

    # -- days -----------------------------------------------------------------------------------

    def _load_year(self, year: int) -> None:
        # Neighbouring years are loaded too: an observed holiday may fall in the previous year.
        # A year is marked loaded only after its holidays are in, so a concurrent reader never
        # sees a loaded year without its holidays (loading twice is harmless).
        for y in (year - 1, year, year + 1):
            if y in self._years:
                continue
            for day, name in holidays.financial_holidays(self._market, years=y).items():
                self._holidays.setdefault(day, name)
            self._years.add(y)

    def exchange_holiday(self, day: dt.date) -> str | None:
        """The NYSE holiday name of ``day``, or None (weekends and OCC overrides not considered)."""
        if day.year not in self._years:
            self._load_year(day.year)
        return self._holidays.get(day)

    def is_business_day(self, day: dt.date) -> bool:
        """Monday-Friday, not an OCC closure, and not an NYSE holiday unless OCC re-opened it."""
        if isinstance(day, dt.datetime):
            raise TypeError("is_business_day takes a date, not a datetime")
        if day.weekday() >= 5 or day in self._closes:
            return False
        if day in self._opens:
            return True
        return self.exchange_holiday(day) is None

    def explain(self, day: dt.date) -> str:
        """A short human reason why ``day`` is or is not a business day."""
        note = self._notes.get(day)
        suffix = f" ({note})" if note else ""
        if day.weekday() >= 5:
            return "weekend"
        if day in self._closes:
            return "OCC holiday" + suffix
        name = self.exchange_holiday(day)
        if day in self._opens:
            return f"business day: OCC open override of NYSE holiday {name or '-'}{suffix}"
        if name is not None:
            return f"NYSE holiday: {name}"
        return "business day"

    def next_business_day(self, day: dt.date) -> dt.date:
        """The first business day strictly after ``day``."""
        return self._step(day, _ONE_DAY)

    def previous_business_day(self, day: dt.date) -> dt.date:
        """The last business day strictly before ``day``."""
        return self._step(day, -_ONE_DAY)

    def _step(self, day: dt.date, step: dt.timedelta) -> dt.date:
        candidate = day
        for _ in range(_MAX_SEARCH_DAYS):
            candidate = candidate + step
            if self.is_business_day(candidate):
                return candidate
        raise ValueError(f"no business day within {_MAX_SEARCH_DAYS} days of {day.isoformat()}")

    # -- cycles ---------------------------------------------------------------------------------

    def chicago_date(self, instant: dt.datetime) -> dt.date:
        """The America/Chicago calendar date of an aware instant."""
        _require_aware(instant)
        return instant.astimezone(CHICAGO).date()

    def cycle_of(self, instant: dt.datetime) -> dt.date:
        """Cycle S of a file received at ``instant``: its Chicago date, or the next business day."""
        day = self.chicago_date(instant)
        return day if self.is_business_day(day) else self.next_business_day(day)

    def allowed_bizdts(self, cycle: dt.date) -> tuple[dt.date, dt.date]:
        """(previous business day, cycle): the BizDt values a record of ``cycle`` may carry."""
        if not self.is_business_day(cycle):
            raise ValueError(f"{cycle.isoformat()} is not a business day, so not a cycle")
        return self.previous_business_day(cycle), cycle

    def cutoff(self, cycle: dt.date) -> dt.datetime:
        """00:00 America/Chicago at the end of day ``cycle`` (midnight always exists in Chicago)."""
        return dt.datetime.combine(cycle + _ONE_DAY, dt.time(0), tzinfo=CHICAGO)

    def publication_date(self, cycle: dt.date) -> dt.date:
        """The Chicago date the file of ``cycle`` is published (``DlvDt``): the next day."""
        return cycle + _ONE_DAY

    def publication_instant(self, cycle: dt.date, time: dt.time) -> dt.datetime:
        """``time`` (Chicago wall clock) on the publication date of ``cycle``, as an aware instant.

        A wall time that does not exist (spring forward) is read with the offset in force before
        the change (02:30 becomes 03:30 CDT); an ambiguous one (fall back) is its first occurrence.
        """
        if time.tzinfo is not None:
            raise ValueError("publication time is a Chicago wall-clock time without tzinfo")
        local = dt.datetime.combine(self.publication_date(cycle), time, tzinfo=CHICAGO)
        return local.astimezone(dt.UTC).astimezone(CHICAGO)


def _require_aware(instant: dt.datetime) -> None:
    if not isinstance(instant, dt.datetime):
        raise TypeError(f"expected an aware datetime, got {type(instant).__name__}")
    if instant.tzinfo is None or instant.tzinfo.utcoffset(instant) is None:
        raise ValueError(f"naive datetime {instant.isoformat()} has no time zone")
