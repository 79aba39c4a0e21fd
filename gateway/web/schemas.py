"""The documented shapes of the HTTP API (pydantic models that feed ``/openapi.json``).

Responses built from engine data are written as bytes by the handlers (the margin JSON is the
CLI's own rendering); these models describe them and validate nothing on the hot path.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from engine.pmc.contracts import Contract

# -- documented shapes ---------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    status: int
    reason: str = Field(description="stable reason code, e.g. BAD_PARAMETER, TOO_LARGE")
    message: str
    line: int | None = None
    field: str | None = None
    value: str | None = None


class ErrorDoc(BaseModel):
    error: ErrorDetail


class PositionIn(BaseModel):
    """One position as the page keeps it (the fields of a 346 detail record)."""

    firm: str = Field("", max_length=16, description="clearing firm number")
    account: str = Field("", max_length=32)
    account_type: str = Field(description="C (CPM), F (RBH-BD) or M (RBH-MM)", max_length=8)
    symbol: str = Field(max_length=32)
    security_type: str = Field(description="O, I, F, S, W or X", max_length=8)
    put_call: str = Field("", max_length=8)
    series_date: str = Field("", max_length=16, description="YYYY-MM-DD, '' for stocks")
    expiration_date: str = Field("", max_length=16)
    strike: float | str = Field(0, description="strike dollars, 0 for stocks and futures")
    quantity: int | float | str = Field(description="signed: long +, short -; whole, not zero")
    market_value: float | str = Field(0, description="per-share price of a stock not in the set")
    basket_id: str = Field("", max_length=16)
    exercise_style: str = Field("", max_length=8)
    settlement_style: str = Field("", max_length=8)


class PositionsIn(BaseModel):
    positions: list[PositionIn]


class Counts(BaseModel):
    accepted: int
    rejected: int
    invalid_series: int
    warnings: int
    total: int


class Problem(BaseModel):
    line: int
    kind: str
    reason: str
    field: str | None
    value: str | None
    message: str


class MarginDoc(BaseModel):
    """The JSON of ``posgate margin --format json``."""

    theo_date: str
    counts: Counts
    accounts: list[dict[str, Any]]
    firms: list[dict[str, Any]]
    problems: list[Problem]


class TheoSetInfo(BaseModel):
    date: str
    name: str
    source: str
    instruments: int


class TheoSetsDoc(BaseModel):
    latest: str | None
    theo_sets: list[TheoSetInfo]


class ContractsDoc(BaseModel):
    theo_date: str
    columns: list[list[str]] = Field(description="[field, heading] in display order")
    total: int
    contracts: list[Contract] = Field(description="the rows of the list, as the engine gives them")


class SuggestDoc(BaseModel):
    column: str
    values: list[str]


class ParsedDoc(BaseModel):
    """A position file read for the editor: its counts, good positions and problems."""

    theo_date: str
    format: str
    counts: Counts
    positions: list[dict[str, Any]]
    problems: list[Problem]


class HealthDoc(BaseModel):
    status: str
    theo_date: str | None


EDIT_OPS = ("add_contracts", "set_quantity", "modify", "add_stock", "delete", "select")


class EditIn(BaseModel):
    """One edit of the Selected Positions list: the list as the page holds it, the operation and
    its arguments (only those of the operation are read)."""

    positions: list[PositionIn]
    op: Literal["add_contracts", "set_quantity", "modify", "add_stock", "delete", "select"]
    rows: list[int] | None = Field(
        None, description="rows of the list (set rows for add_contracts); delete: none = all"
    )
    quantity: int | None = None
    firm: str | None = Field(None, max_length=16)
    account: str | None = Field(None, max_length=32)
    account_type: str | None = Field(None, max_length=8)
    basket_id: str | None = Field(None, max_length=16)
    symbol: str | None = Field(None, max_length=32)
    price: float | None = Field(None, description="add_stock: USD per share")
    filter: dict[str, str] | None = Field(None, description="select: the list filter's fields")


class EditDoc(BaseModel):
    """The list after the edit (``select``: unchanged, with the matching rows)."""

    positions: list[dict[str, Any]]
    selected: list[int] | None = None
