"""The small-portfolio path (``engine.pmc.small``) gives the vectorised engine's documents to the
byte: every account with its units, class groups and contracts, the firms, the totals and each
what-if position's contribution, on random portfolios over a set with portfolio groups, product
groups that stand alone, class groups with an empty offset, baskets and stocks not in the set."""

from __future__ import annotations

import json

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.pmc.margin import compute_margin
from engine.pmc.positions.model import PositionFile
from engine.pmc.report import margin_for_file
from engine.pmc.resolve import resolve_positions
from engine.pmc.small import SMALL_LIMIT, small_margin
from engine.pmc.whatif import whatif, whatif_document
from gateway.outputs.margin.data import report_document
from tests.unit.engine.pmc.support import batch
from tests.unit.engine.pmc.test_margin_properties import THEO, positions

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def portfolios(draw: st.DrawFn, max_size: int = 30) -> list[dict[str, object]]:
    """Positions of two firms (the strategy of the margin property tests, with firms)."""
    rows = draw(positions(max_size=max_size))
    return [{**r, "firm": draw(st.sampled_from(["5", "17", "00005"]))} for r in rows]


def _same(a: object, b: object) -> None:
    """Equal values, and equal JSON text: the same keys in the same order, the same floats."""
    assert a == b
    assert json.dumps(a) == json.dumps(b)


@SETTINGS
@given(portfolios())
def test_accounts_and_firms_equal_the_vectorised_report(rows: list[dict[str, object]]) -> None:
    res = resolve_positions(batch(rows), THEO)
    small = small_margin(res)
    vector = compute_margin(res)
    parsed = PositionFile("csv", None, None, batch(rows), [], len(rows))
    doc = report_document(margin_for_file(parsed, THEO))
    _same(small.accounts, doc["accounts"])
    _same(small.firms, doc["firms"])
    assert small.requirement == vector.requirement
    assert small.nav == vector.nav
    assert small.minimum == vector.minimum
    assert small.risk == vector.risk


@SETTINGS
@given(portfolios(), st.integers(0, 30), st.booleans())
def test_whatif_document_equals_the_vectorised_whatif(
    rows: list[dict[str, object]], cut: int, with_base: bool
) -> None:
    everything = batch(rows)
    cut = min(cut, len(rows))
    if with_base:
        base = everything.take(np.arange(cut))
        mine = everything.take(np.arange(cut, len(rows)))
    else:
        base, mine = None, everything
    assert len(rows) <= SMALL_LIMIT  # the small path is the one under test
    _same(whatif_document(mine, THEO, base), whatif(mine, THEO, base).as_dict())


def test_large_portfolios_take_the_vectorised_path() -> None:
    rows = [
        {"account": "A", "symbol": f"S{i % 6}", "strike": 100.0, "quantity": float(i % 5 + 1)}
        for i in range(SMALL_LIMIT + 1)
    ]
    b = batch(rows)
    _same(whatif_document(b, THEO), whatif(b, THEO).as_dict())


@st.composite
def key_columns(draw: st.DrawFn) -> tuple[np.ndarray, ...]:
    """Key parts of records: values of the set's instruments, and values it does not have."""
    rows = draw(st.lists(st.integers(0, THEO.size - 1), max_size=40))
    cols: list[list[object]] = [[], [], [], [], [], []]
    sources = (
        THEO.account_type,
        THEO.symbol,
        THEO.security_type,
        THEO.put_call,
        THEO.series_date,
        THEO.strike,
    )
    strangers = (
        ["M", "X"],
        ["NOPE", ""],
        ["X", ""],
        ["Q"],
        ["2031-01-17", "", "12/18/2026"],
        [0.5],
    )
    for r in rows:
        for c, (source, odd) in enumerate(zip(sources, strangers, strict=True)):
            value = source[r].item()
            cols[c].append(draw(st.sampled_from(odd)) if draw(st.integers(0, 9)) == 0 else value)
    return tuple(
        np.asarray(col, dtype=np.float64 if c == 5 else np.str_)
        if col
        else np.zeros(0, dtype=np.float64 if c == 5 else "<U1")
        for c, col in enumerate(cols)
    )


@settings(max_examples=200, deadline=None)
@given(key_columns())
def test_few_records_are_encoded_as_the_vectorised_keys(cols: tuple[np.ndarray, ...]) -> None:
    assert THEO.encode_few_keys(*cols).tolist() == THEO.encode_keys(*cols).tolist()
