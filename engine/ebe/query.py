"""Queries over outcomes: filters, and the stable JSON and CSV forms.

``Filters.parse(mapping)`` validates a query's filters (from a ``*.query.json`` file, an AMQP body
or the command line) and raises ``InputRejected`` naming the bad one; ``select`` picks the rows of
one firm that match, vectorised; ``result_rows`` turns them into the row objects of the JSON form,
``render_json`` / ``render_csv`` into bytes. Decimal amounts are written as JSON strings
("45.66") so no reader turns them into binary floats; quantities are JSON integers.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.ebe.money import format_ticks, parse_ticks
from engine.ebe.outcome import CONTRARY, MONEYNESS, Outcomes
from engine.ebe.positions import ACCOUNT_TYPES, PUT_CALL, ExpiringSet
from engine.errors import InputRejected

SCHEMA_VERSION = 1
ROW_COLUMNS = (
    "firm",
    "account",
    "account_type",
    "symbol",
    "underlying",
    "put_call",
    "strike",
    "expiration_date",
    "multiplier",
    "long_qty",
    "short_qty",
    "close",
    "removed",
    "itm_amount",
    "moneyness",
    "auto_exercise_qty",
    "contrary_action",
    "contrary_qty",
    "final_exercise_qty",
    "dollar_extension",
)
FILTER_KEYS = (
    "expiration_date",
    "account",
    "account_type",
    "symbol",
    "underlying",
    "put_call",
    "moneyness",
    "min_itm_amount",
    "contrary_only",
)


@dataclass(frozen=True)
class Filters:
    expiration_date: str
    account: str | None = None
    account_type: str | None = None
    symbol: str | None = None
    underlying: str | None = None
    put_call: str | None = None
    moneyness: str | None = None
    min_itm_amount: int | None = None
    """ticks"""
    contrary_only: bool = False

    @classmethod
    def parse(cls, raw: Mapping[str, Any], *, allow: Sequence[str] = ()) -> Filters:
        """Validate a query object. Unknown keys (other than ``allow``) are ``LAYOUT``."""
        unknown = sorted(set(raw) - set(FILTER_KEYS) - set(allow) - {"schema_version"})
        if unknown:
            raise InputRejected("LAYOUT", f"unknown query key(s): {', '.join(unknown)}")

        def text(key: str) -> str | None:
            value = raw.get(key)
            if value is None or value == "":
                return None
            if not isinstance(value, str):
                raise InputRejected("LAYOUT", f"{key}={value!r} must be a string")
            return value.strip()

        day = text("expiration_date")
        if day is None:
            raise InputRejected("MISSING_FIELD", "expiration_date is required")
        try:
            if len(day) != 10:
                raise ValueError
            dt.date.fromisoformat(day)
        except ValueError:
            raise InputRejected("LAYOUT", f"expiration_date={day!r} is not YYYY-MM-DD") from None
        account_type = text("account_type")
        if account_type is not None:
            account_type = account_type.upper()
            if account_type not in ACCOUNT_TYPES:
                raise InputRejected("LAYOUT", f"account_type={account_type!r} is not C, F or M")
        put_call = text("put_call")
        if put_call is not None:
            put_call = put_call.upper()
            if put_call not in PUT_CALL:
                raise InputRejected("LAYOUT", f"put_call={put_call!r} is not C or P")
        moneyness = text("moneyness")
        if moneyness is not None:
            moneyness = moneyness.upper()
            if moneyness not in MONEYNESS:
                raise InputRejected("LAYOUT", f"moneyness={moneyness!r} is not ITM, ATM or OTM")
        min_itm: int | None = None
        raw_min = raw.get("min_itm_amount")
        if raw_min is not None and raw_min != "":
            if isinstance(raw_min, bool) or not isinstance(raw_min, str | int | float):
                raise InputRejected("LAYOUT", f"min_itm_amount={raw_min!r} is not a decimal")
            try:
                # A JSON number is read through its text, so 0.01 stays exactly 0.01.
                min_itm = parse_ticks(raw_min if isinstance(raw_min, str) else repr(raw_min))
            except ValueError:
                raise InputRejected(
                    "LAYOUT", f"min_itm_amount={raw_min!r} is not a decimal (4 decimals at most)"
                ) from None
        contrary = raw.get("contrary_only", False)
        if isinstance(contrary, str) and contrary.lower() in ("true", "false", "y", "n"):
            contrary = contrary.lower() in ("true", "y")
        if not isinstance(contrary, bool):
            raise InputRejected("LAYOUT", f"contrary_only={contrary!r} is not true or false")
        return cls(
            expiration_date=day,
            account=text("account"),
            account_type=account_type,
            symbol=text("symbol"),
            underlying=text("underlying"),
            put_call=put_call,
            moneyness=moneyness,
            min_itm_amount=min_itm,
            contrary_only=contrary,
        )


def select(
    positions: ExpiringSet, outcomes: Outcomes, firm: str, filters: Filters
) -> npt.NDArray[np.intp]:
    """Rows of ``firm`` matching ``filters``, in the set's order. Never another firm's rows."""
    mask = positions.firm == firm
    for column in ("account", "account_type", "symbol", "underlying", "put_call"):
        wanted = getattr(filters, column)
        if wanted is not None:
            mask &= getattr(positions, column) == wanted
    if filters.moneyness is not None:
        mask &= outcomes.moneyness == MONEYNESS.index(filters.moneyness)
    if filters.min_itm_amount is not None:
        mask &= outcomes.itm_amount >= filters.min_itm_amount
    if filters.contrary_only:
        mask &= outcomes.contrary_action != 0
    return np.flatnonzero(mask)


def result_rows(
    positions: ExpiringSet, outcomes: Outcomes, rows: npt.NDArray[np.intp]
) -> list[dict[str, Any]]:
    """The row objects of the JSON form, for ``rows``."""
    day = positions.expiration_date.isoformat()
    out = []
    for i in rows.tolist():
        out.append(
            {
                "firm": positions.firm[i],
                "account": positions.account[i],
                "account_type": positions.account_type[i],
                "symbol": positions.symbol[i],
                "underlying": positions.underlying[i],
                "put_call": positions.put_call[i],
                "strike": format_ticks(int(positions.strike[i])),
                "expiration_date": day,
                "multiplier": int(positions.multiplier[i]),
                "long_qty": int(positions.long_qty[i]),
                "short_qty": int(positions.short_qty[i]),
                "close": format_ticks(int(positions.close[i])),
                "removed": "Y" if positions.removed[i] else "N",
                "itm_amount": format_ticks(int(outcomes.itm_amount[i])),
                "moneyness": MONEYNESS[int(outcomes.moneyness[i])],
                "auto_exercise_qty": int(outcomes.auto_exercise_qty[i]),
                "contrary_action": CONTRARY[int(outcomes.contrary_action[i])],
                "contrary_qty": int(outcomes.contrary_qty[i]),
                "final_exercise_qty": int(outcomes.final_exercise_qty[i]),
                "dollar_extension": format_ticks(int(outcomes.dollar_extension[i])),
            }
        )
    return out


def document(
    expiration_date: str,
    status: str,
    rows: list[dict[str, Any]],
    instructions: Sequence[Mapping[str, Any]] = (),
    problems: Sequence[str] = (),
) -> dict[str, Any]:
    """The stable JSON form of a query answer."""
    return {
        "schema_version": SCHEMA_VERSION,
        "expiration_date": expiration_date,
        "status": status,
        "rows": rows,
        "instructions": [dict(i) for i in instructions],
        "problems": list(problems),
    }


def render_json(doc: Mapping[str, Any]) -> bytes:
    return (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def render_csv(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """The rows as CSV with the columns of the JSON form (header always present)."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(ROW_COLUMNS)
    for row in rows:
        writer.writerow([_csv_safe(row[c]) for c in ROW_COLUMNS])
    return buffer.getvalue().encode("utf-8")


def _csv_safe(value: Any) -> str:
    # A cell starting with = + - @ would be run as a formula by a spreadsheet; amounts are
    # numbers and stay as they are, only text cells get the quote.
    text = str(value)
    if text[:1] in ("=", "+", "@", "\t", "\r") or (text[:1] == "-" and not _is_number(text)):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        parse_ticks(text)
    except ValueError:
        return False
    return True
