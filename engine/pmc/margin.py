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
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from engine.pmc.grouping import (
    factorize,
    factorize_strings,
    first_index,
    group_sum,
    group_sum_split,
)
from engine.pmc.resolve import ResolvedPositions, account_type_index
from engine.pmc.theo.model import ACCOUNT_TYPES, POINTS

StrArray = NDArray[np.str_]
FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

LEVEL_CLASS_GROUP = 0
LEVEL_PRODUCT_GROUP = 1
LEVEL_PORTFOLIO_GROUP = 2
LEVEL_NAMES = ("class_group", "product_group", "portfolio_group")


def members(parent: IntArray, count: int) -> list[list[int]]:
    """Children of each parent row [count]: ``parent`` [m] gives each child's parent (-1: none).

    One stable sort and one split, children in their own order.
    """
    parent = np.asarray(parent, dtype=np.int64)
    valid = np.flatnonzero(parent >= 0)
    order = valid[np.argsort(parent[valid], kind="stable")]
    counts = np.bincount(parent[valid], minlength=count)
    bounds = np.cumsum(counts)[:-1] if count else np.zeros(0, dtype=np.int64)
    return [chunk.tolist() for chunk in np.split(order, bounds)] if count else []


@dataclass(frozen=True)
class Children:
    """Member lists of every level of a result (indexes into the member level's arrays)."""

    account_units: list[list[int]]
    account_product_groups: list[list[int]]
    port_product_groups: list[list[int]]
    pg_class_groups: list[list[int]]
    cg_contracts: list[list[int]]
    cg_baskets: list[list[int]]


@dataclass(frozen=True, eq=False)
class MarginResult:
    """Every level of one calculation; amounts in USD, requirements/risks/minimums positive.

    Accounts [A]: ``account_firm``, ``account_id``, ``account_type``, ``account_nav``,
    ``account_risk``, ``account_minimum``, ``account_requirement``.
    Firms [F]: ``firm_ids``, ``firm_nav``, ``firm_requirement``, ``firm_risk``, ``firm_minimum``.
    Units [U] (the stand-alone units, sorted by account then level from portfolio group down):
    ``unit_account``, ``unit_level`` (LEVEL_*), ``unit_ref`` (row in that level's table),
    ``unit_nav``, ``unit_risk``, ``unit_minimum``, ``unit_requirement``, ``unit_total`` [U, 10].
    Portfolio groups [R], product groups [P], class groups [G]: account, id, offset, nav,
    minimum, gains/losses/total [., 10], the unit they belong to (-1: not a unit themselves) and
    their parent row. Contracts [n]: per accepted position, ``pos_*``; baskets [B]: ``basket_*``.
    """

    resolved: ResolvedPositions
    account_firm: StrArray
    account_id: StrArray
    account_type: StrArray
    account_nav: FloatArray
    account_risk: FloatArray
    account_minimum: FloatArray
    account_requirement: FloatArray
    firm_ids: StrArray
    firm_nav: FloatArray
    firm_risk: FloatArray
    firm_minimum: FloatArray
    firm_requirement: FloatArray
    unit_account: IntArray
    unit_level: IntArray
    unit_ref: IntArray
    unit_nav: FloatArray
    unit_risk: FloatArray
    unit_minimum: FloatArray
    unit_requirement: FloatArray
    unit_total: FloatArray
    port_account: IntArray
    port_id: StrArray
    port_offset: FloatArray
    port_nav: FloatArray
    port_minimum: FloatArray
    port_gains: FloatArray
    port_losses: FloatArray
    port_total: FloatArray
    port_unit: IntArray
    pg_account: IntArray
    pg_id: StrArray
    pg_offset: FloatArray
    pg_port: IntArray
    pg_nav: FloatArray
    pg_minimum: FloatArray
    pg_gains: FloatArray
    pg_losses: FloatArray
    pg_total: FloatArray
    pg_unit: IntArray
    cg_account: IntArray
    cg_id: StrArray
    cg_basket: StrArray
    cg_pg: IntArray
    cg_nav: FloatArray
    cg_minimum: FloatArray
    cg_total: FloatArray
    cg_unit: IntArray
    pos_account: IntArray
    pos_cg: IntArray
    pos_unit: IntArray
    pos_pnl: FloatArray
    pos_nav: FloatArray
    pos_minimum: FloatArray
    basket_account: IntArray
    basket_id: StrArray
    basket_cg: IntArray
    basket_nav: FloatArray
    basket_minimum: FloatArray
    basket_pnl: FloatArray

    @cached_property
    def children(self) -> Children:
        """Row lists of each level's members (built once, for rendering)."""
        return Children(
            account_units=members(self.unit_account, self.account_firm.shape[0]),
            account_product_groups=members(self.pg_account, self.account_firm.shape[0]),
            port_product_groups=members(self.pg_port, self.port_id.shape[0]),
            pg_class_groups=members(self.cg_pg, self.pg_id.shape[0]),
            cg_contracts=members(self.pos_cg, self.cg_id.shape[0]),
            cg_baskets=members(self.basket_cg, self.cg_id.shape[0]),
        )

    @property
    def requirement(self) -> float:
        """Total requirement over every account."""
        return float(self.account_requirement.sum())

    @property
    def nav(self) -> float:
        return float(self.account_nav.sum())

    @property
    def minimum(self) -> float:
        return float(self.account_minimum.sum())

    @property
    def risk(self) -> float:
        return float(self.account_risk.sum())

    def account_groups(self, account: int) -> list[dict[str, object]]:
        """The stand-alone units of one account, each with its members, as plain data."""
        out: list[dict[str, object]] = []
        units = self.children.account_units[account]
        for u in units:
            out.append(self._unit_dict(u))
        return out

    def _vec(self, values: FloatArray) -> list[float]:
        rounded: list[float] = np.round(values, 2).tolist()
        return rounded

    @cached_property
    def _contract_pnl(self) -> list[list[float]]:
        rounded: list[list[float]] = np.round(self.pos_pnl, 2).tolist()
        return rounded

    @cached_property
    def _contract_money(self) -> tuple[list[float], list[float]]:
        return np.round(self.pos_nav, 2).tolist(), np.round(self.pos_minimum, 2).tolist()

    def _cg_dict(self, g: int, with_contracts: bool) -> dict[str, object]:
        d: dict[str, object] = {
            "level": "class_group",
            "id": str(self.cg_id[g]),
            "basket_id": str(self.cg_basket[g]) or None,
            "nav": round(float(self.cg_nav[g]), 2),
            "minimum": round(float(self.cg_minimum[g]), 2),
            "total": self._vec(self.cg_total[g]),
        }
        if with_contracts:
            d["contracts"] = [self.contract_dict(i) for i in self.children.cg_contracts[g]]
        return d

    def contract_dict(self, i: int) -> dict[str, object]:
        """One contract (accepted position) of the result as plain data."""
        b = self.resolved.batch
        return {
            "line": int(b.line[i]),
            "symbol": str(b.symbol[i]),
            "security_type": str(b.security_type[i]),
            "put_call": str(b.put_call[i]) or None,
            "series_date": str(b.series_date[i]) or None,
            "strike": float(b.strike[i]),
            "quantity": float(b.quantity[i]),
            "basket_id": str(b.basket_id[i]) or None,
            "in_set": bool(self.resolved.theo_row[i] >= 0),
            "nav": self._contract_money[0][i],
            "minimum": self._contract_money[1][i],
            "pnl": self._contract_pnl[i],
        }

    def _pg_dict(self, p: int) -> dict[str, object]:
        off = float(self.pg_offset[p])
        return {
            "level": "product_group",
            "id": str(self.pg_id[p]),
            "offset_pct": None if np.isnan(off) else off,
            "nav": round(float(self.pg_nav[p]), 2),
            "minimum": round(float(self.pg_minimum[p]), 2),
            "gains": self._vec(self.pg_gains[p]),
            "losses": self._vec(self.pg_losses[p]),
            "total": self._vec(self.pg_total[p]),
            "class_groups": [self._cg_dict(g, True) for g in self.children.pg_class_groups[p]],
        }

    def _unit_dict(self, u: int) -> dict[str, object]:
        level = int(self.unit_level[u])
        ref = int(self.unit_ref[u])
        head: dict[str, object] = {
            "level": LEVEL_NAMES[level],
            "nav": round(float(self.unit_nav[u]), 2),
            "risk": round(float(self.unit_risk[u]), 2),
            "minimum": round(float(self.unit_minimum[u]), 2),
            "requirement": round(float(self.unit_requirement[u]), 2),
        }
        if level == LEVEL_PORTFOLIO_GROUP:
            head.update(
                id=str(self.port_id[ref]),
                product_group=None,
                offset_pct=float(self.port_offset[ref]),
                gains=self._vec(self.port_gains[ref]),
                losses=self._vec(self.port_losses[ref]),
                total=self._vec(self.port_total[ref]),
                product_groups=[self._pg_dict(p) for p in self.children.port_product_groups[ref]],
            )
        elif level == LEVEL_PRODUCT_GROUP:
            pg = self._pg_dict(ref)
            head.update(
                id=pg["id"],
                product_group=pg["id"],
                offset_pct=pg["offset_pct"],
                gains=pg["gains"],
                losses=pg["losses"],
                total=pg["total"],
                class_groups=pg["class_groups"],
            )
        else:
            cg = self._cg_dict(ref, True)
            total = self.cg_total[ref]
            head.update(
                id=cg["id"],
                product_group=str(self.pg_id[self.cg_pg[ref]]),
                offset_pct=None,
                basket_id=cg["basket_id"],
                gains=self._vec(np.maximum(total, 0.0)),
                losses=self._vec(np.minimum(total, 0.0)),
                total=cg["total"],
                contracts=cg["contracts"],
            )
        return head


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
