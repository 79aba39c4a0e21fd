"""Available contracts: filters, required-field rules, columns, default sort."""

from __future__ import annotations

import pytest

from engine.pmc.contracts import (
    CONTRACT_COLUMNS,
    ContractFilter,
    ContractFilterInvalid,
    list_contracts,
    sort_contracts,
    suggest_values,
)
from engine.pmc.theo.model import TheoSet
from engine.pmc.theo.read import parse_theo_set
from tests.unit.engine.pmc.support import Inst, SetSpec, build_files, stock

VEC = [-5.0, -4.0, -3.0, -2.0, -1.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def theo_set() -> TheoSet:
    spec = SetSpec(
        ports=[("USIDX", "C", 0.9), ("USIDX", "F", 0.9)],
        pgs=[
            ("9", "USIDX", "C", 0.9, 0.08, 0.06),
            ("18", "USIDX", "C", 0.9, 0.08, 0.06),
            ("9", "USIDX", "F", 0.9, 0.08, 0.06),
            ("999", "", "C", float("nan"), 0.15, 0.15),
        ],
        cgs=[("SPY", "18", ""), ("SPX", "9", ""), ("AAPL", "999", "")],
        insts=[
            # deliberately out of order: the list sorts them
            Inst("1SPY", "SPY", "18", VEC, series="2014-04-19", strike=154.0, underlying="SPY"),
            Inst("1SPY", "SPY", "18", VEC, pc="P", series="2014-01-16", strike=146.83),
            Inst("1SPY", "SPY", "18", VEC, series="2014-01-16", strike=154.17),
            Inst("1SPY", "SPY", "18", VEC, series="2014-01-16", strike=146.83),
            Inst("1SPY", "SPY", "18", VEC, pc="P", series="2014-01-16", strike=129.21),
            Inst("SPX", "SPX", "9", VEC, strike=6000.0, ex="E", st="O"),
            Inst("SPX", "SPX", "9", VEC, acct="F", strike=6000.0),
            stock("AAPL", "AAPL", "999", VEC, price=228.0),
        ],
    )
    files = build_files(spec)
    lines = files["pnl.csv"].decode().splitlines()
    venues = ["exchange", "", "", "", "", "", "CBOE", "CBOE", "XNAS"]
    files["pnl.csv"] = "".join(
        f"{line},{v}\n" for line, v in zip(lines, venues, strict=True)
    ).encode()
    return parse_theo_set(files)


def test_default_sort_and_every_column() -> None:
    found = list_contracts(theo_set(), ContractFilter("C", underlying="spy"))
    assert [(c.series_date, c.strike, c.put_call) for c in found] == [
        ("2014-01-16", 129.21, "P"),
        ("2014-01-16", 146.83, "C"),
        ("2014-01-16", 146.83, "P"),
        ("2014-01-16", 154.17, "C"),
        ("2014-04-19", 154.0, "C"),
    ]
    row = found[0].as_dict()
    assert [name for name, _ in CONTRACT_COLUMNS if name not in row] == []
    assert row["product_group"] == "18" and row["class_group"] == "SPY"
    assert row["security_type"] == "O" and row["symbol"] == "1SPY"


def test_group_ids_sort_as_numbers_and_styles_and_exchange_are_listed() -> None:
    theo = theo_set()
    spx = list_contracts(theo, ContractFilter("C", class_group="SPX"))
    assert [(c.exchange, c.exercise_style, c.settlement_style) for c in spx] == [("CBOE", "E", "O")]
    both = sort_contracts(
        list_contracts(theo, ContractFilter("C", class_group="SPX"))
        + list_contracts(theo, ContractFilter("C", class_group="SPY"))
    )
    assert [c.product_group for c in both][:2] == ["9", "18"]


@pytest.mark.parametrize(
    ("flt", "symbols"),
    [
        (ContractFilter("C", symbol="AAPL"), ["AAPL"]),
        (ContractFilter("F", symbol="SPX"), ["SPX"]),
        (ContractFilter("M", symbol="SPX"), []),
        (ContractFilter("C", class_group="SPY", put_call="P"), ["1SPY", "1SPY"]),
        (ContractFilter("C", class_group="SPY", strike=146.83), ["1SPY", "1SPY"]),
        (ContractFilter("C", class_group="SPY", series_date="04/19/2014"), ["1SPY"]),
        (ContractFilter("C", class_group="SPY", expiration_date="2014-01-16"), ["1SPY"] * 4),
        (ContractFilter("C", product_group="18", class_group="SPY", security_type="S"), []),
        (ContractFilter("C", symbol="AAPL", strike=228.0), []),
    ],
)
def test_filters(flt: ContractFilter, symbols: list[str]) -> None:
    assert [c.symbol for c in list_contracts(theo_set(), flt)] == symbols


@pytest.mark.parametrize(
    ("flt", "reason", "field"),
    [
        (ContractFilter(""), "MISSING_FILTER", "account_type"),
        (ContractFilter("X", symbol="SPX"), "BAD_FILTER", "account_type"),
        (ContractFilter("C"), "MISSING_FILTER", "class_group"),
        (ContractFilter("C", product_group="9"), "MISSING_FILTER", "class_group"),
        (ContractFilter("C", product_group="9", symbol="SPX"), "MISSING_FILTER", "class_group"),
        (ContractFilter("C", symbol="SPX", security_type="Q"), "BAD_FILTER", "security_type"),
        (ContractFilter("C", symbol="SPX", put_call="B"), "BAD_FILTER", "put_call"),
        (ContractFilter("C", symbol="SPX", strike=-1.0), "BAD_FILTER", "strike"),
        (ContractFilter("C", symbol="SPX", series_date="2014-13-01"), "BAD_FILTER", "series_date"),
    ],
)
def test_required_field_rules(flt: ContractFilter, reason: str, field: str) -> None:
    with pytest.raises(ContractFilterInvalid) as info:
        list_contracts(theo_set(), flt)
    assert info.value.reason == reason and info.value.location.field == field


def test_sort_by_a_column_and_back() -> None:
    found = list_contracts(theo_set(), ContractFilter("C", class_group="SPY"))
    by_strike = sort_contracts(found, "strike", descending=True)
    assert [c.strike for c in by_strike] == [154.17, 154.0, 146.83, 146.83, 129.21]
    assert sort_contracts(by_strike) == found
    with pytest.raises(ContractFilterInvalid):
        sort_contracts(found, "theo_price")


def test_suggestions() -> None:
    theo = theo_set()
    assert suggest_values(theo, "C", "class_group") == ["AAPL", "SPX", "SPY"]
    assert suggest_values(theo, "C", "class_group", "sp") == ["SPX", "SPY"]
    assert suggest_values(theo, "C", "product_group") == ["9", "18", "999"]
    assert suggest_values(theo, "F", "symbol") == ["SPX"]
    with pytest.raises(ContractFilterInvalid):
        suggest_values(theo, "C", "strike")
