"""Theo set generation: market snapshots in, priced P&L sets out."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.pmc.market import MarketSnapshotInvalid, parse_market_snapshot
from engine.pmc.pricing import black_scholes, crr_binomial
from engine.pmc.theo.generate import generate_instruments
from engine.pmc.theo.model import STEPS
from engine.pmc.theo.read import parse_theo_set
from engine.pmc.theo.write import TheoGroups, render_theo_set

SAMPLE = Path(__file__).resolve().parents[5] / "config" / "samples" / "pmc" / "market.csv"
HEADER = (
    "record,portfolio_group_id,product_group_id,class_group_id,basket_id,account_type,offset_pct,"
    "move_down_pct,move_up_pct,symbol,underlying,security_type,exercise_style,settlement_style,"
    "series_date,expiration_date,put_call,strike,multiplier,price,volatility,dividend_yield,rate,"
    "min_charge"
)


def small_market() -> str:
    rows = [
        "product_group,,9,,,C,0.9,0.10,0.05,,,,,,,,,,,,,,,",
        "product_group,,9,,,F,0.9,0.20,0.20,,,,,,,,,,,,,,,",
        "class_group,,9,IDX,,,,,,,,,,,,,,,,,,,,",
        "class_group,,9,STK,,,,,,,,,,,,,,,,,,,,",
        "underlying,,,IDX,,,,,,IDX,,,,,,,,,,1000,0.2,0.01,0.05,",
        "underlying,,,STK,,,,,,STK,,S,,,,,,,1,50,0.3,0,0.05,2",
        "series,,,,,,,,,IDX,IDX,O,E,C,2027-05-21,,C,1000,100,,,,,37.5",
        "series,,,,,,,,,STK,STK,O,A,C,2027-05-21,,P,55,100,,,,,37.5",
        "series,,,,,,,,,IDXF,IDX,F,,,2027-05-21,,,,10,,,,,",
    ]
    return HEADER + "\n" + "\n".join(rows) + "\n"


def generate(text: str, day: str = "2026-11-20"):  # type: ignore[no-untyped-def]
    snap = parse_market_snapshot(text.encode())
    rows = generate_instruments(snap, day, steps=200)
    files = render_theo_set(
        activity_date=day,
        source="test",
        equity_product_group="999",
        groups=snap.groups,
        instruments=rows,
    )
    return rows, parse_theo_set(files)


def _row(theo, acct: str, symbol: str, sectype: str) -> int:  # type: ignore[no-untyped-def]
    mask = (theo.account_type == acct) & (theo.symbol == symbol) & (theo.security_type == sectype)
    (idx,) = np.flatnonzero(mask)
    return int(idx)


def test_every_instrument_for_every_account_type_with_parameters() -> None:
    rows, theo = generate(small_market())
    assert theo.size == 8  # (stock + 2 options + future) x (C, F)
    assert sorted(set(theo.account_type.tolist())) == ["C", "F"]


def test_stock_pnl_is_price_times_moves() -> None:
    _, theo = generate(small_market())
    i = _row(theo, "C", "STK", "S")
    moves = np.where(STEPS < 0, STEPS * 0.10, STEPS * 0.05)
    np.testing.assert_allclose(theo.pnl[i], 50 * moves, rtol=1e-9)
    assert theo.theo_price[i] == 50 and theo.min_charge[i] == 2
    j = _row(theo, "F", "STK", "S")
    np.testing.assert_allclose(theo.pnl[j], 50 * STEPS * 0.20, rtol=1e-9)


def test_european_option_is_black_scholes_at_each_point() -> None:
    _, theo = generate(small_market())
    i = _row(theo, "C", "IDX", "O")
    t = 182 / 365  # 2026-11-20 -> 2027-05-21
    moves = np.where(STEPS < 0, STEPS * 0.10, STEPS * 0.05)
    spots = 1000 * (1 + moves)
    base = black_scholes(1000, 1000, t, 0.05, 0.01, 0.2, True)[0]
    moved = black_scholes(spots, 1000, t, 0.05, 0.01, 0.2, True)
    assert theo.theo_price[i] == pytest.approx(base, rel=1e-9)
    np.testing.assert_allclose(theo.pnl[i], (moved - base) * 100, rtol=1e-8)
    # a long call gains when the index rises and loses when it falls
    assert (np.diff(theo.pnl[i]) > 0).all()


def test_american_put_is_worth_at_least_european_and_intrinsic() -> None:
    _, theo = generate(small_market())
    i = _row(theo, "C", "STK", "O")
    t = 182 / 365
    euro = black_scholes(50, 55, t, 0.05, 0.0, 0.3, False)[0]
    assert theo.theo_price[i] >= euro
    assert theo.theo_price[i] >= 5.0
    ref = crr_binomial(50, 55, t, 0.05, 0.0, 0.3, False, True, steps=2000)[0]
    assert theo.theo_price[i] == pytest.approx(ref, abs=0.01)
    moves = np.where(STEPS < 0, STEPS * 0.10, STEPS * 0.05)
    moved = crr_binomial(50 * (1 + moves), 55, t, 0.05, 0.0, 0.3, False, True, steps=2000)
    np.testing.assert_allclose(theo.pnl[i], (moved - ref) * 100, atol=2.0)  # $0.02 a share


def test_future_moves_with_its_underlying() -> None:
    _, theo = generate(small_market())
    i = _row(theo, "C", "IDXF", "F")
    t = 182 / 365
    f0 = 1000 * math.exp((0.05 - 0.01) * t)
    assert theo.theo_price[i] == pytest.approx(f0, rel=1e-11)
    moves = np.where(STEPS < 0, STEPS * 0.10, STEPS * 0.05)
    np.testing.assert_allclose(theo.pnl[i], f0 * moves * 10, rtol=1e-9)


def test_sample_market_generates_a_loadable_set() -> None:
    snap = parse_market_snapshot(SAMPLE.read_bytes())
    rows = generate_instruments(snap, "2026-11-20")
    files = render_theo_set(
        activity_date="2026-11-20",
        source="t",
        equity_product_group="999",
        groups=snap.groups,
        instruments=rows,
    )
    assert list(files)[-1] == "meta.csv"  # written last
    theo = parse_theo_set(files)
    assert theo.size == len(rows.symbol) and np.isfinite(theo.pnl).all()
    assert set(theo.security_type.tolist()) == {"S", "O", "F"}


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("unknown,,,,,,,,,,,,,,,,,,,,,,,", "line 2 column record: record='unknown'"),
        ("underlying,,,IDX,,,,,,IDX2,,,,,,,,,,abc,0.2,0,0.05,", "line 2 column price: price='abc'"),
        ("underlying,,,NOPE,,,,,,IDX,,,,,,,,,,1,0.2,0,0.05,", "class group 'NOPE' is not defined"),
        (
            "series,,,,,,,,,X,NONE,O,A,,2027-01-15,,C,10,100,,,,,",
            "underlying 'NONE' is not defined",
        ),
        ("series,,,,,,,,,X,IDX,O,A,,2027-02-30,,C,10,100,,,,,", "series_date='2027-02-30'"),
        ("series,,,,,,,,,X,IDX,O,A,,2027-01-15,,Q,10,100,,,,,", "put_call='Q'"),
        ("product_group,,9,,,Z,0.9,0.1,0.1,,,,,,,,,,,,,,,", "account_type='Z'"),
        ("product_group,PX,7,,,C,0.9,0.1,0.1,,,,,,,,,,,,,,,", "portfolio group 'PX' (C)"),
    ],
)
def test_snapshot_errors_are_located(row: str, expected: str) -> None:
    base = (
        "class_group,,9,IDX,,,,,,,,,,,,,,,,,,,,\n"
        "underlying,,,IDX,,,,,,IDX,,,,,,,,,,1000,0.2,0.01,0.05,\n"
    )
    text = HEADER + "\n" + "product_group,,9,,,C,0.9,0.1,0.1,,,,,,,,,,,,,,,\n" + base + row + "\n"
    expected = expected.replace("line 2", "line 5")
    with pytest.raises(MarketSnapshotInvalid) as info:
        parse_market_snapshot(text.encode())
    assert any(expected in p for p in info.value.problems), info.value.problems
    assert info.value.reason == "MARKET_INVALID"


def test_comments_and_column_order_are_free() -> None:
    cols = HEADER.split(",")
    reordered = list(reversed(cols))
    lines = ["# a comment line", ",".join(reordered)]
    for line in small_market().splitlines()[1:]:
        lines.append(",".join(reversed(line.split(","))))
    rows, theo = generate("\n".join(lines) + "\n")
    assert theo.size == 8


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_give_a_typed_error(data: bytes) -> None:
    try:
        parse_market_snapshot(data)
    except MarketSnapshotInvalid as exc:
        assert exc.problems


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_snapshots_never_crash(data: st.DataObject) -> None:
    text = small_market()
    i = data.draw(st.integers(0, len(text) - 1))
    junk = data.draw(st.text(alphabet=",\n0123456789.-ACEFIOPS#", max_size=5))
    mutated = text[:i] + junk + text[i + data.draw(st.integers(0, 3)) :]
    try:
        snap = parse_market_snapshot(mutated.encode())
    except MarketSnapshotInvalid:
        return
    rows = generate_instruments(snap, "2026-11-20", steps=20)
    assert len(rows.symbol) == rows.pnl.shape[0]


def test_empty_groups_render() -> None:
    files = render_theo_set(
        activity_date="2026-11-20",
        source="t",
        equity_product_group="999",
        groups=TheoGroups([], [], []),
        instruments=generate_instruments(parse_market_snapshot(HEADER.encode()), "2026-11-20"),
    )
    theo = parse_theo_set(files)
    assert theo.size == 0


def test_pricing_reports_progress_up_to_the_whole() -> None:
    from engine.pmc.theo.generate import generate_instruments
    from tests.benchmarks.bench_margin import synthetic_market

    calls: list[tuple[int, int]] = []
    rows = generate_instruments(
        synthetic_market(3_000), "2026-11-20", progress=lambda d, t: calls.append((d, t))
    )
    assert calls and calls[-1][0] == calls[-1][1] > 0
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert rows.pnl.shape[0] >= calls[-1][1]
