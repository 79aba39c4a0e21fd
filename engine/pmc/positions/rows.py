"""What-if positions given as plain records (a JSON body) -> a ``PositionBatch`` and problems.

Each row goes through the same field checks as a 346 detail record
(``engine.pmc.positions.checks``), so a position is accepted or rejected alike from either source.

A what-if request is a few dozen rows in their plain form (``"security_type": "O"``, an ISO date,
a strike like ``6000``), and the general checks cost about a third of answering it. ``_fast_row``
accepts such a row with a handful of exact comparisons and remembered dates and numbers; any value
that is not in its plain form, and any row that would be rejected or warned about, goes through
``check_detail`` as before, so the accepted rows, the rejections and their messages are those of
the general checks (a property test holds the two paths equal on hostile rows too).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

from engine.pmc.positions.checks import (
    _ACCOUNT_RE,
    _SYMBOL_RE,
    MAX_QUANTITY,
    RecordRejected,
    _decimal,
    check_detail,
    parse_date,
)
from engine.pmc.positions.model import (
    _BATCH_FIELDS,
    ACCOUNT_TYPES,
    FIRM_ID_DIGITS,
    OPTION_TYPES,
    REJECTED,
    SECURITY_TYPES,
    BatchColumns,
    PositionBatch,
    PositionProblem,
    firm_id,
)

#: the text fields of a row, in the order ``positions_from_rows`` unpacks them
_TEXT_FIELDS = (
    "firm",
    "account",
    "put_call",
    "symbol",
    "exercise_style",
    "settlement_style",
    "series_date",
    "expiration_date",
    "strike",
    "security_type",
    "market_value",
    "account_type",
    "basket_id",
)


def _text(v: object) -> str:
    """A value of a row as the text of a 346 field ('' when absent)."""
    if isinstance(v, float) and "e" in repr(v):
        # 1e-06 is a number, but not in the form a 346 field takes
        return f"{v:.12f}"
    return "" if v is None else str(v)


_V = TypeVar("_V")
_MEMO_LIMIT = 4096  # remembered texts per kind; the memo starts afresh when full
_dates: dict[str, str] = {}
_numbers: dict[str, float] = {}
_symbols: dict[str, str] = {}
_firms: dict[str, str] = {}
_PLAIN_PUT_CALL = ("", "C", "P")
_PLAIN_EXERCISE = ("", "A", "E")
_PLAIN_SETTLEMENT = ("", "O", "C")
_SERIES_REQUIRED = ("O", "I", "F", "W")


def _remember(memo: dict[str, _V], text: str, value: _V) -> None:
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    memo[text] = value


def _date(text: str) -> str | None:
    """``parse_date(text)``, or None where it would reject the text."""
    iso = _dates.get(text)
    if iso is None:
        try:
            iso = parse_date(text, "")
        except RecordRejected:
            return None
        _remember(_dates, text, iso)
    return iso


def _number(text: str) -> float | None:
    """``_decimal(text, ...)`` without implied decimals, or None where it would reject it."""
    value = _numbers.get(text)
    if value is None:
        try:
            value = _decimal(text, "")
        except RecordRejected:
            return None
        _remember(_numbers, text, value)
    return value


def _fast_row(row: dict[str, object], line: int, allow_zero: bool) -> tuple[object, ...] | None:
    """The checked row (in ``_BATCH_FIELDS`` order) of a row in its plain form that passes every
    check without a warning; None for anything else (``check_detail`` decides those)."""
    get = row.get
    firm = get("firm")
    firm_n = _firms.get(firm) if type(firm) is str else None
    if firm_n is None:
        if not (
            type(firm) is str
            and 0 < len(firm) <= FIRM_ID_DIGITS
            and firm.isascii()
            and firm.isdigit()
        ):
            return None
        firm_n = firm_id(firm)
        _remember(_firms, firm, firm_n)
    sectype = get("security_type")
    account_type = get("account_type")
    put_call = get("put_call", "")
    exercise = get("exercise_style", "")
    settlement = get("settlement_style", "")
    basket = get("basket_id", "")
    if (
        type(sectype) is not str
        or sectype not in SECURITY_TYPES
        or type(account_type) is not str
        or account_type not in ACCOUNT_TYPES
        or (put_call is not None and put_call not in _PLAIN_PUT_CALL)
        or (exercise is not None and exercise not in _PLAIN_EXERCISE)
        or (settlement is not None and settlement not in _PLAIN_SETTLEMENT)
        or (basket is not None and basket != "")
    ):
        return None  # (a set or dict is never in these tuples: unhashable values fall back)
    pc = put_call or ""
    if sectype in OPTION_TYPES:
        if not pc or (sectype == "W" and pc != "C"):
            return None
    elif pc:
        return None
    account = get("account")
    if account is None:
        account = ""
    elif type(account) is not str:
        return None
    account = account.strip()
    if not _ACCOUNT_RE.match(account):
        return None
    symbol = get("symbol")
    sym = _symbols.get(symbol) if type(symbol) is str else None
    if sym is None:
        if type(symbol) is not str or not symbol.isascii():
            return None
        sym = symbol.strip().upper()
        if not sym or not _SYMBOL_RE.match(sym):
            return None
        _remember(_symbols, symbol, sym)
    series_t = get("series_date")
    expiry_t = get("expiration_date")
    if (series_t is not None and type(series_t) is not str) or (
        expiry_t is not None and type(expiry_t) is not str
    ):
        return None
    series = _date(series_t or "")
    expiry = _date(expiry_t or "")
    if series is None or expiry is None or (not series and sectype in _SERIES_REQUIRED):
        return None
    strike_raw = get("strike")
    if type(strike_raw) is str:
        strike = _number(strike_raw or "0")
    elif type(strike_raw) is int:
        strike = float(strike_raw) if 0 <= strike_raw < 1 << 53 else None
    elif type(strike_raw) is float:
        text = repr(strike_raw)  # what the general checks read, when it has no exponent
        strike = strike_raw if text[0].isdigit() and "e" not in text else None
    elif strike_raw is None:
        strike = 0.0
    else:
        return None  # bools, lists and the rest: the general checks
    if strike is None:
        return None
    if sectype in OPTION_TYPES:
        if not strike > 0:
            return None
    elif strike != 0.0:
        return None  # a warning
    if sectype in ("S", "X"):
        series = ""
    mv_raw = get("market_value")
    if mv_raw is None or mv_raw == "":
        mv = 0.0
    elif sectype == "S" and type(mv_raw) is str:
        mv_n = _number(mv_raw)
        if mv_n is None:
            return None
        mv = mv_n
    else:
        return None
    qty_raw = get("quantity")
    if type(qty_raw) is not int or not -MAX_QUANTITY <= qty_raw <= MAX_QUANTITY:
        return None
    if qty_raw == 0 and not allow_zero:
        return None
    return (
        line,
        firm_n,
        account,
        account_type,
        pc,
        sym,
        exercise or "",
        settlement or "",
        series,
        expiry,
        strike,
        sectype,
        mv,
        float(qty_raw),
        "",
    )


def positions_from_rows(
    rows: Sequence[dict[str, object]], *, allow_zero: bool = False, fast: bool = True
) -> tuple[PositionBatch, list[PositionProblem]]:
    """What-if positions given as plain records (e.g. a JSON body) -> batch + problems.

    Each row: ``firm``, ``account`` (optional), ``account_type``, ``symbol``, ``security_type``,
    ``put_call``, ``series_date``, ``strike``, ``quantity`` (signed: long +, short -), and
    optionally ``market_value``, ``basket_id``, ``exercise_style``, ``settlement_style``,
    ``expiration_date``. Row i is reported as line i + 1. ``allow_zero`` accepts a zero
    quantity (positions being edited, not computed). ``fast=False`` sends every row through
    the general checks (the peer of the fast path in tests).
    """
    accepted: list[tuple[object, ...]] = []  # checked rows in ``_BATCH_FIELDS`` order
    problems: list[PositionProblem] = []
    for i, row in enumerate(rows):
        line = i + 1
        if fast:
            plain = _fast_row(row, line, allow_zero)
            if plain is not None:
                accepted.append(plain)
                continue
        warnings: list[PositionProblem] = []
        try:
            (
                firm,
                account,
                put_call,
                symbol,
                exercise_style,
                settlement_style,
                series_date,
                expiration_date,
                strike,
                security_type,
                market_value,
                account_type,
                basket_id,
            ) = [v if type(v) is str else _text(v) for v in map(row.get, _TEXT_FIELDS)]
            qty_raw = row.get("quantity")
            if isinstance(qty_raw, bool) or not isinstance(qty_raw, (int, float, str)):
                raise RecordRejected(
                    "BAD_VALUE", "quantity", repr(qty_raw), "quantity must be a number"
                )
            qty = float(qty_raw)
            if not math.isfinite(qty) or qty != int(qty):
                raise RecordRejected(
                    "BAD_VALUE", "quantity", str(qty_raw), "quantity must be whole"
                )
            checked = check_detail(
                line=line,
                firm=firm,
                account=account,
                put_call=put_call,
                symbol=symbol,
                exercise_style=exercise_style,
                settlement_style=settlement_style,
                series_date=series_date,
                expiration_date=expiration_date,
                strike=strike or "0",
                function="S" if qty < 0 else "L",
                security_type=security_type,
                market_value=market_value,
                net_position=str(abs(int(qty))),
                account_type=account_type,
                basket_id=basket_id,
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
        accepted.append(tuple(checked[name] for name in _BATCH_FIELDS))
        problems.extend(warnings)
    cols = BatchColumns()
    if accepted:
        for name, column in zip(_BATCH_FIELDS, zip(*accepted, strict=True), strict=True):
            cols.values[name] = list(column)
    return cols.batch(), problems
