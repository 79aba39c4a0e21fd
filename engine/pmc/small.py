"""Margin of a small portfolio in plain Python: the numbers of ``engine.pmc.margin``, bit for bit.

For a few dozen positions the vectorised engine spends most of its time in numpy's fixed cost
per call (a few hundred calls on arrays of twenty rows), not in arithmetic. ``small_margin``
climbs the same hierarchy (class group, product group, portfolio group, stand-alone unit,
account, firm) over lists, in the same order of additions and with numpy's rules for maxima,
minima and rounding to cents, so every amount is the same float and the documents it returns
are those of the vectorised result (``MarginResult.account_groups``, the margin report's
accounts and firms, what-if contributions). A property test holds the two to equality.

It takes positions already resolved against the set (``engine.pmc.resolve``), so acceptance,
rejection and invalid series are decided in one place. Use it up to ``SMALL_LIMIT`` positions;
above that the vectorised engine is faster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from engine.pmc.margin import (
    LEVEL_CLASS_GROUP,
    LEVEL_NAMES,
    LEVEL_PORTFOLIO_GROUP,
    LEVEL_PRODUCT_GROUP,
)
from engine.pmc.resolve import ResolvedPositions
from engine.pmc.theo.model import ACCOUNT_TYPES, POINTS

SMALL_LIMIT = 64  # positions up to which the plain-Python path costs less than numpy's

Vector = list[float]
Doc = dict[str, object]
_TYPE_INDEX = {t: i for i, t in enumerate(ACCOUNT_TYPES)}
_OPTION_TYPES = ("O", "I", "W")


def _max(a: float, b: float) -> float:
    """``np.maximum(a, b)`` for two floats (the same zero sign)."""
    return a if a > b else b


def _min(a: float, b: float) -> float:
    """``np.minimum(a, b)`` for two floats."""
    return a if a < b else b


def _round_rows(blocks: list[list[Vector]]) -> list[list[Vector]]:
    """``np.round(v, 2)`` of every vector of every block, in one numpy call (rounding 400
    numbers one by one in Python costs more than the whole margin calculation)."""
    flat = [v for block in blocks for v in block]
    if not flat:
        return [[] for _ in blocks]
    rounded: list[Vector] = np.round(np.asarray(flat, dtype=np.float64), 2).tolist()
    out: list[list[Vector]] = []
    start = 0
    for block in blocks:
        out.append(rounded[start : start + len(block)])
        start += len(block)
    return out


def _round_list(values: list[float]) -> list[float]:
    rounded: list[float] = np.round(np.asarray(values, dtype=np.float64), 2).tolist()
    return rounded


def _offset_total(gains: Vector, losses: Vector, offset: float) -> Vector:
    """Losses + offset x gains; an empty (NaN) offset is a plain sum."""
    off = 1.0 if math.isnan(offset) else offset
    return [lo + off * ga for ga, lo in zip(gains, losses, strict=True)]


def _add_into(total: Vector, v: Vector) -> None:
    for j in range(POINTS):
        total[j] += v[j]


def _np_sum(values: list[float]) -> float:
    """``float(array.sum())``: numpy's pairwise summation, for totals of the documents."""
    return float(np.asarray(values, dtype=np.float64).sum()) if values else 0.0


@dataclass
class _Level:
    """One level's rows (class groups, product groups or portfolio groups), in their order."""

    account: list[int] = field(default_factory=list)
    code: list[int] = field(default_factory=list)
    nav: list[float] = field(default_factory=list)
    minimum: list[float] = field(default_factory=list)
    gains: list[Vector] = field(default_factory=list)
    losses: list[Vector] = field(default_factory=list)
    total: list[Vector] = field(default_factory=list)
    parent: list[int] = field(default_factory=list)
    members: list[list[int]] = field(default_factory=list)


def _rows(keys: list[tuple[int, int]]) -> tuple[list[tuple[int, int]], list[int]]:
    """Sorted distinct (account, code) keys and each key's row among them."""
    distinct = sorted(set(keys))
    index = {k: r for r, k in enumerate(distinct)}
    return distinct, [index[k] for k in keys]


def _level(keys: list[tuple[int, int]], navs: list[float], mins: list[float]) -> _Level:
    """Rows of a level from its members' keys, with nav and minimum summed in member order."""
    distinct, parent = _rows(keys)
    lv = _Level(
        account=[a for a, _ in distinct],
        code=[c for _, c in distinct],
        nav=[0.0] * len(distinct),
        minimum=[0.0] * len(distinct),
        members=[[] for _ in distinct],
    )
    for m, r in enumerate(parent):
        lv.nav[r] += navs[m]
        lv.minimum[r] += mins[m]
        lv.members[r].append(m)
    lv.parent = parent  # reused by the caller as the members' parent rows
    return lv


def _split(level: _Level, totals: list[Vector], parent: list[int], offsets: list[float]) -> None:
    """Gains, losses (summed in member order) and offset totals of a level's rows."""
    n = len(level.account)
    level.gains = [[0.0] * POINTS for _ in range(n)]
    level.losses = [[0.0] * POINTS for _ in range(n)]
    for m, r in enumerate(parent):
        gains, losses = level.gains[r], level.losses[r]
        for j, x in enumerate(totals[m]):
            if x > 0.0:
                gains[j] += x
                losses[j] += 0.0
            else:
                gains[j] += 0.0
                losses[j] += x if x < 0.0 else 0.0
    level.total = [_offset_total(level.gains[r], level.losses[r], offsets[r]) for r in range(n)]


def _without_member(
    gains: Vector, losses: Vector, member: Vector, offset: float
) -> tuple[Vector, Vector, float]:
    """A row's gains and losses less one member's part, and its offset (1 when empty)."""
    return (
        [ga - (m if m > 0.0 else 0.0) for ga, m in zip(gains, member, strict=True)],
        [lo - (m if m < 0.0 else 0.0) for lo, m in zip(losses, member, strict=True)],
        1.0 if math.isnan(offset) else offset,
    )


def _with_member(base: tuple[Vector, Vector, float], member: Vector) -> Vector:
    """The offset total of a row from its ``_without_member`` parts and a new member vector."""
    gains, losses, k = base
    return [
        (lo + (m if m < 0.0 else 0.0)) + k * (ga + (m if m > 0.0 else 0.0))
        for m, ga, lo in zip(member, gains, losses, strict=True)
    ]


@dataclass(frozen=True)
class _Tree:
    """The levels above the positions, as ``_lowest_without`` needs them."""

    cg: _Level
    pg: _Level
    port: _Level
    cg_pg: list[int]
    pg_port: list[int]
    pg_offset: list[float]
    port_offset: list[float]


def _lowest_without(tree: _Tree, pos_pnl: list[Vector], pos_cg: list[int]) -> list[float]:
    """The lowest point of each position's unit without that position [n]; the caller turns it
    into the requirement without the position. The same operations, in the same order, as
    ``engine.pmc.whatif.marginal_contributions``."""
    cg, pg, port = tree.cg, tree.pg, tree.port
    pg_base: dict[int, tuple[Vector, Vector, float]] = {}
    port_base: dict[int, tuple[Vector, Vector, float]] = {}
    lowest: list[float] = []
    for i, g in enumerate(pos_cg):
        old = cg.total[g]
        new_cg = [o - x for o, x in zip(old, pos_pnl[i], strict=True)]
        p = tree.cg_pg[g]
        if math.isnan(tree.pg_offset[p]):  # the class group stands alone
            lowest.append(min(new_cg))
            continue
        base = pg_base.get(g)
        if base is None:
            base = _without_member(pg.gains[p], pg.losses[p], old, tree.pg_offset[p])
            pg_base[g] = base
        new_pg = _with_member(base, new_cg)
        q = tree.pg_port[p]
        if q < 0:
            lowest.append(min(new_pg))
            continue
        base = port_base.get(p)
        if base is None:
            base = _without_member(port.gains[q], port.losses[q], pg.total[p], tree.port_offset[q])
            port_base[p] = base
        lowest.append(min(_with_member(base, new_pg)))
    return lowest


@dataclass(frozen=True, eq=False)
class SmallMargin:
    """A small portfolio's margin as documents.

    ``accounts`` are the accounts of the margin report's JSON (each with ``groups``, the
    stand-alone units as ``MarginResult.account_groups`` gives them), ``firms`` its firms;
    ``requirement``, ``nav``, ``minimum`` and ``risk`` are the totals over the accounts, and
    ``contributions`` [n] (when asked for) each position's marginal requirement, as
    ``engine.pmc.whatif.marginal_contributions``.
    """

    accounts: list[Doc]
    firms: list[Doc]
    requirement: float
    nav: float
    minimum: float
    risk: float
    contributions: list[float]


def small_margin(res: ResolvedPositions, *, contributions: bool = False) -> SmallMargin:
    """The margin of resolved positions, computed over lists (see the module docstring)."""
    theo = res.theo
    b = res.batch
    n = len(b)
    firm = b.firm.tolist()
    account = b.account.tolist()
    atype = b.account_type.tolist()
    sectype = b.security_type.tolist()
    qty: list[float] = b.quantity.tolist()
    unit_pnl: list[Vector] = res.unit_pnl.tolist()
    unit_value: list[float] = res.unit_value.tolist()
    unit_min: list[float] = res.unit_min.tolist()
    cg_code: list[int] = res.cg_code.tolist()
    pg_code: list[int] = res.pg_code.tolist()

    # accounts, sorted by firm, account id and account type
    acct_keys = [(firm[i], account[i], _TYPE_INDEX[atype[i]]) for i in range(n)]
    accounts = sorted(set(acct_keys))
    acct_row = {k: a for a, k in enumerate(accounts)}
    pos_acct = [acct_row[k] for k in acct_keys]

    # positions
    pos_pnl = [[q * x for x in unit_pnl[i]] for i, q in enumerate(qty)]
    pos_nav = [q * unit_value[i] for i, q in enumerate(qty)]
    pos_min = [abs(q) * unit_min[i] for i, q in enumerate(qty)]
    for i, q in enumerate(qty):
        if atype[i] == "C" and q > 0 and sectype[i] in _OPTION_TYPES:
            pos_min[i] = _min(pos_min[i], _max(pos_nav[i], 0.0))

    # class groups per account
    cg = _level([(pos_acct[i], cg_code[i]) for i in range(n)], pos_nav, pos_min)
    pos_cg = cg.parent
    cg.total = [[0.0] * POINTS for _ in cg.account]
    for i, g in enumerate(pos_cg):
        _add_into(cg.total[g], pos_pnl[i])
    cg_pgcode = [pg_code[members[0]] for members in cg.members]

    # product groups per account
    pg = _level([(cg.account[g], cg_pgcode[g]) for g in range(len(cg.account))], cg.nav, cg.minimum)
    cg_pg = pg.parent
    pg_offset = [float(theo.pg_offsets[c]) for c in pg.code]
    _split(pg, cg.total, cg_pg, pg_offset)
    pg_portcode = [int(theo.pg_port[c]) for c in pg.code]

    # portfolio groups per account
    in_port = [p for p, c in enumerate(pg_portcode) if c >= 0]
    port = _level(
        [(pg.account[p], pg_portcode[p]) for p in in_port],
        [pg.nav[p] for p in in_port],
        [pg.minimum[p] for p in in_port],
    )
    port_offset = [float(theo.port_offsets[c]) for c in port.code]
    _split(port, [pg.total[p] for p in in_port], port.parent, port_offset)
    pg_port = [-1] * len(pg.account)
    for m, p in enumerate(in_port):
        pg_port[p] = port.parent[m]
    port.members = [[in_port[m] for m in members] for members in port.members]

    # stand-alone units: each class group belongs to exactly one
    tables = {LEVEL_CLASS_GROUP: cg, LEVEL_PRODUCT_GROUP: pg, LEVEL_PORTFOLIO_GROUP: port}
    cg_unit_key: list[tuple[int, int]] = []
    for g, p in enumerate(cg_pg):
        if math.isnan(pg_offset[p]):
            cg_unit_key.append((LEVEL_CLASS_GROUP, g))
        elif pg_port[p] < 0:
            cg_unit_key.append((LEVEL_PRODUCT_GROUP, p))
        else:
            cg_unit_key.append((LEVEL_PORTFOLIO_GROUP, pg_port[p]))
    units = sorted(
        set(cg_unit_key),
        key=lambda u: (tables[u[0]].account[u[1]], LEVEL_PORTFOLIO_GROUP - u[0], u[1]),
    )
    unit_row = {u: k for k, u in enumerate(units)}
    pos_unit = [unit_row[cg_unit_key[g]] for g in pos_cg]
    n_u = len(units)
    unit_total = [tables[level].total[ref] for level, ref in units]
    unit_account = [tables[level].account[ref] for level, ref in units]
    unit_nav = [0.0] * n_u
    unit_minimum = [0.0] * n_u
    for i, u in enumerate(pos_unit):
        unit_minimum[u] += pos_min[i]
        unit_nav[u] += pos_nav[i]
    unit_risk = [_max(0.0, -min(t)) for t in unit_total]
    unit_req = [_max(r, m) for r, m in zip(unit_risk, unit_minimum, strict=True)]

    # accounts and firms
    n_a = len(accounts)
    acct_nav = [0.0] * n_a
    for i, a in enumerate(pos_acct):
        acct_nav[a] += pos_nav[i]
    acct_risk, acct_min, acct_req = [0.0] * n_a, [0.0] * n_a, [0.0] * n_a
    acct_units: list[list[int]] = [[] for _ in range(n_a)]
    for u, a in enumerate(unit_account):
        acct_risk[a] += unit_risk[u]
        acct_min[a] += unit_minimum[u]
        acct_req[a] += unit_req[u]
        acct_units[a].append(u)
    firm_rows: dict[str, list[float]] = {}
    for a, (firm_id, _, _) in enumerate(accounts):
        sums = firm_rows.setdefault(firm_id, [0.0, 0.0])
        sums[0] += acct_nav[a]
        sums[1] += acct_req[a]

    # documents
    money = (_round_list(pos_nav), _round_list(pos_min))
    cg_gains = [[x if x > 0.0 else 0.0 for x in t] for t in cg.total]
    cg_losses = [[x if x < 0.0 else 0.0 for x in t] for t in cg.total]
    (
        r_pos_pnl,
        r_cg_total,
        r_cg_gains,
        r_cg_losses,
        r_pg_gains,
        r_pg_losses,
        r_pg_total,
        r_port_gains,
        r_port_losses,
        r_port_total,
    ) = _round_rows(
        [
            pos_pnl,
            cg.total,
            cg_gains,
            cg_losses,
            pg.gains,
            pg.losses,
            pg.total,
            port.gains,
            port.losses,
            port.total,
        ]
    )
    in_set = (res.theo_row >= 0).tolist()
    cg_ids = [str(res.cg_ids[c]) for c in cg.code]
    cg_baskets = [str(res.cg_baskets[c]) for c in cg.code]
    pg_ids = [str(theo.pg_ids[c]) for c in pg.code]
    port_ids = [str(theo.port_ids[c]) for c in port.code]
    line = b.line.tolist()
    symbol = b.symbol.tolist()
    put_call = b.put_call.tolist()
    series_date = b.series_date.tolist()
    strike = b.strike.tolist()
    basket_id = b.basket_id.tolist()

    def contract_doc(i: int) -> Doc:
        return {
            "line": line[i],
            "symbol": symbol[i],
            "security_type": sectype[i],
            "put_call": put_call[i] or None,
            "series_date": series_date[i] or None,
            "strike": strike[i],
            "quantity": qty[i],
            "basket_id": basket_id[i] or None,
            "in_set": in_set[i],
            "nav": money[0][i],
            "minimum": money[1][i],
            "pnl": r_pos_pnl[i],
        }

    def cg_doc(g: int) -> Doc:
        return {
            "level": "class_group",
            "id": cg_ids[g],
            "basket_id": cg_baskets[g] or None,
            "nav": round(cg.nav[g], 2),
            "minimum": round(cg.minimum[g], 2),
            "total": r_cg_total[g],
            "contracts": [contract_doc(i) for i in cg.members[g]],
        }

    def pg_doc(p: int) -> Doc:
        off = pg_offset[p]
        return {
            "level": "product_group",
            "id": pg_ids[p],
            "offset_pct": None if math.isnan(off) else off,
            "nav": round(pg.nav[p], 2),
            "minimum": round(pg.minimum[p], 2),
            "gains": r_pg_gains[p],
            "losses": r_pg_losses[p],
            "total": r_pg_total[p],
            "class_groups": [cg_doc(g) for g in pg.members[p]],
        }

    def unit_doc(u: int) -> Doc:
        level, ref = units[u]
        head: Doc = {
            "level": LEVEL_NAMES[level],
            "nav": round(unit_nav[u], 2),
            "risk": round(unit_risk[u], 2),
            "minimum": round(unit_minimum[u], 2),
            "requirement": round(unit_req[u], 2),
        }
        if level == LEVEL_PORTFOLIO_GROUP:
            head.update(
                id=port_ids[ref],
                product_group=None,
                offset_pct=port_offset[ref],
                gains=r_port_gains[ref],
                losses=r_port_losses[ref],
                total=r_port_total[ref],
                product_groups=[pg_doc(p) for p in port.members[ref]],
            )
        elif level == LEVEL_PRODUCT_GROUP:
            d = pg_doc(ref)
            head.update(
                id=d["id"],
                product_group=d["id"],
                offset_pct=d["offset_pct"],
                gains=d["gains"],
                losses=d["losses"],
                total=d["total"],
                class_groups=d["class_groups"],
            )
        else:
            d = cg_doc(ref)
            head.update(
                id=d["id"],
                product_group=pg_ids[cg_pg[ref]],
                offset_pct=None,
                basket_id=d["basket_id"],
                gains=r_cg_gains[ref],
                losses=r_cg_losses[ref],
                total=d["total"],
                contracts=d["contracts"],
            )
        return head

    account_docs: list[Doc] = [
        {
            "firm": firm_id,
            "account": account_id,
            "account_type": ACCOUNT_TYPES[type_code],
            "nav": round(acct_nav[a], 2),
            "risk": round(acct_risk[a], 2),
            "minimum": round(acct_min[a], 2),
            "requirement": round(acct_req[a], 2),
            "groups": [unit_doc(u) for u in acct_units[a]],
        }
        for a, (firm_id, account_id, type_code) in enumerate(accounts)
    ]
    firm_docs: list[Doc] = [
        {"firm": f, "nav": round(sums[0], 2), "requirement": round(sums[1], 2)}
        for f, sums in sorted(firm_rows.items())
    ]

    marginal: list[float] = []
    if contributions:
        tree = _Tree(cg, pg, port, cg_pg, pg_port, pg_offset, port_offset)
        lowest = _lowest_without(tree, pos_pnl, pos_cg)
        for i, u in enumerate(pos_unit):
            new_min = unit_minimum[u] - pos_min[i]
            new_req = _max(_max(0.0, -lowest[i]), _max(new_min, 0.0))
            marginal.append(unit_req[u] - new_req)

    return SmallMargin(
        accounts=account_docs,
        firms=firm_docs,
        requirement=_np_sum(acct_req),
        nav=_np_sum(acct_nav),
        minimum=_np_sum(acct_min),
        risk=_np_sum(acct_risk),
        contributions=marginal,
    )
