"""The common case of a CSV 346 file read with numpy: detail records in their plainest form.

Theory of operation. A detail record that is plain ASCII (letters, digits and ``, . / # ^ -``,
no blanks, no quotes, upper case outside the account id) with 17 or 18 fields, a firm of 1-5
digits, 8-digit dates, plain decimal numbers and nothing that would draw a warning, is checked and
converted for every such line at once: the bytes of the file become a ``uint8`` array, the commas
give every field's start and end, each field becomes a padded byte matrix and the checks of
``checks.check_detail`` become comparisons on those matrices. A line that fails any of these
strict tests is not judged here: ``plain_detail_lines`` hands it back, and the reader checks it
one by one as before, so every message, warning and value stays exactly what the line-by-line
check gives (the tests compare both on the corpus and on random files).

Only lines between the last header-like and the first trailer-like line are taken, so the
header and trailer rules (a header only first, nothing after the trailer) stay with the reader.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from engine.pmc.positions.checks import MAX_QUANTITY
from engine.pmc.positions.model import FIRM_ID_DIGITS, PositionBatch

U8 = NDArray[np.uint8]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

_FIELDS = 18
_LINE_SAFE = np.zeros(256, dtype=bool)
for _c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789,./#^-":
    _LINE_SAFE[_c] = True
_UPPER_ALNUM = np.zeros(256, dtype=bool)
for _c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789":
    _UPPER_ALNUM[_c] = True
_SYMBOL_REST = _UPPER_ALNUM.copy()
for _c in b"./#^-":
    _SYMBOL_REST[_c] = True
_DIGIT = np.zeros(256, dtype=bool)
_DIGIT[48:58] = True
_DAYS = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


@dataclass(frozen=True, eq=False)
class PlainRecords:
    """Detail records checked in bulk: line numbers [m] and the columns of a ``PositionBatch``;
    ``function_long`` and ``net`` give the trailer totals."""

    line: IntArray
    columns: dict[str, NDArray[np.generic]]
    function_long: BoolArray
    net: IntArray

    def take(self, keep: BoolArray) -> PlainRecords:
        return PlainRecords(
            self.line[keep],
            {k: v[keep] for k, v in self.columns.items()},
            self.function_long[keep],
            self.net[keep],
        )

    def with_lines(self, line: IntArray) -> PlainRecords:
        return PlainRecords(line, self.columns, self.function_long, self.net)


def merge_by_line(batch: PositionBatch, plain: PlainRecords) -> PositionBatch:
    """The records of both, in line order."""
    columns = {"line": plain.line, **plain.columns}
    if not len(batch):
        return PositionBatch(**columns)  # type: ignore[arg-type]
    merged = PositionBatch.concat([batch, PositionBatch(**columns)])  # type: ignore[arg-type]
    return merged.take(np.argsort(merged.line, kind="stable"))


def _field(buf: U8, start: IntArray, end: IntArray) -> U8:
    """Bytes buf[start:end] of every row as a NUL-padded matrix [m, max length]."""
    length = end - start
    width = max(int(length.max(initial=0)), 1)
    offsets = np.arange(width, dtype=np.int64)
    index = start[:, None] + offsets[None, :]
    inside = offsets[None, :] < length[:, None]
    out = np.where(inside, buf[np.minimum(index, buf.shape[0] - 1)], np.uint8(0))
    result: U8 = out.astype(np.uint8)
    return result


def _as_str(mat: U8) -> NDArray[np.str_]:
    n, width = mat.shape
    result: NDArray[np.str_] = np.ascontiguousarray(mat.astype(np.uint32)).view(f"<U{width}")
    return result.reshape(n)


def _equals(mat: U8, text: bytes) -> BoolArray:
    """Rows whose field is exactly ``text``."""
    if len(text) > mat.shape[1]:
        return np.zeros(mat.shape[0], dtype=bool)
    want = np.zeros(mat.shape[1], dtype=np.uint8)
    want[: len(text)] = np.frombuffer(text, dtype=np.uint8)
    result: BoolArray = (mat == want[None, :]).all(axis=1)
    return result


def _one_of(mat: U8, texts: tuple[bytes, ...]) -> BoolArray:
    ok = np.zeros(mat.shape[0], dtype=bool)
    for t in texts:
        ok |= _equals(mat, t)
    return ok


def _lengths(mat: U8) -> IntArray:
    result: IntArray = (mat != 0).sum(axis=1).astype(np.int64)
    return result


def _digits_value(mat: U8) -> tuple[BoolArray, IntArray]:
    """(all digits and not empty, their value) of each row; at most 18 digits."""
    length = _lengths(mat)
    ok = (length > 0) & (length <= 18)
    value = np.zeros(mat.shape[0], dtype=np.int64)
    for col in range(min(mat.shape[1], 18)):
        byte = mat[:, col]
        inside = col < length
        ok &= ~inside | _DIGIT[byte]
        value = np.where(inside, value * 10 + (byte.astype(np.int64) - 48), value)
    if mat.shape[1] > 18:
        ok &= length <= 18
    return ok, value


def _decimal(mat: U8) -> tuple[BoolArray, NDArray[np.float64]]:
    """(plain non-negative decimal or empty, its value): digits with at most one '.' and one
    digit at least, as ``float()`` reads them."""
    length = _lengths(mat)
    is_digit = _DIGIT[mat]
    dots = (mat == ord(".")).sum(axis=1)
    n_digits = is_digit.sum(axis=1)
    ok = (length == 0) | ((dots <= 1) & (n_digits >= 1) & (n_digits + dots == length))
    value = np.zeros(mat.shape[0], dtype=np.float64)
    rows = np.flatnonzero(ok & (length > 0))
    if rows.size:
        width = mat.shape[1]
        value[rows] = (
            np.ascontiguousarray(mat[rows]).view(f"S{width}").reshape(-1).astype(np.float64)
        )
    return ok, value


def _date(mat: U8) -> tuple[BoolArray, BoolArray, NDArray[np.str_]]:
    """(plain: empty, zeros or a valid CCYYMMDD; blank: empty or zeros; ISO text) per row."""
    length = _lengths(mat)
    digits_ok, _ = _digits_value(mat)
    zeros = (length > 0) & ((mat == ord("0")) | (mat == 0)).all(axis=1)
    blank = (length == 0) | zeros
    eight = digits_ok & (length == 8) & ~zeros
    d = np.zeros((mat.shape[0], 8), dtype=np.int64)
    if mat.shape[1] >= 8:
        d = mat[:, :8].astype(np.int64) - 48
    year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
    month = d[:, 4] * 10 + d[:, 5]
    day = d[:, 6] * 10 + d[:, 7]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    month_ok = (month >= 1) & (month <= 12)
    limit = _DAYS[np.clip(month, 0, 12)] + ((month == 2) & leap)
    valid = eight & (year >= 1) & month_ok & (day >= 1) & (day <= limit)
    iso = np.zeros((mat.shape[0], 10), dtype=np.uint8)
    if mat.shape[1] >= 8:
        iso[:, 0:4] = mat[:, 0:4]
        iso[:, 5:7] = mat[:, 4:6]
        iso[:, 8:10] = mat[:, 6:8]
        iso[:, 4] = iso[:, 7] = ord("-")
    iso[~valid] = 0
    return blank | valid, blank, _as_str(iso)


def plain_detail_lines(
    buf: U8,
    starts: IntArray,
    ends: IntArray,
    *,
    allow_zero: bool,
) -> PlainRecords:
    """Check the given lines (byte ranges of ``buf``, each a candidate CSV detail record) in
    bulk; the records returned are those that pass, the others must be checked one by one."""
    commas = np.flatnonzero(buf == ord(","))
    first = np.searchsorted(commas, starts)
    last = np.searchsorted(commas, ends)
    count = last - first
    candidate = (count == _FIELDS - 1) | (count == _FIELDS - 2)
    # every byte plain
    unsafe = np.flatnonzero(~_LINE_SAFE[buf])
    bad_bytes = np.searchsorted(unsafe, ends) - np.searchsorted(unsafe, starts)
    candidate &= bad_bytes == 0
    rows = np.flatnonzero(candidate)
    s, e, f0, cnt = starts[rows], ends[rows], first[rows], count[rows]
    m = rows.shape[0]
    bounds = np.empty((m, _FIELDS + 1), dtype=np.int64)
    bounds[:, 0] = s - 1
    for k in range(_FIELDS - 1):
        bounds[:, k + 1] = np.where(
            k < cnt, commas[np.minimum(f0 + k, commas.shape[0] - 1)] if commas.size else e, e
        )
    bounds[:, _FIELDS] = e
    # 17 fields: the basket field is empty (its start = its end)
    short = cnt == _FIELDS - 2
    bounds[short, _FIELDS - 1] = e[short]
    fields = [_field(buf, bounds[:, k] + 1, bounds[:, k + 1]) for k in range(_FIELDS)]
    fields[_FIELDS - 1][short] = 0

    ok = _equals(fields[0], b"346") & _equals(fields[1], b"")
    # firm: 1-5 digits
    firm_ok, _ = _digits_value(fields[2])
    ok &= firm_ok & (_lengths(fields[2]) <= 5)
    account = fields[3]
    ok &= _lengths(account) <= 20
    sectype = fields[13]
    ok &= _one_of(sectype, (b"O", b"I", b"F", b"S", b"W"))
    option = _one_of(sectype, (b"O", b"I", b"W"))
    stock = _equals(sectype, b"S")
    symbol = fields[5]
    sym_len = _lengths(symbol)
    ok &= (sym_len >= 1) & (sym_len <= 21) & _UPPER_ALNUM[symbol[:, 0]]
    ok &= (~(symbol != 0) | _SYMBOL_REST[symbol]).all(axis=1)
    put_call = fields[4]
    warrant = _equals(sectype, b"W")
    ok &= np.where(
        option,
        np.where(warrant, _equals(put_call, b"C"), _one_of(put_call, (b"C", b"P"))),
        _equals(put_call, b""),
    )
    ok &= _one_of(fields[7], (b"", b"A", b"E"))
    ok &= _one_of(fields[8], (b"", b"O", b"C"))
    series_ok, series_blank, series = _date(fields[9])
    ok &= series_ok & (stock | ~series_blank)
    expiry_ok, _, expiry = _date(fields[10])
    ok &= expiry_ok
    strike_ok, strike = _decimal(fields[11])
    ok &= strike_ok & np.where(option, strike > 0, strike == 0)
    ok &= _one_of(fields[12], (b"L", b"S"))
    mv_ok, market_value = _decimal(fields[14])
    ok &= mv_ok & (stock | (market_value == 0))
    net_ok, net = _digits_value(fields[15])
    ok &= net_ok & (net <= MAX_QUANTITY) & (allow_zero | (net != 0))
    ok &= _one_of(fields[16], (b"C", b"F", b"M"))
    basket = fields[17]
    basket_zero = ((basket == ord("0")) | (basket == 0)).all(axis=1)
    ok &= (~(basket != 0) | _UPPER_ALNUM[basket]).all(axis=1)
    ok &= basket_zero | stock  # a basket on anything but a stock draws a warning
    good = np.flatnonzero(ok)

    def col(mat: U8) -> NDArray[np.str_]:
        return _as_str(np.ascontiguousarray(mat[good]))

    firm_text = col(fields[2])
    firm_text = np.char.lstrip(firm_text, "0")
    firm_text = np.where(firm_text == "", "0", firm_text).astype(np.str_)
    if firm_text.size:  # as model.firm_id (numpy's zfill refuses an empty array)
        firm_text = np.char.zfill(firm_text, FIRM_ID_DIGITS).astype(np.str_)
    longs = _equals(fields[12], b"L")[good]
    qty = net[good].astype(np.float64)
    basket_text = col(fields[17])
    basket_text = np.where(basket_zero[good], "", basket_text).astype(np.str_)
    columns: dict[str, NDArray[np.generic]] = {
        "firm": firm_text,
        "account": col(account),
        "account_type": col(fields[16]),
        "put_call": col(put_call),
        "symbol": col(symbol),
        "exercise_style": col(fields[7]),
        "settlement_style": col(fields[8]),
        "series_date": np.where(stock[good], "", series[good]).astype(np.str_),
        "expiration_date": expiry[good],
        "strike": strike[good],
        "security_type": col(sectype),
        "market_value": market_value[good],
        "quantity": np.where(longs, qty, -qty),
        "basket_id": basket_text,
    }
    return PlainRecords(rows[good].astype(np.int64), columns, longs, net[good])
