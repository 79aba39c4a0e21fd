"""Business calendar: NYSE holidays, OCC overrides, cycles across DST and holidays."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.calendar import CHICAGO, BusinessCalendar

D = dt.date
UTC = dt.UTC
CAL = BusinessCalendar()


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


# -- business days --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (D(2026, 3, 6), True),  # Friday
        (D(2026, 3, 7), False),  # Saturday
        (D(2026, 3, 8), False),  # Sunday (and the spring DST change)
        (D(2026, 4, 3), False),  # Good Friday
        (D(2026, 11, 26), False),  # Thanksgiving
        (D(2026, 11, 27), True),  # day after Thanksgiving: NYSE half day, a business day
        (D(2026, 12, 24), True),  # Christmas Eve: half day
        (D(2026, 12, 25), False),
        (D(2026, 7, 3), False),  # Independence Day observed on the Friday
        (D(2026, 6, 19), False),  # Juneteenth
        (D(2018, 12, 5), False),  # National Day of Mourning, George H. W. Bush
        (D(2025, 1, 9), False),  # National Day of Mourning, Jimmy Carter
        (D(2021, 12, 31), True),  # New Year 2022 on a Saturday: NYSE does not observe it Friday
    ],
)
def test_business_days(day: dt.date, expected: bool) -> None:
    assert CAL.is_business_day(day) is expected


def test_the_library_knows_the_special_closures() -> None:
    assert "Bush" in (CAL.exchange_holiday(D(2018, 12, 5)) or "")
    assert "Carter" in (CAL.exchange_holiday(D(2025, 1, 9)) or "")
    assert CAL.exchange_holiday(D(2026, 11, 27)) is None


def test_a_datetime_is_not_a_date() -> None:
    with pytest.raises(TypeError):
        CAL.is_business_day(dt.datetime(2026, 3, 9, 12, tzinfo=UTC))


def test_next_and_previous_skip_weekends_and_holidays() -> None:
    assert CAL.next_business_day(D(2026, 3, 6)) == D(2026, 3, 9)
    assert CAL.previous_business_day(D(2026, 3, 9)) == D(2026, 3, 6)
    assert CAL.previous_business_day(D(2026, 4, 6)) == D(2026, 4, 2)  # over Good Friday
    assert CAL.next_business_day(D(2026, 11, 25)) == D(2026, 11, 27)
    assert CAL.next_business_day(D(2026, 12, 31)) == D(2027, 1, 4)  # 2027-01-01 is a holiday
    assert CAL.previous_business_day(D(2025, 1, 10)) == D(2025, 1, 8)  # over the Carter closure


def test_explain_says_why() -> None:
    assert CAL.explain(D(2026, 3, 7)) == "weekend"
    assert CAL.explain(D(2026, 4, 3)) == "NYSE holiday: Good Friday"
    assert CAL.explain(D(2026, 3, 9)) == "business day"


# -- cycles --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "cycle"),
    [
        # Saturday arrival -> Monday cycle
        ("2026-03-07T12:00:00-06:00", D(2026, 3, 9)),
        # one second after midnight CT belongs to the new day
        ("2026-03-10T00:00:01-05:00", D(2026, 3, 10)),
        ("2026-03-09T23:59:59-05:00", D(2026, 3, 9)),
        # UTC date (10th) differs from the Chicago date (9th)
        ("2026-03-10T03:00:00+00:00", D(2026, 3, 9)),
        ("2026-03-10T12:00:00+09:00", D(2026, 3, 9)),
        # spring forward (2026-03-08): CST before, CDT after
        ("2026-03-06T05:59:59+00:00", D(2026, 3, 5)),  # Thu 23:59:59 CST
        ("2026-03-06T06:00:00+00:00", D(2026, 3, 6)),  # Fri 00:00 CST
        ("2026-03-08T07:59:59+00:00", D(2026, 3, 9)),  # Sun 01:59:59 CST
        ("2026-03-08T08:00:00+00:00", D(2026, 3, 9)),  # Sun 03:00 CDT
        ("2026-03-10T04:59:59+00:00", D(2026, 3, 9)),  # Mon 23:59:59 CDT
        ("2026-03-10T05:00:00+00:00", D(2026, 3, 10)),  # Tue 00:00 CDT
        # fall back (2026-11-01): 01:30 happens twice, both on Sunday
        ("2026-11-01T06:30:00+00:00", D(2026, 11, 2)),
        ("2026-11-01T07:30:00+00:00", D(2026, 11, 2)),
        ("2026-11-03T05:59:59+00:00", D(2026, 11, 2)),  # Mon 23:59:59 CST
        ("2026-11-03T06:00:00+00:00", D(2026, 11, 3)),  # Tue 00:00 CST
        # holidays
        ("2026-04-03T10:00:00-05:00", D(2026, 4, 6)),  # Good Friday -> Monday
        ("2026-11-26T18:00:00-06:00", D(2026, 11, 27)),  # Thanksgiving -> Friday half day
        ("2018-12-05T09:00:00-06:00", D(2018, 12, 6)),
        ("2025-01-09T09:00:00-06:00", D(2025, 1, 10)),
    ],
)
def test_cycle_of(instant: str, cycle: dt.date) -> None:
    assert CAL.cycle_of(at(instant)) == cycle


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        CAL.cycle_of(dt.datetime(2026, 3, 9, 12, 0))
    with pytest.raises(ValueError, match="naive"):
        CAL.chicago_date(dt.datetime(2026, 3, 9, 12, 0))


@pytest.mark.parametrize(
    ("cycle", "allowed"),
    [
        (D(2026, 3, 9), (D(2026, 3, 6), D(2026, 3, 9))),
        (D(2026, 4, 6), (D(2026, 4, 2), D(2026, 4, 6))),
        (D(2026, 11, 27), (D(2026, 11, 25), D(2026, 11, 27))),
        (D(2025, 1, 10), (D(2025, 1, 8), D(2025, 1, 10))),
        (D(2027, 1, 4), (D(2026, 12, 31), D(2027, 1, 4))),
    ],
)
def test_allowed_bizdts(cycle: dt.date, allowed: tuple[dt.date, dt.date]) -> None:
    assert CAL.allowed_bizdts(cycle) == allowed


def test_a_holiday_is_not_a_cycle() -> None:
    with pytest.raises(ValueError, match="not a business day"):
        CAL.allowed_bizdts(D(2026, 4, 3))


def test_cutoff_is_midnight_chicago_on_both_sides_of_dst() -> None:
    before = CAL.cutoff(D(2026, 3, 6))
    after = CAL.cutoff(D(2026, 3, 9))
    assert before == at("2026-03-07T00:00:00-06:00")
    assert after == at("2026-03-10T00:00:00-05:00")
    assert after.astimezone(UTC) == at("2026-03-10T05:00:00+00:00")
    assert CAL.cutoff(D(2026, 10, 30)).utcoffset() == dt.timedelta(hours=-5)
    assert CAL.cutoff(D(2026, 11, 2)) == at("2026-11-03T00:00:00-06:00")
    assert before.tzinfo is CHICAGO


def test_publication_instant() -> None:
    assert CAL.publication_instant(D(2026, 3, 6), dt.time(0, 5)) == at("2026-03-07T00:05-06:00")
    assert CAL.publication_instant(D(2026, 3, 9), dt.time(5, 0)) == at("2026-03-10T05:00-05:00")
    # 02:30 does not exist on 2026-03-08: read with the offset before the change
    spring = CAL.publication_instant(D(2026, 3, 7), dt.time(2, 30))
    assert spring.astimezone(UTC) == at("2026-03-08T08:30:00+00:00")
    # 01:30 happens twice on 2026-11-01: the first one (CDT)
    fall = CAL.publication_instant(D(2026, 10, 31), dt.time(1, 30))
    assert fall.astimezone(UTC) == at("2026-11-01T06:30:00+00:00")
    with pytest.raises(ValueError):
        CAL.publication_instant(D(2026, 3, 9), dt.time(0, 5, tzinfo=UTC))


# -- OCC overrides -------------------------------------------------------------------------------


def test_occ_close_adds_a_non_business_day() -> None:
    cal = BusinessCalendar(closes=[D(2026, 3, 11)], notes={D(2026, 3, 11): "system outage"})
    assert not cal.is_business_day(D(2026, 3, 11))
    assert cal.cycle_of(at("2026-03-11T10:00:00-05:00")) == D(2026, 3, 12)
    assert cal.allowed_bizdts(D(2026, 3, 12)) == (D(2026, 3, 10), D(2026, 3, 12))
    assert cal.explain(D(2026, 3, 11)) == "OCC holiday (system outage)"
    assert CAL.is_business_day(D(2026, 3, 11))  # other calendars are unaffected


def test_occ_open_makes_an_exchange_holiday_a_business_day() -> None:
    cal = BusinessCalendar(opens=[D(2026, 4, 3)])
    assert cal.is_business_day(D(2026, 4, 3))
    assert cal.cycle_of(at("2026-04-03T10:00:00-05:00")) == D(2026, 4, 3)
    assert cal.previous_business_day(D(2026, 4, 6)) == D(2026, 4, 3)
    assert "open override" in cal.explain(D(2026, 4, 3))


def test_contradictory_or_weekend_overrides_are_refused() -> None:
    with pytest.raises(ValueError, match="weekend"):
        BusinessCalendar(opens=[D(2026, 3, 7)])
    with pytest.raises(ValueError, match="both"):
        BusinessCalendar(closes=[D(2026, 4, 3)], opens=[D(2026, 4, 3)])


def test_endless_closures_stop_with_an_error() -> None:
    start = D(2026, 1, 1)
    closes = [start + dt.timedelta(days=i) for i in range(800)]
    with pytest.raises(ValueError, match="no business day"):
        BusinessCalendar(closes=closes).next_business_day(start)


# -- properties ----------------------------------------------------------------------------------

days = st.dates(min_value=D(2000, 1, 1), max_value=D(2040, 12, 31))


@settings(max_examples=150, deadline=None)
@given(days)
def test_next_and_previous_are_the_nearest_business_days(day: dt.date) -> None:
    nxt = CAL.next_business_day(day)
    prev = CAL.previous_business_day(day)
    assert prev < day < nxt
    assert CAL.is_business_day(nxt) and CAL.is_business_day(prev)
    between = [day + dt.timedelta(days=i) for i in range(1, (nxt - day).days)]
    between += [prev + dt.timedelta(days=i) for i in range(1, (day - prev).days)]
    assert not any(CAL.is_business_day(d) for d in between)
    assert nxt.weekday() < 5 and prev.weekday() < 5


@settings(max_examples=150, deadline=None)
@given(
    st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2040, 12, 31)),
    st.sampled_from(["UTC", "America/Chicago", "Asia/Tokyo", "America/Los_Angeles"]),
)
def test_cycle_is_the_chicago_date_or_the_next_business_day(local: dt.datetime, zone: str) -> None:
    instant = local.replace(tzinfo=ZoneInfo(zone))
    chicago = instant.astimezone(CHICAGO).date()
    cycle = CAL.cycle_of(instant)
    assert CAL.is_business_day(cycle)
    if CAL.is_business_day(chicago):
        assert cycle == chicago
    else:
        assert cycle == CAL.next_business_day(chicago)
    previous, current = CAL.allowed_bizdts(cycle)
    assert current == cycle and previous == CAL.previous_business_day(cycle)
    assert CAL.cutoff(cycle) > instant
