"""Available contracts: the instruments of a theo set for one account type, filtered and sorted.

This is the list a user picks positions from. ``ContractFilter`` holds the filter
fields, ``check_filter`` applies the required-field rules, ``list_contracts`` returns the matching
``Contract`` rows in the default sort, ``sort_contracts`` sorts them by one column (a click on a
column heading) and ``suggest_values`` gives the values that start with what a user typed.

Required-field rules: the account type (C, F or M) and at least one of class group, underlying or
symbol; a product group needs a class group too. A strike only selects options (types O, I, W).

Default sort, where posgate decides because the rule is only shown by example: product group,
class group, underlying, type, symbol, series date, expiration date, strike, put/call (calls
before puts). Group ids made of digits compare as numbers (9 before 18).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from engine.errors import InputRejected, Location
from engine.pmc.positions.checks import RecordRejected, parse_date
from engine.pmc.theo.model import (
    ACCOUNT_TYPES,
    OPTION_TYPES,
    SECURITY_TYPES,
    STRIKE_SCALE,
    IntArray,
    TheoSet,
)

MISSING_FILTER = "MISSING_FILTER"
BAD_FILTER = "BAD_FILTER"

#: the list's columns in display order, with the headings of the calculator's list view
CONTRACT_COLUMNS = (
    ("product_group", "Prod Grp"),
    ("class_group", "Class Grp"),
    ("underlying", "Underlying"),
    ("security_type", "Type"),
    ("symbol", "Symbol"),
    ("exchange", "Exchange"),
    ("exercise_style", "Exercise Style"),
    ("settlement_style", "Settlement Style"),
    ("series_date", "Ser/Ctr Date"),
    ("expiration_date", "Exp Date"),
    ("strike", "Strike"),
    ("put_call", "C/P"),
)
DEFAULT_SORT = (
    "product_group",
    "class_group",
    "underlying",
    "security_type",
    "symbol",
    "series_date",
    "expiration_date",
    "strike",
    "put_call",
)
#: columns ``suggest_values`` completes
SUGGESTABLE = ("product_group", "class_group", "underlying", "symbol")


class ContractFilterInvalid(InputRejected):
    """A filter that breaks a required-field rule or holds a value of the wrong form."""


@dataclass(frozen=True)
class ContractFilter:
    """The Available Contracts filter. Empty strings (and ``None`` strike) mean "any".

    Dates are ISO (``YYYY-MM-DD``; ``check_filter`` also takes MM/DD/YYYY and CCYYMMDD);
    ``put_call`` is C, P or '' for both; ``security_type`` one of O, I, F, S, W.
    """

    account_type: str
    product_group: str = ""
    class_group: str = ""
    underlying: str = ""
    symbol: str = ""
    security_type: str = ""
    series_date: str = ""
    expiration_date: str = ""
    put_call: str = ""
    strike: float | None = None


@dataclass(frozen=True)
class Contract:
    """One row of the list: every column of ``CONTRACT_COLUMNS`` plus its row in the set.

    ``row`` indexes the set's instrument arrays; ``account_type`` is the filter's. Dates are ISO
    or ''; ``strike`` is 0 for stocks and futures.
    """

    row: int
    account_type: str
    product_group: str
    class_group: str
    underlying: str
    security_type: str
    symbol: str
    exchange: str
    exercise_style: str
    settlement_style: str
    series_date: str
    expiration_date: str
    strike: float
    put_call: str

    def as_dict(self) -> dict[str, object]:
        """The columns as a plain record (JSON), ``row`` and ``account_type`` included."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _date(text: str, name: str) -> str:
    try:
        return parse_date(text, name)
    except RecordRejected:
        raise ContractFilterInvalid(
            BAD_FILTER, f"{name}={text!r} is not a date (YYYY-MM-DD)", Location(field=name)
        ) from None


def check_filter(flt: ContractFilter) -> ContractFilter:
    """The filter normalised (upper case, ISO dates), or raise ``ContractFilterInvalid``.

    Rules: account type C, F or M; one of class group, underlying or symbol; a product group needs
    a class group; type one of O, I, F, S, W; put/call C or P; strike a positive number.
    """
    acct = flt.account_type.strip().upper()
    if not acct:
        raise ContractFilterInvalid(
            MISSING_FILTER, "account type is required (C, F or M)", Location(field="account_type")
        )
    if acct not in ACCOUNT_TYPES:
        raise ContractFilterInvalid(
            BAD_FILTER,
            f"account_type={flt.account_type!r} is not C, F or M",
            Location(field="account_type"),
        )
    pg = flt.product_group.strip()
    cg = flt.class_group.strip().upper()
    und = flt.underlying.strip().upper()
    sym = flt.symbol.strip().upper()
    if not (cg or und or sym):
        raise ContractFilterInvalid(
            MISSING_FILTER,
            "one of class group, underlying or symbol is required",
            Location(field="class_group"),
        )
    if pg and not cg:
        raise ContractFilterInvalid(
            MISSING_FILTER,
            f"product_group={pg!r} needs a class group too",
            Location(field="class_group"),
        )
    sectype = flt.security_type.strip().upper()
    if sectype and sectype not in SECURITY_TYPES:
        raise ContractFilterInvalid(
            BAD_FILTER,
            f"security_type={flt.security_type!r} is not one of {', '.join(SECURITY_TYPES)}",
            Location(field="security_type"),
        )
    pc = flt.put_call.strip().upper()
    if pc not in ("", "C", "P"):
        raise ContractFilterInvalid(
            BAD_FILTER, f"put_call={flt.put_call!r} is not C or P", Location(field="put_call")
        )
    if flt.strike is not None and not (np.isfinite(flt.strike) and flt.strike > 0):
        raise ContractFilterInvalid(
            BAD_FILTER,
            f"strike={flt.strike!r} is not a positive number",
            Location(field="strike"),
        )
    return ContractFilter(
        account_type=acct,
        product_group=pg,
        class_group=cg,
        underlying=und,
        symbol=sym,
        security_type=sectype,
        series_date=_date(flt.series_date, "series_date"),
        expiration_date=_date(flt.expiration_date, "expiration_date"),
        put_call=pc,
        strike=flt.strike,
    )


SortKey = tuple[int, float, str]


def _group_key(value: str) -> SortKey:
    """Digits compare as numbers and come first; other ids compare as text."""
    return (0, float(int(value)), "") if value.isdigit() else (1, 0.0, value)


def _sort_key(c: Contract, column: str) -> SortKey:
    value = getattr(c, column)
    if column in ("product_group", "class_group"):
        return _group_key(value)
    if column == "put_call":
        return (0, float({"C": 0, "P": 1}.get(value, 2)), "")
    if column == "strike":
        return (0, float(value), "")
    return (0, 0.0, str(value))


def _default_key(c: Contract) -> tuple[SortKey, ...]:
    return tuple(_sort_key(c, col) for col in DEFAULT_SORT)


def matching_rows(theo: TheoSet, flt: ContractFilter) -> IntArray:
    """Rows [k] of the set's instruments that match a checked filter (in set order)."""
    mask = theo.account_type == flt.account_type
    if flt.product_group:
        mask &= theo.product_group == flt.product_group
    for column in ("class_group", "underlying", "symbol", "security_type", "put_call"):
        wanted = getattr(flt, column)
        if wanted:
            mask &= np.char.upper(getattr(theo, column)) == wanted
    if flt.series_date:
        mask &= theo.series_date == flt.series_date
    if flt.expiration_date:
        mask &= theo.expiration_date == flt.expiration_date
    if flt.strike is not None:
        code = int(round(flt.strike * STRIKE_SCALE))
        mask &= np.isin(theo.security_type, OPTION_TYPES)
        mask &= np.rint(theo.strike * STRIKE_SCALE).astype(np.int64) == code
    rows: IntArray = np.flatnonzero(mask).astype(np.int64)
    return rows


def contract_at(theo: TheoSet, row: int) -> Contract:
    """The ``Contract`` of one instrument row of the set."""
    exchange = str(theo.exchange[row]) if theo.exchange.shape[0] == theo.size else ""
    return Contract(
        row=row,
        account_type=str(theo.account_type[row]),
        product_group=str(theo.product_group[row]),
        class_group=str(theo.class_group[row]),
        underlying=str(theo.underlying[row]),
        security_type=str(theo.security_type[row]),
        symbol=str(theo.symbol[row]),
        exchange=exchange,
        exercise_style=str(theo.exercise_style[row]),
        settlement_style=str(theo.settlement_style[row]),
        series_date=str(theo.series_date[row]),
        expiration_date=str(theo.expiration_date[row]),
        strike=float(theo.strike[row]),
        put_call=str(theo.put_call[row]),
    )


def list_contracts(theo: TheoSet, flt: ContractFilter) -> list[Contract]:
    """The available contracts of ``theo`` matching ``flt``, in the default sort.

    The filter is checked first (``check_filter``); raises ``ContractFilterInvalid``.
    """
    checked = check_filter(flt)
    found = [contract_at(theo, r) for r in matching_rows(theo, checked).tolist()]
    found.sort(key=_default_key)
    return found


def sort_contracts(
    contracts: Sequence[Contract], column: str = "", *, descending: bool = False
) -> list[Contract]:
    """Contracts sorted by one column (ties in the default sort); '' is the default sort."""
    if not column:
        return sorted(contracts, key=_default_key, reverse=descending)
    names = {name for name, _ in CONTRACT_COLUMNS}
    if column not in names:
        raise ContractFilterInvalid(
            BAD_FILTER,
            f"sort={column!r} is not a column ({', '.join(sorted(names))})",
            Location(field="sort"),
        )
    ordered = sorted(contracts, key=_default_key)
    return sorted(ordered, key=lambda c: _sort_key(c, column), reverse=descending)


def suggest_values(
    theo: TheoSet, account_type: str, column: str, prefix: str = "", *, limit: int = 20
) -> list[str]:
    """Distinct values of one column (``SUGGESTABLE``) for an account type that start with
    ``prefix`` (case-insensitive), sorted like the list, at most ``limit`` of them."""
    if column not in SUGGESTABLE:
        raise ContractFilterInvalid(
            BAD_FILTER,
            f"column={column!r} has no suggestions ({', '.join(SUGGESTABLE)})",
            Location(field="column"),
        )
    acct = account_type.strip().upper()
    values = np.unique(getattr(theo, column)[theo.account_type == acct])
    want = prefix.strip().upper()
    picked = [v for v in values.tolist() if v and v.upper().startswith(want)]
    picked.sort(key=_group_key)
    return picked[: max(limit, 0)]
