"""What-if margin (AMQP ``margin.whatif``): a portfolio's requirement with and without
each of its positions, optionally on top of a base portfolio.

The marginal contribution of position i is the requirement of the whole portfolio minus the
requirement without i; only the stand-alone units that hold i change, so each contribution
recomputes just those units (see ``marginal_contributions``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from engine.pmc.margin import (
    LEVEL_PORTFOLIO_GROUP,
    LEVEL_PRODUCT_GROUP,
    MarginResult,
    compute_margin,
    offset_total,
)
from engine.pmc.positions.model import PositionBatch, PositionProblem
from engine.pmc.resolve import resolve_positions
from engine.pmc.small import SMALL_LIMIT, small_margin
from engine.pmc.theo.model import TheoSet

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class WhatIfResult:
    """What-if margin: totals, the base alone, and each what-if position's contribution.

    ``contributions`` [k] (k = accepted what-if positions, in their order) = requirement of the
    whole portfolio minus the requirement without that one position.
    """

    result: MarginResult
    requirement: float
    nav: float
    minimum: float
    risk: float
    base_requirement: float | None
    base_nav: float | None
    positions: PositionBatch
    contributions: FloatArray
    problems: list[PositionProblem]

    def as_dict(self) -> dict[str, object]:
        """Plain data for a JSON reply (amounts rounded to cents)."""
        r = self.result
        accounts: list[dict[str, object]] = [
            {
                "firm": str(r.account_firm[a]),
                "account": str(r.account_id[a]),
                "account_type": str(r.account_type[a]),
                "nav": round(float(r.account_nav[a]), 2),
                "risk": round(float(r.account_risk[a]), 2),
                "minimum": round(float(r.account_minimum[a]), 2),
                "requirement": round(float(r.account_requirement[a]), 2),
                "groups": r.account_groups(a),
            }
            for a in range(r.account_firm.shape[0])
        ]
        return _document(
            r.resolved.theo.activity_date,
            (self.requirement, self.nav, self.minimum, self.risk),
            (self.base_requirement, self.base_nav),
            accounts,
            self.positions,
            self.contributions.tolist(),
            self.problems,
        )


def _document(
    theo_date: str,
    totals: tuple[float, float, float, float],
    base: tuple[float | None, float | None],
    accounts: list[dict[str, object]],
    positions: PositionBatch,
    contributions: list[float],
    problems: list[PositionProblem],
) -> dict[str, object]:
    """The what-if reply: totals, the base alone, accounts and each position's contribution."""
    requirement, nav, minimum, risk = totals
    base_requirement, base_nav = base
    p = positions
    return {
        "theo_date": theo_date,
        "requirement": round(requirement, 2),
        "nav": round(nav, 2),
        "minimum": round(minimum, 2),
        "risk": round(risk, 2),
        "base_requirement": None if base_requirement is None else round(base_requirement, 2),
        "base_nav": None if base_nav is None else round(base_nav, 2),
        "delta_requirement": None
        if base_requirement is None
        else round(requirement - base_requirement, 2),
        "accounts": accounts,
        "positions": [
            {
                "line": line,
                "symbol": symbol,
                "security_type": sec,
                "put_call": put_call or None,
                "series_date": series or None,
                "strike": strike,
                "quantity": quantity,
                "marginal_requirement": round(contribution, 2),
            }
            for line, symbol, sec, put_call, series, strike, quantity, contribution in zip(
                p.line.tolist(),
                p.symbol.tolist(),
                p.security_type.tolist(),
                p.put_call.tolist(),
                p.series_date.tolist(),
                p.strike.tolist(),
                p.quantity.tolist(),
                contributions,
                strict=True,
            )
        ],
        "problems": [pr.as_dict() for pr in problems],
    }


def marginal_contributions(result: MarginResult) -> FloatArray:
    """Requirement with minus without each position, shape [n], all positions at once.

    Removing position i changes only its unit: its class group loses the position's vector,
    which changes that class group's gain/loss split inside its product group, which in turn may
    change the product group's split inside its portfolio group. Each step is an [n, 10] array
    operation.
    """
    r = result
    g = r.pos_cg
    new_cg = np.take(r.cg_total, g, axis=0) - r.pos_pnl
    level = r.unit_level[r.pos_unit]
    new_unit = new_cg.copy()
    p = r.cg_pg[g]
    if p.size:
        old_cg = r.cg_total[g]
        new_pg_gains = r.pg_gains[p] - np.maximum(old_cg, 0.0) + np.maximum(new_cg, 0.0)
        new_pg_losses = r.pg_losses[p] - np.minimum(old_cg, 0.0) + np.minimum(new_cg, 0.0)
        new_pg = offset_total(new_pg_gains, new_pg_losses, r.pg_offset[p])
        is_pg = level == LEVEL_PRODUCT_GROUP
        new_unit[is_pg] = new_pg[is_pg]
        is_port = level == LEVEL_PORTFOLIO_GROUP
        if is_port.any():
            q = r.pg_port[p[is_port]]
            old_pg = r.pg_total[p[is_port]]
            npg = new_pg[is_port]
            gains = r.port_gains[q] - np.maximum(old_pg, 0.0) + np.maximum(npg, 0.0)
            losses = r.port_losses[q] - np.minimum(old_pg, 0.0) + np.minimum(npg, 0.0)
            new_unit[is_port] = offset_total(gains, losses, r.port_offset[q])
    new_risk = np.maximum(0.0, -new_unit.min(axis=1)) if new_unit.size else np.zeros(0)
    new_min = r.unit_minimum[r.pos_unit] - r.pos_minimum
    new_req = np.maximum(new_risk, np.maximum(new_min, 0.0))
    contrib: FloatArray = r.unit_requirement[r.pos_unit] - new_req
    return contrib


def whatif(
    positions: PositionBatch,
    theo: TheoSet,
    base: PositionBatch | None = None,
) -> WhatIfResult:
    """Margin of ``base`` + ``positions`` with each what-if position's marginal contribution."""
    base_req: float | None = None
    base_nav: float | None = None
    if base is not None and len(base):
        base_res = compute_margin(resolve_positions(base, theo))
        base_req = base_res.requirement
        base_nav = base_res.nav
        combined = PositionBatch.concat([base, positions])
        marker = np.concatenate([np.zeros(len(base), bool), np.ones(len(positions), bool)])
    else:
        if base is not None:
            base_req, base_nav = 0.0, 0.0
        combined = positions
        marker = np.ones(len(positions), dtype=bool)
    # resolve once; marker survives via a parallel resolution of the what-if part
    res = resolve_positions(combined, theo)
    kept_marker = marker[res.kept]
    result = compute_margin(res)
    contrib = marginal_contributions(result)[kept_marker]
    mine = res.batch.take(np.flatnonzero(kept_marker))
    problems = list(res.problems)
    return WhatIfResult(
        result=result,
        requirement=result.requirement,
        nav=result.nav,
        minimum=result.minimum,
        risk=result.risk,
        base_requirement=base_req,
        base_nav=base_nav,
        positions=mine,
        contributions=contrib,
        problems=problems,
    )


def whatif_document(
    positions: PositionBatch,
    theo: TheoSet,
    base: PositionBatch | None = None,
) -> dict[str, object]:
    """``whatif(positions, theo, base).as_dict()``; up to ``SMALL_LIMIT`` positions in all it is
    computed by the plain-Python path of ``engine.pmc.small`` (the same document, several times
    cheaper for a small portfolio)."""
    total = len(positions) + (len(base) if base is not None else 0)
    if total > SMALL_LIMIT:
        return whatif(positions, theo, base).as_dict()
    base_req: float | None = None
    base_nav: float | None = None
    if base is not None and len(base):
        alone = small_margin(resolve_positions(base, theo))
        base_req, base_nav = alone.requirement, alone.nav
        combined = PositionBatch.concat([base, positions])
        first_mine = len(base)
    else:
        if base is not None:
            base_req, base_nav = 0.0, 0.0
        combined = positions
        first_mine = 0
    res = resolve_positions(combined, theo)
    mine = [k for k, row in enumerate(res.kept.tolist()) if row >= first_mine]
    m = small_margin(res, contributions=True)
    return _document(
        theo.activity_date,
        (m.requirement, m.nav, m.minimum, m.risk),
        (base_req, base_nav),
        m.accounts,
        res.batch if len(mine) == len(res) else res.batch.take(np.asarray(mine, dtype=np.int64)),
        [m.contributions[k] for k in mine],
        list(res.problems),
    )
