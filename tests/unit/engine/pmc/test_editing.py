"""Editing the selected positions: add, quantity, modify, add stock, delete, filter."""

from __future__ import annotations

import pytest

from engine.pmc.contracts import ContractFilter, list_contracts
from engine.pmc.editing import (
    EditRefused,
    add_contracts,
    add_stock,
    delete_positions,
    empty_positions,
    modify_positions,
    select_positions,
    set_quantity,
)
from engine.pmc.positions.read import parse_position_file
from engine.pmc.positions.write import render_position_file
from engine.pmc.report import margin_for_file
from engine.pmc.theo.model import TheoSet
from tests.unit.engine.pmc.support import Inst, SetSpec, build_set, stock

VEC = [-5.0, -4.0, -3.0, -2.0, -1.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def theo_set() -> TheoSet:
    return build_set(
        SetSpec(
            ports=[("USIDX", "C", 0.9), ("USIDX", "F", 0.9)],
            pgs=[
                ("9", "USIDX", "C", 0.9, 0.08, 0.06),
                ("9", "USIDX", "F", 0.9, 0.08, 0.06),
                ("999", "", "C", float("nan"), 0.15, 0.15),
            ],
            cgs=[("AAPL", "9", "10101"), ("IBM", "999", "")],
            insts=[
                Inst("AAPL", "AAPL", "9", VEC, strike=220.0),
                Inst("AAPL", "AAPL", "9", VEC, pc="P", strike=220.0),
                Inst("AAPL", "AAPL", "9", VEC, acct="F", strike=220.0),
                stock("IBM", "IBM", "999", VEC, price=250.0),
            ],
        )
    )


def test_added_contracts_start_at_zero_and_carry_the_contract() -> None:
    theo = theo_set()
    found = list_contracts(theo, ContractFilter("C", class_group="AAPL"))
    p = add_contracts(empty_positions(), found, firm="04444", account="CUST1")
    assert p.quantity.tolist() == [0.0, 0.0]
    assert p.firm.tolist() == ["04444", "04444"]
    assert p.put_call.tolist() == ["C", "P"] and p.strike.tolist() == [220.0, 220.0]
    assert p.series_date.tolist() == ["2026-12-18"] * 2 and p.account_type.tolist() == ["C", "C"]
    p = add_contracts(p, found[:1], firm="4444", quantity=-3)
    assert p.quantity.tolist() == [0.0, 0.0, -3.0] and p.line.tolist() == [1, 2, 3]


def test_zero_quantities_are_rejected_when_computed_and_set_quantity_fixes_it() -> None:
    theo = theo_set()
    found = list_contracts(theo, ContractFilter("C", class_group="AAPL"))
    p = add_contracts(empty_positions(), found, firm="4444", account="CUST1")
    pf = parse_position_file(render_position_file(p))
    assert [pr.reason for pr in pf.problems] == ["ZERO_QUANTITY", "ZERO_QUANTITY"]
    p = set_quantity(p, [0, 1], 10)
    p = set_quantity(p, [1], -4)
    assert p.quantity.tolist() == [10.0, -4.0]
    result = margin_for_file(parse_position_file(render_position_file(p)), theo)
    assert result.counts.accepted == 2 and result.counts.rejected == 0
    assert result.result.account_requirement.tolist()[0] > 0


def test_modify_firm_account_type_and_basket() -> None:
    theo = theo_set()
    p = add_contracts(
        empty_positions(),
        list_contracts(theo, ContractFilter("C", class_group="AAPL")),
        firm="4444",
        account="CUST1",
        quantity=1,
    )
    p = add_stock(
        p,
        theo,
        firm="4444",
        account="CUST1",
        account_type="C",
        symbol="fake",
        price=12.5,
        quantity=100,
    )
    p2 = modify_positions(p, [0, 2], firm="5", account="B2", account_type="F")
    assert p2.firm.tolist() == ["00005", "04444", "00005"]
    assert p2.account.tolist() == ["B2", "CUST1", "B2"]
    assert p2.account_type.tolist() == ["F", "C", "F"]
    assert p.firm.tolist() == ["04444"] * 3  # the input is left as it was
    p3 = modify_positions(p2, [2], basket_id="10101")
    assert p3.basket_id.tolist() == ["", "", "10101"]
    assert modify_positions(p3, [2], basket_id="").basket_id.tolist() == ["", "", ""]


@pytest.mark.parametrize(
    ("kwargs", "reason", "field"),
    [
        ({"account_type": "Q"}, "BAD_VALUE", "INTERVAL DISTINCTION ID"),
        ({"firm": "ABC"}, "BAD_VALUE", "CLEARING FIRM NUMBER"),
        ({"firm": ""}, "MISSING_FIELD", "CLEARING FIRM NUMBER"),
        ({"basket_id": "10101"}, "BAD_VALUE", "BASKET ID"),
        ({"basket_id": "1-1"}, "BAD_VALUE", "BASKET ID"),
    ],
)
def test_refused_modifications_name_row_and_field(
    kwargs: dict[str, str], reason: str, field: str
) -> None:
    theo = theo_set()
    p = add_contracts(
        empty_positions(),
        list_contracts(theo, ContractFilter("C", class_group="AAPL")),
        firm="4444",
    )
    if kwargs.get("basket_id") == "1-1":
        p = add_stock(
            p,
            theo,
            firm="4444",
            account="",
            account_type="C",
            symbol="FAKE",
            price=1.0,
            quantity=1,
        )
    row = len(p) - 1
    with pytest.raises(EditRefused) as info:
        modify_positions(p, [row], **kwargs)
    assert info.value.reason == reason
    assert info.value.location.line == row + 1 and info.value.location.field == field


def test_add_stock_refused_when_the_set_has_it() -> None:
    theo = theo_set()
    with pytest.raises(EditRefused) as info:
        add_stock(
            empty_positions(),
            theo,
            firm="4444",
            account="A",
            account_type="C",
            symbol="ibm",
            price=250.0,
            quantity=10,
        )
    assert info.value.reason == "STOCK_IN_SET"
    assert "IBM is in the P&L set for account type C" in info.value.message
    # not in the set for account type F: allowed, and computed with its price
    p = add_stock(
        empty_positions(),
        theo,
        firm="4444",
        account="A",
        account_type="F",
        symbol="IBM",
        price=250.0,
        quantity=10,
    )
    assert p.market_value.tolist() == [250.0] and p.security_type.tolist() == ["S"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"symbol": ""}, "symbol"),
        ({"account_type": ""}, "account_type"),
        ({"price": 0.0}, "price"),
        ({"quantity": 0}, "quantity"),
    ],
)
def test_add_stock_requires_four_fields(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {
        "firm": "4444",
        "account": "A",
        "account_type": "C",
        "symbol": "FAKE",
        "price": 9.5,
        "quantity": 5,
    }
    args.update(kwargs)
    with pytest.raises(EditRefused) as info:
        add_stock(empty_positions(), theo_set(), **args)  # type: ignore[arg-type]
    assert info.value.location.field == field


def test_delete_selected_and_all() -> None:
    theo = theo_set()
    p = add_contracts(
        empty_positions(),
        list_contracts(theo, ContractFilter("C", class_group="AAPL")),
        firm="4444",
        quantity=2,
    )
    assert delete_positions(p, [0]).put_call.tolist() == ["P"]
    assert len(delete_positions(p)) == 0
    with pytest.raises(EditRefused) as info:
        delete_positions(p, [5])
    assert info.value.reason == "NO_SUCH_ROW"


def test_select_positions_by_fields_and_by_set_groups() -> None:
    theo = theo_set()
    p = add_contracts(
        empty_positions(),
        list_contracts(theo, ContractFilter("C", class_group="AAPL")),
        firm="4444",
        account="CUST1",
        quantity=1,
    )
    p = add_stock(
        p,
        theo,
        firm="4444",
        account="CUST2",
        account_type="C",
        symbol="FAKE",
        price=1.0,
        quantity=1,
    )
    assert select_positions(p, put_call="p").tolist() == [1]
    assert select_positions(p, account="CUST2").tolist() == [2]
    assert select_positions(p, strike=220.0).tolist() == [0, 1]
    assert select_positions(p, theo=theo, class_group="aapl").tolist() == [0, 1]
    assert select_positions(p, theo=theo, product_group="9", firm="04444").tolist() == [0, 1]
    assert select_positions(p, theo=theo, underlying="IBM").tolist() == []
