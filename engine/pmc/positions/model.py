"""The position model: a columnar ``PositionBatch``, a parsed ``PositionFile`` and its problems.

Every source of positions (a 346 file, what-if rows) yields a ``PositionBatch`` of the records
that passed the field checks plus ``PositionProblem``s; the problem kinds and the reason codes
(stable: they appear in error logs and JSON) are defined here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from engine.errors import Location

TRANS_ID = "346"
FIRM_ID_DIGITS = 5


def firm_id(digits: str) -> str:
    """A clearing firm number as posgate writes it everywhere: five digits (``5`` -> ``00005``).

    ``digits`` is a number already checked to be all digits; a longer one keeps its digits
    without leading zeros beyond five.
    """
    return (digits.lstrip("0") or "0").zfill(FIRM_ID_DIGITS)


def firm_number_346(firm: str) -> str:
    """A firm id as a 346 file writes it: the number without leading zeros (``00005`` -> ``5``)."""
    return (firm.lstrip("0") or "0") if firm.isdigit() else firm


ACCOUNT_TYPES = frozenset("CFM")
SECURITY_TYPES = frozenset("OIFSWX")
OPTION_TYPES = frozenset("OIW")

# problem kinds
REJECTED = "rejected"
INVALID_SERIES = "invalid_series"
WARNING = "warning"

# reason codes (stable: they appear in error logs and JSON)
LAYOUT = "LAYOUT"
MISSING_FIELD = "MISSING_FIELD"
BAD_VALUE = "BAD_VALUE"
UNKNOWN_BASKET = "UNKNOWN_BASKET"
NOT_IN_SET = "INVALID_SERIES"
MARKET_VALUE_IGNORED = "MARKET_VALUE_IGNORED"
STRIKE_IGNORED = "STRIKE_IGNORED"
BASKET_IGNORED = "BASKET_IGNORED"
ZERO_QUANTITY = "ZERO_QUANTITY"
TRAILER_TOTALS = "TRAILER_TOTALS"
MISPLACED_RECORD = "MISPLACED_RECORD"

StrArray = NDArray[np.str_]
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class PositionProblem:
    """One problem of one line: kind (rejected|invalid_series|warning) and a stable reason."""

    line: int
    kind: str
    reason: str
    field: str | None
    value: str | None
    message: str

    def as_dict(self) -> dict[str, object]:
        return {
            "line": self.line,
            "kind": self.kind,
            "reason": self.reason,
            "field": self.field,
            "value": self.value,
            "message": self.message,
        }

    def location(self, file: str | None = None) -> Location:
        return Location(file=file, line=self.line, field=self.field)


@dataclass(frozen=True, eq=False)
class PositionBatch:
    """Detail records that passed the field checks, columnar, all shape [n].

    ``quantity`` is signed (long +, short -). ``series_date``/``expiration_date`` are ISO dates or
    ''. ``market_value`` is the per-unit closing price given in the record (0 when none).
    """

    line: IntArray
    firm: StrArray
    account: StrArray
    account_type: StrArray
    put_call: StrArray
    symbol: StrArray
    exercise_style: StrArray
    settlement_style: StrArray
    series_date: StrArray
    expiration_date: StrArray
    strike: FloatArray
    security_type: StrArray
    market_value: FloatArray
    quantity: FloatArray
    basket_id: StrArray

    def __len__(self) -> int:
        return int(self.line.shape[0])

    def take(self, index: IntArray | NDArray[np.bool_]) -> PositionBatch:
        """The rows selected by an index or mask, as a new batch."""
        return PositionBatch(
            **{name: getattr(self, name)[index] for name in _BATCH_FIELDS},
        )

    @staticmethod
    def concat(batches: Sequence[PositionBatch]) -> PositionBatch:
        """Rows of several batches, in order."""
        return PositionBatch(
            **{name: np.concatenate([getattr(b, name) for b in batches]) for name in _BATCH_FIELDS}
        )


_BATCH_FIELDS = (
    "line",
    "firm",
    "account",
    "account_type",
    "put_call",
    "symbol",
    "exercise_style",
    "settlement_style",
    "series_date",
    "expiration_date",
    "strike",
    "security_type",
    "market_value",
    "quantity",
    "basket_id",
)
_STR_FIELDS = tuple(
    f for f in _BATCH_FIELDS if f not in ("line", "strike", "market_value", "quantity")
)


@dataclass(frozen=True)
class FileHeader:
    line: int
    firm: str
    date: str


@dataclass(frozen=True)
class FileTrailer:
    line: int
    firm: str
    total_longs: int
    total_shorts: int


@dataclass(frozen=True, eq=False)
class PositionFile:
    """A parsed 346 file: format, header/trailer, good detail records, per-line problems.

    ``records`` counts every record line that is neither a valid header nor a valid trailer
    (accepted, rejected or, later, invalid series).
    """

    format: str
    header: FileHeader | None
    trailer: FileTrailer | None
    positions: PositionBatch
    problems: list[PositionProblem]
    records: int


@dataclass
class BatchColumns:
    """Checked rows collected one by one, turned into a ``PositionBatch`` at the end."""

    values: dict[str, list[object]] = field(default_factory=lambda: {f: [] for f in _BATCH_FIELDS})

    def add(self, row: dict[str, object]) -> None:
        for name in _BATCH_FIELDS:
            self.values[name].append(row[name])

    def batch(self) -> PositionBatch:
        v = self.values
        out: dict[str, object] = {}
        for name in _STR_FIELDS:
            out[name] = np.asarray(v[name], dtype=np.str_) if v[name] else np.zeros(0, dtype="<U1")
        out["line"] = np.asarray(v["line"], dtype=np.int64)
        for name in ("strike", "market_value", "quantity"):
            out[name] = np.asarray(v[name], dtype=np.float64)
        return PositionBatch(**out)  # type: ignore[arg-type]
