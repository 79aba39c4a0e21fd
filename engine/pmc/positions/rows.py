"""What-if positions given as plain records (a JSON body) -> a ``PositionBatch`` and problems.

Each row goes through the same field checks as a 346 detail record
(``engine.pmc.positions.checks``), so a position is accepted or rejected alike from either source.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import numpy as np

from engine.pmc.positions.checks import RecordRejected, check_detail
from engine.pmc.positions.model import REJECTED, BatchColumns, PositionBatch, PositionProblem


def _text(row: dict[str, object], name: str) -> str:
    """A field of a row as the text of a 346 field ('' when absent)."""
    v = row.get(name)
    if type(v) is str:
        return v
    if isinstance(v, float) and "e" in repr(v):
        # 1e-06 is a number, but not in the form a 346 field takes
        return f"{v:.12f}"
    return "" if v is None else str(v)


def positions_from_rows(
    rows: Sequence[dict[str, object]], *, allow_zero: bool = False
) -> tuple[PositionBatch, list[PositionProblem]]:
    """What-if positions given as plain records (e.g. a JSON body) -> batch + problems.

    Each row: ``firm``, ``account`` (optional), ``account_type``, ``symbol``, ``security_type``,
    ``put_call``, ``series_date``, ``strike``, ``quantity`` (signed: long +, short -), and
    optionally ``market_value``, ``basket_id``, ``exercise_style``, ``settlement_style``,
    ``expiration_date``. Row i is reported as line i + 1. ``allow_zero`` accepts a zero
    quantity (positions being edited, not computed).
    """
    cols = BatchColumns()
    problems: list[PositionProblem] = []
    for i, row in enumerate(rows):
        line = i + 1
        warnings: list[PositionProblem] = []
        text = partial(_text, row)
        try:
            qty_raw = row.get("quantity")
            if isinstance(qty_raw, bool) or not isinstance(qty_raw, (int, float, str)):
                raise RecordRejected(
                    "BAD_VALUE", "quantity", repr(qty_raw), "quantity must be a number"
                )
            qty = float(qty_raw)
            if not np.isfinite(qty) or qty != int(qty):
                raise RecordRejected(
                    "BAD_VALUE", "quantity", str(qty_raw), "quantity must be whole"
                )
            checked = check_detail(
                line=line,
                firm=text("firm"),
                account=text("account"),
                put_call=text("put_call"),
                symbol=text("symbol"),
                exercise_style=text("exercise_style"),
                settlement_style=text("settlement_style"),
                series_date=text("series_date"),
                expiration_date=text("expiration_date"),
                strike=text("strike") or "0",
                function="S" if qty < 0 else "L",
                security_type=text("security_type"),
                market_value=text("market_value"),
                net_position=str(abs(int(qty))),
                account_type=text("account_type"),
                basket_id=text("basket_id"),
                warnings=warnings,
                allow_zero=allow_zero,
            )
        except (RecordRejected, ValueError, OverflowError) as exc:
            if isinstance(exc, RecordRejected):
                problems.append(
                    PositionProblem(line, REJECTED, exc.reason, exc.field, exc.value, exc.message)
                )
            else:
                problems.append(
                    PositionProblem(line, REJECTED, "BAD_VALUE", "quantity", None, str(exc))
                )
            continue
        cols.add(checked)
        problems.extend(warnings)
    return cols.batch(), problems
