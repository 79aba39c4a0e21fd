"""Resolving positions against a theo set: accepted 346 records -> instruments of the set.

Theory of operation. ``resolve_positions`` joins the accepted records to a theo set (int64 match
keys, one sorted search for the whole file, ``TheoSet.lookup_columns``) and yields, per position, a
P&L vector per unit [n, 10], a value per unit, a minimum charge per unit and integer codes of its
class group and (account type, product group): what ``engine.pmc.margin.compute_margin`` needs.
Records that name nothing in the set become problems (invalid series, unknown basket).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from engine.pmc.positions.model import (
    INVALID_SERIES,
    MARKET_VALUE_IGNORED,
    NOT_IN_SET,
    REJECTED,
    UNKNOWN_BASKET,
    WARNING,
    PositionBatch,
    PositionProblem,
)
from engine.pmc.theo.model import (
    ACCOUNT_TYPES,
    TheoSet,
    full_key,
    match_key,
    move_fractions,
)

StrArray = NDArray[np.str_]
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class ResolvedPositions:
    """Accepted positions joined to a theo set; shapes [n] unless noted.

    ``theo_row`` is -1 for a stock not in the set. ``cg_code`` indexes ``cg_ids``/``cg_pgs``
    (the set's class groups followed by one per stock-not-in-set symbol); ``pg_code`` indexes the
    set's product group table. ``unit_pnl`` [n, 10], ``unit_value`` (price x multiplier, or the
    given market value) and ``unit_min`` are per one long unit.
    """

    batch: PositionBatch
    theo: TheoSet
    theo_row: IntArray
    cg_code: IntArray
    pg_code: IntArray
    unit_pnl: FloatArray
    unit_value: FloatArray
    unit_min: FloatArray
    cg_ids: StrArray
    cg_pgs: StrArray
    cg_baskets: StrArray
    problems: list[PositionProblem]
    rejected: int
    invalid_series: int
    kept: IntArray
    cg_pg_table: IntArray  # [3, C'] product group code of each class group per account type

    def __len__(self) -> int:
        return len(self.batch)


def account_type_index(account_type: StrArray) -> IntArray:
    """'C'/'F'/'M' -> 0/1/2 for a whole column [n] (-1 for anything else)."""
    out = np.full(account_type.shape[0], -1, dtype=np.int64)
    for i, a in enumerate(ACCOUNT_TYPES):
        out[account_type == a] = i
    return out


def _theo_class_groups(theo: TheoSet) -> tuple[StrArray, StrArray, StrArray]:
    """The set's class group ids, product groups and baskets as string arrays."""
    return (
        theo.cg_ids.astype(np.str_, copy=False),
        theo.cg_product_groups.astype(np.str_, copy=False),
        theo.cg_baskets.astype(np.str_, copy=False),
    )


def _with_extra_class_groups(
    theo: TheoSet, extra_ids: list[str]
) -> tuple[StrArray, StrArray, StrArray, IntArray]:
    """Class group ids, product groups, baskets and the [3, C'] product group table of the set
    followed by ``extra_ids`` (stocks outside the set, in the equity product group)."""
    # (np.full with dtype=str would make '<U1' and cut the ids: build from lists)
    cg_ids = np.concatenate(
        [theo.cg_ids.astype(np.str_), np.asarray(extra_ids, dtype=np.str_).reshape(-1)]
    ).astype(np.str_)
    cg_pgs = np.concatenate(
        [
            theo.cg_product_groups.astype(np.str_),
            np.asarray([theo.equity_product_group] * len(extra_ids), dtype=np.str_).reshape(-1),
        ]
    ).astype(np.str_)
    cg_baskets = np.concatenate(
        [
            theo.cg_baskets.astype(np.str_),
            np.asarray([""] * len(extra_ids), dtype=np.str_).reshape(-1),
        ]
    ).astype(np.str_)
    table = np.concatenate(
        [theo.cg_pg_code, np.repeat(theo.equity_pg_code[:, None], len(extra_ids), axis=1)],
        axis=1,
    )
    return cg_ids, cg_pgs, cg_baskets, table


def resolve_positions(batch: PositionBatch, theo: TheoSet) -> ResolvedPositions:
    """Join records to instruments; records that do not match become problems.

    Invalid series: an instrument not in the set for the record's account type (a stock not in
    the set needs a market value), or a class group whose product group has no parameters for the
    account type. Rejected: an unknown basket ID. Warning: a market value given for a stock that
    is in the set (the set's price is used).
    """
    n = len(batch)
    problems: list[PositionProblem] = []
    rows = theo.lookup_columns(
        batch.account_type,
        batch.symbol,
        batch.security_type,
        batch.put_call,
        batch.series_date,
        batch.strike,
    )
    # ambiguous base keys: decide by exercise and settlement style (rare; loop over those only)
    for i in np.flatnonzero(rows == -1).tolist():
        key = match_key(
            str(batch.account_type[i]),
            str(batch.symbol[i]),
            str(batch.security_type[i]),
            str(batch.put_call[i]),
            str(batch.series_date[i]),
            float(batch.strike[i]),
        )
        fk = full_key(key, str(batch.exercise_style[i]), str(batch.settlement_style[i]))
        rows[i] = theo.full_index.get(fk, -3)
    # currency spot: the future of that symbol with the earliest series date
    for i in np.flatnonzero(batch.security_type == "X").tolist():
        rows[i] = theo.spot_future.get((str(batch.account_type[i]), str(batch.symbol[i])), -2)

    is_stock = batch.security_type == "S"
    found = rows >= 0
    mv = batch.market_value
    outside = is_stock & ~found & (mv > 0)
    bad = ~found & ~outside
    bad_reason: list[tuple[int, str]] = []
    for i in np.flatnonzero(bad).tolist():
        what = f"{batch.security_type[i]} {batch.symbol[i]}"
        if batch.security_type[i] != "S":
            what += f" {batch.put_call[i]} {batch.series_date[i]} {batch.strike[i]:g}".rstrip()
        if rows[i] == -3:
            msg = (
                f"{what} is ambiguous in the P&L set for account type {batch.account_type[i]}: "
                "give EXERCISE STYLE and SETTLEMENT STYLE"
            )
        elif is_stock[i]:
            msg = (
                f"stock {batch.symbol[i]} is not in the P&L set for account type "
                f"{batch.account_type[i]} and has no MARKET VALUE"
            )
        else:
            msg = f"{what} is not in the P&L set for account type {batch.account_type[i]}"
        bad_reason.append((i, msg))
    for i in np.flatnonzero(is_stock & found & (mv > 0)).tolist():
        problems.append(
            PositionProblem(
                int(batch.line[i]),
                WARNING,
                MARKET_VALUE_IGNORED,
                "MARKET VALUE",
                f"{mv[i]:g}",
                f"stock {batch.symbol[i]} is in the P&L set: its theoretical price is used, "
                "not the MARKET VALUE given",
            )
        )

    # class groups
    n_cg = theo.cg_ids.shape[0]
    safe_rows = np.where(found, rows, 0)
    cg_code = np.where(found, theo.cg_code[safe_rows] if theo.size else -1, -1).astype(np.int64)
    has_basket = batch.basket_id != ""
    rejected_rows: list[tuple[int, str]] = []
    if has_basket.any():
        for i in np.flatnonzero(has_basket).tolist():
            code = theo.basket_index.get(str(batch.basket_id[i]))
            if code is None:
                rejected_rows.append((i, str(batch.basket_id[i])))
            else:
                cg_code[i] = code
    extra_ids: list[str] = []
    loose = outside & ~has_basket
    if loose.any():
        idx = np.flatnonzero(loose)
        syms, inv = np.unique(batch.symbol[idx], return_inverse=True)
        codes = np.empty(syms.shape[0], dtype=np.int64)
        for j, sym in enumerate(syms.tolist()):
            existing = theo.cg_index.get(sym)
            if existing is None:
                codes[j] = n_cg + len(extra_ids)
                extra_ids.append(sym)
            else:
                codes[j] = existing
        cg_code[idx] = codes[inv.reshape(-1)]
    if extra_ids:
        cg_ids, cg_pgs, cg_baskets, table = _with_extra_class_groups(theo, extra_ids)
    else:  # the set's own arrays (read only here): copying them costs more than the look-up
        cg_ids, cg_pgs, cg_baskets = _theo_class_groups(theo)
        table = theo.cg_pg_code

    # product group of each position: (account type, product group of its class group)
    acct_t = account_type_index(batch.account_type)
    placed = (cg_code >= 0) & (acct_t >= 0)
    pg_code = np.full(n, -1, dtype=np.int64)
    pg_code[placed] = table[acct_t[placed], cg_code[placed]]
    for i in np.flatnonzero(placed & (pg_code < 0) & ~bad).tolist():
        bad[i] = True
        bad_reason.append(
            (
                i,
                f"product group {cg_pgs[cg_code[i]]} of class group {cg_ids[cg_code[i]]} has no "
                f"parameters for account type {batch.account_type[i]} in the P&L set",
            )
        )
    for i, msg in bad_reason:
        problems.append(
            PositionProblem(
                int(batch.line[i]), INVALID_SERIES, NOT_IN_SET, "SYMBOL", str(batch.symbol[i]), msg
            )
        )
    reject = np.zeros(n, dtype=bool)
    for i, basket in rejected_rows:
        if bad[i]:
            continue
        reject[i] = True
        problems.append(
            PositionProblem(
                int(batch.line[i]),
                REJECTED,
                UNKNOWN_BASKET,
                "BASKET ID",
                basket,
                f"BASKET ID={basket!r} is not a basket of the P&L set",
            )
        )
    keep = ~bad & ~reject
    kept = np.flatnonzero(keep)
    all_kept = kept.shape[0] == n
    sub = batch if all_kept else batch.take(kept)
    rows_k = rows if all_kept else rows[kept]
    found_k = rows_k >= 0
    pg_k = pg_code if all_kept else pg_code[kept]
    # gather every row from the set, then patch the (few) stocks that are not in it
    safe_k = np.maximum(rows_k, 0)
    unit_pnl = np.take(theo.pnl, safe_k, axis=0)  # row gather: ~10x faster than pnl[rows]
    unit_value = theo.theo_price[safe_k] * theo.multiplier[safe_k]
    unit_min = theo.min_charge[safe_k]
    out_k = np.flatnonzero(~found_k)
    if out_k.size:
        pgs = pg_k[out_k]
        moves = move_fractions(theo.pg_move_down[pgs], theo.pg_move_up[pgs])
        unit_pnl[out_k] = sub.market_value[out_k][:, None] * moves
        unit_value[out_k] = sub.market_value[out_k]
        unit_min[out_k] = 0.0
    problems.sort(key=lambda p: p.line)
    return ResolvedPositions(
        batch=sub,
        theo=theo,
        theo_row=rows_k,
        cg_code=cg_code if all_kept else cg_code[kept],
        pg_code=pg_k,
        unit_pnl=unit_pnl,
        unit_value=unit_value,
        unit_min=unit_min,
        cg_ids=cg_ids,
        cg_pgs=cg_pgs,
        cg_baskets=cg_baskets,
        problems=problems,
        rejected=int(reject.sum()),
        invalid_series=int(bad.sum()),
        kept=kept.astype(np.int64),
        cg_pg_table=table,
    )
