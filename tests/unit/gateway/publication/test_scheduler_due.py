"""``due_cycles`` and ``last_due_cycle`` at their boundaries: pure, fixed instants."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from engine.calendar import BusinessCalendar
from gateway.publication.scheduler import due_cycles, last_due_cycle

CT = ZoneInfo("America/Chicago")
UTC = dt.UTC
AT_0005 = dt.time(0, 5)
CAL = BusinessCalendar()


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def ct(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=CT)


@pytest.mark.parametrize(
    ("now", "due"),
    [
        (ct("2026-03-10T00:04:59"), []),
        (ct("2026-03-10T00:05:00"), ["2026-03-09"]),
        (ct("2026-03-10T23:59:59"), ["2026-03-09"]),
        (ct("2026-03-11T00:05:00"), ["2026-03-09", "2026-03-10"]),
    ],
)
def test_a_cycle_is_due_from_publish_time_on_the_next_day(now: dt.datetime, due: list[str]) -> None:
    assert due_cycles(now, CAL, AT_0005, set(), earliest=d("2026-03-09")) == [d(x) for x in due]


@pytest.mark.parametrize(
    ("now", "due"),
    [
        # Tuesday 2026-03-03 (CST, UTC-6): due at 06:05Z on Wednesday.
        (dt.datetime(2026, 3, 4, 6, 4, 59, tzinfo=UTC), []),
        (dt.datetime(2026, 3, 4, 6, 5, 0, tzinfo=UTC), ["2026-03-03"]),
        # Monday 2026-03-09, the day after spring-forward (CDT, UTC-5): due at 05:05Z Tuesday.
        (dt.datetime(2026, 3, 10, 5, 4, 59, tzinfo=UTC), []),
        (dt.datetime(2026, 3, 10, 5, 5, 0, tzinfo=UTC), ["2026-03-09"]),
        # Monday 2026-11-02, the day after fall-back (CST again): due at 06:05Z Tuesday.
        (dt.datetime(2026, 11, 3, 5, 5, 0, tzinfo=UTC), []),
        (dt.datetime(2026, 11, 3, 6, 5, 0, tzinfo=UTC), ["2026-11-02"]),
    ],
)
def test_due_instants_follow_daylight_saving_time(now: dt.datetime, due: list[str]) -> None:
    earliest = d(due[0]) if due else calendar_date(now) - dt.timedelta(days=1)
    assert due_cycles(now, CAL, AT_0005, set(), earliest=earliest) == [d(x) for x in due]


def calendar_date(now: dt.datetime) -> dt.date:
    return now.astimezone(CT).date()


def test_weekends_are_not_cycles() -> None:
    # (DST changes happen on Sundays at 02:00, so they never fall on a publication day of a
    # business-day cycle: the day after a cycle is Tuesday..Saturday.)
    friday = d("2026-03-13")
    assert due_cycles(ct("2026-03-14T00:05"), CAL, AT_0005, set(), earliest=friday) == [friday]
    # Saturday and Sunday never become due; Monday's cycle waits for Tuesday 00:05.
    assert due_cycles(ct("2026-03-16T23:00"), CAL, AT_0005, {friday}, earliest=friday) == []
    assert due_cycles(ct("2026-03-17T00:05"), CAL, AT_0005, {friday}, earliest=friday) == [
        d("2026-03-16")
    ]


def test_exchange_and_occ_holidays_are_not_cycles() -> None:
    # Good Friday 2026-04-03 is an NYSE holiday.
    thursday = d("2026-04-02")
    assert due_cycles(ct("2026-04-06T12:00"), CAL, AT_0005, set(), earliest=thursday) == [thursday]
    occ = BusinessCalendar(closes=[d("2026-04-02")], opens=[d("2026-04-03")])
    assert due_cycles(ct("2026-04-06T12:00"), occ, AT_0005, set(), earliest=thursday) == [
        d("2026-04-03")
    ]


def test_published_cycles_and_the_window_limit_are_respected() -> None:
    now = ct("2026-03-20T12:00")  # Friday
    all_due = due_cycles(now, CAL, AT_0005, set())
    # 7 calendar days back: 13th (Fri), 16th..19th; the 12th is outside the window.
    assert all_due == [
        d("2026-03-13"),
        d("2026-03-16"),
        d("2026-03-17"),
        d("2026-03-18"),
        d("2026-03-19"),
    ]
    assert due_cycles(
        now, CAL, AT_0005, {d("2026-03-16"), d("2026-03-18")}, earliest=d("2026-03-16")
    ) == [d("2026-03-17"), d("2026-03-19")]
    assert due_cycles(now, CAL, AT_0005, set(), lookback_days=1) == [d("2026-03-19")]


def test_deadline_uses_the_same_rule() -> None:
    five = dt.time(5, 0)
    monday = d("2026-03-09")
    assert due_cycles(ct("2026-03-10T04:59:59"), CAL, five, set(), earliest=monday) == []
    assert due_cycles(ct("2026-03-10T05:00:00"), CAL, five, set(), earliest=monday) == [monday]


@pytest.mark.parametrize(
    ("now", "last"),
    [
        (ct("2026-03-10T00:04:59"), "2026-03-06"),
        (ct("2026-03-10T00:05:00"), "2026-03-09"),
        (ct("2026-03-15T12:00"), "2026-03-13"),
        (ct("2026-04-04T12:00"), "2026-04-02"),
    ],
)
def test_last_due_cycle(now: dt.datetime, last: str) -> None:
    assert last_due_cycle(now, CAL, AT_0005) == d(last)


def test_naive_instants_are_refused() -> None:
    with pytest.raises(ValueError):
        due_cycles(dt.datetime(2026, 3, 10, 6), CAL, AT_0005, set())
