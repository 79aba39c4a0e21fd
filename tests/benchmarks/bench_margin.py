"""Benchmarks of the margin flow, run as ``python -m tests.benchmarks.bench_margin``.

* margin: 100,000 positions over 5,000 class groups, the vectorised engine
  (``resolve_positions`` + ``compute_margin``) against ``reference_margin``, a straightforward
  per-position Python loop written here from the calculation rules; both must give the same totals.
* theo-generate: pricing 1,000,000 option series at the base and 10 moved prices
  (``engine.pmc.theo.generate.generate_instruments``).

``--smoke`` runs tiny sizes in a second or two (CI). Results print as Markdown for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from engine.pmc.margin import compute_margin
from engine.pmc.market import MarketSnapshot
from engine.pmc.positions.model import PositionBatch
from engine.pmc.resolve import resolve_positions
from engine.pmc.theo.generate import generate_instruments
from engine.pmc.theo.model import STEPS, InstrumentKey, TheoSet, match_key
from engine.pmc.theo.read import parse_theo_set
from engine.pmc.theo.write import InstrumentRows, TheoGroups, render_theo_set

TARGET_MARGIN_S = 1.0
TARGET_MARGIN_RATIO = 30.0
TARGET_THEO_S = 20.0


# --------------------------------------------------------------------------------------------
# the straightforward reference: one Python loop over positions, dicts for groups


def reference_index(theo: TheoSet) -> dict[InstrumentKey, int]:
    """Match key -> instrument row (-1 when ambiguous), built once per set like the engine's."""
    index: dict[InstrumentKey, int] = {}
    for row in range(theo.size):
        key = match_key(
            str(theo.account_type[row]),
            str(theo.symbol[row]),
            str(theo.security_type[row]),
            str(theo.put_call[row]),
            str(theo.series_date[row]),
            float(theo.strike[row]),
        )
        index[key] = -1 if key in index else row
    return index


def reference_margin(
    batch: PositionBatch,
    theo: TheoSet,
    index: dict[InstrumentKey, int] | None = None,
    nav: dict[tuple[str, str, str], float] | None = None,
) -> dict[tuple[str, str, str], float]:
    """Requirement per (firm, account, account type), computed position by position; the NAV
    per account goes into ``nav`` when given.

    Positions that do not resolve (invalid series, unknown basket) are skipped, as the engine
    does.
    """
    navs: dict[tuple[str, str, str], float] = nav if nav is not None else {}
    if index is None:
        index = reference_index(theo)
    cg_pg = {str(c): str(p) for c, p in zip(theo.cg_ids, theo.cg_product_groups, strict=True)}
    basket_cg = {str(b): str(c) for c, b in zip(theo.cg_ids, theo.cg_baskets, strict=True) if b}
    pg_params: dict[tuple[str, str], tuple[float, float, float, str]] = {}
    for q in range(theo.pg_ids.shape[0]):
        port = int(theo.pg_port[q])
        pg_params[(str(theo.pg_account_types[q]), str(theo.pg_ids[q]))] = (
            float(theo.pg_offsets[q]),
            float(theo.pg_move_down[q]),
            float(theo.pg_move_up[q]),
            str(theo.port_ids[port]) if port >= 0 else "",
        )
    port_offset = {
        (str(a), str(p)): float(o)
        for a, p, o in zip(theo.port_account_types, theo.port_ids, theo.port_offsets, strict=True)
    }
    steps = [float(s) for s in STEPS]

    cg_vec: dict[tuple[tuple[str, str, str], str], list[float]] = {}
    cg_min: dict[tuple[tuple[str, str, str], str], float] = defaultdict(float)
    for i in range(len(batch)):
        acct = (str(batch.firm[i]), str(batch.account[i]), str(batch.account_type[i]))
        atype = acct[2]
        sectype = str(batch.security_type[i])
        symbol = str(batch.symbol[i])
        qty = float(batch.quantity[i])
        basket = str(batch.basket_id[i])
        key = match_key(
            atype,
            symbol,
            sectype,
            str(batch.put_call[i]),
            str(batch.series_date[i]),
            float(batch.strike[i]),
        )
        row = index.get(key, -2)
        mv = float(batch.market_value[i])
        if row >= 0:
            cg = str(theo.cg_ids[theo.cg_code[row]])
            unit = [float(v) for v in theo.pnl[row]]
            value = float(theo.theo_price[row]) * float(theo.multiplier[row])
            minimum = float(theo.min_charge[row]) * abs(qty)
        elif sectype == "S" and row == -2 and mv > 0:
            cg = symbol if symbol in cg_pg else ""
            unit = []
            value = mv
            minimum = 0.0
        else:
            continue
        if basket:
            if basket not in basket_cg:
                continue
            cg = basket_cg[basket]
        pg = cg_pg.get(cg, theo.equity_product_group) if cg else theo.equity_product_group
        if not cg:
            cg = "~" + symbol  # a class group of its own, named by the symbol
        params = pg_params.get((atype, pg))
        if params is None:
            continue
        if not unit:
            down, up = params[1], params[2]
            unit = [mv * (s * down if s < 0 else s * up) for s in steps]
        if atype == "C" and qty > 0 and sectype in ("O", "I", "W"):
            minimum = min(minimum, max(qty * value, 0.0))
        navs[acct] = navs.get(acct, 0.0) + qty * value
        vec = cg_vec.setdefault((acct, cg), [0.0] * 10)
        for k in range(10):
            vec[k] += qty * unit[k]
        cg_min[(acct, cg)] += minimum

    totals: dict[tuple[str, str, str], float] = defaultdict(float)
    pg_members: dict[tuple[tuple[str, str, str], str], list[list[float]]] = defaultdict(list)
    pg_mins: dict[tuple[tuple[str, str, str], str], float] = defaultdict(float)
    for (acct, cg), vec in cg_vec.items():
        pg = cg_pg.get(cg, theo.equity_product_group)
        off = pg_params[(acct[2], pg)][0]
        if math.isnan(off):  # stand-alone class group
            risk = max(0.0, -min(vec))
            totals[acct] += max(risk, cg_min[(acct, cg)])
        else:
            pg_members[(acct, pg)].append(vec)
            pg_mins[(acct, pg)] += cg_min[(acct, cg)]
    port_members: dict[tuple[tuple[str, str, str], str], list[list[float]]] = defaultdict(list)
    port_mins: dict[tuple[tuple[str, str, str], str], float] = defaultdict(float)

    def offset_total(members: list[list[float]], off: float) -> list[float]:
        out = []
        for k in range(10):
            gains = sum(v[k] for v in members if v[k] > 0)
            losses = sum(v[k] for v in members if v[k] < 0)
            out.append(losses + off * gains)
        return out

    for (acct, pg), members in pg_members.items():
        off, _, _, port = pg_params[(acct[2], pg)]
        total = offset_total(members, off)
        if port:
            port_members[(acct, port)].append(total)
            port_mins[(acct, port)] += pg_mins[(acct, pg)]
        else:
            totals[acct] += max(max(0.0, -min(total)), pg_mins[(acct, pg)])
    for (acct, port), members in port_members.items():
        total = offset_total(members, port_offset[(acct[2], port)])
        totals[acct] += max(max(0.0, -min(total)), port_mins[(acct, port)])
    return dict(totals)


# --------------------------------------------------------------------------------------------
# synthetic data


def synthetic_set(n_class_groups: int, per_group: int, seed: int = 7) -> TheoSet:
    """A type-C set: class groups in 50 product groups (10 portfolio groups, some alone)."""
    return parse_theo_set(synthetic_set_files(n_class_groups, per_group, seed))


def synthetic_set_files(n_class_groups: int, per_group: int, seed: int = 7) -> dict[str, bytes]:
    """The CSV files of ``synthetic_set`` (name -> bytes)."""
    rng = np.random.default_rng(seed)
    n_pg = 50
    ports = [(f"P{j}", "C", 0.5 + 0.04 * j) for j in range(10)]
    pgs = []
    for j in range(n_pg):
        if j < 30:
            pgs.append((f"G{j}", f"P{j % 10}", "C", 0.7 + 0.005 * j, 0.08, 0.06))
        elif j < 45:
            pgs.append((f"G{j}", "", "C", 0.6, 0.1, 0.1))
        else:
            pgs.append((f"G{j}", "", "C", math.nan, 0.15, 0.15))
    pgs.append(("999", "", "C", math.nan, 0.15, 0.15))
    cgs = [(f"K{c}", f"G{c % n_pg}", f"B{c}" if c % 97 == 0 else "") for c in range(n_class_groups)]
    n = n_class_groups * per_group
    cg_of = np.repeat(np.arange(n_class_groups), per_group)
    strikes = 50.0 + 5.0 * np.tile(np.arange(per_group), n_class_groups)
    delta = rng.uniform(-1, 1, n)
    gamma = rng.uniform(0, 0.3, n)
    x = STEPS[None, :] * 10.0
    pnl = 100.0 * (delta[:, None] * x + gamma[:, None] * x * x)
    rows = InstrumentRows(
        account_type=["C"] * n,
        product_group=[cgs[c][1] for c in cg_of.tolist()],
        class_group=[cgs[c][0] for c in cg_of.tolist()],
        underlying=[cgs[c][0] for c in cg_of.tolist()],
        symbol=[cgs[c][0] for c in cg_of.tolist()],
        security_type=["O"] * n,
        exercise_style=["A"] * n,
        settlement_style=[""] * n,
        series_date=["2026-12-18"] * n,
        expiration_date=["2026-12-18"] * n,
        put_call=["C" if i % 2 == 0 else "P" for i in range(n)],
        strike=strikes,
        multiplier=np.full(n, 100.0),
        theo_price=rng.uniform(0.05, 20, n),
        implied_vol=np.full(n, 0.3),
        min_charge=np.full(n, 37.5),
        pnl=pnl,
    )
    return render_theo_set(
        activity_date="2026-11-20",
        source="bench",
        equity_product_group="999",
        groups=TheoGroups(ports, pgs, cgs),
        instruments=rows,
    )


def synthetic_positions(theo: TheoSet, n: int, n_accounts: int, seed: int = 11) -> PositionBatch:
    """``n`` positions on random instruments of ``theo`` (a few stocks not in the set)."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, theo.size, n)
    qty = rng.integers(1, 50, n).astype(np.float64) * np.where(rng.random(n) < 0.5, -1.0, 1.0)
    acct = rng.integers(0, n_accounts, n)
    outside = rng.random(n) < 0.01
    sym = theo.symbol[rows].astype("<U12")
    sym[outside] = np.char.add("NIS", (acct[outside] % 50).astype(str))
    sectype = np.where(outside, "S", theo.security_type[rows])
    return PositionBatch(
        line=np.arange(1, n + 1, dtype=np.int64),
        firm=np.where(acct % 3 == 0, "5", "161").astype(np.str_),
        account=np.char.add("ACCT", acct.astype(str)),
        account_type=np.full(n, "C").astype(np.str_),
        put_call=np.where(outside, "", theo.put_call[rows]).astype(np.str_),
        symbol=sym,
        exercise_style=np.full(n, "").astype("<U1"),
        settlement_style=np.full(n, "").astype("<U1"),
        series_date=np.where(outside, "", theo.series_date[rows]).astype(np.str_),
        expiration_date=np.full(n, "").astype("<U1"),
        strike=np.where(outside, 0.0, theo.strike[rows]),
        security_type=sectype.astype(np.str_),
        market_value=np.where(outside, rng.uniform(5, 500, n), 0.0),
        quantity=qty,
        basket_id=np.full(n, "").astype("<U1"),
    )


def synthetic_market(n_series: int, seed: int = 3) -> MarketSnapshot:
    """``n_series`` option series: chains of 50 strikes x 10 expiries per underlying;
    70 % of underlyings are stocks (American), 30 % indexes (European)."""
    rng = np.random.default_rng(seed)
    per_und = 500
    n_und = max(1, math.ceil(n_series / per_und))
    price = rng.uniform(10, 1000, n_und)
    stocks = rng.random(n_und) < 0.7
    und = np.repeat(np.arange(n_und), per_und)[:n_series]
    j = np.tile(np.arange(per_und), n_und)[:n_series]
    expiry_idx = j // 50
    strike_idx = j % 50
    expiries = [f"2027-{m:02d}-15" for m in range(1, 11)]
    groups = TheoGroups(
        [],
        [("999", "", "C", math.nan, 0.15, 0.15)],
        [(f"U{u}", "999", "") for u in range(n_und)],
    )
    names = np.char.add("U", np.arange(n_und).astype(str)).astype(np.str_)
    expiry = np.asarray(expiries, dtype=np.str_)[expiry_idx]
    return MarketSnapshot(
        groups=groups,
        und_symbol=names,
        und_class_group=names,
        und_is_stock=np.zeros(n_und, dtype=bool),
        und_price=price,
        und_volatility=rng.uniform(0.15, 0.6, n_und),
        und_dividend_yield=np.where(stocks, rng.uniform(0, 0.03, n_und), 0.015),
        und_rate=np.full(n_und, 0.04),
        und_multiplier=np.ones(n_und),
        und_min_charge=np.zeros(n_und),
        ser_underlying=und.astype(np.int64),
        ser_symbol=names[und],
        ser_security_type=np.full(n_series, "O").astype(np.str_),
        ser_exercise_style=np.where(stocks[und], "A", "E").astype(np.str_),
        ser_settlement_style=np.full(n_series, "").astype("<U1"),
        ser_series_date=expiry,
        ser_expiration_date=expiry,
        ser_put_call=np.where(strike_idx % 2 == 0, "C", "P").astype(np.str_),
        ser_strike=price[und] * (0.6 + 0.8 * (strike_idx // 2) / 24),
        ser_multiplier=np.full(n_series, 100.0),
        ser_min_charge=np.full(n_series, 37.5),
        ser_volatility=np.full(n_series, np.nan),
    )


# --------------------------------------------------------------------------------------------
# runs


def best_of(fn, repeat: int, warmup: int = 0) -> tuple[float, float, object]:  # type: ignore[no-untyped-def]
    """Best wall seconds, best CPU seconds (this process) and the last result of ``repeat`` runs,
    after ``warmup`` runs that are not counted.

    The machine may be shared: CPU seconds are the fairer measure, wall seconds are shown too.
    """
    best = math.inf
    best_cpu = math.inf
    out = None
    for _ in range(warmup):
        fn()
    for _ in range(repeat):
        t0 = time.perf_counter()
        c0 = time.process_time()
        out = fn()
        best_cpu = min(best_cpu, time.process_time() - c0)
        best = min(best, time.perf_counter() - t0)
    return best, best_cpu, out


def bench_margin(n_positions: int, n_class_groups: int, repeat: int) -> dict[str, float]:
    t0 = time.perf_counter()
    theo = synthetic_set(n_class_groups, per_group=20)
    build_s = time.perf_counter() - t0
    batch = synthetic_positions(theo, n_positions, n_accounts=max(1, n_positions // 500))

    def vectorised():  # type: ignore[no-untyped-def]
        return compute_margin(resolve_positions(batch, theo))

    vec_s, vec_cpu, result = best_of(vectorised, repeat)
    index = reference_index(theo)
    ref_nav: dict[tuple[str, str, str], float] = {}

    def loop():  # type: ignore[no-untyped-def]
        ref_nav.clear()
        return reference_margin(batch, theo, index, ref_nav)

    loop_s, loop_cpu, ref = best_of(loop, repeat)
    r = result  # type: ignore[assignment]
    got = {
        (str(f), str(a), str(t)): float(v)
        for f, a, t, v in zip(
            r.account_firm, r.account_id, r.account_type, r.account_requirement, strict=True
        )
    }
    assert set(got) == set(ref), "accounts differ"  # type: ignore[arg-type]
    worst = max(abs(got[k] - ref[k]) for k in got)  # type: ignore[index]
    assert worst < 1e-6 * max(1.0, max(abs(v) for v in got.values())), worst
    navs = dict(zip(got, r.account_nav.tolist(), strict=True))
    worst_nav = max(abs(navs[k] - ref_nav[k]) for k in navs)
    assert worst_nav < 1e-6 * max(1.0, max(abs(v) for v in navs.values())), worst_nav
    return {
        "positions": float(n_positions),
        "class_groups": float(len(np.unique(r.cg_id))),
        "accounts": float(len(got)),
        "vectorised_s": vec_s,
        "loop_s": loop_s,
        "vectorised_cpu": vec_cpu,
        "loop_cpu": loop_cpu,
        "ratio": loop_cpu / max(vec_cpu, 1e-9),
        "wall_ratio": loop_s / vec_s,
        "total": float(r.requirement),
        "max_diff": worst,
        "set_build_s": build_s,
    }


def bench_theo(n_series: int) -> dict[str, float]:
    snap = synthetic_market(n_series)
    price_s, price_cpu, rows = best_of(lambda: generate_instruments(snap, "2026-11-20"), 1)
    pnl = rows.pnl  # type: ignore[attr-defined]
    assert pnl.shape == (n_series, 10) and np.isfinite(pnl).all()
    return {
        "series": float(n_series),
        "pricing_s": price_s,
        "pricing_cpu": price_cpu,
        "per_series_us": price_cpu / n_series * 1e6,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.bench_margin")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds)")
    parser.add_argument("--only", choices=("margin", "theo"), help="run one benchmark")
    args = parser.parse_args(argv)
    if args.smoke:
        n_pos, n_cg, n_series, repeat = 2_000, 100, 5_000, 1
    else:
        n_pos, n_cg, n_series, repeat = 100_000, 5_000, 1_000_000, 3
    flags = " --smoke" if args.smoke else ""
    cmd = f"scripts/bench margin{flags}` (= `python -m tests.benchmarks.bench_margin{flags}"

    def verdict(ok: bool) -> str:
        if args.smoke:
            return "not judged at smoke size"
        return "met" if ok else "NOT met"

    if args.only in (None, "margin"):
        m = bench_margin(n_pos, n_cg, repeat)
        ok = m["vectorised_s"] < TARGET_MARGIN_S and m["ratio"] >= TARGET_MARGIN_RATIO
        print("## margin\n")
        print(f"Command: `{cmd}`)\n")
        print(
            f"{int(m['positions']):,} positions over {int(m['class_groups']):,} class groups, "
            f"{int(m['accounts']):,} accounts (type C). Best of {repeat} runs each; CPU "
            "seconds are this process's own (the machine may be shared), the ratio is on CPU "
            "seconds.\n"
        )
        print("| what | wall s | CPU s | ratio (CPU) |")
        print("|---|---:|---:|---:|")
        print(
            f"| per-position Python loop (reference) | {m['loop_s']:.3f} | {m['loop_cpu']:.3f} "
            "| 1× |"
        )
        print(
            f"| vectorised engine (resolve + compute) | {m['vectorised_s']:.3f} | "
            f"{m['vectorised_cpu']:.3f} | {m['ratio']:.0f}× faster |"
        )
        print(
            f"\nSame totals: requirement and NAV of every account agree (total requirement "
            f"{m['total']:,.2f}, largest difference {m['max_diff']:.2e}). "
            f"Target: < {TARGET_MARGIN_S:g} s and ≥ "
            f"{TARGET_MARGIN_RATIO:g}× the loop — {verdict(ok)}.\n"
        )
    if args.only in (None, "theo"):
        t = bench_theo(n_series)
        ok = t["pricing_s"] < TARGET_THEO_S
        print("## theo-generate\n")
        print(f"Command: `{cmd}`)\n")
        print(
            f"{int(t['series']):,} option series (70 % American on grouped CRR lattices, 100 "
            f"steps; 30 % European Black-Scholes) x (base + 10 points): {t['pricing_s']:.2f} s "
            f"wall, {t['pricing_cpu']:.2f} s CPU ({t['per_series_us']:.1f} µs CPU per series). "
            f"Target: < {TARGET_THEO_S:g} s — {verdict(ok)}.\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
