"""Editing a portfolio of positions (the Selected Positions list): pure functions on batches.

Every operation takes a ``PositionBatch`` and returns a new one; nothing is changed in place and
nothing is kept between calls, so a stateless HTTP interface can hold the positions in the
browser and send them back with each edit. Rows are addressed by their index in the batch
(0-based). Every row an operation produces passes the same field checks as a 346 detail record
(``engine.pmc.positions.checks.check_detail``); a refused edit raises ``EditRefused`` with a
reason code, the row and the field, and changes nothing.

Operations: ``add_contracts`` (available contracts into the list, quantity 0 unless given),
``set_quantity``, ``modify_positions`` (firm, account, account type, basket), ``add_stock`` (a
stock that is not in the set; refused with ``STOCK_IN_SET`` when the set prices it for that
account type), ``delete_positions`` and ``select_positions`` (the list's filter).

A zero quantity is allowed while editing (a contract enters the list with quantity 0) and rejected
when the positions are computed (``ZERO_QUANTITY``). Changing the account type keeps the contract;
when the set has no such instrument for the new type, the calculation reports it as an invalid
series. A basket id applies to stocks only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.errors import InputRejected, Location
from engine.pmc.contracts import Contract
from engine.pmc.positions.checks import MAX_QUANTITY, RecordRejected, check_detail
from engine.pmc.positions.model import (
    BAD_VALUE,
    MISSING_FIELD,
    BatchColumns,
    IntArray,
    PositionBatch,
    firm_id,
)
from engine.pmc.theo.model import STRIKE_SCALE, TheoSet

STOCK_IN_SET = "STOCK_IN_SET"
NO_SUCH_ROW = "NO_SUCH_ROW"


class EditRefused(InputRejected):
    """An edit that would make a position invalid; ``location.line`` is the 1-based row."""


def empty_positions() -> PositionBatch:
    """A batch with no positions."""
    return BatchColumns().batch()


def _number_text(value: float) -> str:
    text = repr(float(value))
    return f"{value:.12f}" if "e" in text else text


def _texts(p: PositionBatch, i: int) -> dict[str, str]:
    """The fields of row ``i`` as the text a detail record would carry."""
    q = float(p.quantity[i])
    return {
        "firm": str(p.firm[i]),
        "account": str(p.account[i]),
        "put_call": str(p.put_call[i]),
        "symbol": str(p.symbol[i]),
        "exercise_style": str(p.exercise_style[i]),
        "settlement_style": str(p.settlement_style[i]),
        "series_date": str(p.series_date[i]),
        "expiration_date": str(p.expiration_date[i]),
        "strike": _number_text(float(p.strike[i])),
        "function": "S" if q < 0 else "L",
        "security_type": str(p.security_type[i]),
        "market_value": _number_text(float(p.market_value[i])),
        "net_position": str(int(abs(q))),
        "account_type": str(p.account_type[i]),
        "basket_id": str(p.basket_id[i]),
    }


def _checked(texts: dict[str, str], line: int, row: int) -> dict[str, object]:
    """One row through the detail-record checks (zero allowed), or ``EditRefused``."""
    if texts["basket_id"].strip() and texts["security_type"].strip().upper() != "S":
        raise EditRefused(
            BAD_VALUE,
            f"BASKET ID={texts['basket_id']!r}: only stocks go into baskets "
            f"(row {row + 1} is {texts['security_type']} {texts['symbol']})",
            Location(line=row + 1, field="BASKET ID"),
        )
    try:
        t = texts
        return check_detail(
            line=line,
            firm=t["firm"],
            account=t["account"],
            put_call=t["put_call"],
            symbol=t["symbol"],
            exercise_style=t["exercise_style"],
            settlement_style=t["settlement_style"],
            series_date=t["series_date"],
            expiration_date=t["expiration_date"],
            strike=t["strike"],
            function=t["function"],
            security_type=t["security_type"],
            market_value=t["market_value"],
            net_position=t["net_position"],
            account_type=t["account_type"],
            basket_id=t["basket_id"],
            allow_zero=True,
        )
    except RecordRejected as exc:
        raise EditRefused(
            exc.reason, f"row {row + 1}: {exc.message}", Location(line=row + 1, field=exc.field)
        ) from None


def _quantity_parts(quantity: int, row: int) -> tuple[str, str]:
    if isinstance(quantity, bool) or not float(quantity).is_integer():
        raise EditRefused(
            BAD_VALUE,
            f"quantity={quantity!r} is not a whole number",
            Location(line=row + 1, field="NET POSITION"),
        )
    q = int(quantity)
    if abs(q) > MAX_QUANTITY:
        raise EditRefused(
            BAD_VALUE,
            f"quantity={quantity!r} is too large (at most {MAX_QUANTITY})",
            Location(line=row + 1, field="NET POSITION"),
        )
    return ("S" if q < 0 else "L"), str(abs(q))


def _rows(p: PositionBatch, rows: Sequence[int]) -> list[int]:
    out = []
    for r in rows:
        if isinstance(r, bool) or not 0 <= int(r) < len(p):
            raise EditRefused(
                NO_SUCH_ROW,
                f"row {r!r} is not in the list (0..{len(p) - 1})",
                Location(field="row"),
            )
        out.append(int(r))
    return out


def _rebuild(p: PositionBatch, changed: dict[int, dict[str, object]]) -> PositionBatch:
    """``p`` with the rows in ``changed`` replaced by checked rows."""
    if not changed:
        return p
    cols = BatchColumns()
    for i in range(len(p)):
        row = changed.get(i)
        if row is None:
            row = {name: getattr(p, name)[i] for name in cols.values}
        cols.add(row)
    return cols.batch()


def _next_line(p: PositionBatch) -> int:
    return int(p.line.max()) + 1 if len(p) else 1


def add_contracts(
    positions: PositionBatch,
    contracts: Sequence[Contract],
    *,
    firm: str,
    account: str = "",
    quantity: int = 0,
) -> PositionBatch:
    """``positions`` plus one row per contract (its account type) for ``firm``/``account``.

    ``quantity`` is signed (long +, short -), 0 by default like the calculator's list.
    """
    function, net = _quantity_parts(quantity, len(positions))
    cols = BatchColumns()
    line = _next_line(positions)
    for k, c in enumerate(contracts):
        texts = {
            "firm": firm,
            "account": account,
            "put_call": c.put_call,
            "symbol": c.symbol,
            "exercise_style": c.exercise_style,
            "settlement_style": c.settlement_style,
            "series_date": c.series_date,
            "expiration_date": c.expiration_date,
            "strike": _number_text(c.strike),
            "function": function,
            "security_type": c.security_type,
            "market_value": "",
            "net_position": net,
            "account_type": c.account_type,
            "basket_id": "",
        }
        cols.add(_checked(texts, line + k, len(positions) + k))
    return PositionBatch.concat([positions, cols.batch()])


def set_quantity(positions: PositionBatch, rows: Sequence[int], quantity: int) -> PositionBatch:
    """The rows' quantity set to ``quantity`` (signed: long +, short -)."""
    changed: dict[int, dict[str, object]] = {}
    for r in _rows(positions, rows):
        texts = _texts(positions, r)
        texts["function"], texts["net_position"] = _quantity_parts(quantity, r)
        changed[r] = _checked(texts, int(positions.line[r]), r)
    return _rebuild(positions, changed)


def modify_positions(
    positions: PositionBatch,
    rows: Sequence[int],
    *,
    firm: str | None = None,
    account: str | None = None,
    account_type: str | None = None,
    basket_id: str | None = None,
) -> PositionBatch:
    """The rows with the given fields changed (``None`` keeps a field; ``basket_id=''`` clears
    the basket). Only these four fields can be modified; the contract stays as it is."""
    changed: dict[int, dict[str, object]] = {}
    for r in _rows(positions, rows):
        texts = _texts(positions, r)
        for name, value in (
            ("firm", firm),
            ("account", account),
            ("account_type", account_type),
            ("basket_id", basket_id),
        ):
            if value is not None:
                texts[name] = value
        changed[r] = _checked(texts, int(positions.line[r]), r)
    return _rebuild(positions, changed)


def stock_in_set(theo: TheoSet, account_type: str, symbol: str) -> bool:
    """Whether ``theo`` prices stock ``symbol`` for ``account_type``."""
    hit = (
        (theo.security_type == "S")
        & (theo.account_type == account_type.strip().upper())
        & (theo.symbol == symbol.strip().upper())
    )
    return bool(hit.any())


def add_stock(
    positions: PositionBatch,
    theo: TheoSet,
    *,
    firm: str,
    account: str,
    account_type: str,
    symbol: str,
    price: float,
    quantity: int,
    basket_id: str = "",
) -> PositionBatch:
    """``positions`` plus a stock that is not in the set, valued at ``price`` (USD per share).

    Account type, symbol, price (> 0) and quantity (non-zero, signed) are required. Refused with
    ``STOCK_IN_SET`` when the set has the stock for that account type: it is then added from the
    available contracts, at the set's price.
    """
    row = len(positions)
    for name, value in (("account_type", account_type), ("symbol", symbol)):
        if not value.strip():
            raise EditRefused(
                MISSING_FIELD, f"{name} is required", Location(line=row + 1, field=name)
            )
    if not (np.isfinite(price) and price > 0):
        raise EditRefused(
            BAD_VALUE,
            f"price={price!r} must be a positive USD amount",
            Location(line=row + 1, field="price"),
        )
    if quantity == 0:
        raise EditRefused(
            MISSING_FIELD,
            "quantity is required (not zero)",
            Location(line=row + 1, field="quantity"),
        )
    if stock_in_set(theo, account_type, symbol):
        raise EditRefused(
            STOCK_IN_SET,
            f"stock {symbol.strip().upper()} is in the P&L set for account type "
            f"{account_type.strip().upper()}: add it from the available contracts",
            Location(line=row + 1, field="symbol"),
        )
    function, net = _quantity_parts(quantity, row)
    texts = {
        "firm": firm,
        "account": account,
        "put_call": "",
        "symbol": symbol,
        "exercise_style": "",
        "settlement_style": "",
        "series_date": "",
        "expiration_date": "",
        "strike": "0",
        "function": function,
        "security_type": "S",
        "market_value": _number_text(price),
        "net_position": net,
        "account_type": account_type,
        "basket_id": basket_id,
    }
    cols = BatchColumns()
    cols.add(_checked(texts, _next_line(positions), row))
    return PositionBatch.concat([positions, cols.batch()])


def delete_positions(positions: PositionBatch, rows: Sequence[int] | None = None) -> PositionBatch:
    """``positions`` without the given rows; ``None`` deletes all of them."""
    if rows is None:
        return positions.take(np.zeros(0, dtype=np.int64))
    keep = np.ones(len(positions), dtype=bool)
    keep[_rows(positions, rows)] = False
    return positions.take(keep)


def select_positions(
    positions: PositionBatch,
    *,
    theo: TheoSet | None = None,
    firm: str = "",
    account: str = "",
    account_type: str = "",
    product_group: str = "",
    class_group: str = "",
    underlying: str = "",
    security_type: str = "",
    symbol: str = "",
    series_date: str = "",
    expiration_date: str = "",
    put_call: str = "",
    strike: float | None = None,
) -> IntArray:
    """Rows [k] of the positions matching every given criterion ('' or None: any).

    Product group, class group and underlying come from the set (``theo``); a position the set
    does not have matches none of them.
    """
    p = positions
    mask = np.ones(len(p), dtype=bool)
    if firm:
        mask &= p.firm == (firm_id(firm.strip()) if firm.strip().isdigit() else firm.strip())
    for name, value in (
        ("account", account.strip()),
        ("account_type", account_type.strip().upper()),
        ("security_type", security_type.strip().upper()),
        ("symbol", symbol.strip().upper()),
        ("series_date", series_date.strip()),
        ("expiration_date", expiration_date.strip()),
        ("put_call", put_call.strip().upper()),
    ):
        if value:
            mask &= getattr(p, name) == value
    if strike is not None:
        mask &= np.rint(p.strike * STRIKE_SCALE) == round(strike * STRIKE_SCALE)
    wanted = [
        (name, value.strip().upper() if name != "product_group" else value.strip())
        for name, value in (
            ("product_group", product_group),
            ("class_group", class_group),
            ("underlying", underlying),
        )
        if value.strip()
    ]
    if wanted:
        if theo is None:
            raise ValueError("product group, class group and underlying need the theo set")
        found = theo.lookup_columns(
            p.account_type, p.symbol, p.security_type, p.put_call, p.series_date, p.strike
        )
        safe = np.maximum(found, 0)
        for name, value in wanted:
            column = getattr(theo, name)
            mask &= (found >= 0) & (column[safe] == value if theo.size else False)
    rows: IntArray = np.flatnonzero(mask).astype(np.int64)
    return rows
