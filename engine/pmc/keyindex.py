"""An open-addressing hash index over distinct int64 keys, built and searched with numpy.

Theory of operation. ``KeyIndex`` is built once from a set's distinct keys (its match keys, its
symbols packed to integers, its strike codes) and answers "which entry is this key" for a whole
column at once: a multiplicative hash gives each key a home slot in a table of at least four slots
per key, collisions go to the next free slot (linear probing), and a search gathers the slot of
every value, compares the stored key and probes on only for the few values that met another key.
No sort of the searched values: a look-up costs a few passes over the column, where a sorted
search costs a sort of the column first.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio, odd: Fibonacci hashing


def pack_bytes(column: NDArray[np.str_]) -> IntArray | None:
    """Strings of at most 8 characters, each below U+0100, as int64 [n]: one byte per character
    in one word (distinct strings give distinct integers; the order is not kept). None when some
    string is longer or has another character."""
    n = column.shape[0]
    width = column.dtype.itemsize // 4
    if column.dtype.kind != "U":
        return None
    raw = column.view(np.uint32).reshape(n, width)
    if width > 8:
        if raw[:, 8:].any():
            return None
        raw = raw[:, :8]
        width = 8
    if width and raw.max() >= 256:
        return None
    word = np.zeros((n, 8), dtype=np.uint8)
    word[:, :width] = raw
    packed: IntArray = word.view(np.int64).reshape(n)
    return packed


def pack_dates(column: NDArray[np.str_]) -> IntArray | None:
    """'YYYY-MM-DD' or '' strings [n] as int64: the eight characters that are not the dashes, a
    byte each ('' gives 0; distinct strings give distinct integers, the order is not kept). None
    when some string is neither, or has a character above U+00FF."""
    n = column.shape[0]
    if column.dtype.kind != "U" or column.dtype.itemsize != 40:
        return None
    raw = column.view(np.uint32).reshape(n, 10)
    blank = raw[:, 0] == 0
    dash4, dash7 = raw[:, 4], raw[:, 7]
    # a dated row starts with a character; a blank one has nothing where the dashes go, so the
    # eight packed characters tell every accepted string apart
    dated = (dash4 == 45) & (dash7 == 45) & ~blank  # '-'
    empty = blank & (dash4 == 0) & (dash7 == 0)
    if not bool((dated | empty).all()) or (n and raw.max() >= 256):
        return None
    word = np.empty((n, 8), dtype=np.uint8)
    word[:, 0:4] = raw[:, 0:4]
    word[:, 4:6] = raw[:, 5:7]
    word[:, 6:8] = raw[:, 8:10]
    packed: IntArray = word.view(np.int64).reshape(n)
    return packed


class KeyIndex:
    """Index of each of ``keys`` [k] (distinct int64) by value; ``find`` gives -1 when absent."""

    def __init__(self, keys: IntArray) -> None:
        self.keys = np.ascontiguousarray(keys, dtype=np.int64)
        k = self.keys.shape[0]
        self._bits = max(int(4 * k).bit_length(), 4)
        self._mask = (1 << self._bits) - 1
        slots = np.full(1 << self._bits, -1, dtype=np.int64)
        home = self._home(self.keys)
        pending = np.arange(k, dtype=np.int64)
        step = 0
        while pending.shape[0]:
            slot = (home[pending] + step) & self._mask
            free = slots[slot] == -1
            # of several keys reaching one free slot, the first takes it; the rest probe on
            _, first = np.unique(slot[free], return_index=True)
            taken = np.flatnonzero(free)[first]
            slots[slot[taken]] = pending[taken]
            keep = np.ones(pending.shape[0], dtype=bool)
            keep[taken] = False
            pending = pending[keep]
            step += 1
        slots[slots < 0] = k  # empty slots point one past the keys
        self.slots = slots
        self._padded = np.concatenate([self.keys, np.zeros(1, dtype=np.int64)])

    def _home(self, values: IntArray) -> IntArray:
        """Home slot of each value [n]: the top bits of value x the golden constant."""
        mixed = values.view(np.uint64) * _GOLDEN  # wraps modulo 2**64 (array arithmetic)
        home: IntArray = (mixed >> np.uint64(64 - self._bits)).astype(np.int64)
        return home

    def find(self, values: IntArray) -> IntArray:
        """Index in ``keys`` of each value [n], -1 when it is not one of the keys."""
        values = np.ascontiguousarray(values, dtype=np.int64)
        n = values.shape[0]
        k = self.keys.shape[0]
        if n == 0 or k == 0:
            return np.full(n, -1, dtype=np.int64)
        slot = self._home(values)
        cand = self.slots[slot]  # k for an empty slot: ``_padded[k]`` is any value
        hit = self._padded[cand] == values
        out: IntArray = np.where(hit, cand, -1)
        out[out == k] = -1  # a value equal to the padding, met at an empty slot
        pending = np.flatnonzero(~hit & (cand != k))
        step = 1
        while pending.shape[0]:
            s = (slot[pending] + step) & self._mask
            c = self.slots[s]
            h = (self._padded[c] == values[pending]) & (c != k)
            out[pending[h]] = c[h]
            pending = pending[~h & (c != k)]
            step += 1
        return out
