"""Text of many numbers and strings at once: CSV and JSON fields as byte matrices.

Theory of operation. A column of ``n`` values becomes a ``uint8`` matrix ``[n, width]`` holding
each value's text right- or left-aligned and padded with NUL bytes (no value of a margin report
contains a NUL: the 346 reader refuses such files). Columns and separators are stacked side by
side into one matrix per block of rows, and dropping every NUL leaves the rows' bytes, so a
whole file is written without a Python object per value.

The texts are exactly Python's: ``fixed2`` gives ``f"{v:.2f}"`` and ``shortest2`` gives
``repr(round(v, 2))`` (``numpy_round=False``) or ``repr(float(np.round(v, 2)))``. The digits come
from the value in cents: ``rint(v * 100)`` is numpy's rounding; Python's rounds the exact binary
value, which differs only when ``v * 100`` lies within a rounding error of a half cent, and those
few values (and non-finite or huge ones, 1e13 and more) are formatted by Python itself.
Strings are encoded once per distinct value (``distinct``), so quoting and escaping rules stay
those of ``csv`` and ``json``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
from numpy.typing import NDArray

U8 = NDArray[np.uint8]
FloatArray = NDArray[np.float64]
LARGEST = 1e13  # beyond this, Python formats the value (shortest repr needs > 15 digits)

# the cents of a shortest repr: .5 not .50, .0 for whole numbers
_SHORT = [(b"%02d" % i).rstrip(b"0") or b"0" for i in range(100)]


def _slow_mask(values: FloatArray, scaled: FloatArray, exact_python: bool) -> NDArray[np.bool_]:
    with np.errstate(invalid="ignore"):
        absolute = np.abs(scaled)
        slow = ~(absolute < LARGEST * 100.0)  # NaN and infinities too
        if exact_python:
            frac = absolute - np.floor(absolute)
            frac -= 0.5
            np.abs(frac, out=frac)
            slow |= frac <= 1e-9 * absolute + 1e-9
    result: NDArray[np.bool_] = slow
    return result


def _from_python(texts: Sequence[str]) -> U8:
    width = max((len(t) for t in texts), default=1)
    out = np.zeros((len(texts), max(width, 1)), dtype=np.uint8)
    for row, text in enumerate(texts):
        raw = text.encode("ascii")
        out[row, : len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    return out


def _merge(fast: U8, slow_rows: NDArray[np.intp], slow: U8, skip: int = 0) -> U8:
    """``fast`` with the rows ``slow_rows`` replaced by ``slow``, after the first ``skip``
    bytes of every row (the prefix)."""
    if not slow_rows.size:
        return fast
    width = max(fast.shape[1], skip + slow.shape[1])
    out = np.zeros((fast.shape[0], width), dtype=np.uint8)
    out[:, : fast.shape[1]] = fast
    out[slow_rows, skip:] = 0
    out[slow_rows, skip : skip + slow.shape[1]] = slow
    return out


def _group_tables() -> tuple[NDArray[np.uint32], dict[bool, NDArray[np.uint32]]]:
    """Digit groups as 32-bit words: ``GROUPS[i]`` is ``"%04d" % i``, ``GROUPS[LEAD + i]`` the
    same without leading zeros (NUL-padded on the left), ``GROUPS[BLANK]`` four NULs;
    ``LOWS[short][i]`` (``i`` < ``LOW``) is the last whole digit and the cents of ``i``
    (``"d.cc"``), the cents as the shortest repr has them when ``short`` (``"d.c"``)."""
    four = b"".join(b"%04d" % i for i in range(LEAD))
    lead = b"".join((b"%d" % i).rjust(4, b"\0") for i in range(LEAD))
    groups = np.frombuffer(four + lead + b"\0" * 4, dtype=np.uint32)
    lows = {}
    for short in (False, True):
        cents = [_SHORT[c] if short else b"%02d" % c for c in range(100)]
        texts = [(b"%d." % w + c).ljust(4, b"\0") for w in range(LOW // 100) for c in cents]
        lows[short] = np.frombuffer(b"".join(texts), dtype=np.uint32)
    return groups, lows


LOW = 1_000  # the last whole digit and the cents: one word
LEAD = 10_000  # four digits a group; the index of the leading-group tables
BLANK = 2 * LEAD
GROUPS, LOWS = _group_tables()


def _cents_text(values: FloatArray, cents: FloatArray, short: bool, prefix: bytes) -> U8:
    """``prefix``, then '-'? digits '.' two digits (or the shortest cents) for finite cents.

    Row layout: the prefix, the sign byte, then four whole digits a 32-bit word from the left
    (blank words before the leading one), then the last whole digit and the cents in a word,
    each word looked up in a table (``_group_tables``)."""
    n = values.shape[0]
    a = np.abs(cents).astype(np.int64)
    top, n_groups = int(a.max(initial=0)) // LOW, 0
    while top:
        top //= LEAD
        n_groups += 1
    skip = len(prefix)
    mat = np.empty((n, skip + 1 + 4 * n_groups + 4), dtype=np.uint8)
    if skip:
        mat[:, :skip] = np.frombuffer(prefix, dtype=np.uint8)
    mat[:, skip] = np.where(np.signbit(values), np.uint8(ord("-")), np.uint8(0))
    words = mat[:, skip + 1 :].view(np.uint32)
    rest, low = np.divmod(a, LOW)
    words[:, n_groups] = LOWS[short][low]
    for j in range(n_groups):
        above, group = np.divmod(rest, LEAD)
        group += (above == 0) * LEAD
        group[rest == 0] = BLANK
        words[:, n_groups - 1 - j] = GROUPS[group]
        rest = above
    return mat


def fixed2(values: FloatArray, prefix: bytes = b"") -> U8:
    """``f"{v:.2f}"`` of every value, after ``prefix`` (a separator: no NUL in it)."""
    v = np.asarray(values, dtype=np.float64)
    scaled = v * 100.0
    slow = _slow_mask(v, scaled, exact_python=True)
    cents = np.rint(np.where(slow, 0.0, scaled))
    fast = _cents_text(v, cents, False, prefix)
    rows = np.flatnonzero(slow)
    texts = _from_python([f"{x:.2f}" for x in v[rows].tolist()])
    return _merge(fast, rows, texts, len(prefix))


def shortest2(values: FloatArray, *, numpy_round: bool, prefix: bytes = b"") -> U8:
    """``repr`` of every value rounded to cents: ``round(v, 2)`` or ``np.round(v, 2)``
    (``numpy_round``), as ``json.dumps`` writes it, after ``prefix``."""
    v = np.asarray(values, dtype=np.float64)
    scaled = v * 100.0
    slow = _slow_mask(v, scaled, exact_python=not numpy_round)
    cents = np.rint(np.where(slow, 0.0, scaled))
    fast = _cents_text(v, cents, True, prefix)
    rows = np.flatnonzero(slow)
    if numpy_round:
        texts = [_json_float(float(x)) for x in np.round(v[rows], 2).tolist()]
    else:
        texts = [_json_float(round(x, 2)) for x in v[rows].tolist()]
    return _merge(fast, rows, _from_python(texts), len(prefix))


def _json_float(x: float) -> str:
    import json

    return json.dumps(x)


def distinct(values: NDArray[np.generic], render: Callable[[object], str]) -> U8:
    """``render`` of each value, called once per distinct value."""
    uniq, inverse = np.unique(np.asarray(values), return_inverse=True)
    texts = _from_python([render(u.item() if hasattr(u, "item") else u) for u in uniq])
    return texts[inverse.reshape(-1)]


_SAFE_BYTES = np.zeros(256, dtype=bool)
_SAFE_BYTES[0] = True  # padding
for _c in b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ._/#^+:-":
    _SAFE_BYTES[_c] = True


def plain(mat: U8) -> bool:
    """Whether every byte is one that needs no quoting or escaping in CSV and JSON."""
    return bool(_SAFE_BYTES[mat].all())


def text(values: NDArray[np.generic]) -> U8:
    """ASCII strings (``U`` or ``S`` arrays) as a matrix; raises ``UnicodeEncodeError`` for a
    value that is not ASCII."""
    arr = np.ascontiguousarray(values)
    n = arr.shape[0]
    if arr.dtype.itemsize == 0 or n == 0:
        return np.zeros((n, 1), dtype=np.uint8)
    if arr.dtype.kind == "U":
        codes = arr.view(np.uint32).reshape(n, arr.dtype.itemsize // 4)
        if codes.size and int(codes.max()) > 127:
            raise UnicodeEncodeError("ascii", "", 0, 1, "not ASCII")
        return codes.astype(np.uint8)
    return arr.view(np.uint8).reshape(n, arr.dtype.itemsize)


def constant(value: bytes, n: int) -> U8:
    """The same bytes on every one of ``n`` rows."""
    return np.broadcast_to(np.frombuffer(value, dtype=np.uint8), (n, len(value)))


def blank_where(mat: U8, blank: NDArray[np.bool_], skip: int = 0) -> U8:
    """Empty text on the rows where ``blank`` is true (but their first ``skip`` bytes)."""
    if not blank.any():
        return mat
    out = mat.copy()
    out[blank, skip:] = 0
    return out


def join(pieces: Sequence[U8]) -> bytes:
    """The rows of side-by-side pieces [n, w_k], NULs dropped, as one bytes object."""
    mat = np.concatenate([np.asarray(p) for p in pieces], axis=1)
    return mat[mat != 0].tobytes()


def account_ranges(counts: NDArray[np.int64], limit: int) -> Iterator[tuple[int, int]]:
    """Consecutive ranges ``(lo, hi)`` of accounts whose ``counts`` (rows or positions per
    account) add up to about ``limit``; an account larger than that is a range of its own."""
    ends = np.cumsum(counts)
    lo, n = 0, counts.shape[0]
    while lo < n:
        hi = int(np.searchsorted(ends, ends[lo] - counts[lo] + limit, "right"))
        hi = min(max(hi, lo + 1), n)
        yield lo, hi
        lo = hi
