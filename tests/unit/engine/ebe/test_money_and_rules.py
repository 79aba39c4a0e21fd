"""Exact ticks, and properties of the outcome rules over generated sets (hypothesis)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.ebe.instructions import Effective
from engine.ebe.money import format_ticks, parse_ticks
from engine.ebe.outcome import compute_outcomes
from engine.ebe.positions import parse_expiring_set

THRESHOLDS = {"C": 100, "F": 100, "M": 100}


@pytest.mark.parametrize(
    ("text", "ticks", "shown"),
    [
        ("45.66", 456600, "45.66"),
        ("45.665", 456650, "45.665"),
        ("33.3333", 333333, "33.3333"),
        ("20", 200000, "20.00"),
        ("-5.00", -50000, "-5.00"),
        ("0.0001", 1, "0.0001"),
    ],
)
def test_ticks_round_trip(text, ticks, shown):
    assert parse_ticks(text) == ticks
    assert format_ticks(ticks) == shown


@pytest.mark.parametrize("text", ["1e3", "1,000", "45.66501", "", "abc", "1.2.3", "+-1"])
def test_ticks_refuse_what_is_not_a_plain_decimal(text):
    with pytest.raises(ValueError):
        parse_ticks(text)


def test_binary_floats_would_get_the_cent_wrong_ticks_do_not():
    # In binary floating point a close of 1.13 on a 1.12 call is *less* than 0.01 in the money
    # (and 45.67 - 45.66 is more than 0.01): equality with the threshold is never reliable.
    assert 1.13 - 1.12 < 0.01
    assert 45.67 - 45.66 != 0.01
    for close, strike in (("1.13", "1.12"), ("45.67", "45.66")):
        assert parse_ticks(close) - parse_ticks(strike) == parse_ticks("0.01")


position = st.tuples(
    st.sampled_from("CFM"),
    st.sampled_from("CP"),
    st.integers(1, 2_000_000),  # strike ticks
    st.integers(0, 50),  # long
    st.integers(0, 5),  # short
)


def _set(rows, close_ticks, removed):
    lines = [
        "firm,account,account_type,symbol,underlying,put_call,strike,expiration_date,"
        "multiplier,long_qty,short_qty"
    ]
    for i, (atype, pc, strike, long_qty, short_qty) in enumerate(rows):
        lines.append(
            f"F1,A{i},{atype},S,U,{pc},{format_ticks(strike)},2026-12-18,100,{long_qty},{short_qty}"
        )
    files = {
        "meta.csv": b"expiration_date,source\n2026-12-18,t\n",
        "expiring_positions.csv": ("\n".join(lines) + "\n").encode(),
        "closing_prices.csv": (
            f"underlying,close,removed\nU,{format_ticks(close_ticks)},{'Y' if removed else 'N'}\n"
        ).encode(),
    }
    return parse_expiring_set(files)


instruction = st.tuples(st.integers(0, 19), st.sampled_from(["EXERCISE", "DO_NOT_EXERCISE"]))


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(position, min_size=1, max_size=20),
    close=st.integers(0, 2_000_000),
    removed=st.booleans(),
    instructions=st.lists(st.tuples(instruction, st.floats(0, 1)), max_size=30),
)
def test_outcome_properties(rows, close, removed, instructions):
    positions = _set(rows, close, removed)
    n = len(positions)
    none = compute_outcomes(positions, THRESHOLDS, Effective.empty())
    # No instruction: final = auto; auto is 0 or the whole long.
    assert np.array_equal(none.final_exercise_qty, none.auto_exercise_qty)
    assert np.all((none.auto_exercise_qty == 0) | (none.auto_exercise_qty == positions.long_qty))
    assert not np.any(none.contrary_action)

    picks = [
        (r % n, a, int(round(f * int(positions.long_qty[r % n])))) for (r, a), f in instructions
    ]
    eff = Effective.of([p[0] for p in picks], [p[1] for p in picks], [p[2] for p in picks])
    out = compute_outcomes(positions, THRESHOLDS, eff)
    # Final quantity between 0 and long, and contrary_qty is the gap to auto.
    assert np.all(out.final_exercise_qty >= 0)
    assert np.all(out.final_exercise_qty <= positions.long_qty)
    assert np.array_equal(out.contrary_qty, np.abs(out.final_exercise_qty - out.auto_exercise_qty))
    # The latest instruction per row decides it (quantity 0 = none).
    latest = {}
    for row, action, qty in picks:
        latest[row] = (action, qty)
    for i in range(n):
        action, qty = latest.get(i, ("", 0))
        if qty == 0:
            expected = int(none.auto_exercise_qty[i])
        elif action == "EXERCISE":
            expected = qty
        else:
            expected = int(positions.long_qty[i]) - qty
        assert int(out.final_exercise_qty[i]) == expected

    # Withdrawing every instruction restores auto.
    withdrawn = Effective.of(
        [p[0] for p in picks] + [p[0] for p in picks],
        [p[1] for p in picks] * 2,
        [p[2] for p in picks] + [0] * len(picks),
    )
    back = compute_outcomes(positions, THRESHOLDS, withdrawn)
    assert np.array_equal(back.final_exercise_qty, none.auto_exercise_qty)


@given(strike=st.integers(1, 10**9), close=st.integers(0, 10**9))
def test_moneyness_matches_exact_decimal_arithmetic(strike, close):
    from decimal import Decimal

    positions = _set([("C", "C", strike, 1, 0)], close, False)
    out = compute_outcomes(positions, THRESHOLDS, Effective.empty())
    exact = Decimal(format_ticks(close)) - Decimal(format_ticks(strike))
    assert Decimal(format_ticks(int(out.itm_amount[0]))) == exact
    assert bool(out.auto_exercise_qty[0]) == (exact >= Decimal("0.01"))


def test_status_and_cutoff_are_chicago_time():
    from engine.ebe.day import cutoff_instant, status_at

    day = dt.date(2026, 12, 18)
    at = dt.time(16, 30)
    assert cutoff_instant(day, at).isoformat() == "2026-12-18T16:30:00-06:00"
    utc = dt.UTC
    assert status_at(day, at, dt.datetime(2026, 12, 18, 22, 30, tzinfo=utc)) == "provisional"
    assert status_at(day, at, dt.datetime(2026, 12, 18, 22, 30, 1, tzinfo=utc)) == "final"
