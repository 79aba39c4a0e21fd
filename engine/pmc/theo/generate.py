"""Theo set generation (``posgate theo generate``): a ``MarketSnapshot`` priced into the
instrument columns of a set (``InstrumentRows``, rendered by ``engine.pmc.theo.write``).

Generation prices every instrument, for every account type whose product group parameters
exist for it, at the base price and the 10 moved prices of that product group
(``engine.pmc.theo.model.STEPS`` x move_down/up): Black-Scholes for European exercise, the
grouped CRR binomial of ``engine.pmc.pricing.american_prices`` for American. P&L per long unit =
(value after the move - value now) x multiplier. Instruments with the same move range are
priced once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import numpy as np
from numpy.typing import NDArray

from engine.pmc.grouping import lookup_strings
from engine.pmc.market import MarketSnapshot
from engine.pmc.pricing import DEFAULT_STEPS, american_prices, black_scholes, group_rows
from engine.pmc.theo.model import ACCOUNT_TYPES, POINTS, STEPS
from engine.pmc.theo.write import InstrumentRows

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
StrArray = NDArray[np.str_]


def _years(expiry: StrArray, activity: date) -> FloatArray:
    """Act/365 year fractions from the activity date to each ISO expiry [n] (0 when past)."""
    days = (
        np.asarray(expiry, dtype="datetime64[D]") - np.datetime64(activity.isoformat(), "D")
    ).astype(np.int64)
    out: FloatArray = np.maximum(days, 0).astype(np.float64) / 365.0
    return out


PRICING_CHUNK = 50_000


def _price_chunk(
    spots: FloatArray,
    k_inst: IntArray,
    *,
    is_option: NDArray[np.bool_],
    is_future: NDArray[np.bool_],
    exstyle: StrArray,
    put_call: StrArray,
    strike: FloatArray,
    t: FloatArray,
    rate: FloatArray,
    div: FloatArray,
    vol: FloatArray,
    steps: int,
) -> FloatArray:
    """Values [k, 11] at the scenario spots [k, 11] of instruments ``k_inst`` [k]."""
    values = np.empty(spots.shape, dtype=np.float64)
    opt = is_option[k_inst]
    american = opt & (exstyle[k_inst] != "E")
    euro = opt & ~american
    lin = ~opt  # stocks and futures: linear in the underlying
    carry = np.where(is_future[k_inst], np.exp((rate[k_inst] - div[k_inst]) * t[k_inst]), 1.0)
    values[lin] = spots[lin] * carry[lin][:, None]
    call = put_call[k_inst] == "C"
    width = spots.shape[1]
    if euro.any():
        e = np.flatnonzero(euro)
        values[e] = black_scholes(
            spots[e].reshape(-1),
            np.repeat(strike[k_inst[e]], width),
            np.repeat(t[k_inst[e]], width),
            np.repeat(rate[k_inst[e]], width),
            np.repeat(div[k_inst[e]], width),
            np.repeat(vol[k_inst[e]], width),
            np.repeat(call[e], width),
        ).reshape(-1, width)
    if american.any():
        a = np.flatnonzero(american)
        values[a] = american_prices(
            spots[a],
            strike[k_inst[a]],
            t[k_inst[a]],
            rate[k_inst[a]],
            div[k_inst[a]],
            vol[k_inst[a]],
            call[a],
            steps=steps,
        )
    return values


def generate_instruments(
    snap: MarketSnapshot,
    activity_date: str,
    *,
    steps: int = DEFAULT_STEPS,
    progress: Callable[[int, int], None] | None = None,
) -> InstrumentRows:
    """Price every instrument of a snapshot for every account type with parameters.

    ``progress(done, total)`` is called after each chunk of priced instruments.

    Instruments are the stock underlyings [Us] followed by the series [S]; the result has one
    row per (instrument, account type) whose product group has parameters for that type, in
    account type order. Only group-level work loops in Python; instruments are arrays.
    """
    activity = date.fromisoformat(activity_date)
    groups = snap.groups
    cg_ids = np.asarray([c for c, _, _ in groups.class_groups] or [""], dtype=np.str_)
    cg_pgs = np.asarray([p for _, p, _ in groups.class_groups] or [""], dtype=np.str_)
    n_cgs = len(groups.class_groups)
    cg_order = np.argsort(cg_ids[:n_cgs], kind="stable")
    cg_vocab = cg_ids[:n_cgs][cg_order]

    # instruments: stock underlyings first, then series
    stock_idx = np.flatnonzero(snap.und_is_stock)
    n_stock = stock_idx.shape[0]
    und_of = np.concatenate([stock_idx, snap.ser_underlying]).astype(np.int64)

    def cat(stock_part: NDArray[np.generic], series_part: NDArray[np.generic]) -> StrArray:
        return np.concatenate(
            [np.asarray(stock_part, dtype=np.str_), np.asarray(series_part, dtype=np.str_)]
        ).astype(np.str_)

    blank = np.full(n_stock, "", dtype="<U1")
    sectype = cat(np.full(n_stock, "S", dtype="<U1"), snap.ser_security_type)
    symbol = cat(snap.und_symbol[stock_idx], snap.ser_symbol)
    class_group = snap.und_class_group[und_of].astype(np.str_)
    cg_pos = lookup_strings(cg_vocab, class_group)
    product_group = np.where(
        cg_pos >= 0, cg_pgs[:n_cgs][cg_order][np.maximum(cg_pos, 0)] if n_cgs else "", ""
    ).astype(np.str_)
    series_date = cat(blank, snap.ser_series_date)
    expiry = cat(blank, snap.ser_expiration_date)
    put_call = cat(blank, snap.ser_put_call)
    exstyle = cat(blank, snap.ser_exercise_style)
    setstyle = cat(blank, snap.ser_settlement_style)
    strike = np.concatenate([np.zeros(n_stock), snap.ser_strike])
    mult = np.concatenate([snap.und_multiplier[stock_idx], snap.ser_multiplier])
    min_charge = np.concatenate([snap.und_min_charge[stock_idx], snap.ser_min_charge])
    vol = np.concatenate([snap.und_volatility[stock_idx], snap.ser_volatility])
    vol = np.where(np.isnan(vol), snap.und_volatility[und_of], vol)
    spot = snap.und_price[und_of]
    rate = snap.und_rate[und_of]
    div = snap.und_dividend_yield[und_of]
    t = np.concatenate([np.zeros(n_stock), _years(snap.ser_expiration_date, activity)])
    is_option = (sectype == "O") | (sectype == "I") | (sectype == "W")
    is_future = sectype == "F"
    div = np.where(sectype == "I", rate, div)  # Black-76: the underlying is a futures price

    # (instrument, account type) rows with parameters
    pg_vocab = np.unique(product_group) if product_group.size else np.zeros(0, dtype="<U1")
    pg_code = lookup_strings(pg_vocab, product_group)
    inst_parts: list[IntArray] = []
    acct_parts: list[StrArray] = []
    down_parts: list[FloatArray] = []
    up_parts: list[FloatArray] = []
    for acct in ACCOUNT_TYPES:
        params = {pg: (down, up) for pg, _, a, _, down, up in groups.product_groups if a == acct}
        down_of = np.array([params.get(p, (np.nan, np.nan))[0] for p in pg_vocab.tolist()])
        up_of = np.array([params.get(p, (np.nan, np.nan))[1] for p in pg_vocab.tolist()])
        has = np.zeros(pg_code.shape[0], dtype=bool)
        if pg_vocab.size:
            has = (pg_code >= 0) & ~np.isnan(down_of[np.maximum(pg_code, 0)])
        idx = np.flatnonzero(has)
        inst_parts.append(idx)
        acct_parts.append(np.full(idx.shape[0], acct, dtype="<U1"))
        down_parts.append(down_of[pg_code[idx]] if idx.size else np.zeros(0))
        up_parts.append(up_of[pg_code[idx]] if idx.size else np.zeros(0))
    inst = np.concatenate(inst_parts).astype(np.int64)
    rows_acct = np.concatenate(acct_parts).astype("<U1")
    down = np.concatenate(down_parts).astype(np.float64)
    up = np.concatenate(up_parts).astype(np.float64)
    n_rows = inst.shape[0]

    # price each distinct (instrument, move range) once
    if n_rows:
        key, n_key = group_rows([inst.astype(np.float64), down, up])
    else:
        key, n_key = np.zeros(0, dtype=np.intp), 0
    first = np.full(n_key, n_rows, dtype=np.int64)
    np.minimum.at(first, key, np.arange(n_rows, dtype=np.int64))
    k_inst = inst[first]
    moves = np.where(STEPS < 0, STEPS * down[first][:, None], STEPS * up[first][:, None])
    factors = np.concatenate([np.zeros((n_key, 1)), moves], axis=1)  # [K, 11]
    spots = spot[k_inst][:, None] * (1.0 + factors)
    values = np.empty((n_key, POINTS + 1), dtype=np.float64)
    # chunks keep the [k, 11] temporaries of the models small (instruments of one chain are
    # contiguous, so a chunk rarely splits a lattice group)
    for lo in range(0, n_key, PRICING_CHUNK):
        hi = min(n_key, lo + PRICING_CHUNK)
        values[lo:hi] = _price_chunk(
            spots[lo:hi],
            k_inst[lo:hi],
            is_option=is_option,
            is_future=is_future,
            exstyle=exstyle,
            put_call=put_call,
            strike=strike,
            t=t,
            rate=rate,
            div=div,
            vol=vol,
            steps=steps,
        )
        if progress is not None:
            progress(hi, n_key)
    pnl_k = (values[:, 1:] - values[:, :1]) * mult[k_inst][:, None]
    theo_k = values[:, 0]
    implied = np.where(is_option | is_future, vol, np.nan)
    return InstrumentRows(
        account_type=rows_acct,
        product_group=product_group[inst],
        class_group=class_group[inst],
        underlying=snap.und_symbol[und_of[inst]],
        symbol=symbol[inst],
        security_type=sectype[inst],
        exercise_style=exstyle[inst],
        settlement_style=setstyle[inst],
        series_date=series_date[inst],
        expiration_date=expiry[inst],
        put_call=put_call[inst],
        strike=strike[inst],
        multiplier=mult[inst],
        theo_price=theo_k[key],
        implied_vol=implied[inst],
        min_charge=min_charge[inst],
        pnl=pnl_k[key],
    )
