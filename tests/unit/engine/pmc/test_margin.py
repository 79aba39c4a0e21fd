"""The margin calculation step by step on hand-computed cases, and a results-screen example."""

from __future__ import annotations

import numpy as np
import pytest

from engine.pmc.margin import (
    LEVEL_CLASS_GROUP,
    LEVEL_PORTFOLIO_GROUP,
    LEVEL_PRODUCT_GROUP,
    compute_margin,
)
from engine.pmc.positions.read import parse_position_file
from engine.pmc.report import margin_for_file
from engine.pmc.resolve import resolve_positions
from engine.pmc.whatif import whatif
from tests.unit.engine.pmc.support import Inst, SetSpec, batch, build_set, opt, stk, stock

UP = [-10.0, -8.0, -6.0, -4.0, -2.0, 2.0, 4.0, 6.0, 8.0, 10.0]  # gains when the market rises
DOWN = [-v for v in UP]


def spec() -> SetSpec:
    s = SetSpec()
    s.ports = [("PG1", "C", 0.5), ("PG1", "F", 0.5)]
    s.pgs = [
        ("A", "PG1", "C", 0.8, 0.1, 0.1),
        ("B", "PG1", "C", 0.6, 0.1, 0.1),
        ("S", "", "C", 0.5, 0.1, 0.1),
        ("999", "", "C", float("nan"), 0.15, 0.15),
        ("A", "PG1", "F", 0.8, 0.1, 0.1),
        ("999", "", "F", float("nan"), 0.15, 0.15),
    ]
    s.cgs = [
        ("A1", "A", "BSK"),
        ("A2", "A", ""),
        ("B1", "B", ""),
        ("S1", "S", ""),
        ("S2", "S", ""),
        ("E1", "999", ""),
    ]
    s.insts = [
        Inst("X1", "A1", "A", UP, price=0.5),
        Inst("X1B", "A1", "A", DOWN, price=0.5),
        Inst("X2", "A2", "A", DOWN, price=0.25),
        Inst("Y1", "B1", "B", DOWN),
        Inst("S1A", "S1", "S", UP),
        Inst("S2A", "S2", "S", [-v / 2 for v in UP]),
        Inst("CHEAP", "A2", "A", [0.0] * 10, price=0.1, min_charge=37.5),
        Inst("MINI", "A2", "A", [0.0] * 10, price=1.0, min_charge=37.5),
        Inst("X1", "A1", "A", UP, acct="F", price=0.5),
        Inst("CHEAP", "A1", "A", [0.0] * 10, acct="F", price=0.1, min_charge=37.5),
        stock("Z", "E1", "999", UP, price=100.0),
    ]
    return s


@pytest.fixture(scope="module")
def theo():  # type: ignore[no-untyped-def]
    return build_set(spec())


def run(theo, rows):  # type: ignore[no-untyped-def]
    res = resolve_positions(batch(rows), theo)
    assert not res.problems, res.problems
    return compute_margin(res)


def test_position_pnl_is_signed_quantity_times_unit_vector(theo) -> None:  # type: ignore[no-untyped-def]
    r = run(theo, [opt("X1", 3)])
    np.testing.assert_allclose(r.pos_pnl[0], 3 * np.array(UP))
    r = run(theo, [opt("X1", -2)])
    np.testing.assert_allclose(r.pos_pnl[0], -2 * np.array(UP))
    assert r.pos_nav[0] == pytest.approx(-2 * 0.5 * 100)


def test_class_group_nets_fully(theo) -> None:  # type: ignore[no-untyped-def]
    # 2 long + 1 short of the same series, plus an opposite series in the same class group
    r = run(theo, [opt("X1", 2), opt("X1", -1), opt("X1B", 1)])
    assert r.cg_id.tolist() == ["A1"]
    np.testing.assert_allclose(r.cg_total[0], np.zeros(10))
    assert r.requirement == 0.0


def test_short_position_loses_when_market_rises(theo) -> None:  # type: ignore[no-untyped-def]
    r = run(theo, [opt("X1", -1)])
    # alone in product group A (offset 0.8) in portfolio group PG1 (offset 0.5)
    assert r.account_risk[0] == pytest.approx(10.0)
    assert r.account_requirement[0] == pytest.approx(10.0)


def test_product_group_offset(theo) -> None:  # type: ignore[no-untyped-def]
    # S1 up-vector, S2 half down-vector; product group S stands alone with offset 0.5
    r = run(theo, [opt("S1A", 1), opt("S2A", -1)])
    # S2A short => +UP/2: both class groups move together -> no offset at all
    assert r.requirement == pytest.approx(15.0)
    r = run(theo, [opt("S1A", 1), opt("S2A", 1)])
    # -5: -10 + 0.5*5 = -7.5 ; +k: -k + 0.5*2k = 0
    expected = [-7.5, -6.0, -4.5, -3.0, -1.5, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert r.unit_level.tolist() == [LEVEL_PRODUCT_GROUP]
    np.testing.assert_allclose(r.unit_total[0], expected)
    np.testing.assert_allclose(r.pg_gains[0], [5, 4, 3, 2, 1, 2, 4, 6, 8, 10])
    np.testing.assert_allclose(r.pg_losses[0], [-10, -8, -6, -4, -2, -1, -2, -3, -4, -5])
    assert r.requirement == pytest.approx(7.5)


def test_two_class_groups_in_a_portfolio_product_group(theo) -> None:  # type: ignore[no-untyped-def]
    # A1 up, A2 down: gains |x|, losses -|x| -> total -0.2|x| in product group A (offset 0.8)
    r = run(theo, [opt("X1", 1), opt("X2", 1)])
    np.testing.assert_allclose(r.pg_total[0], -0.2 * np.abs(UP))
    assert r.unit_level.tolist() == [LEVEL_PORTFOLIO_GROUP]
    assert r.requirement == pytest.approx(2.0)


def test_portfolio_group_offset(theo) -> None:  # type: ignore[no-untyped-def]
    r = run(theo, [opt("X1", 1), opt("Y1", 1)])
    # product group A: one class group, gains scaled by 0.8; B: down vector, gains x0.6
    np.testing.assert_allclose(r.pg_total[0], [-10, -8, -6, -4, -2, 1.6, 3.2, 4.8, 6.4, 8])
    np.testing.assert_allclose(r.pg_total[1], [6, 4.8, 3.6, 2.4, 1.2, -2, -4, -6, -8, -10])
    expected = [-7.0, -5.6, -4.2, -2.8, -1.4, -1.2, -2.4, -3.6, -4.8, -6.0]
    np.testing.assert_allclose(r.port_total[0], expected)
    np.testing.assert_allclose(r.port_gains[0], [6, 4.8, 3.6, 2.4, 1.2, 1.6, 3.2, 4.8, 6.4, 8])
    assert r.requirement == pytest.approx(7.0)


def test_stand_alone_units_add_up(theo) -> None:  # type: ignore[no-untyped-def]
    rows = [opt("X1", 1), opt("Y1", 1), opt("S1A", 1), opt("S2A", 1), stk("Z", -1)]
    r = run(theo, rows)
    levels = sorted(r.unit_level.tolist())
    assert levels == [LEVEL_CLASS_GROUP, LEVEL_PRODUCT_GROUP, LEVEL_PORTFOLIO_GROUP]
    # 7 (portfolio group) + 7.5 (product group S) + 10 (short Z alone in its class group)
    assert r.requirement == pytest.approx(24.5)
    assert r.account_requirement[0] == pytest.approx(r.unit_requirement.sum())
    assert r.firm_requirement[0] == pytest.approx(24.5)


def test_minimum_binds_when_risk_is_smaller(theo) -> None:  # type: ignore[no-untyped-def]
    r = run(theo, [opt("MINI", -3)])
    assert r.account_risk[0] == 0.0
    assert r.account_minimum[0] == pytest.approx(112.5)
    assert r.account_requirement[0] == pytest.approx(112.5)
    # risk 10 vs minimum 37.5 in the same unit -> 37.5
    r = run(theo, [opt("X1", -1), opt("MINI", -1)])
    assert r.account_requirement[0] == pytest.approx(37.5)


def test_cpm_caps_long_option_minimum_at_market_value(theo) -> None:  # type: ignore[no-untyped-def]
    # CHEAP: price 0.10 x 100 = 10 per contract; min_charge 37.5
    r = run(theo, [opt("CHEAP", 2)])
    assert r.account_minimum[0] == pytest.approx(20.0)  # capped at 2 x 10
    r = run(theo, [opt("CHEAP", -2)])
    assert r.account_minimum[0] == pytest.approx(75.0)  # shorts are not capped
    r = run(theo, [opt("CHEAP", 2, account_type="F")])
    assert r.account_minimum[0] == pytest.approx(75.0)  # only account type C is capped


def test_basket_places_a_stock_in_the_baskets_class_group(theo) -> None:  # type: ignore[no-untyped-def]
    without = run(theo, [opt("X1", 1), stk("Z", -1, basket_id="")])
    assert without.requirement == pytest.approx(20.0)  # 10 in PG1, 10 for short Z alone
    with_basket = run(theo, [opt("X1", 1), stk("Z", -1, basket_id="BSK")])
    assert with_basket.cg_id.tolist() == ["A1"]
    assert with_basket.requirement == pytest.approx(0.0)
    assert with_basket.basket_id.tolist() == ["BSK"]
    np.testing.assert_allclose(with_basket.basket_pnl[0], -np.array(UP))
    assert with_basket.basket_nav[0] == pytest.approx(-100.0)


def test_stock_not_in_set_uses_market_value_and_equity_moves(theo) -> None:  # type: ignore[no-untyped-def]
    r = run(theo, [stk("FAKE", 100, market_value=999.0)])
    assert r.cg_id.tolist() == ["FAKE"]
    assert r.pg_id.tolist() == ["999"]
    assert r.unit_level.tolist() == [LEVEL_CLASS_GROUP]
    moves = np.array([-5, -4, -3, -2, -1, 1, 2, 3, 4, 5]) / 5 * 0.15
    np.testing.assert_allclose(r.cg_total[0], 100 * 999.0 * moves)
    assert r.requirement == pytest.approx(14985.0)
    assert r.nav == pytest.approx(99900.0)


def test_stock_not_in_set_in_a_basket_uses_that_product_groups_moves(theo) -> None:  # type: ignore[no-untyped-def]
    r = run(theo, [stk("FAKER", 10, market_value=50.0, basket_id="BSK")])
    assert r.cg_id.tolist() == ["A1"]
    np.testing.assert_allclose(r.cg_total[0], [-50, -40, -30, -20, -10, 10, 20, 30, 40, 50])


def test_accounts_are_separate_and_firms_sum_them(theo) -> None:  # type: ignore[no-untyped-def]
    rows = [
        opt("X1", 1, account="A"),
        opt("X2", 1, account="B"),
        opt("X1", 1, account="A", account_type="F"),
        opt("X1", -1, firm="7"),
    ]
    r = run(theo, rows)
    assert r.account_id.tolist() == ["A", "A", "B", "A1"]
    assert r.account_type.tolist() == ["C", "F", "C", "C"]
    assert r.account_requirement.tolist() == pytest.approx([10.0, 10.0, 10.0, 10.0])
    assert r.firm_ids.tolist() == ["5", "7"]
    assert r.firm_requirement.tolist() == pytest.approx([30.0, 10.0])


def test_nav_sums_signed_market_values(theo) -> None:  # type: ignore[no-untyped-def]
    r = run(theo, [opt("X1", 2), opt("X2", -4), stk("Z", 3), stk("FAKE", -5, market_value=20.0)])
    assert r.nav == pytest.approx(2 * 50 - 4 * 25 + 3 * 100 - 5 * 20)


def test_figure_4_gains_losses_total() -> None:
    """A results screen: one product group in portfolio group USIDX."""
    vec = [-9241, -7722, -6056, -4164, -2173, 1614, 3287, 5030, 6807, 8588]
    s = SetSpec(
        ports=[("USIDX", "F", 1.0)],
        pgs=[("9", "USIDX", "F", 1.0, 0.08, 0.06)],
        cgs=[("BBIDX", "9", "")],
        insts=[Inst("BBIDX", "BBIDX", "9", vec, acct="F", price=220.52, min_charge=75.0)],
    )
    theo = build_set(s)
    r = run(theo, [opt("BBIDX", 1, account_type="F")])
    assert r.pg_gains[0].tolist() == [0, 0, 0, 0, 0, 1614, 3287, 5030, 6807, 8588]
    assert r.pg_losses[0].tolist() == [-9241, -7722, -6056, -4164, -2173, 0, 0, 0, 0, 0]
    assert r.pg_total[0].tolist() == vec
    assert r.port_gains[0].tolist() == r.pg_gains[0].tolist()
    assert r.port_losses[0].tolist() == r.pg_losses[0].tolist()
    assert r.port_total[0].tolist() == vec
    # Gains + Losses == Total wherever one side is zero (offset 100 %)
    np.testing.assert_allclose(r.port_gains[0] + r.port_losses[0], r.port_total[0])
    assert r.account_nav[0] == pytest.approx(22052.0)
    assert r.account_requirement[0] == pytest.approx(9241.0)  # "Port Groups Net" -9,241
    assert r.account_minimum[0] == pytest.approx(75.0)


def test_gains_losses_total_relation_with_offset(theo) -> None:  # type: ignore[no-untyped-def]
    r = run(theo, [opt("X1", 1), opt("X2", 2), opt("Y1", 1)])
    for gains, losses, total, off in (
        (r.pg_gains, r.pg_losses, r.pg_total, r.pg_offset),
        (r.port_gains, r.port_losses, r.port_total, r.port_offset),
    ):
        assert (gains >= 0).all() and (losses <= 0).all()
        np.testing.assert_allclose(total, losses + off[:, None] * gains)


def test_whatif_contributions_match_recomputation(theo) -> None:  # type: ignore[no-untyped-def]
    rows = [opt("X1", 1), opt("X2", 1), opt("Y1", 2), opt("S1A", 1), opt("MINI", -1), stk("Z", 2)]
    w = whatif(batch(rows), theo)
    for i in range(len(rows)):
        rest = rows[:i] + rows[i + 1 :]
        without = run(theo, rest).requirement if rest else 0.0
        assert w.contributions[i] == pytest.approx(w.requirement - without), rows[i]


def test_whatif_with_base_reports_delta(theo) -> None:  # type: ignore[no-untyped-def]
    base = batch([opt("X1", 1)])
    hedge = batch([opt("X2", 1)])
    w = whatif(hedge, theo, base=base)
    assert w.base_requirement == pytest.approx(10.0)
    assert w.requirement == pytest.approx(2.0)
    assert w.contributions.tolist() == pytest.approx([-8.0])
    doc = w.as_dict()
    assert doc["delta_requirement"] == pytest.approx(-8.0)
    assert doc["positions"][0]["marginal_requirement"] == pytest.approx(-8.0)  # type: ignore[index]


def test_file_counts_and_problems(theo) -> None:  # type: ignore[no-untyped-def]
    data = (
        b"346,,5,A,C,X1,,,,20261218,,100,L,O,,1,C,\n"
        b"346,,5,A,C,X1,,,,20261218,,105,L,O,,1,C,\n"  # invalid series (strike)
        b"346,,5,A,C,X1,,,,20261218,,100,Q,O,,1,C,\n"  # rejected (function)
        b"346,,5,A,,Z,,,,,,0,L,S,12.5,1,C,\n"  # warning: Z is in the set
        b"346,,5,A,,Z,,,,,,0,L,S,,1,C,NOPE\n"  # rejected: unknown basket
        b"346,,5,A,,NOTHERE,,,,,,0,L,S,,1,C,\n"  # invalid series: no market value
    )
    report = margin_for_file(parse_position_file(data), theo)
    c = report.counts
    assert (c.accepted, c.rejected, c.invalid_series, c.warnings, c.total) == (2, 2, 2, 1, 6)
    assert [(p.line, p.kind, p.reason) for p in report.problems] == [
        (2, "invalid_series", "INVALID_SERIES"),
        (3, "rejected", "BAD_VALUE"),
        (4, "warning", "MARKET_VALUE_IGNORED"),
        (5, "rejected", "UNKNOWN_BASKET"),
        (6, "invalid_series", "INVALID_SERIES"),
    ]


def test_empty_portfolio_has_no_requirement(theo) -> None:  # type: ignore[no-untyped-def]
    r = run(theo, [])
    assert r.requirement == 0.0 and r.account_firm.size == 0


def test_account_groups_document(theo) -> None:  # type: ignore[no-untyped-def]
    r = run(theo, [opt("X1", 1), opt("Y1", 1), stk("FAKE", 1, market_value=10.0)])
    groups = r.account_groups(0)
    assert [g["level"] for g in groups] == ["portfolio_group", "class_group"]
    port = groups[0]
    assert port["id"] == "PG1" and port["requirement"] == pytest.approx(7.0)
    assert [p["id"] for p in port["product_groups"]] == ["A", "B"]  # type: ignore[index]
    assert groups[1]["id"] == "FAKE" and groups[1]["product_group"] == "999"


def test_positions_from_rows_validates_like_a_file(theo) -> None:  # type: ignore[no-untyped-def]
    from engine.pmc.positions.rows import positions_from_rows

    rows: list[dict[str, object]] = [
        {
            "firm": "5",
            "account": "A",
            "account_type": "C",
            "symbol": "X1",
            "security_type": "O",
            "put_call": "C",
            "series_date": "2026-12-18",
            "strike": 100,
            "quantity": -2,
        },
        {
            "firm": "5",
            "account_type": "C",
            "symbol": "FAKE",
            "security_type": "S",
            "market_value": 10.0,
            "quantity": 3,
        },
        {
            "firm": "5",
            "account_type": "Q",
            "symbol": "X1",
            "security_type": "O",
            "put_call": "C",
            "series_date": "2026-12-18",
            "strike": 100,
            "quantity": 1,
        },
        {"firm": "5", "account_type": "C", "symbol": "X1", "quantity": 1.5},
        {"firm": "5", "account_type": "C", "symbol": "X1", "quantity": "lots"},
    ]
    b, problems = positions_from_rows(rows)
    assert b.quantity.tolist() == [-2.0, 3.0]
    assert b.series_date.tolist() == ["2026-12-18", ""]
    assert [(p.line, p.reason, p.field) for p in problems] == [
        (3, "BAD_VALUE", "INTERVAL DISTINCTION ID"),
        (4, "BAD_VALUE", "quantity"),
        (5, "BAD_VALUE", "quantity"),
    ]
    w = whatif(b, theo)
    assert w.requirement == pytest.approx(20.0 + 3 * 10.0 * 0.15)
