"""Group-by building blocks over numpy arrays: factorising keys and summing rows by group.

Theory of operation. Every level of the margin calculation is "give each row the index of its
group, then add rows up". ``factorize`` turns non-negative int64 keys into dense group indexes
without sorting when the key space is small (mark, cumulative sum), ``factorize_strings`` does the
same for ASCII string columns by packing 9 characters at a time into an int64 (base 128 keeps
the lexicographic order, so results come out sorted like ``np.unique``) and never compares strings
(a long column's distinct values come from a sample of its rows plus a look-up of every row),
and ``group_sum`` adds rows of [n] or [n, k] arrays with one ``np.bincount`` per column.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from engine.pmc.keyindex import KeyIndex

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
StrArray = NDArray[np.str_]

DENSE_LIMIT = 16_000_000
_SORTED_FROM = 65_536  # keys from which a key space _SPARSE times larger is factorised by a sort
_SPARSE = 64  # below this, one mark-and-cumsum over the key space beats sorting (measured)
_CHUNK = 9  # 9 x 7 bits = 63 bits: one int64 per 9 ASCII characters
_FEW_VALUES = 4  # up to this many distinct values, a binary search beats np.unique's argsort
_HASHED_SHARE = 8  # below one distinct value in 8 rows, a hash look-up beats np.unique's argsort
_SAMPLE_ROWS = 32_768  # rows sampled to find a column's distinct values before the look-up


def factorize(keys: IntArray, upper: int) -> tuple[IntArray, IntArray]:
    """Sorted distinct values of non-negative integer keys [n] (all < ``upper``) and the index
    of each key among them [n]. Below ``DENSE_LIMIT`` this is a mark-and-cumsum over [upper]
    with no sort at all; above it, ``np.unique``."""
    keys = np.asarray(keys, dtype=np.int64)
    n = keys.shape[0]
    index_bits = max(n - 1, 1).bit_length()
    wide = max(upper - 1, 1).bit_length() + index_bits > 63
    if n >= _SORTED_FROM and upper > _SPARSE * n and not wide:
        return _factorize_sorted(keys, index_bits)
    if upper <= DENSE_LIMIT:
        present = np.zeros(max(upper, 1), dtype=bool)
        present[keys] = True
        uniq = np.flatnonzero(present).astype(np.int64)
        # rank written only where a key is present (no pass over the whole [upper] table);
        # int32: half the memory traffic
        rank = np.empty(max(upper, 1), dtype=np.int32)
        rank[uniq] = np.arange(uniq.shape[0], dtype=np.int32)
        return uniq, rank[keys].astype(np.int64)
    return _unique_inverse(keys)


def _unique_inverse(keys: IntArray) -> tuple[IntArray, IntArray]:
    """``np.unique(keys, return_inverse=True)`` as two flat int64 arrays [u], [n]."""
    uniq, inv = np.unique(keys, return_inverse=True)
    return uniq.astype(np.int64), inv.reshape(-1).astype(np.int64)


def _factorize_sorted(keys: IntArray, index_bits: int) -> tuple[IntArray, IntArray]:
    """``factorize`` by one sort of (key, row) packed into an int64 (a plain sort costs a
    fraction of an argsort, and no table over the key space is touched)."""
    n = keys.shape[0]
    packed = keys << index_bits
    packed |= np.arange(n, dtype=np.int64)
    packed.sort()
    rows = packed & ((1 << index_bits) - 1)
    packed >>= index_bits  # the keys, sorted
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(packed[1:], packed[:-1], out=new[1:])
    uniq = packed[new]
    inv = np.empty(n, dtype=np.int64)
    inv[rows] = np.cumsum(new) - 1
    return uniq, inv


def factorize_strings(column: NDArray[np.str_]) -> tuple[StrArray, IntArray]:
    """Sorted distinct strings of a column [n] and each row's index among them [n].

    Exact (no hashing). ASCII columns are packed 9 characters to an int64 (base 128, first
    character most significant: order-preserving) and factorised as integers; anything else
    falls back to ``np.unique`` on the strings.
    """
    col = np.asarray(column)
    n = col.shape[0]
    if n == 0:
        return np.zeros(0, dtype="<U1"), np.zeros(0, dtype=np.int64)
    if col.dtype.kind != "U":
        col = col.astype(np.str_)
    width = col.dtype.itemsize // 4
    raw = col.view(np.uint32).reshape(n, width)
    top = raw.max(axis=0) if width else np.zeros(0, dtype=np.uint32)  # one pass over the column
    if width and top.max() >= 128:
        uniq, inv = np.unique(col, return_inverse=True)
        return uniq.astype(np.str_), inv.reshape(-1).astype(np.int64)
    used = np.flatnonzero(top)
    width = int(used[-1]) + 1 if used.size else 0  # strings pad with zeros at their end
    if 0 < width <= _CHUNK:
        # one int64 per string: distinct strings decode straight from the distinct integers
        weights = 128 ** np.arange(_CHUNK - 1, _CHUNK - 1 - width, -1, dtype=np.int64)
        packed = _horner(raw, width)
        packed_uniq, inv = _factorize_repeated(packed)
        digits = (packed_uniq[:, None] // weights[None, :]) % 128
        strings = digits.astype(np.uint32).view(f"<U{width}").reshape(-1)
        return strings.astype(np.str_), inv.reshape(-1).astype(np.int64)
    code = np.zeros(n, dtype=np.int64)
    groups = 1
    for start in range(0, width, _CHUNK):
        block = raw[:, start : min(width, start + _CHUNK)].astype(np.int64)
        weights = 128 ** np.arange(_CHUNK - 1, _CHUNK - 1 - block.shape[1], -1, dtype=np.int64)
        chunk_uniq, chunk_code = np.unique(block @ weights, return_inverse=True)
        if groups == 1:
            code, groups = chunk_code.reshape(-1).astype(np.int64), chunk_uniq.shape[0]
            continue
        combined = code * chunk_uniq.shape[0] + chunk_code.reshape(-1)
        uniq_codes, code = factorize(combined, groups * chunk_uniq.shape[0])
        groups = uniq_codes.shape[0]
    first = np.full(groups, n, dtype=np.int64)
    np.minimum.at(first, code, np.arange(n, dtype=np.int64))
    return col[first].astype(np.str_), code


def _factorize_repeated(packed: IntArray) -> tuple[IntArray, IntArray]:
    """Sorted distinct values of ``packed`` [n] and each row's index among them, for columns
    whose values repeat (a file's firms, its accounts).

    The distinct values of an evenly spaced sample of the rows are found first (a sort of the
    sample, not of the column); every row is looked up among them (a binary search when there are
    a few, a hash look-up otherwise), and only the rows the sample missed are sorted to find the
    rest. Exact: every row is checked against its value. A column with too many distinct values
    for this to pay goes to ``np.unique``.
    """
    n = packed.shape[0]
    rows = packed[:: max(1, n // _SAMPLE_ROWS)]
    sample = np.unique(rows)
    if sample.shape[0] * _HASHED_SHARE >= rows.shape[0]:
        return _unique_inverse(packed)
    if sample.shape[0] < _FEW_VALUES:
        inv = np.minimum(np.searchsorted(sample, packed), sample.shape[0] - 1).astype(np.int64)
        inv[sample[inv] != packed] = -1
    else:
        inv = KeyIndex(sample).find(packed)
    lost = inv < 0
    missed = np.flatnonzero(lost)
    if missed.shape[0] == 0:
        return sample, inv
    if missed.shape[0] * _HASHED_SHARE >= n:
        return _unique_inverse(packed)
    uniq = np.union1d(sample, packed[missed])
    hit = ~lost
    inv[hit] = np.searchsorted(uniq, sample)[inv[hit]]
    inv[missed] = np.searchsorted(uniq, packed[missed])
    return uniq, inv


def search_sorted(haystack: NDArray[np.generic], needles: NDArray[np.generic]) -> IntArray:
    """``np.searchsorted(haystack, needles)`` [n]; many random needles are sorted first (a
    quicksort plus an in-order search costs a fraction of random binary searches)."""
    if needles.shape[0] < 4096 or haystack.shape[0] < 64:
        return np.searchsorted(haystack, needles).astype(np.int64)
    order = np.argsort(needles)
    pos = np.empty(needles.shape[0], dtype=np.int64)
    pos[order] = np.searchsorted(haystack, needles[order])
    return pos


def _pack_short(column: NDArray[np.str_]) -> IntArray | None:
    """Strings of at most 9 ASCII characters [n] as order-preserving int64 [n] (None if not
    ASCII)."""
    n = column.shape[0]
    width = column.dtype.itemsize // 4
    if width == 0:
        return np.zeros(n, dtype=np.int64)
    raw = column.view(np.uint32).reshape(n, width)
    if width > _CHUNK:
        if raw[:, _CHUNK:].any():
            return None  # longer than one chunk
        raw = raw[:, :_CHUNK]
        width = _CHUNK
    if raw.max() >= 128:
        return None
    return _horner(raw, width)


def _horner(raw: NDArray[np.uint32], width: int) -> IntArray:
    """The first ``width`` (<= 9) code points of each row of ``raw`` [n, w] as one int64 [n],
    base 128, first character most significant, padded to 9 digits: the same integers as a
    product with the weights 128**8, 128**7, ..., by shifts over one byte column at a time (an
    integer matrix product has no fast kernel). Every code point must be below 128."""
    digits = raw[:, :width].astype(np.uint8)
    packed = np.zeros(raw.shape[0], dtype=np.int64)
    for j in range(width):
        packed <<= 7
        packed |= digits[:, j]
    packed <<= 7 * (_CHUNK - width)
    return packed


def lookup_strings(vocab: StrArray, values: NDArray[np.str_]) -> IntArray:
    """Index of each value [n] in the sorted, distinct ``vocab`` [v], -1 when absent."""
    vals = np.asarray(values)
    n = vals.shape[0]
    if vocab.size == 0 or n == 0:
        return np.full(n, -1, dtype=np.int64)
    voc = np.asarray(vocab)
    if vals.dtype.kind == "U" and voc.dtype.kind == "U":
        # one int64 per string: pack both and search the (sorted) vocabulary
        keys = _pack_short(voc)
        wanted = _pack_short(vals)
        if keys is not None and wanted is not None:
            pos: IntArray = np.minimum(search_sorted(keys, wanted), keys.shape[0] - 1)
            pos[keys[pos] != wanted] = -1
            return pos
    both = np.concatenate([np.asarray(vocab).astype(np.str_), np.asarray(values).astype(np.str_)])
    _, codes = factorize_strings(both)
    table = np.full(int(codes.max()) + 1, -1, dtype=np.int64)
    table[codes[: vocab.size]] = np.arange(vocab.size, dtype=np.int64)
    out: IntArray = table[codes[vocab.size :]]
    return out


def group_sum(values: FloatArray, inverse: IntArray, groups: int) -> FloatArray:
    """Sum rows of ``values`` ([n] or [n, k]) into ``groups`` buckets by ``inverse`` [n]."""
    if values.ndim == 1:
        return np.bincount(inverse, weights=values, minlength=groups).astype(np.float64)
    # one bincount per point (~3x faster than one bincount over a flattened [n * k] index);
    # the result is the transposed view of a [k, groups] array, so its columns are contiguous
    out = np.empty((values.shape[1], groups), dtype=np.float64)
    strided = not values.T.flags.c_contiguous
    # a strided column is copied into one reused buffer (bincount would allocate a copy per call)
    buffer = np.empty(values.shape[0], dtype=np.float64) if strided else None
    for j in range(values.shape[1]):
        column = values[:, j]
        if buffer is not None:
            np.copyto(buffer, column)
            column = buffer
        out[j] = np.bincount(inverse, weights=column, minlength=groups)
    result: FloatArray = out.T
    return result


def group_sum_split(
    values: FloatArray, inverse: IntArray, groups: int
) -> tuple[FloatArray, FloatArray]:
    """Sums of the positive parts and of the negative parts of rows of ``values`` [n, k] by
    group: ([groups, k], [groups, k]). Column by column, so no [n, k] temporaries."""
    k = values.shape[1]
    gains = np.empty((k, groups), dtype=np.float64)
    losses = np.empty((k, groups), dtype=np.float64)
    columns = np.ascontiguousarray(values.T)  # [k, n]: each point contiguous
    part = np.empty(values.shape[0], dtype=np.float64)
    for j in range(k):
        np.maximum(columns[j], 0.0, out=part)
        gains[j] = np.bincount(inverse, weights=part, minlength=groups)
        np.minimum(columns[j], 0.0, out=part)
        losses[j] = np.bincount(inverse, weights=part, minlength=groups)
    return np.ascontiguousarray(gains.T), np.ascontiguousarray(losses.T)


def first_index(inverse: IntArray, groups: int) -> IntArray:
    """Index of the first member of each group, shape [groups]."""
    first = np.full(groups, inverse.shape[0], dtype=np.int64)
    np.minimum.at(first, inverse, np.arange(inverse.shape[0], dtype=np.int64))
    return first
