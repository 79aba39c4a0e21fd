"""The ``TheoSet`` model: the columnar arrays of a theo set, its layout and its match keys.

A set is five UTF-8 CSV files (``FILES``), read by ``engine.pmc.theo.read`` and
written by ``engine.pmc.theo.write``; the column names and the 10 P&L points they share are
defined here.

Theory of operation. Instruments live in columnar arrays of length N (one row per instrument and
account type) with the P&L at the 10 points in ``pnl`` of shape [N, 10] (-5..-1, +1..+5). The
group tables are small arrays too, and every instrument row carries integer codes into them
(``cg_code`` into class groups, ``pg_code`` into the (account type, product group) table), so the
margin calculation never touches strings on its hot path. A 346 record finds its instrument by a
match key (account type, symbol, security type, put/call, series date, strike in 1/10000). The key
is an int64: each part becomes a code (symbols, series dates and strikes through small sorted
vocabularies, searched with ``np.searchsorted``), the codes are combined in mixed radix, and the
sorted ``key_codes`` are searched for a whole file at once; no Python object is touched per
record. The product group of a class group comes from the dense table ``cg_pg_code``
[account type, class group].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from engine.pmc.grouping import lookup_strings, search_sorted
from engine.pmc.keyindex import KeyIndex, pack_bytes, pack_dates

ACCOUNT_TYPES = ("C", "F", "M")
SECURITY_TYPES = ("O", "I", "F", "S", "W")
OPTION_TYPES = ("O", "I", "W")
POINTS = 10
POINT_LABELS = ("-5", "-4", "-3", "-2", "-1", "+1", "+2", "+3", "+4", "+5")
PNL_COLUMNS = (
    "pnl_m5",
    "pnl_m4",
    "pnl_m3",
    "pnl_m2",
    "pnl_m1",
    "pnl_p1",
    "pnl_p2",
    "pnl_p3",
    "pnl_p4",
    "pnl_p5",
)
#: the 10 points as signed fractions of the move range: [-1, -0.8, ..., -0.2, 0.2, ..., 1]
STEPS = np.array([-5, -4, -3, -2, -1, 1, 2, 3, 4, 5], dtype=np.float64) / 5.0

FILES = ("meta.csv", "portfolio_groups.csv", "product_groups.csv", "class_groups.csv", "pnl.csv")
META_COLUMNS = ("activity_date", "source", "equity_product_group")
PORTFOLIO_COLUMNS = ("portfolio_group_id", "account_type", "offset_pct")
PRODUCT_COLUMNS = (
    "product_group_id",
    "portfolio_group_id",
    "account_type",
    "offset_pct",
    "move_down_pct",
    "move_up_pct",
)
CLASS_COLUMNS = ("class_group_id", "product_group_id", "basket_id")
PNL_FILE_COLUMNS = (
    "account_type",
    "product_group_id",
    "class_group_id",
    "underlying",
    "symbol",
    "security_type",
    "exercise_style",
    "settlement_style",
    "series_date",
    "expiration_date",
    "put_call",
    "strike",
    "multiplier",
    "theo_price",
    "implied_vol",
    "min_charge",
    *PNL_COLUMNS,
)
#: optional columns of ``pnl.csv`` (blank when the file has none)
PNL_OPTIONAL_COLUMNS = ("exchange",)
STRIKE_SCALE = 10_000
#: the put/call part of a match key: blank (not an option), call, put
PUT_CALL_FLAGS = ("", "C", "P")

StrArray = NDArray[np.str_]
StrColumn = Sequence[str] | NDArray[np.str_]
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# the parts of a match key with fixed choices -> their codes (``encode_few_keys``)
_ACCOUNT_CODES = {c: i for i, c in enumerate(ACCOUNT_TYPES)}
_TYPE_CODES = {c: i for i, c in enumerate(SECURITY_TYPES)}
_FLAG_CODES = {c: i for i, c in enumerate(PUT_CALL_FLAGS)}


def _strike_codes(strike: FloatArray) -> IntArray:
    """Strikes [n] as the integers of the strike vocabulary (``STRIKE_SCALE`` per unit)."""
    codes: IntArray = np.rint(np.asarray(strike, dtype=np.float64) * STRIKE_SCALE).astype(np.int64)
    return codes


def _vocab_codes(vocab: NDArray[np.generic], values: NDArray[np.generic]) -> IntArray:
    """Index of each value [n] in the sorted ``vocab``, -1 when absent."""
    values = np.asarray(values)
    if vocab.size == 0 or values.size == 0:
        return np.full(values.shape[0], -1, dtype=np.int64)
    pos = np.minimum(search_sorted(vocab, values), vocab.size - 1)
    pos[vocab[pos] != values] = -1
    return pos


def _series_codes(vocab: StrArray, values: StrArray) -> IntArray:
    """Index of each ISO date or '' [n] in the sorted ``vocab``, -1 when absent.

    Dates are turned into YYYYMMDD integers by digit arithmetic on the code points (no string
    sort); any value that is not exactly '' or 'YYYY-MM-DD' falls back to ``lookup_strings``.
    """
    vals = np.asarray(values)
    if vals.dtype.kind != "U" or vals.dtype.itemsize != 40 or vocab.dtype.itemsize not in (4, 40):
        return lookup_strings(vocab, vals)
    raw = vals.view(np.uint32).reshape(-1, 10)
    wanted = np.zeros(raw.shape[0], dtype=np.int64)
    ok = (raw[:, 4] == 45) & (raw[:, 7] == 45)  # '-'
    for j in (0, 1, 2, 3, 5, 6, 8, 9):
        digit = raw[:, j] - np.uint32(48)  # wraps above 9 for anything below '0'
        ok &= digit <= 9
        wanted *= 10
        wanted += digit
    blank = raw[:, 0] == 0
    if not bool((ok | blank).all()):
        return lookup_strings(vocab, vals)
    wanted[blank] = 0
    vocab_ints = np.asarray(
        [int(v.replace("-", "")) if v else 0 for v in vocab.tolist()], dtype=np.int64
    )  # the set's few dates: sorted like the strings
    if vocab_ints.size == 0:
        return np.full(vals.shape[0], -1, dtype=np.int64)
    pos = np.minimum(search_sorted(vocab_ints, wanted), vocab_ints.size - 1)
    pos[vocab_ints[pos] != wanted] = -1
    return pos


def _choice_codes(values: StrArray, choices: Sequence[str]) -> IntArray:
    """Index of each value [n] in ``choices`` (a handful of strings), -1 when absent."""
    vals = np.asarray(values)
    if vals.dtype == np.dtype("<U1") and all(len(c) <= 1 for c in choices):
        # one character: a table over code points (a string compare per choice costs more)
        table = np.full(129, -1, dtype=np.int64)
        for i, c in enumerate(choices):
            table[ord(c) if c else 0] = i
        points = np.minimum(vals.view(np.uint32), 128)
        return table[points]
    out = np.full(vals.shape[0], -1, dtype=np.int64)
    for i, c in enumerate(choices):
        out[vals == c] = i
    return out


def move_fractions(down: FloatArray, up: FloatArray) -> FloatArray:
    """The 10 signed moves for each row: shape [k] down, [k] up -> [k, 10]."""
    down2 = np.asarray(down, dtype=np.float64)[:, None]
    up2 = np.asarray(up, dtype=np.float64)[:, None]
    return np.where(STEPS < 0, STEPS * down2, STEPS * up2)


def strike_code(strike: float) -> int:
    """Strike in 1/10000 of a dollar, the unit two strikes are compared in."""
    return int(round(strike * STRIKE_SCALE))


InstrumentKey = tuple[str, str, str, str, str, int]
FullKey = tuple[InstrumentKey, str, str]
ACCOUNT_TYPE_INDEX = {a: i for i, a in enumerate(ACCOUNT_TYPES)}


def match_key(
    account_type: str,
    symbol: str,
    security_type: str,
    put_call: str,
    series_date: str,
    strike: float,
) -> InstrumentKey:
    """The key that joins a 346 record to an instrument row (see module docstring)."""
    return (account_type, symbol, security_type, put_call, series_date, strike_code(strike))


def full_key(base: InstrumentKey, exercise_style: str, settlement_style: str) -> FullKey:
    """The base key refined by styles, used only when the base key is ambiguous in the set."""
    return (base, exercise_style, settlement_style)


def instrument_keys(
    account_type: Sequence[str],
    symbol: Sequence[str],
    security_type: Sequence[str],
    put_call: Sequence[str],
    series_date: Sequence[str],
    strike: FloatArray,
) -> list[InstrumentKey]:
    """Match keys of whole columns at once (each [n]); ``zip`` builds the tuples in C."""
    codes = _strike_codes(strike)
    return list(
        zip(
            list(account_type),
            list(symbol),
            list(security_type),
            list(put_call),
            list(series_date),
            codes.tolist(),
            strict=True,
        )
    )


@dataclass(frozen=True, eq=False)
class TheoSet:
    """One theoretical P&L set, columnar.

    Portfolio groups, shape [P]: ``port_ids``, ``port_account_types``, ``port_offsets``.
    Product groups, shape [Q] (one row per product group and account type): ``pg_ids``,
    ``pg_account_types``, ``pg_port`` (code into portfolio groups, -1 for none), ``pg_offsets``
    (NaN when empty: its class groups stand alone), ``pg_move_down``, ``pg_move_up``.
    Class groups, shape [C]: ``cg_ids``, ``cg_product_groups``, ``cg_baskets`` ('' for none).
    Instruments, shape [N] (``pnl`` [N, 10]): the columns of ``pnl.csv`` plus ``cg_code`` and
    ``pg_code``. ``key_codes`` [K] (sorted, see ``encode_keys``) with ``key_rows`` [K] give the
    instrument row of each match key, or -1 when several rows share it (then ``full_index``
    decides by exercise and settlement style). ``cg_pg_code`` [3, C]
    gives the product group code of each class group per account type (index of
    ``ACCOUNT_TYPES``), -1 when the product group has no row for that type; ``equity_pg_code`` [3]
    the same for the equity product group.
    """

    name: str
    activity_date: str
    source: str
    equity_product_group: str
    port_ids: StrArray
    port_account_types: StrArray
    port_offsets: FloatArray
    pg_ids: StrArray
    pg_account_types: StrArray
    pg_port: IntArray
    pg_offsets: FloatArray
    pg_move_down: FloatArray
    pg_move_up: FloatArray
    cg_ids: StrArray
    cg_product_groups: StrArray
    cg_baskets: StrArray
    account_type: StrArray
    product_group: StrArray
    class_group: StrArray
    underlying: StrArray
    symbol: StrArray
    security_type: StrArray
    exercise_style: StrArray
    settlement_style: StrArray
    series_date: StrArray
    expiration_date: StrArray
    put_call: StrArray
    strike: FloatArray
    multiplier: FloatArray
    theo_price: FloatArray
    implied_vol: FloatArray
    min_charge: FloatArray
    pnl: FloatArray
    cg_code: IntArray
    pg_code: IntArray
    vocab_symbol: StrArray
    vocab_series: StrArray
    vocab_strike: IntArray
    key_codes: IntArray
    key_rows: IntArray
    full_index: Mapping[FullKey, int]
    cg_pg_code: IntArray
    equity_pg_code: IntArray
    port_index: Mapping[tuple[str, str], int]
    pg_index: Mapping[tuple[str, str], int]
    cg_index: Mapping[str, int]
    basket_index: Mapping[str, int]
    #: exchange of each instrument [N] ('' when ``pnl.csv`` has no ``exchange`` column)
    exchange: StrArray = field(default_factory=lambda: np.zeros(0, dtype="<U1"))
    #: (account type, symbol) -> row of the future with the earliest series date (for 'X' spot)
    spot_future: Mapping[tuple[str, str], int] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Number of instrument rows N."""
        return int(self.pnl.shape[0])

    def encode_keys(
        self,
        account_type: StrArray,
        symbol: StrArray,
        security_type: StrArray,
        put_call: StrArray,
        series_date: StrArray,
        strike: FloatArray,
    ) -> IntArray:
        """Match keys of whole columns [n] as int64 codes; -1 where a part is unknown to the set."""
        many = len(account_type) >= self.MANY_RECORDS
        parts = [
            _choice_codes(account_type, ACCOUNT_TYPES),
            self._symbol_codes(symbol) if many else lookup_strings(self.vocab_symbol, symbol),
            _choice_codes(security_type, SECURITY_TYPES),
            _choice_codes(put_call, PUT_CALL_FLAGS),
            self._series_codes(series_date)
            if many
            else _series_codes(self.vocab_series, series_date),
            self._strike_index.find(_strike_codes(strike))
            if many
            else _vocab_codes(self.vocab_strike, _strike_codes(strike)),
        ]
        code = np.maximum(parts[0], 0)
        lowest = parts[0].copy()  # below 0 where some part is unknown
        for part, size in zip(parts[1:], self._key_sizes[1:], strict=True):
            code *= size
            code += part
            np.minimum(lowest, part, out=lowest)
        code[lowest < 0] = -1  # (a -1 part only spoils the code of a row that is dropped here)
        return code

    #: records up to which ``lookup_columns`` encodes keys with dictionaries, not numpy
    FEW_RECORDS = 64
    #: records from which look-ups go through the set's hash indexes (built once per set, on
    #: first use) instead of sorted searches
    MANY_RECORDS = 4096

    @cached_property
    def _key_index(self) -> KeyIndex:
        """Hash index of ``key_codes``."""
        return KeyIndex(self.key_codes)

    @cached_property
    def _strike_index(self) -> KeyIndex:
        """Hash index of ``vocab_strike``."""
        return KeyIndex(np.asarray(self.vocab_strike, dtype=np.int64))

    @cached_property
    def _symbol_index(self) -> KeyIndex | None:
        """Hash index of the symbols packed to integers (None if some cannot be packed)."""
        voc = np.asarray(self.vocab_symbol)
        packed = pack_bytes(voc) if voc.dtype.kind == "U" and voc.size else None
        return None if packed is None else KeyIndex(packed)

    @cached_property
    def _series_index(self) -> KeyIndex | None:
        """Hash index of the series dates packed to integers (None if some cannot be packed)."""
        voc = np.asarray(self.vocab_series)
        packed = pack_dates(voc.astype("<U10")) if voc.dtype.kind == "U" and voc.size else None
        return None if packed is None or voc.dtype.itemsize > 40 else KeyIndex(packed)

    def _series_codes(self, series_date: StrArray) -> IntArray:
        """Index of each series date [n] in ``vocab_series``, -1 when absent (hash index when
        both sides pack to integers, the module's ``_series_codes`` otherwise)."""
        vals = np.asarray(series_date)
        index = self._series_index
        wanted = pack_dates(vals) if index is not None else None
        if index is None or wanted is None:
            return _series_codes(self.vocab_series, vals)
        return index.find(wanted)

    def _symbol_codes(self, symbol: StrArray) -> IntArray:
        """Index of each symbol [n] in ``vocab_symbol``, -1 when absent (hash index when
        both sides pack to integers, ``lookup_strings`` otherwise)."""
        vals = np.asarray(symbol)
        index = self._symbol_index
        wanted = pack_bytes(vals) if index is not None and vals.dtype.kind == "U" else None
        if index is None or wanted is None:
            return lookup_strings(self.vocab_symbol, vals)
        return index.find(wanted)

    @cached_property
    def _key_sizes(self) -> tuple[int, ...]:
        """The radix of each of the six parts of a match-key code (at least 1), in key order."""
        return (
            max(len(ACCOUNT_TYPES), 1),
            max(self.vocab_symbol.shape[0], 1),
            max(len(SECURITY_TYPES), 1),
            len(PUT_CALL_FLAGS),
            max(self.vocab_series.shape[0], 1),
            max(self.vocab_strike.shape[0], 1),
        )

    @cached_property
    def _vocab_maps(self) -> tuple[dict[str, int], dict[str, int], dict[int, int]]:
        """Symbol, series date and strike code -> index in their vocabularies (built once)."""
        return (
            {v: i for i, v in enumerate(self.vocab_symbol.tolist())},
            {v: i for i, v in enumerate(self.vocab_series.tolist())},
            {v: i for i, v in enumerate(self.vocab_strike.tolist())},
        )

    def encode_few_keys(
        self,
        account_type: StrArray,
        symbol: StrArray,
        security_type: StrArray,
        put_call: StrArray,
        series_date: StrArray,
        strike: FloatArray,
    ) -> IntArray:
        """``encode_keys`` for a few records: one dictionary look-up per part instead of a few
        dozen numpy calls (whose fixed cost is most of a small portfolio's look-up)."""
        symbols, series, strikes = self._vocab_maps
        accounts, types, flags = _ACCOUNT_CODES, _TYPE_CODES, _FLAG_CODES
        _, n_symbol, n_type, n_flag, n_series, n_strike = self._key_sizes
        codes = _strike_codes(strike)
        out: list[int] = []
        for a, sym, t, pc, day, k in zip(
            np.asarray(account_type).tolist(),
            np.asarray(symbol).tolist(),
            np.asarray(security_type).tolist(),
            np.asarray(put_call).tolist(),
            np.asarray(series_date).tolist(),
            codes.tolist(),
            strict=True,
        ):
            p0, p1, p2, p3, p4, p5 = (
                accounts.get(a),
                symbols.get(sym),
                types.get(t),
                flags.get(pc),
                series.get(day),
                strikes.get(k),
            )
            if p0 is None or p1 is None or p2 is None or p3 is None or p4 is None or p5 is None:
                out.append(-1)  # a part unknown to the set
                continue
            # the mixed-radix code of ``encode_keys``, part by part
            code = ((((p0 * n_symbol + p1) * n_type + p2) * n_flag + p3) * n_series + p4) * n_strike
            out.append(code + p5)
        return np.asarray(out, dtype=np.int64)

    def lookup_columns(
        self,
        account_type: StrArray,
        symbol: StrArray,
        security_type: StrArray,
        put_call: StrArray,
        series_date: StrArray,
        strike: FloatArray,
    ) -> IntArray:
        """Instrument rows for whole columns [n]: row, -1 ambiguous, -2 not in the set."""
        encode = self.encode_few_keys if len(account_type) <= self.FEW_RECORDS else self.encode_keys
        codes = encode(account_type, symbol, security_type, put_call, series_date, strike)
        out = np.full(codes.shape[0], -2, dtype=np.int64)
        if self.key_codes.size == 0 or codes.size == 0:
            return out
        if codes.shape[0] >= self.MANY_RECORDS:
            found = self._key_index.find(codes)  # codes of -1 (unknown parts) are never keys
            hit = found >= 0
            out[hit] = self.key_rows[found[hit]]
            return out
        pos = np.minimum(search_sorted(self.key_codes, codes), self.key_codes.size - 1)
        hit = (self.key_codes[pos] == codes) & (codes >= 0)
        out[hit] = self.key_rows[pos[hit]]
        return out

    def equity_moves(self, account_type: str) -> FloatArray | None:
        """The 10 moves of the equity product group for an account type, or None if absent."""
        code = self.pg_index.get((account_type, self.equity_product_group))
        if code is None:
            return None
        moves: FloatArray = move_fractions(
            self.pg_move_down[code : code + 1], self.pg_move_up[code : code + 1]
        )[0]
        return moves
