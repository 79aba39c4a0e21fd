"""Pricing models against textbook values (Hull, *Options, Futures, and Other Derivatives*)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.pmc.pricing import (
    american_prices,
    black_scholes,
    crr_binomial,
    group_rows,
    intrinsic,
    norm_cdf,
)


def test_norm_cdf_matches_erfc_to_double_precision() -> None:
    xs = np.linspace(-9, 9, 3001)
    ref = np.array([0.5 * math.erfc(-x / math.sqrt(2)) for x in xs])
    assert np.max(np.abs(norm_cdf(xs) - ref)) < 1e-15
    np.testing.assert_allclose(norm_cdf(xs) + norm_cdf(-xs), 1.0, rtol=0, atol=1e-15)


def test_black_scholes_hull_example() -> None:
    # S0=42, K=40, r=10 %, sigma=20 %, T=0.5: c = 4.76, p = 0.81
    call, put = black_scholes(42, 40, 0.5, 0.10, 0.0, 0.20, [True, False])
    assert round(call, 2) == 4.76
    assert round(put, 2) == 0.81


def test_black_scholes_with_dividend_yield() -> None:
    # Hull: index option S0=930, K=900, r=8 %, q=3 %, sigma=20 %, T=2/12 -> c = 51.83
    (call,) = black_scholes(930, 900, 2 / 12, 0.08, 0.03, 0.20, True)
    assert round(call, 2) == 51.83


def test_black_76_for_options_on_futures() -> None:
    # Hull: European put on a future F0=20, K=20, r=9 %, sigma=25 %, T=4/12 -> 1.12
    (put,) = black_scholes(20, 20, 4 / 12, 0.09, 0.09, 0.25, False)
    assert round(put, 2) == 1.12


@pytest.mark.parametrize(
    ("steps", "value"),
    [(5, 4.49), (30, 4.263), (50, 4.272), (100, 4.278), (500, 4.283)],
)
def test_crr_american_put_hull_table(steps: int, value: float) -> None:
    # S0=50, K=50, r=10 %, sigma=40 %, T=5 months (Hull's American put tree and its table)
    (got,) = crr_binomial(50, 50, 5 / 12, 0.10, 0.0, 0.40, False, True, steps=steps)
    assert round(got, 3 if steps > 5 else 2) == value


def test_crr_one_step_by_hand() -> None:
    s, k, t, r, sigma = 100.0, 100.0, 1.0, 0.05, 0.2
    u = math.exp(sigma)
    d = 1 / u
    p = (math.exp(r) - d) / (u - d)
    expected = math.exp(-r) * p * (s * u - k)
    (got,) = crr_binomial(s, k, t, r, 0.0, sigma, True, False, steps=1)
    assert got == pytest.approx(expected, rel=1e-14)


@settings(max_examples=40, deadline=None)
@given(
    s=st.floats(20, 200),
    k=st.floats(20, 200),
    t=st.floats(0.01, 3),
    r=st.floats(0, 0.1),
    q=st.floats(0, 0.06),
    sigma=st.floats(0.05, 1.0),
)
def test_put_call_parity(s: float, k: float, t: float, r: float, q: float, sigma: float) -> None:
    call, put = black_scholes(s, k, t, r, q, sigma, [True, False])
    assert call - put == pytest.approx(s * math.exp(-q * t) - k * math.exp(-r * t), abs=1e-9 * s)
    c_tree, p_tree = crr_binomial(s, k, t, r, q, sigma, [True, False], False, steps=50)
    parity = s * math.exp(-q * t) - k * math.exp(-r * t)
    assert c_tree - p_tree == pytest.approx(parity, abs=1e-8 * s)


def test_binomial_converges_to_black_scholes_for_european() -> None:
    rng = np.random.default_rng(5)
    n = 200
    s = rng.uniform(50, 150, n)
    k = rng.uniform(50, 150, n)
    t = rng.uniform(0.05, 2, n)
    r = rng.uniform(0, 0.08, n)
    q = rng.uniform(0, 0.04, n)
    sigma = rng.uniform(0.1, 0.6, n)
    call = rng.random(n) < 0.5
    bs = black_scholes(s, k, t, r, q, sigma, call)
    errors = []
    for steps in (25, 100, 400):
        tree = crr_binomial(s, k, t, r, q, sigma, call, False, steps=steps)
        errors.append(np.max(np.abs(tree - bs)))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.05


def test_american_at_least_european_and_intrinsic() -> None:
    rng = np.random.default_rng(9)
    n = 300
    s = rng.uniform(50, 150, n)
    k = rng.uniform(50, 150, n)
    t = rng.uniform(0.01, 2, n)
    call = rng.random(n) < 0.5
    am = american_prices(s, k, t, 0.05, 0.02, 0.3, call)
    eu = black_scholes(s, k, t, 0.05, 0.02, 0.3, call)
    assert (am >= eu - 1e-9).all()
    assert (am >= intrinsic(s, k, call) - 1e-12).all()


def test_american_call_without_dividends_is_european() -> None:
    am = american_prices([90.0, 100.0, 110.0], 100.0, 0.5, 0.05, 0.0, 0.25, True)
    np.testing.assert_allclose(
        am, black_scholes([90.0, 100.0, 110.0], 100, 0.5, 0.05, 0, 0.25, True)
    )


def test_grouped_lattice_matches_a_fine_crr_tree() -> None:
    rng = np.random.default_rng(1)
    n = 150
    s = rng.uniform(50, 150, n)
    k = rng.uniform(50, 150, n)
    t = rng.uniform(0.02, 2, n)
    r = rng.uniform(0, 0.08, n)
    q = rng.uniform(0, 0.05, n)
    sigma = rng.uniform(0.1, 0.8, n)
    call = rng.random(n) < 0.5
    ref = crr_binomial(s, k, t, r, q, sigma, call, True, steps=1200)
    got = american_prices(s, k, t, r, q, sigma, call, steps=100)
    diff = np.abs(got - ref)
    assert np.median(diff) < 0.005
    assert diff.max() < 0.06  # sub-cent typical, a few cents on deep, long, volatile puts


def test_scenario_matrix_equals_flat_pricing() -> None:
    spots = np.array([[100.0, 90.0, 110.0], [50.0, 45.0, 55.0]])
    k = np.array([100.0, 55.0])
    matrix = american_prices(spots, k, [0.5, 0.25], 0.05, 0.02, [0.3, 0.4], [False, True])
    flat = american_prices(
        spots.reshape(-1),
        np.repeat(k, 3),
        np.repeat([0.5, 0.25], 3),
        0.05,
        0.02,
        np.repeat([0.3, 0.4], 3),
        np.repeat([False, True], 3),
    )
    assert matrix.shape == (2, 3)
    np.testing.assert_allclose(matrix.reshape(-1), flat, atol=0.02)


def test_expired_contracts_are_worth_their_intrinsic_value() -> None:
    np.testing.assert_allclose(black_scholes([90, 110], 100, 0.0, 0.05, 0, 0.3, True), [0, 10])
    np.testing.assert_allclose(american_prices([90, 110], 100, 0.0, 0.05, 0, 0.3, False), [10, 0])
    np.testing.assert_allclose(
        crr_binomial([90, 110], 100, 0.0, 0.05, 0, 0.3, False, True), [10, 0]
    )


def test_group_rows() -> None:
    inv, count = group_rows([np.array([1.0, 2.0, 1.0, 2.0]), np.array([0.0, 0.0, 0.0, 5.0])])
    assert count == 3
    assert inv[0] == inv[2] and len({int(inv[0]), int(inv[1]), int(inv[3])}) == 3
