"""Positions as the page holds them (JSON rows) and the editing operations on them.

The page keeps the Selected Positions list; each edit sends the list and the operation, and the
answer is the new list, computed by the engine's pure editing functions
(``engine.pmc.editing``), so the rules (zero quantity while editing, baskets only on stocks, a
stock the set prices cannot be added as a stock not in the set) live in one place. Rows going
out carry, besides the fields of a 346 detail record, the product group, class group, underlying
and exchange the set gives them ('' when it has no such instrument).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.errors import InputRejected, Location
from engine.pmc.contracts import contract_at
from engine.pmc.editing import (
    EditRefused,
    add_contracts,
    add_stock,
    delete_positions,
    modify_positions,
    select_positions,
    set_quantity,
)
from engine.pmc.positions.model import INVALID_SERIES, PositionBatch, PositionFile
from engine.pmc.positions.rows import positions_from_rows
from engine.pmc.report import margin_for_file
from engine.pmc.theo.model import TheoSet

FILTER_FIELDS = (
    "firm",
    "account",
    "account_type",
    "product_group",
    "class_group",
    "underlying",
    "security_type",
    "symbol",
    "series_date",
    "expiration_date",
    "put_call",
    "strike",
)


def rows_of(
    batch: PositionBatch, theo: TheoSet | None, keep: list[int] | None = None
) -> list[dict[str, Any]]:
    """The positions as JSON rows (every row, or those in ``keep``), with their set columns."""
    b = batch
    index = list(range(len(b))) if keep is None else keep
    found = (
        theo.lookup_columns(
            b.account_type, b.symbol, b.security_type, b.put_call, b.series_date, b.strike
        )
        if theo is not None and len(b)
        else np.full(len(b), -2, dtype=np.int64)
    )
    has_exchange = theo is not None and theo.exchange.shape[0] == theo.size
    out: list[dict[str, Any]] = []
    for i in index:
        row = int(found[i])
        hit = theo is not None and row >= 0
        out.append(
            {
                "line": int(b.line[i]),
                "firm": str(b.firm[i]),
                "account": str(b.account[i]),
                "account_type": str(b.account_type[i]),
                "symbol": str(b.symbol[i]),
                "security_type": str(b.security_type[i]),
                "put_call": str(b.put_call[i]),
                "series_date": str(b.series_date[i]),
                "expiration_date": str(b.expiration_date[i]),
                "strike": float(b.strike[i]),
                "quantity": int(b.quantity[i]),
                "market_value": float(b.market_value[i]),
                "basket_id": str(b.basket_id[i]),
                "exercise_style": str(b.exercise_style[i]),
                "settlement_style": str(b.settlement_style[i]),
                "product_group": str(theo.product_group[row]) if hit and theo else "",
                "class_group": str(theo.class_group[row]) if hit and theo else "",
                "underlying": str(theo.underlying[row]) if hit and theo else "",
                "exchange": str(theo.exchange[row]) if hit and theo and has_exchange else "",
                "in_set": bool(hit),
            }
        )
    return out


def batch_of(rows: list[dict[str, object]]) -> PositionBatch:
    """The page's list as a batch (zero quantities allowed); a bad row is refused (422)."""
    batch, problems = positions_from_rows(rows, allow_zero=True)
    bad = [p for p in problems if p.kind != "warning"]
    if bad:
        p = bad[0]
        where = Location(line=p.line, field=p.field)
        raise EditRefused(p.reason, f"row {p.line}: {p.message}", where)
    return batch


def parsed_file(rows: list[dict[str, object]], *, allow_zero: bool = False) -> PositionFile:
    """JSON positions as if they were the detail records of a 346 file. ``allow_zero``: the
    list being saved as it is (a saved file may still hold quantities to fill in); a bad row is
    then refused (422) rather than left out of the file."""
    if allow_zero:
        batch = batch_of(rows)
        return PositionFile("json", None, None, batch, [], len(rows))
    batch, problems = positions_from_rows(rows)
    return PositionFile(
        format="json",
        header=None,
        trailer=None,
        positions=batch,
        problems=problems,
        records=len(rows),
    )


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def apply_edit(theo: TheoSet, edit: dict[str, Any]) -> dict[str, Any]:
    """Run one edit (``schemas.EditIn``) and answer ``schemas.EditDoc``; raises InputRejected."""
    positions = batch_of(edit.get("positions") or [])
    op = edit.get("op")
    rows = edit.get("rows")
    if rows is not None and not (
        isinstance(rows, list) and all(isinstance(r, int) and not isinstance(r, bool) for r in rows)
    ):
        raise InputRejected("BAD_VALUE", "rows must be a list of integers", Location(field="rows"))
    selected: list[int] | None = None
    if op == "add_contracts":
        picked = []
        for r in rows or []:
            if not 0 <= r < theo.size:
                raise EditRefused(
                    "NO_SUCH_ROW",
                    f"row {r} is not an instrument of the set",
                    Location(field="rows"),
                )
            picked.append(contract_at(theo, r))
        positions = add_contracts(
            positions,
            picked,
            firm=str(edit.get("firm") or ""),
            account=str(edit.get("account") or ""),
            quantity=int(edit.get("quantity") or 0),
        )
    elif op == "set_quantity":
        positions = set_quantity(positions, rows or [], int(edit.get("quantity") or 0))
    elif op == "modify":
        positions = modify_positions(
            positions,
            rows or [],
            firm=_text(edit.get("firm")),
            account=_text(edit.get("account")),
            account_type=_text(edit.get("account_type")),
            basket_id=_text(edit.get("basket_id")),
        )
    elif op == "add_stock":
        price = edit.get("price")
        positions = add_stock(
            positions,
            theo,
            firm=str(edit.get("firm") or ""),
            account=str(edit.get("account") or ""),
            account_type=str(edit.get("account_type") or ""),
            symbol=str(edit.get("symbol") or ""),
            price=float(price) if isinstance(price, (int, float)) else float("nan"),
            quantity=int(edit.get("quantity") or 0),
            basket_id=str(edit.get("basket_id") or ""),
        )
    elif op == "delete":
        positions = delete_positions(positions, rows)
    elif op == "select":
        flt = {k: str(v) for k, v in (edit.get("filter") or {}).items() if k in FILTER_FIELDS}
        strike_text = flt.pop("strike", "").strip()
        try:
            strike = float(strike_text) if strike_text else None
        except ValueError:
            raise InputRejected(
                "BAD_FILTER", f"strike={strike_text!r} is not a number", Location(field="strike")
            ) from None
        selected = [
            int(i) for i in select_positions(positions, theo=theo, strike=strike, **flt).tolist()
        ]
    else:
        raise InputRejected("BAD_VALUE", f"op={op!r} is not an edit", Location(field="op"))
    return {"positions": rows_of(positions, theo), "selected": selected}


def parsed_doc(parsed: PositionFile, theo: TheoSet) -> dict[str, object]:
    """A position file read for the editor: counts and problems as ``posgate margin`` finds them,
    and the positions the set can price (what Accept adds to the list)."""
    report = margin_for_file(parsed, theo)
    invalid = {p.line for p in report.problems if p.kind == INVALID_SERIES}
    b = parsed.positions
    keep = [i for i in range(len(b)) if int(b.line[i]) not in invalid]
    return {
        "theo_date": report.theo_date,
        "format": parsed.format,
        "counts": report.counts.as_dict(),
        "positions": rows_of(b, theo, keep),
        "problems": [p.as_dict() for p in report.problems],
    }
