"""Portfolio margin (CPM / RBH) over numpy arrays: the hierarchy, whole file at once.

Theory of operation. ``compute_margin`` takes positions resolved against a theo set
(``engine.pmc.resolve.ResolvedPositions``: per position a P&L vector per unit [n, 10], a value and
a minimum per unit, class group and product group codes) and climbs the hierarchy with
group sums (``engine.pmc.grouping``: dense factorised keys as inverse indexes, ``np.bincount`` per
point of the [g, 10] arrays), never looping over positions in Python:

1. position P&L = signed quantity x unit P&L (stocks not in the set: market value x moves);
2. class group = sum of its positions (full netting) per account;
3. product group = sum of class group losses + offset_pct x sum of gains (empty offset: its class
   groups stand alone);
4. portfolio group = the same over its product groups with the portfolio group's offset;
5. each stand-alone unit: risk = largest loss (0 if none), minimum = sum of min_charge x |qty|
   (type C: a long option's minimum capped at its market value), requirement = max(risk, minimum);
6. account = sum over its units; firm = sum over its accounts; NAV = sum of signed market values.

Every table keeps Gains / Losses / Total rows per portfolio and product group:
Gains = sum of the members' positive parts, Losses = sum of negative parts,
Total = Losses + offset x Gains. Requirements, risks and minimums are positive numbers here.
The result's arrays and their plain-data form are ``engine.pmc.result``.
"""

from __future__ import annotations

import numpy as np

from engine.pmc.grouping import (
    factorize,
    factorize_strings,
    first_index,
    group_sum,
    group_sum_split,
)
from engine.pmc.resolve import ResolvedPositions, account_type_index
from engine.pmc.result import (
    LEVEL_CLASS_GROUP,
    LEVEL_NAMES,
    LEVEL_PORTFOLIO_GROUP,
    LEVEL_PRODUCT_GROUP,
    FloatArray,
    MarginResult,
)
from engine.pmc.theo.model import ACCOUNT_TYPES, POINTS

__all__ = [
    "LEVEL_CLASS_GROUP",
    "LEVEL_NAMES",
    "LEVEL_PORTFOLIO_GROUP",
    "LEVEL_PRODUCT_GROUP",
    "MarginResult",
    "compute_margin",
    "offset_total",
]


def offset_total(gains: FloatArray, losses: FloatArray, offset: FloatArray) -> FloatArray:
    """Losses + offset x gains, with an empty (NaN) offset meaning a plain sum: [g,10]."""
    off = np.where(np.isnan(offset), 1.0, offset)[:, None]
    result: FloatArray = losses + off * gains
    return result


def compute_margin(res: ResolvedPositions) -> MarginResult:
    """Run the calculation over every resolved position at once (see the module docstring)."""
    theo = res.theo
    b = res.batch
    n = len(b)
    # accounts
    firms_all, firm_code = factorize_strings(b.firm)
    ids_all, id_code = factorize_strings(b.account)
    type_code = account_type_index(b.account_type)
    n_types = len(ACCOUNT_TYPES)
    n_ids = max(ids_all.shape[0], 1)
    acct_uniq, acct_inv = factorize(
        (firm_code * n_ids + id_code) * n_types + type_code,
        max(firms_all.shape[0], 1) * n_ids * n_types,
    )
    n_acct = acct_uniq.shape[0]
    first_rows = first_index(acct_inv, n_acct)
    account_firm = b.firm[first_rows].astype(np.str_) if n_acct else np.zeros(0, "<U1")
    account_id = b.account[first_rows].astype(np.str_) if n_acct else np.zeros(0, "<U1")
    account_type = np.asarray(ACCOUNT_TYPES, dtype=np.str_)[acct_uniq % n_types]
    firms_u, acct_firm_code = factorize_strings(account_firm)

    # positions
    pos_pnl = b.quantity[:, None] * res.unit_pnl
    pos_nav = b.quantity * res.unit_value
    pos_min = np.abs(b.quantity) * res.unit_min
    long_option = (
        (b.account_type == "C")
        & (b.quantity > 0)
        & ((b.security_type == "O") | (b.security_type == "I") | (b.security_type == "W"))
    )
    pos_min = np.where(long_option, np.minimum(pos_min, np.maximum(pos_nav, 0.0)), pos_min)

    # class groups per account
    n_cg_codes = max(int(res.cg_ids.shape[0]), 1)
    cg_key = acct_inv * n_cg_codes + res.cg_code
    cg_uniq, cg_inv = factorize(cg_key, n_acct * n_cg_codes)
    n_g = cg_uniq.shape[0]
    cg_account = (cg_uniq // n_cg_codes).astype(np.int64)
    cg_code = (cg_uniq % n_cg_codes).astype(np.int64)
    account_type_code = acct_uniq % n_types
    cg_pgcode = res.cg_pg_table[account_type_code[cg_account], cg_code]
    cg_total = group_sum(pos_pnl, cg_inv, n_g)
    cg_nav = group_sum(pos_nav, cg_inv, n_g)
    cg_min = group_sum(pos_min, cg_inv, n_g)

    # product groups per account
    n_pg_codes = max(int(theo.pg_ids.shape[0]), 1)
    pg_key = cg_account * n_pg_codes + cg_pgcode
    pg_uniq, pg_inv = factorize(pg_key, n_acct * n_pg_codes)
    n_p = pg_uniq.shape[0]
    pg_account = (pg_uniq // n_pg_codes).astype(np.int64)
    pg_code = (pg_uniq % n_pg_codes).astype(np.int64)
    pg_offset = theo.pg_offsets[pg_code] if n_p else np.zeros(0)
    pg_gains, pg_losses = group_sum_split(cg_total, pg_inv, n_p)
    pg_total = offset_total(pg_gains, pg_losses, pg_offset)
    pg_nav = group_sum(cg_nav, pg_inv, n_p)
    pg_min = group_sum(cg_min, pg_inv, n_p)
    pg_portcode = theo.pg_port[pg_code] if n_p else np.zeros(0, dtype=np.int64)
    pg_alone_cgs = np.isnan(pg_offset)

    # portfolio groups per account
    in_port = pg_portcode >= 0
    n_port_codes = max(int(theo.port_ids.shape[0]), 1)
    port_key = pg_account[in_port] * n_port_codes + pg_portcode[in_port]
    port_uniq, port_inv_sub = factorize(port_key, n_acct * n_port_codes)
    n_r = port_uniq.shape[0]
    port_account = (port_uniq // n_port_codes).astype(np.int64)
    port_code = (port_uniq % n_port_codes).astype(np.int64)
    port_offset = theo.port_offsets[port_code] if n_r else np.zeros(0)
    port_gains, port_losses = group_sum_split(pg_total[in_port], port_inv_sub, n_r)
    port_total = offset_total(port_gains, port_losses, port_offset)
    port_nav = group_sum(pg_nav[in_port], port_inv_sub, n_r)
    port_min = group_sum(pg_min[in_port], port_inv_sub, n_r)
    pg_port = np.full(n_p, -1, dtype=np.int64)
    pg_port[in_port] = port_inv_sub

    # stand-alone units: each class group belongs to exactly one
    cg_pg = pg_inv
    cg_level = np.where(
        pg_alone_cgs[cg_pg],
        LEVEL_CLASS_GROUP,
        np.where(pg_port[cg_pg] < 0, LEVEL_PRODUCT_GROUP, LEVEL_PORTFOLIO_GROUP),
    ).astype(np.int64)
    cg_ref = np.where(
        cg_level == LEVEL_CLASS_GROUP,
        np.arange(n_g, dtype=np.int64),
        np.where(cg_level == LEVEL_PRODUCT_GROUP, cg_pg, pg_port[cg_pg]),
    ).astype(np.int64)
    # units: distinct ids per level, then ordered by account, portfolio groups first
    raw = np.where(
        cg_level == LEVEL_CLASS_GROUP,
        cg_ref,
        np.where(cg_level == LEVEL_PRODUCT_GROUP, n_g + cg_ref, n_g + n_p + cg_ref),
    )
    raw_uniq, raw_inv = factorize(raw, n_g + n_p + n_r)
    u_level = np.where(
        raw_uniq < n_g,
        LEVEL_CLASS_GROUP,
        np.where(raw_uniq < n_g + n_p, LEVEL_PRODUCT_GROUP, LEVEL_PORTFOLIO_GROUP),
    ).astype(np.int64)
    u_ref = raw_uniq - np.where(raw_uniq < n_g, 0, np.where(raw_uniq < n_g + n_p, n_g, n_g + n_p))
    u_acct = np.zeros(raw_uniq.shape[0], dtype=np.int64)
    for level, accounts in (
        (LEVEL_CLASS_GROUP, cg_account),
        (LEVEL_PRODUCT_GROUP, pg_account),
        (LEVEL_PORTFOLIO_GROUP, port_account),
    ):
        mask = u_level == level
        u_acct[mask] = accounts[u_ref[mask]]
    span = int(u_ref.max(initial=0)) + 1
    order = np.argsort((u_acct * 3 + (LEVEL_PORTFOLIO_GROUP - u_level)) * span + u_ref)
    rank = np.empty(order.shape[0], dtype=np.int64)
    rank[order] = np.arange(order.shape[0], dtype=np.int64)
    cg_unit = rank[raw_inv]
    n_u = order.shape[0]
    unit_level = u_level[order]
    unit_ref = u_ref[order].astype(np.int64)
    unit_account = u_acct[order]
    unit_total = np.zeros((n_u, POINTS), dtype=np.float64)
    for level, table in (
        (LEVEL_CLASS_GROUP, cg_total),
        (LEVEL_PRODUCT_GROUP, pg_total),
        (LEVEL_PORTFOLIO_GROUP, port_total),
    ):
        mask = unit_level == level
        unit_total[mask] = table[unit_ref[mask]]
    pos_unit = cg_unit[cg_inv] if n else np.zeros(0, dtype=np.int64)
    unit_min = group_sum(pos_min, pos_unit, n_u)
    unit_nav = group_sum(pos_nav, pos_unit, n_u)
    unit_risk = np.maximum(0.0, -unit_total.min(axis=1)) if n_u else np.zeros(0, dtype=np.float64)
    unit_req = np.maximum(unit_risk, unit_min)
    pg_unit = np.full(n_p, -1, dtype=np.int64)
    cg_unit_own = np.full(n_g, -1, dtype=np.int64)
    port_unit = np.full(n_r, -1, dtype=np.int64)
    pg_unit[unit_ref[unit_level == LEVEL_PRODUCT_GROUP]] = np.flatnonzero(
        unit_level == LEVEL_PRODUCT_GROUP
    )
    cg_unit_own[unit_ref[unit_level == LEVEL_CLASS_GROUP]] = np.flatnonzero(
        unit_level == LEVEL_CLASS_GROUP
    )
    port_unit[unit_ref[unit_level == LEVEL_PORTFOLIO_GROUP]] = np.flatnonzero(
        unit_level == LEVEL_PORTFOLIO_GROUP
    )

    # accounts and firms
    account_nav = group_sum(pos_nav, acct_inv, n_acct)
    account_risk = group_sum(unit_risk, unit_account, n_acct)
    account_min = group_sum(unit_min, unit_account, n_acct)
    account_req = group_sum(unit_req, unit_account, n_acct)
    firm_uniq, firm_inv = factorize(acct_firm_code, max(firms_u.shape[0], 1))
    firm_ids = firms_u[firm_uniq] if n_acct else np.zeros(0, dtype="<U1")
    n_f = firm_ids.shape[0]

    # baskets: stock positions that carry a basket ID
    bmask = b.basket_id != ""
    bidx = np.flatnonzero(bmask)
    basket_u, basket_code = factorize_strings(b.basket_id[bidx])
    n_bids = max(basket_u.shape[0], 1)
    b_uniq, b_inv = factorize(acct_inv[bidx] * n_bids + basket_code, n_acct * n_bids)
    n_b = b_uniq.shape[0]
    b_first = bidx[first_index(b_inv, n_b)] if n_b else np.zeros(0, dtype=np.int64)

    return MarginResult(
        resolved=res,
        account_firm=account_firm,
        account_id=account_id,
        account_type=account_type,
        account_nav=account_nav,
        account_risk=account_risk,
        account_minimum=account_min,
        account_requirement=account_req,
        firm_ids=firm_ids.astype(np.str_),
        firm_nav=group_sum(account_nav, firm_inv, n_f),
        firm_risk=group_sum(account_risk, firm_inv, n_f),
        firm_minimum=group_sum(account_min, firm_inv, n_f),
        firm_requirement=group_sum(account_req, firm_inv, n_f),
        unit_account=unit_account,
        unit_level=unit_level,
        unit_ref=unit_ref,
        unit_nav=unit_nav,
        unit_risk=unit_risk,
        unit_minimum=unit_min,
        unit_requirement=unit_req,
        unit_total=unit_total,
        port_account=port_account,
        port_id=theo.port_ids[port_code] if n_r else np.zeros(0, dtype="<U1"),
        port_offset=port_offset,
        port_nav=port_nav,
        port_minimum=port_min,
        port_gains=port_gains,
        port_losses=port_losses,
        port_total=port_total,
        port_unit=port_unit,
        pg_account=pg_account,
        pg_id=theo.pg_ids[pg_code] if n_p else np.zeros(0, dtype="<U1"),
        pg_offset=pg_offset,
        pg_port=pg_port,
        pg_nav=pg_nav,
        pg_minimum=pg_min,
        pg_gains=pg_gains,
        pg_losses=pg_losses,
        pg_total=pg_total,
        pg_unit=pg_unit,
        cg_account=cg_account,
        cg_id=res.cg_ids[cg_code] if n_g else np.zeros(0, dtype="<U1"),
        cg_basket=res.cg_baskets[cg_code] if n_g else np.zeros(0, dtype="<U1"),
        cg_pg=cg_pg,
        cg_nav=cg_nav,
        cg_minimum=cg_min,
        cg_total=cg_total,
        cg_unit=cg_unit_own,
        pos_account=acct_inv,
        pos_cg=cg_inv,
        pos_unit=pos_unit,
        pos_pnl=pos_pnl,
        pos_nav=pos_nav,
        pos_minimum=pos_min,
        basket_account=acct_inv[b_first] if n_b else np.zeros(0, dtype=np.int64),
        basket_id=b.basket_id[b_first] if n_b else np.zeros(0, dtype="<U1"),
        basket_cg=cg_inv[b_first] if n_b else np.zeros(0, dtype=np.int64),
        basket_nav=group_sum(pos_nav[bidx], b_inv, n_b),
        basket_minimum=group_sum(pos_min[bidx], b_inv, n_b),
        basket_pnl=group_sum(pos_pnl[bidx], b_inv, n_b),
    )
