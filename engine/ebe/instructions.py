"""Contrary instructions: reading them, judging each line, and which one counts.

An instruction is one line ``account, symbol, put_call, strike, expiration_date, action,
quantity`` of a CSV file or one object of an AMQP body. ``judge`` answers each line ``accepted``
or ``rejected`` with every reason that applies, in this order: ``MISSING_FIELD`` and ``LAYOUT``
(the line cannot be read; nothing else is checked), then ``NO_POSITIONS_LOADED`` (no set for the
date; the position checks cannot run), ``AFTER_CUTOFF``, ``UNKNOWN_POSITION``,
``QTY_EXCEEDS_LONG``. A line exactly at the cutoff instant is in time; one a microsecond later
is not.

``Effective`` holds the accepted instructions of a set in receipt order; the latest for a
(firm, account, series) replaces earlier ones and quantity 0 withdraws it (``latest_per_row``).
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import io
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.ebe.money import format_ticks, in_range, parse_ticks
from engine.ebe.positions import PUT_CALL, ExpiringSet, SeriesKey
from engine.errors import UnreadableInput

LAYOUT = "LAYOUT"
MISSING_FIELD = "MISSING_FIELD"
UNKNOWN_POSITION = "UNKNOWN_POSITION"
QTY_EXCEEDS_LONG = "QTY_EXCEEDS_LONG"
AFTER_CUTOFF = "AFTER_CUTOFF"
NO_POSITIONS_LOADED = "NO_POSITIONS_LOADED"
REASON_CODES = (
    LAYOUT,
    MISSING_FIELD,
    UNKNOWN_POSITION,
    QTY_EXCEEDS_LONG,
    AFTER_CUTOFF,
    NO_POSITIONS_LOADED,
)

EXERCISE = "EXERCISE"
DO_NOT_EXERCISE = "DO_NOT_EXERCISE"
ACTIONS = (EXERCISE, DO_NOT_EXERCISE)
ACTION_CODE = {EXERCISE: 0, DO_NOT_EXERCISE: 1}

FIELDS = ("account", "symbol", "put_call", "strike", "expiration_date", "action", "quantity")
MAX_LINES = 1_000_000


@dataclass(frozen=True)
class Instruction:
    """One line as sent (values stripped); ``line`` is the file line or 1-based list position."""

    line: int
    values: Mapping[str, str]


@dataclass(slots=True)
class Verdict:
    """The answer for one line. ``row`` is the set row it applies to when accepted."""

    line: int
    status: str  # "accepted" | "rejected"
    reasons: tuple[str, ...]
    details: tuple[str, ...]
    expiration_date: str
    key: SeriesKey | None
    action: str
    quantity: int
    row: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "line": self.line,
            "status": self.status,
            "reasons": list(self.reasons),
            "details": list(self.details),
        }


def read_instruction_csv(data: bytes, name: str = "instructions") -> list[Instruction]:
    """The lines of an instruction CSV (header with the columns of ``FIELDS``, any order).

    A file that is not UTF-8 CSV with that header is ``UnreadableInput`` (nothing to answer per
    line); everything else is judged line by line.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableInput(LAYOUT, f"{name}: not UTF-8 text (byte {exc.start})") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise UnreadableInput(LAYOUT, f"{name}: empty file") from None
    except csv.Error as exc:
        raise UnreadableInput(LAYOUT, f"{name}, line 1: {exc}") from None
    missing = [f for f in FIELDS if f not in header]
    if missing:
        raise UnreadableInput(
            LAYOUT,
            f"{name}, line 1: header lacks {', '.join(missing)} (expected {','.join(FIELDS)})",
        )
    where = {f: header.index(f) for f in FIELDS}
    out: list[Instruction] = []
    try:
        for values in reader:
            if not any(v.strip() for v in values):
                continue
            if len(out) >= MAX_LINES:
                raise UnreadableInput(LAYOUT, f"{name}: more than {MAX_LINES} lines")
            out.append(
                Instruction(
                    reader.line_num,
                    {f: values[i].strip() if i < len(values) else "" for f, i in where.items()},
                )
            )
    except csv.Error as exc:
        raise UnreadableInput(LAYOUT, f"{name}, line {reader.line_num}: {exc}") from None
    return out


def instructions_from_objects(items: Iterable[Any]) -> list[Instruction]:
    """Instructions from JSON objects (AMQP); line = position in the list, from 1. A non-object
    item becomes an empty line (answered ``MISSING_FIELD`` for every field)."""
    out = []
    for i, item in enumerate(items, start=1):
        values = {}
        if isinstance(item, Mapping):
            for f in FIELDS:
                v = item.get(f)
                values[f] = "" if v is None else str(v).strip()
        else:
            values = {f: "" for f in FIELDS}
        out.append(Instruction(i, values))
    return out


_FIELDS_OF = operator.itemgetter(*FIELDS)


def _layout(
    values: tuple[str, ...],
) -> tuple[list[str], list[str], int]:
    """(reasons, details) of what cannot be read in one line (its values in ``FIELDS`` order),
    and its strike in ticks."""
    _account, _symbol, pc, strike, day, action, qty = values
    reasons: list[str] = []
    details: list[str] = []
    ticks = 0
    if not all(values):
        reasons.append(MISSING_FIELD)
        details.extend(
            f"MISSING_FIELD: {f} is empty" for f, x in zip(FIELDS, values, strict=True) if not x
        )
    bad = []
    if pc and pc.upper() not in PUT_CALL:
        bad.append(f"put_call={pc!r} is not C or P")
    if strike:
        try:
            ticks = parse_ticks(strike)
            if ticks <= 0 or not in_range(ticks):
                raise ValueError
        except ValueError:
            bad.append(f"strike={strike!r} is not a price > 0 with at most 4 decimals")
    if day and _date(day) is None:
        bad.append(f"expiration_date={day!r} is not YYYY-MM-DD")
    if action and action.upper() not in ACTIONS:
        bad.append(f"action={action!r} is not EXERCISE or DO_NOT_EXERCISE")
    if qty and not (qty.isascii() and qty.isdigit() and len(qty) <= 12):
        bad.append(f"quantity={qty!r} is not a non-negative integer")
    if bad:
        reasons.append(LAYOUT)
        details.extend(f"LAYOUT: {b}" for b in bad)
    return reasons, details, ticks


@functools.lru_cache(maxsize=1024)
def _date(value: str) -> dt.date | None:
    if len(value) != 10:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def judge(
    lines: Sequence[Instruction],
    *,
    firm: str,
    received_at: dt.datetime,
    sets: Callable[[str], ExpiringSet | None],
    cutoff: Callable[[dt.date], dt.datetime],
) -> list[Verdict]:
    """Judge every line of one submission of ``firm`` received at ``received_at`` (aware).

    ``sets(date)`` is the loaded set of an expiration date (ISO text) or None; ``cutoff(date)``
    the instant after which instructions for that date are refused.
    """
    if received_at.tzinfo is None:
        raise ValueError("received_at must be an aware datetime")
    out: list[Verdict] = []
    append = out.append
    # Per expiration date once, not per line: the set, the cutoff and whether this submission
    # is after it (thousands of lines of one file share one or two dates).
    per_day: dict[str, tuple[ExpiringSet | None, bool, str]] = {}
    for ins in lines:
        values = _FIELDS_OF(ins.values)
        account, symbol, put_call, strike_text, day_text, action, quantity = values
        # Fast path: a line that reads cleanly (the same checks as ``_layout``, on the common
        # spellings) for a loaded date before its cutoff, a known position and a quantity
        # within the long. Anything else takes the full path below, which finds every reason.
        pc = _PUT_CALL_AS_SENT.get(put_call)
        known = per_day.get(day_text)
        if (
            known is not None
            and pc is not None
            and account
            and symbol
            and action in ACTION_CODE
            and quantity.isdigit()
            and len(quantity) <= 12
            and quantity.isascii()
        ):
            loaded, late, _ = known
            strike = _strike_ticks(strike_text)
            if loaded is not None and not late and strike:
                key: SeriesKey = (firm, account, symbol, pc, strike)
                row = loaded.index.get(key)
                qty = int(quantity)
                if row is not None and qty <= loaded.long_qty[row]:
                    append(Verdict(ins.line, "accepted", (), (), day_text, key, action, qty, row))
                    continue
        reasons, details, strike = _layout(values)
        action = action.upper()
        if reasons:
            append(
                Verdict(ins.line, "rejected", tuple(reasons), tuple(details), day_text, None, "", 0)
            )
            continue
        if known is None:
            day = _date(day_text)
            assert day is not None
            limit = cutoff(day)
            late = received_at > limit
            note = (
                f"AFTER_CUTOFF: received {received_at.isoformat()}, cutoff {limit.isoformat()}"
                if late
                else ""
            )
            known = (sets(day_text), late, note)
            per_day[day_text] = known
        loaded, late, late_note = known
        key = (firm, account, symbol, put_call.upper(), strike)
        qty = int(quantity)
        found: int | None = None
        if loaded is None:
            reasons.append(NO_POSITIONS_LOADED)
            details.append(f"NO_POSITIONS_LOADED: no expiring positions loaded for {day_text}")
        if late:
            reasons.append(AFTER_CUTOFF)
            details.append(late_note)
        if loaded is not None:
            found = loaded.index.get(key)
            if found is None:
                reasons.append(UNKNOWN_POSITION)
                details.append(f"UNKNOWN_POSITION: no expiring position {_series(key, day_text)}")
            else:
                long_qty = int(loaded.long_qty[found])
                if qty > long_qty:
                    reasons.append(QTY_EXCEEDS_LONG)
                    details.append(
                        f"QTY_EXCEEDS_LONG: quantity {qty} > long {long_qty} in "
                        f"{_series(key, day_text)}"
                    )
        status = "rejected" if reasons else "accepted"
        append(
            Verdict(
                ins.line,
                status,
                tuple(reasons),
                tuple(details),
                day_text,
                key,
                action,
                qty,
                found if status == "accepted" else None,
            )
        )
    return out


_PUT_CALL_AS_SENT = {"C": "C", "P": "P", "c": "C", "p": "P"}


@functools.lru_cache(maxsize=8192)
def _strike_ticks(text: str) -> int:
    """The strike of a line in ticks, 0 when it is not a valid strike (the full path then says
    why). Strikes repeat across the lines of a day, so the parse is cached."""
    try:
        ticks = parse_ticks(text)
    except ValueError:
        return 0
    return ticks if ticks > 0 and in_range(ticks) else 0


def _series(key: SeriesKey, day: str) -> str:
    return f"{key[1]} {key[2]} {key[3]} {format_ticks(key[4])} {day}"


@dataclass(frozen=True)
class Effective:
    """Accepted instructions of one set, oldest first; arrays of shape ``(k,)``."""

    row: npt.NDArray[np.int64]
    action: npt.NDArray[np.int8]
    """0 EXERCISE, 1 DO_NOT_EXERCISE"""
    quantity: npt.NDArray[np.int64]

    @classmethod
    def empty(cls) -> Effective:
        return cls(
            np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int8), np.zeros(0, dtype=np.int64)
        )

    @classmethod
    def of(
        cls, rows: Sequence[int], actions: Sequence[str], quantities: Sequence[int]
    ) -> Effective:
        return cls(
            np.asarray(rows, dtype=np.int64),
            np.asarray([ACTION_CODE[a] for a in actions], dtype=np.int8),
            np.asarray(quantities, dtype=np.int64),
        )


def latest_per_row(
    eff: Effective,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int8], npt.NDArray[np.int64]]:
    """(rows, action, quantity) of the instruction that counts per row: the latest one, and
    none where the latest has quantity 0 (withdrawn)."""
    if eff.row.shape[0] == 0:
        return eff.row, eff.action, eff.quantity
    # np.unique keeps the first occurrence; on the reversed arrays that is the latest.
    rev_rows = eff.row[::-1]
    rows, first = np.unique(rev_rows, return_index=True)
    action = eff.action[::-1][first]
    quantity = eff.quantity[::-1][first]
    live = quantity > 0
    return rows[live], action[live], quantity[live]
