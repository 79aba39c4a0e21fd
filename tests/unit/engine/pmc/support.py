"""Shared builders of the portfolio margin tests: small theo sets and position batches by hand.

Sets are built through ``render_theo_set`` and read back with ``parse_theo_set``, so every test
also exercises the on-disk layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from engine.pmc.positions.model import PositionBatch
from engine.pmc.theo.model import TheoSet
from engine.pmc.theo.read import parse_theo_set
from engine.pmc.theo.write import InstrumentRows, TheoGroups, render_theo_set


@dataclass
class Inst:
    """One instrument row of a hand-made set (P&L per long unit at the 10 points)."""

    symbol: str
    cg: str
    pg: str
    pnl: Sequence[float]
    acct: str = "C"
    type: str = "O"
    pc: str = "C"
    series: str = "2026-12-18"
    strike: float = 100.0
    mult: float = 100.0
    price: float = 1.0
    min_charge: float = 0.0
    underlying: str = ""
    ex: str = ""
    st: str = ""


def stock(symbol: str, cg: str, pg: str, pnl: Sequence[float], **kw: object) -> Inst:
    base: dict[str, object] = dict(type="S", pc="", series="", strike=0.0, mult=1.0)
    base.update(kw)
    return Inst(symbol, cg, pg, pnl, **base)  # type: ignore[arg-type]


@dataclass
class SetSpec:
    ports: list[tuple[str, str, float]] = field(default_factory=list)
    pgs: list[tuple[str, str, str, float, float, float]] = field(default_factory=list)
    cgs: list[tuple[str, str, str]] = field(default_factory=list)
    insts: list[Inst] = field(default_factory=list)
    equity_pg: str = "999"
    date: str = "2026-11-20"


def build_files(spec: SetSpec) -> dict[str, bytes]:
    ins = spec.insts
    rows = InstrumentRows(
        account_type=[i.acct for i in ins],
        product_group=[i.pg for i in ins],
        class_group=[i.cg for i in ins],
        underlying=[i.underlying or i.cg for i in ins],
        symbol=[i.symbol for i in ins],
        security_type=[i.type for i in ins],
        exercise_style=[i.ex for i in ins],
        settlement_style=[i.st for i in ins],
        series_date=[i.series for i in ins],
        expiration_date=[i.series for i in ins],
        put_call=[i.pc for i in ins],
        strike=np.array([i.strike for i in ins], dtype=np.float64),
        multiplier=np.array([i.mult for i in ins], dtype=np.float64),
        theo_price=np.array([i.price for i in ins], dtype=np.float64),
        implied_vol=np.full(len(ins), np.nan),
        min_charge=np.array([i.min_charge for i in ins], dtype=np.float64),
        pnl=np.array([list(i.pnl) for i in ins], dtype=np.float64).reshape(len(ins), 10),
    )
    return render_theo_set(
        activity_date=spec.date,
        source="tests",
        equity_product_group=spec.equity_pg,
        groups=TheoGroups(spec.ports, spec.pgs, spec.cgs),
        instruments=rows,
    )


def build_set(spec: SetSpec) -> TheoSet:
    return parse_theo_set(build_files(spec))


def batch(rows: Sequence[dict[str, object]]) -> PositionBatch:
    """Positions given directly (already valid): defaults firm 5, account A1, type C."""
    n = len(rows)

    def col(name: str, default: object, kind: type = str) -> np.ndarray:
        values = [r.get(name, default) for r in rows]
        if kind is str:
            return np.asarray([str(v) for v in values], dtype=np.str_) if n else np.zeros(0, "<U1")
        return np.asarray(values, dtype=kind)

    return PositionBatch(
        line=np.arange(1, n + 1, dtype=np.int64),
        firm=col("firm", "5"),
        account=col("account", "A1"),
        account_type=col("account_type", "C"),
        put_call=col("put_call", "C"),
        symbol=col("symbol", ""),
        exercise_style=col("exercise_style", ""),
        settlement_style=col("settlement_style", ""),
        series_date=col("series_date", "2026-12-18"),
        expiration_date=col("expiration_date", ""),
        strike=col("strike", 100.0, np.float64),
        security_type=col("security_type", "O"),
        market_value=col("market_value", 0.0, np.float64),
        quantity=col("quantity", 1.0, np.float64),
        basket_id=col("basket_id", ""),
    )


def opt(symbol: str, qty: float, **kw: object) -> dict[str, object]:
    d: dict[str, object] = {"symbol": symbol, "quantity": qty}
    d.update(kw)
    return d


def stk(symbol: str, qty: float, **kw: object) -> dict[str, object]:
    d: dict[str, object] = {
        "symbol": symbol,
        "quantity": qty,
        "security_type": "S",
        "put_call": "",
        "series_date": "",
        "strike": 0.0,
    }
    d.update(kw)
    return d
