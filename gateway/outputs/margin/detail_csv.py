"""``<name>.results.csv`` in bulk: the same bytes as ``data.results_rows`` through ``csv``, without
a Python object per value.

Theory of operation. Every row of the file is one of: an account, a portfolio group's Gains,
Losses and Total, a product group's three, a class group, a basket, a contract, a firm. Each row
gets a sort key (account, the stand-alone unit it sits in, product group, class group, then
class group row / baskets / contracts) whose order is the depth-first order of
``results_rows``; one ``lexsort`` puts the rows in file order. The rows are then written a block
at a time: each column is gathered for the block and formatted by ``bulk`` (cents, distinct
strings), and the block's bytes are yielded, so memory stays bounded by the block size.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator

import numpy as np
from numpy.typing import NDArray

from engine.pmc.margin import LEVEL_PORTFOLIO_GROUP
from engine.pmc.report import MarginReport
from gateway.outputs.margin import bulk

IntArray = NDArray[np.int64]
BLOCK_ROWS = 8_192  # small blocks: a block's matrices stay in the cache

# row kinds
ACCOUNT, PORT_G, PORT_L, PORT_T, PG_G, PG_L, PG_T, CG, BASKET, CONTRACT = range(10)
LEVELS = {
    ACCOUNT: "account",
    PORT_G: "portfolio_group",
    PORT_L: "portfolio_group",
    PORT_T: "portfolio_group",
    PG_G: "product_group",
    PG_L: "product_group",
    PG_T: "product_group",
    CG: "class_group",
    BASKET: "basket",
    CONTRACT: "contract",
}
ROW_NAMES = {PORT_G: "Gains", PORT_L: "Losses", PG_G: "Gains", PG_L: "Losses"}
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ._/#^+:-")


def csv_field(value: object) -> str:
    """One field as ``csv.writer`` writes it (quoted only when it must be)."""
    s = str(value)
    if s and set(s) <= _SAFE:
        return s
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(["x", s])
    return buf.getvalue()[2:-1]


def _strings(values: NDArray[np.generic]) -> bulk.U8:
    """CSV fields of strings: as they are when no value needs quoting, else through ``csv``."""
    arr = np.asarray(values)
    if not arr.size:
        return np.zeros((0, 1), dtype=np.uint8)
    if arr.dtype.kind == "U":
        try:
            mat = bulk.text(arr)
        except UnicodeEncodeError:
            return bulk.distinct(arr, csv_field)
    else:
        mat = bulk.text(arr)
    return mat if bulk.plain(mat) else bulk.distinct(arr, csv_field)


class _Plan:
    """Every row of the accounts ``lo`` to ``hi`` (exclusive): kind, the index into its level's
    arrays, and its context; ``texts`` caches the strings' fields over the report's plans."""

    def __init__(self, report: MarginReport, lo: int, hi: int, texts: dict[str, bulk.U8]) -> None:
        r = report.result
        self.r = r
        n_a, n_p, n_g = r.account_firm.shape[0], r.pg_id.shape[0], r.cg_id.shape[0]
        n_r, n_b, n = r.port_id.shape[0], r.basket_id.shape[0], r.pos_cg.shape[0]
        big = np.int64(r.unit_level.shape[0] + 1)  # after every unit
        # the unit slot of each product group: its portfolio group's unit, its own, or after
        # every unit (class groups standing alone, in product group order)
        pg_slot = np.where(
            np.isnan(r.pg_offset),
            big,
            np.where(
                r.pg_port >= 0,
                r.port_unit[np.maximum(r.pg_port, 0)] if n_r else -1,
                r.pg_unit,
            ),
        ).astype(np.int64)
        unit_port = r.unit_level == LEVEL_PORTFOLIO_GROUP
        port_rows = r.unit_ref[unit_port]
        port_units = np.flatnonzero(unit_port).astype(np.int64)
        pgs = np.arange(n_p, dtype=np.int64)  # every product group is shown
        cg_p = r.cg_pg.astype(np.int64)
        b_g = r.basket_cg.astype(np.int64)
        pos_g = r.pos_cg.astype(np.int64)

        a_idx = np.arange(n_a, dtype=np.int64)
        g_idx = np.arange(n_g, dtype=np.int64)
        k_idx = np.arange(n_b, dtype=np.int64)
        i_idx = np.arange(n, dtype=np.int64)
        port_acct = r.port_account[port_rows].astype(np.int64) if port_rows.size else port_units
        # per kind: its rows (index into the level), then the sort keys: account, unit slot,
        # product group, class group, place within the class group (an int: on every row)
        Key = IntArray | int
        table: list[tuple[int, IntArray, Key, Key, Key, Key, Key]] = [
            (ACCOUNT, a_idx, a_idx, -1, -1, -1, -1),
            *(
                (kind, port_rows, port_acct, port_units, -1, -1, order)
                for order, kind in enumerate((PORT_G, PORT_L, PORT_T))
            ),
            *(
                (kind, pgs, r.pg_account, pg_slot, pgs, -1, order)
                for order, kind in enumerate((PG_G, PG_L, PG_T))
            ),
            (CG, g_idx, r.cg_account, pg_slot[cg_p], cg_p, g_idx, 0),
            (BASKET, k_idx, r.basket_account, pg_slot[cg_p[b_g]], cg_p[b_g], b_g, 1),
            (CONTRACT, i_idx, r.pos_account, pg_slot[cg_p[pos_g]], cg_p[pos_g], pos_g, 2),
        ]
        table = [_accounts_in(t, lo, hi) for t in table]
        kind = np.concatenate([np.full(t[1].shape[0], t[0], dtype=np.int8) for t in table])
        # int32 keys (every count is far below 2**31): half the memory of the sort
        idx = np.concatenate([t[1] for t in table]).astype(np.int32)
        acct, slot, pg, cg, sub = (
            np.concatenate(
                [np.broadcast_to(np.asarray(t[j]).astype(np.int32), t[1].shape) for t in table]
            )
            for j in range(2, 7)
        )
        # within a class group: its row, then baskets, then contracts, each in index order
        order = np.lexsort((idx, sub, cg, pg, slot, acct))
        self.kind = kind[order]
        self.idx = idx[order]
        self.acct = acct[order]
        self.pg = pg[order]
        self.cg = cg[order]
        self._texts = texts

    def __len__(self) -> int:
        return int(self.kind.shape[0])

    def strings(self, name: str, values: NDArray[np.generic]) -> bulk.U8:
        """``_strings(values)``, made once per report (every block uses it)."""
        if name not in self._texts:
            self._texts[name] = _strings(values)
        return self._texts[name]


def _accounts_in(
    entry: tuple[
        int,
        IntArray,
        IntArray | int,
        IntArray | int,
        IntArray | int,
        IntArray | int,
        IntArray | int,
    ],
    lo: int,
    hi: int,
) -> tuple[
    int, IntArray, IntArray | int, IntArray | int, IntArray | int, IntArray | int, IntArray | int
]:
    """A table entry cut to the rows whose account is in ``lo`` to ``hi``."""
    kind, idx, *keys = entry
    acct = np.asarray(keys[0])
    if idx.shape[0] and acct.ndim:
        sel = np.flatnonzero((acct >= lo) & (acct < hi))
    else:
        sel = np.zeros(0, dtype=np.int64) if acct.ndim else np.arange(idx.shape[0])
    cut = [np.asarray(k)[sel] if np.ndim(k) else k for k in keys]
    return (kind, idx[sel], cut[0], cut[1], cut[2], cut[3], cut[4])


PLAN_ROWS = 262_144  # rows whose order is made together (the accounts' rows are contiguous)


def _row_counts(report: MarginReport) -> IntArray:
    """The number of results.csv rows of each account."""
    r = report.result
    n_a = r.account_firm.shape[0]
    ports = r.unit_account[r.unit_level == LEVEL_PORTFOLIO_GROUP]
    counts = np.ones(n_a, dtype=np.int64)
    for accounts, rows in (
        (ports, 3),
        (r.pg_account, 3),
        (r.cg_account, 1),
        (r.basket_account, 1),
        (r.pos_account, 1),
    ):
        counts += rows * np.bincount(np.asarray(accounts, dtype=np.int64), minlength=n_a)
    return counts


def _plans(report: MarginReport, counts: IntArray) -> Iterator[_Plan]:
    """The plans of the report's accounts (``counts``: rows per account), a group of about
    ``PLAN_ROWS`` rows at a time (the file's rows go account by account, so their concatenation
    is the file's order)."""
    texts: dict[str, bulk.U8] = {}
    for lo, hi in bulk.account_ranges(counts, PLAN_ROWS):
        yield _Plan(report, lo, hi, texts)


def results_csv_blocks(
    report: MarginReport,
    header: bytes,
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[bytes]:
    """The header, then the rows of ``<name>.results.csv`` a block at a time;
    ``progress(rows done, rows)`` after each block."""
    yield header
    counts = _row_counts(report)
    total, done = int(counts.sum()), 0
    for plan in _plans(report, counts):
        for start in range(0, len(plan), BLOCK_ROWS):
            rows = slice(start, start + BLOCK_ROWS)
            yield _block(report, plan, rows)
            done += len(range(len(plan))[rows])
            if progress is not None:
                progress(done, total)
    yield _firm_rows(report)


def iter_result_rows(report: MarginReport, first_block: int = 2_000) -> Iterator[list[str]]:
    """The rows of ``results.csv`` as lists of fields (as ``data.results_rows`` yields them),
    made a block at a time: a reader that stops early pays only for what it read."""
    size = first_block
    for plan in _plans(report, _row_counts(report)):
        start = 0
        while start < len(plan):
            text = _block(report, plan, slice(start, start + size)).decode("utf-8")
            yield from csv.reader(io.StringIO(text))
            start += size
            size = BLOCK_ROWS
    yield from csv.reader(io.StringIO(_firm_rows(report).decode("utf-8")))


def _pick(kind: NDArray[np.int8], choices: dict[int, bulk.U8], idx: IntArray) -> bulk.U8:
    """Row j takes ``choices[kind[j]][idx[j]]`` (empty for kinds not in ``choices``)."""
    n = kind.shape[0]
    width = max([m.shape[1] for m in choices.values()] + [1])
    out = np.zeros((n, width), dtype=np.uint8)
    for k, mat in choices.items():
        rows = np.flatnonzero(kind == k)
        if rows.size and mat.shape[0]:
            out[rows, : mat.shape[1]] = mat[idx[rows]]
    return out


def _gather(
    kind: NDArray[np.int8],
    idx: IntArray,
    sources: dict[int, np.ndarray],
    shape: tuple[int, ...],
    fill: float = np.nan,
) -> np.ndarray:
    """Row j takes ``sources[kind[j]][idx[j]]`` (``fill`` for other kinds)."""
    out = np.full((kind.shape[0], *shape), fill, dtype=np.float64)
    for k, src in sources.items():
        rows = np.flatnonzero(kind == k)
        if rows.size:
            out[rows] = src[idx[rows]]
    return out


def _money(values: np.ndarray) -> bulk.U8:
    """The field with its separator before it: empty for NaN."""
    return bulk.blank_where(bulk.fixed2(np.nan_to_num(values), b","), np.isnan(values), skip=1)


def _block(report: MarginReport, plan: _Plan, rows: slice) -> bytes:
    r = report.result
    b = r.resolved.batch
    theo = r.resolved.theo
    kind = plan.kind[rows]
    idx = plan.idx[rows]
    acct = plan.acct[rows]
    pg = plan.pg[rows]
    cg = plan.cg[rows]
    n = kind.shape[0]
    sep = bulk.constant(b",", n)
    is_contract = kind == CONTRACT
    ci = np.where(is_contract, idx, 0)

    # portfolio group of the row's context
    port_of_pg = r.pg_port
    port_row = np.where(
        (kind == PORT_G) | (kind == PORT_L) | (kind == PORT_T),
        idx,
        np.where(pg >= 0, port_of_pg[np.maximum(pg, 0)] if r.pg_id.shape[0] else -1, -1),
    )
    port_text = (
        plan.strings("port", r.port_id) if r.port_id.shape[0] else np.zeros((0, 1), np.uint8)
    )
    port_col = np.zeros((n, max(port_text.shape[1], 1)), dtype=np.uint8)
    has_port = np.flatnonzero(port_row >= 0)
    if has_port.size:
        port_col[has_port, : port_text.shape[1]] = port_text[port_row[has_port]]
    pg_text = plan.strings("pg", r.pg_id) if r.pg_id.shape[0] else np.zeros((0, 1), np.uint8)
    pg_col = np.zeros((n, max(pg_text.shape[1], 1)), dtype=np.uint8)
    has_pg = np.flatnonzero(pg >= 0)
    if has_pg.size:
        pg_col[has_pg, : pg_text.shape[1]] = pg_text[pg[has_pg]]
    cg_text = plan.strings("cg", r.cg_id) if r.cg_id.shape[0] else np.zeros((0, 1), np.uint8)
    cg_col = np.zeros((n, max(cg_text.shape[1], 1)), dtype=np.uint8)
    has_cg = np.flatnonzero(cg >= 0)
    if has_cg.size:
        cg_col[has_cg, : cg_text.shape[1]] = cg_text[cg[has_cg]]
    basket_col = _pick(
        kind,
        {
            CG: plan.strings("cg_basket", r.cg_basket),
            BASKET: plan.strings("basket", r.basket_id),
            CONTRACT: plan.strings("pos_basket", b.basket_id),
        },
        idx,
    )
    level_col = _pick(
        kind,
        {k: bulk.text(np.asarray([v], dtype="S")) for k, v in LEVELS.items()},
        np.zeros(n, np.int64),
    )
    row_col = _pick(
        kind,
        {k: bulk.text(np.asarray([ROW_NAMES.get(k, "Total")], dtype="S")) for k in LEVELS},
        np.zeros(n, np.int64),
    )
    firm_col = plan.strings("firm", r.account_firm)[acct]
    account_col = plan.strings("account", r.account_id)[acct]
    atype_col = plan.strings("account_type", r.account_type)[acct]

    # contract cells
    cb = ci[is_contract]
    t = r.resolved.theo_row[cb] if cb.size else np.zeros(0, dtype=np.int64)
    in_set = t >= 0
    ts = np.maximum(t, 0)
    has_exchange = theo.exchange.shape[0] == theo.size

    def contract_col(values: bulk.U8) -> bulk.U8:
        out = np.zeros((n, max(values.shape[1], 1)), dtype=np.uint8)
        if cb.size:
            out[np.flatnonzero(is_contract), : values.shape[1]] = values
        return out

    def theo_or(theo_values: np.ndarray, own: np.ndarray) -> bulk.U8:
        if not cb.size:
            return np.zeros((0, 1), dtype=np.uint8)
        return _strings(np.where(in_set, theo_values[ts].astype(np.str_), own.astype(np.str_)))

    if cb.size:
        strike = b.strike[cb]
        contract_cols = [
            _strings(b.symbol[cb]),
            _strings(b.security_type[cb]),
            _strings(b.put_call[cb]),
            _strings(b.series_date[cb]),
            bulk.distinct(strike, lambda v: f"{v:g}" if v else ""),
            bulk.distinct(b.quantity[cb], lambda v: f"{v:g}"),
            theo_or(theo.expiration_date, b.expiration_date[cb]),
            theo_or(theo.underlying, b.symbol[cb]),
            _strings(
                np.where(in_set, theo.exchange[ts], "")
                if has_exchange
                else np.full(cb.size, "", dtype="<U1")
            ),
            theo_or(theo.exercise_style, b.exercise_style[cb]),
            theo_or(theo.settlement_style, b.settlement_style[cb]),
        ]
    else:
        contract_cols = [np.zeros((0, 1), dtype=np.uint8)] * 11

    # per kind, the arrays its rows show (None: empty): offset, the stand-alone unit whose risk
    # and requirement a Total row shows, NAV, minimum, the ten moves
    Source = np.ndarray | None
    sources: dict[int, tuple[Source, Source, Source, Source, Source]] = {
        ACCOUNT: (None, None, r.account_nav, r.account_minimum, None),
        PORT_G: (r.port_offset, None, None, None, r.port_gains),
        PORT_L: (r.port_offset, None, None, None, r.port_losses),
        PORT_T: (r.port_offset, r.port_unit, r.port_nav, r.port_minimum, r.port_total),
        PG_G: (r.pg_offset, None, None, None, r.pg_gains),
        PG_L: (r.pg_offset, None, None, None, r.pg_losses),
        PG_T: (r.pg_offset, r.pg_unit, r.pg_nav, r.pg_minimum, r.pg_total),
        CG: (None, r.cg_unit, r.cg_nav, r.cg_minimum, r.cg_total),
        BASKET: (None, None, r.basket_nav, r.basket_minimum, r.basket_pnl),
        CONTRACT: (None, None, r.pos_nav, r.pos_minimum, r.pos_pnl),
    }

    def column(j: int, shape: tuple[int, ...] = ()) -> np.ndarray:
        return _gather(
            kind, idx, {k: src for k, v in sources.items() if (src := v[j]) is not None}, shape
        )

    offset_col = bulk.distinct(column(0), lambda v: "" if v != v else f"{v:g}")
    unit = np.nan_to_num(column(1), nan=-1.0).astype(np.int64)  # -1: none
    nav, minimum, vec = column(2), column(3), column(4, (10,))
    risk = _gather(kind, idx, {ACCOUNT: r.account_risk}, ())
    requirement = _gather(kind, idx, {ACCOUNT: r.account_requirement}, ())
    with_unit = np.flatnonzero(unit >= 0)
    if with_unit.size:
        risk[with_unit] = r.unit_risk[unit[with_unit]]
        requirement[with_unit] = r.unit_requirement[unit[with_unit]]

    pieces: list[bulk.U8] = [
        bulk.constant(report.theo_date.encode("ascii"), n),
        sep,
        level_col,
        sep,
        row_col,
        sep,
        firm_col,
        sep,
        account_col,
        sep,
        atype_col,
        sep,
        port_col,
        sep,
        pg_col,
        sep,
        cg_col,
        sep,
        basket_col,
    ]
    for col in contract_cols:
        pieces += [sep, contract_col(col)]
    pieces += [sep, offset_col]
    pieces += [_money(values) for values in (nav, risk, minimum, requirement)]
    # the ten moves as one piece, each with its separator
    flat = bulk.fixed2(np.nan_to_num(vec).reshape(-1), b",").reshape(n, 10, -1)
    flat[np.isnan(vec[:, 0]), :, 1:] = 0
    pieces += [flat.reshape(n, -1), bulk.constant(b"\n", n)]
    return bulk.join(pieces)


def _firm_rows(report: MarginReport) -> bytes:
    from gateway.outputs.margin.data import RESULT_COLUMNS

    r = report.result
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    blanks = RESULT_COLUMNS.index("nav") - RESULT_COLUMNS.index("firm") - 1
    n_vec = len(RESULT_COLUMNS) - RESULT_COLUMNS.index("requirement") - 1
    for f in range(r.firm_ids.shape[0]):
        writer.writerow(
            [
                report.theo_date,
                "firm",
                "Total",
                str(r.firm_ids[f]),
                *[""] * blanks,
                f"{float(r.firm_nav[f]):.2f}",
                f"{float(r.firm_risk[f]):.2f}",
                f"{float(r.firm_minimum[f]):.2f}",
                f"{float(r.firm_requirement[f]):.2f}",
                *[""] * n_vec,
            ]
        )
    return buf.getvalue().encode("utf-8")
