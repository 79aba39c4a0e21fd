"""Which days are expiration days, so that "today's expiring positions are not loaded" is only
said on a day that has an expiration.

The rule is the ``[ebe] expiration_days`` setting, plus the dates listed in
``[ebe] expiration_dates`` (always expiration days, whatever the rule):

* ``monthly`` (the default): the standard monthly expiration, the third Friday of each month;
  when that Friday is not a business day (Good Friday, say), the business day before it;
* ``weekly``: every Friday, moved the same way;
* ``business-days``: every business day (markets with daily expirations);
* ``listed``: only the listed dates (an operator who loads the published expiration calendar).

Business days are those of the gateway's calendar (exchange holidays and the reference data's
closures and openings).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from engine.calendar import BusinessCalendar

RULES = ("monthly", "weekly", "business-days", "listed")
FRIDAY = 4


def is_expiration_day(
    day: dt.date,
    rule: str,
    listed: Collection[dt.date],
    calendar: BusinessCalendar,
) -> bool:
    """Whether ``day`` is an expiration day under ``rule`` (one of ``RULES``) or ``listed``."""
    if rule not in RULES:
        raise ValueError(f"unknown expiration rule {rule!r} (expected one of {', '.join(RULES)})")
    if day in listed:
        return True
    if rule == "listed" or not calendar.is_business_day(day):
        return False
    if rule == "business-days":
        return True
    if day.weekday() > FRIDAY:
        return False
    friday = day + dt.timedelta(days=FRIDAY - day.weekday())
    if rule == "monthly" and not 15 <= friday.day <= 21:
        return False
    moved = friday if calendar.is_business_day(friday) else calendar.previous_business_day(friday)
    return day == moved
