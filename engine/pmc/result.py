"""The result of a portfolio margin calculation (``engine.pmc.margin.compute_margin``): every
level's arrays, their member lists and the plain-data form of each node.

Levels: accounts, the stand-alone units (a portfolio group, a product group or a class group
whose requirement is computed on its own), portfolio groups, product groups, class groups,
contracts (accepted positions) and baskets. Each level is a set of parallel arrays; a member
points at its parent by row (``pg_port``, ``cg_pg``, ``pos_cg``, ...). ``MarginResult.children``
inverts those pointers into member lists, which the plain-data methods (``account_groups``,
``contract_dict``) walk to give the nested document of ``report_document``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

from engine.pmc.resolve import ResolvedPositions

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

    One stable sort and one list sliced at the parents' bounds, children in their own order.
    """
    parent = np.asarray(parent, dtype=np.int64)
    valid = np.flatnonzero(parent >= 0)
    order = valid[np.argsort(parent[valid], kind="stable")]
    ends = np.cumsum(np.bincount(parent[valid], minlength=count)).tolist()
    rows: list[int] = order.tolist()  # one list, sliced: no array per parent
    return [rows[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)] if count else []


class Children:
    """Member lists of every level of a result (indexes into the member level's arrays), each
    made when first asked for: a renderer that needs one level pays for that one only. It
    holds the parent arrays, not the result (no reference cycle: the result is freed as soon
    as it is dropped)."""

    def __init__(self, r: MarginResult) -> None:
        n_a = r.account_firm.shape[0]
        self._parents = {
            "account_units": (r.unit_account, n_a),
            "account_product_groups": (r.pg_account, n_a),
            "port_product_groups": (r.pg_port, r.port_id.shape[0]),
            "pg_class_groups": (r.cg_pg, r.pg_id.shape[0]),
            "cg_contracts": (r.pos_cg, r.cg_id.shape[0]),
            "cg_baskets": (r.basket_cg, r.cg_id.shape[0]),
        }

    def _members(self, name: str) -> list[list[int]]:
        parent, count = self._parents[name]
        return members(parent, count)

    @cached_property
    def account_units(self) -> list[list[int]]:
        return self._members("account_units")

    @cached_property
    def account_product_groups(self) -> list[list[int]]:
        return self._members("account_product_groups")

    @cached_property
    def port_product_groups(self) -> list[list[int]]:
        return self._members("port_product_groups")

    @cached_property
    def pg_class_groups(self) -> list[list[int]]:
        return self._members("pg_class_groups")

    @cached_property
    def cg_contracts(self) -> list[list[int]]:
        return self._members("cg_contracts")

    @cached_property
    def cg_baskets(self) -> list[list[int]]:
        return self._members("cg_baskets")


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
        return Children(self)

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
