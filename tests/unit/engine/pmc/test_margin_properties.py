"""Property tests of the margin calculation (hypothesis), with the per-position reference loop of
the benchmark as an independent oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.pmc.grouping import factorize, factorize_strings, lookup_strings
from engine.pmc.margin import compute_margin
from engine.pmc.positions.model import PositionBatch
from engine.pmc.resolve import resolve_positions
from engine.pmc.whatif import marginal_contributions
from tests.benchmarks.bench_margin import reference_margin
from tests.unit.engine.pmc.support import Inst, SetSpec, batch, build_set, stock

rng = np.random.default_rng(2024)


def _vec() -> list[float]:
    x = np.array([-5, -4, -3, -2, -1, 1, 2, 3, 4, 5], dtype=float)
    return list(np.round(rng.uniform(-50, 50) * x + rng.uniform(0, 8) * x * x, 2))


def _spec() -> SetSpec:
    s = SetSpec()
    for acct in ("C", "F"):
        s.ports.append(("P1", acct, 0.7))
        s.pgs += [
            ("G1", "P1", acct, 0.8, 0.08, 0.06),
            ("G2", "P1", acct, 0.6, 0.1, 0.1),
            ("G3", "", acct, 0.5, 0.12, 0.12),
            ("999", "", acct, float("nan"), 0.15, 0.15),
        ]
    s.cgs = [
        ("C1", "G1", "BK1"),
        ("C2", "G1", ""),
        ("C3", "G2", ""),
        ("C4", "G3", ""),
        ("C5", "G3", ""),
        ("C6", "999", ""),
        ("C7", "999", "BK2"),
    ]
    for acct in ("C", "F"):
        for j, (cg, pg) in enumerate(
            [("C1", "G1"), ("C2", "G1"), ("C3", "G2"), ("C4", "G3"), ("C5", "G3"), ("C6", "999")]
        ):
            for k in range(3):
                s.insts.append(
                    Inst(
                        f"S{j}",
                        cg,
                        pg,
                        _vec(),
                        acct=acct,
                        strike=100.0 + 10 * k,
                        price=float(rng.uniform(0.1, 9)),
                        min_charge=float(rng.choice([0.0, 37.5])),
                    )
                )
            s.insts.append(stock(f"S{j}", cg, pg, _vec(), acct=acct, price=50.0))
    return s


THEO = build_set(_spec())
SYMBOLS = [f"S{j}" for j in range(6)]


@st.composite
def positions(draw: st.DrawFn, max_size: int = 25) -> list[dict[str, object]]:
    n = draw(st.integers(0, max_size))
    rows = []
    for _ in range(n):
        kind = draw(st.sampled_from(["opt", "opt", "opt", "stock", "outside"]))
        row: dict[str, object] = {
            "account": draw(st.sampled_from(["A", "B"])),
            "account_type": draw(st.sampled_from(["C", "F"])),
            "quantity": float(draw(st.integers(-20, 20).filter(lambda q: q != 0))),
        }
        if kind == "opt":
            row.update(
                symbol=draw(st.sampled_from(SYMBOLS)),
                strike=draw(st.sampled_from([100.0, 110.0, 120.0])),
            )
        else:
            row.update(
                symbol=draw(st.sampled_from(SYMBOLS))
                if kind == "stock"
                else "ZZ" + draw(st.sampled_from(["1", "2", "3"])),
                security_type="S",
                put_call="",
                series_date="",
                strike=0.0,
                market_value=0.0 if kind == "stock" else draw(st.sampled_from([10.0, 99.5])),
                basket_id=draw(st.sampled_from(["", "", "BK1", "BK2"])),
            )
        rows.append(row)
    return rows


def _requirements(rows: list[dict[str, object]]) -> dict[tuple[str, str, str], float]:
    r = compute_margin(resolve_positions(batch(rows), THEO))
    return {
        (str(f), str(a), str(t)): float(v)
        for f, a, t, v in zip(
            r.account_firm, r.account_id, r.account_type, r.account_requirement, strict=True
        )
    }


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(positions())
def test_engine_equals_the_per_position_loop(rows: list[dict[str, object]]) -> None:
    got = _requirements(rows)
    ref = reference_margin(batch(rows), THEO)
    assert set(got) == set(ref)
    for k in got:
        assert got[k] == pytest.approx(ref[k], rel=1e-9, abs=1e-6)


@SETTINGS
@given(positions())
def test_requirement_at_least_minimum_and_risk(rows: list[dict[str, object]]) -> None:
    r = compute_margin(resolve_positions(batch(rows), THEO))
    assert (r.unit_requirement >= r.unit_minimum - 1e-9).all()
    assert (r.unit_requirement >= r.unit_risk - 1e-9).all()
    assert (r.account_requirement >= r.account_minimum - 1e-9).all()
    assert (r.unit_risk >= 0).all() and (r.unit_minimum >= 0).all()
    assert r.requirement == pytest.approx(float(r.unit_requirement.sum()))


@SETTINGS
@given(positions(), st.randoms(use_true_random=False))
def test_invariant_to_position_order(rows: list[dict[str, object]], random) -> None:  # type: ignore[no-untyped-def]
    shuffled = list(rows)
    random.shuffle(shuffled)
    a, b = _requirements(rows), _requirements(shuffled)
    assert set(a) == set(b)
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-12, abs=1e-9)


@SETTINGS
@given(positions(max_size=15), st.data())
def test_a_position_and_its_exact_opposite_cancel(rows: list[dict[str, object]], data) -> None:  # type: ignore[no-untyped-def]
    extra = data.draw(positions(max_size=3))
    opposite = [dict(r, quantity=-float(r["quantity"])) for r in extra]  # type: ignore[arg-type]
    alone = compute_margin(resolve_positions(batch(extra + opposite), THEO))
    assert np.abs(alone.cg_total).max(initial=0.0) == pytest.approx(0.0, abs=1e-9)
    assert alone.risk == pytest.approx(0.0, abs=1e-9)
    # added to any portfolio they change no P&L, so no risk (minimums add up, by design)
    base = compute_margin(resolve_positions(batch(rows), THEO))
    both = compute_margin(resolve_positions(batch(rows + extra + opposite), THEO))
    assert both.risk == pytest.approx(base.risk, rel=1e-9, abs=1e-6)
    assert both.nav == pytest.approx(base.nav, rel=1e-9, abs=1e-6)


@SETTINGS
@given(positions(max_size=12))
def test_marginal_contributions_match_recomputation(rows: list[dict[str, object]]) -> None:
    res = resolve_positions(batch(rows), THEO)
    r = compute_margin(res)
    contrib = marginal_contributions(r)
    kept = res.kept.tolist()
    for j, i in enumerate(kept):
        rest = [row for k, row in enumerate(rows) if k != i]
        without = compute_margin(resolve_positions(batch(rest), THEO)).requirement
        assert contrib[j] == pytest.approx(r.requirement - without, rel=1e-9, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet="abcXYZ019 -", max_size=14), min_size=1, max_size=40))
def test_factorize_strings_equals_np_unique(values: list[str]) -> None:
    arr = np.asarray(values, dtype=np.str_)
    uniq, codes = factorize_strings(arr)
    ref_u, ref_c = np.unique(arr, return_inverse=True)
    assert uniq.tolist() == ref_u.tolist()
    assert codes.tolist() == ref_c.reshape(-1).tolist()
    probe = np.asarray(values[::2] + ["nope"], dtype=np.str_)
    found = lookup_strings(uniq, probe)
    for value, idx in zip(probe.tolist(), found.tolist(), strict=True):
        assert (uniq[idx] == value) if idx >= 0 else value not in values


def test_factorize_strings_one_value_column() -> None:
    # a file's firm column: one value, padded wider than the value (the no-sort path)
    uniq, codes = factorize_strings(np.asarray(["00005"] * 4, dtype="<U9"))
    assert uniq.tolist() == ["00005"] and uniq.dtype == np.dtype("<U5")
    assert codes.tolist() == [0, 0, 0, 0] and codes.dtype == np.int64
    many, _ = factorize_strings(np.asarray(["00005", "00006"], dtype="<U9"))
    assert many.dtype == uniq.dtype


def test_factorize_strings_non_ascii_falls_back() -> None:
    uniq, codes = factorize_strings(np.asarray(["é", "a", "é"], dtype=np.str_))
    assert uniq.tolist() == ["a", "é"] and codes.tolist() == [1, 0, 1]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 50), max_size=40), st.booleans())
def test_factorize_ints(keys: list[int], dense: bool) -> None:
    arr = np.asarray(keys, dtype=np.int64)
    uniq, inv = factorize(arr, 51 if dense else 10**9)
    ref_u, ref_c = np.unique(arr, return_inverse=True)
    assert uniq.tolist() == ref_u.tolist() and inv.tolist() == ref_c.reshape(-1).tolist()


def test_large_random_portfolio_matches_reference() -> None:
    n = 3000
    g = np.random.default_rng(3)
    sym = g.choice(SYMBOLS, n)
    strike = g.choice([100.0, 110.0, 120.0], n)
    b = PositionBatch(
        line=np.arange(1, n + 1, dtype=np.int64),
        firm=g.choice(["5", "161"], n).astype(np.str_),
        account=g.choice(["A", "B", "C"], n).astype(np.str_),
        account_type=g.choice(["C", "F"], n).astype(np.str_),
        put_call=np.full(n, "C").astype(np.str_),
        symbol=sym.astype(np.str_),
        exercise_style=np.full(n, "").astype("<U1"),
        settlement_style=np.full(n, "").astype("<U1"),
        series_date=np.full(n, "2026-12-18").astype(np.str_),
        expiration_date=np.full(n, "").astype("<U1"),
        strike=strike,
        security_type=np.full(n, "O").astype(np.str_),
        market_value=np.zeros(n),
        quantity=g.integers(-30, 30, n).astype(np.float64),
        basket_id=np.full(n, "").astype("<U1"),
    )
    r = compute_margin(resolve_positions(b, THEO))
    ref = reference_margin(b, THEO)
    for f, a, t, v in zip(
        r.account_firm, r.account_id, r.account_type, r.account_requirement, strict=True
    ):
        assert math.isclose(float(v), ref[(str(f), str(a), str(t))], rel_tol=1e-9, abs_tol=1e-6)


def test_benchmark_smoke_size_runs_and_agrees(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.benchmarks import bench_margin

    assert bench_margin.main(["--smoke"]) == 0
    out = capsys.readouterr().out
    assert "## margin" in out and "## theo-generate" in out and "Same totals" in out
