"""Expiration days: the monthly third-Friday rule moved before holidays, weekly, every business
day, and listed dates."""

from __future__ import annotations

import datetime as dt

import pytest

from engine.calendar import BusinessCalendar
from engine.ebe.expirations import RULES, is_expiration_day

CAL = BusinessCalendar()
D = dt.date


def expirations(rule: str, start: dt.date, end: dt.date, listed: set[dt.date] | None = None):
    days = (start + dt.timedelta(n) for n in range((end - start).days + 1))
    return [d for d in days if is_expiration_day(d, rule, listed or set(), CAL)]


def test_monthly_is_the_third_friday_of_each_month() -> None:
    assert expirations("monthly", D(2026, 1, 1), D(2026, 12, 31)) == [
        D(2026, 1, 16),
        D(2026, 2, 20),
        D(2026, 3, 20),
        D(2026, 4, 17),
        D(2026, 5, 15),
        D(2026, 6, 18),  # the third Friday, June 19, is Juneteenth: the Thursday before
        D(2026, 7, 17),
        D(2026, 8, 21),
        D(2026, 9, 18),
        D(2026, 10, 16),
        D(2026, 11, 20),
        D(2026, 12, 18),
    ]


def test_a_good_friday_expiration_moves_to_thursday() -> None:
    assert CAL.exchange_holiday(D(2025, 4, 18)) == "Good Friday"
    assert expirations("monthly", D(2025, 4, 1), D(2025, 4, 30)) == [D(2025, 4, 17)]


def test_weekly_is_every_friday_or_the_business_day_before() -> None:
    assert expirations("weekly", D(2026, 6, 1), D(2026, 7, 5)) == [
        D(2026, 6, 5),
        D(2026, 6, 12),
        D(2026, 6, 18),  # Juneteenth
        D(2026, 6, 26),
        D(2026, 7, 2),  # Friday July 3 is Independence Day observed
    ]


def test_business_days_and_listed() -> None:
    week = expirations("business-days", D(2026, 11, 23), D(2026, 11, 29))
    assert week == [D(2026, 11, 23), D(2026, 11, 24), D(2026, 11, 25), D(2026, 11, 27)]
    listed = {D(2026, 12, 31), D(2026, 12, 26)}  # a Saturday listed counts too
    assert expirations("listed", D(2026, 12, 1), D(2026, 12, 31), listed) == sorted(listed)
    both = expirations("monthly", D(2026, 12, 1), D(2026, 12, 31), listed)
    assert both == [D(2026, 12, 18), D(2026, 12, 26), D(2026, 12, 31)]


def test_days_without_an_expiration() -> None:
    for day in (D(2026, 12, 11), D(2026, 12, 17), D(2026, 12, 19), D(2026, 12, 25)):
        assert not is_expiration_day(day, "monthly", set(), CAL), day
    assert not is_expiration_day(D(2026, 12, 19), "business-days", set(), CAL)  # Saturday
    assert not is_expiration_day(D(2026, 12, 18), "listed", set(), CAL)


def test_an_unknown_rule_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown expiration rule 'quarterly'"):
        is_expiration_day(D(2026, 12, 18), "quarterly", set(), CAL)
    assert RULES == ("monthly", "weekly", "business-days", "listed")
