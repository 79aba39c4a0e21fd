"""Delta Position Limit records: reason codes, fields, results, reference data, aggregation order.

This is the record model shared by the validator (:mod:`engine.dpl.validate`), the canonical writer
(:mod:`engine.dpl.canonical`) and the gateway (ledger, reports, publication): the reason
codes in their order, the values of one record (:class:`DplFields`), the outcome of validating it
(:class:`ValidationResult` with its :class:`Problem` details), the reference data a record is
checked against (:class:`DplReference`) and the vocabulary of the PosRpt record layout.

Decisions (also in the README part of this flow):

* Identifiers made only of ASCII digits compare by numeric value (``00005`` = ``5``) for clearing
  members, NCOs and entitlements; other identifiers compare exactly (case-sensitive).
* Aggregation order sorts firms numeric-aware: numeric ids by value, before any
  non-numeric id, which sort by code point; aggregation unit, symbol and SubTyp sort as sent, by
  code point (the same order as SQLite's BINARY collation on UTF-8 text).
* Dates are written exactly ``YYYY-MM-DD`` and must be real calendar dates.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import NamedTuple

MALFORMED = "MALFORMED"
LAYOUT = "LAYOUT"
MISSING_FIELD = "MISSING_FIELD"
UNKNOWN_CM = "UNKNOWN_CM"
UNKNOWN_NCO = "UNKNOWN_NCO"
NCO_NOT_ELIGIBLE = "NCO_NOT_ELIGIBLE"
BIZDT_OUT_OF_RANGE = "BIZDT_OUT_OF_RANGE"
LONG_AND_SHORT = "LONG_AND_SHORT"
NOT_ENTITLED = "NOT_ENTITLED"

#: Every reason code, in its fixed reporting order; a record's reasons are listed in this order.
REASON_CODES = (
    MALFORMED,
    LAYOUT,
    MISSING_FIELD,
    UNKNOWN_CM,
    UNKNOWN_NCO,
    NCO_NOT_ELIGIBLE,
    BIZDT_OUT_OF_RANGE,
    LONG_AND_SHORT,
    NOT_ENTITLED,
)

VALID = "valid"
REJECTED = "rejected"

ROLE_CLEARING_MEMBER = "4"
ROLE_NCO = "7"
ROLE_POSITION_ACCOUNT = "38"
ROLE_CRD = "82"
MODEL_TYPES = frozenset({"0", "1"})
SUB_TYPES = frozenset({"ETO", "OTC", "CMB"})

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")


def is_date(value: str) -> bool:
    """Whether ``value`` is a calendar date written exactly ``YYYY-MM-DD``."""
    if _DATE.match(value) is None:
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


class Problem(NamedTuple):
    """One reason a record was rejected, with the field and value it concerns."""

    code: str
    field: str
    value: str | None
    message: str

    def describe(self, line: int | None = None) -> str:
        """``LAYOUT: BizDt='2026-13-01' is not a date YYYY-MM-DD (line 7)``."""
        where = f" (line {line})" if line is not None else ""
        return f"{self.code}: {self.message}{where}"


class DplFields(NamedTuple):
    """The values of one record, as sent (None when absent). Complete for a valid record."""

    rpt_id: str | None = None
    biz_dt: str | None = None
    dlv_dt: str | None = None
    req_typ: str | None = None
    model_typ: str | None = None
    firm_id: str | None = None
    firm_role: str | None = None
    agg_unit: str | None = None
    crd: str | None = None
    firm_name: str | None = None
    symbol: str | None = None
    sub_typ: str | None = None
    long: str | None = None
    short: str | None = None


class ValidationResult(NamedTuple):
    """The outcome for one record: status, reasons in reporting order, fields and detailed problems.

    ``fields`` is None only for a MALFORMED record (nothing could be read from it).
    """

    line: int
    raw: bytes
    status: str
    reasons: tuple[str, ...]
    fields: DplFields | None
    problems: tuple[Problem, ...]

    @property
    def is_valid(self) -> bool:
        return self.status == VALID


def id_key(value: str) -> str:
    """Comparison key of an identifier: ASCII-digit ids by numeric value, others as sent."""
    if value.isdigit() and value.isascii():
        return value.lstrip("0") or "0"
    return value


def firm_sort_text(firm_id: str) -> str:
    """A text whose code-point order is the aggregation order of firm ids.

    Numeric ids (ASCII digits) sort by value and before every other id; others sort as sent.
    ``00005`` and ``5`` give the same text: they are the same firm.
    """
    if firm_id.isdigit() and firm_id.isascii():
        digits = firm_id.lstrip("0") or "0"
        return f"0{len(digits):010d}{digits}"
    return "1" + firm_id


def aggregation_sort_key(fields: DplFields) -> tuple[str, str, str, str]:
    """(firm, aggregation unit, symbol, SubTyp): the publication order."""
    return (
        firm_sort_text(fields.firm_id or ""),
        fields.agg_unit or "",
        fields.symbol or "",
        fields.sub_typ or "",
    )


class DplReference:
    """Reference data a DPL record is checked against.

    ``clearing_members`` maps CM number -> active; ``ncos`` maps NCO id -> eligible for DPL.
    Numeric ids are compared by value.
    """

    def __init__(self, clearing_members: Mapping[str, bool], ncos: Mapping[str, bool]) -> None:
        self._cms = {id_key(k): bool(v) for k, v in clearing_members.items()}
        self._active_cms = frozenset(k for k, v in self._cms.items() if v)
        self._ncos = {id_key(k): bool(v) for k, v in ncos.items()}

    def cm_status(self, cm_number: str) -> bool | None:
        """True active, False known but inactive, None unknown."""
        return self._cms.get(id_key(cm_number))

    def is_active_cm(self, cm_number: str) -> bool:
        return id_key(cm_number) in self._active_cms

    def nco_eligibility(self, nco_id: str) -> bool | None:
        """True eligible for DPL, False known but not eligible, None unknown."""
        return self._ncos.get(id_key(nco_id))
