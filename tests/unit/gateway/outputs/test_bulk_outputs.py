"""``results.csv`` and the JSON document written in bulk equal, byte for byte, the row-by-row
renderings through ``csv`` (``results_rows``) and ``json.dumps`` (``report_document``), on the
samples and on synthetic files with every level."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.pmc.positions.model import PositionFile
from engine.pmc.positions.read import parse_position_file
from engine.pmc.report import margin_for_file
from gateway.outputs.margin.data import (
    RESULT_COLUMNS,
    _csv,
    report_document,
    results_csv,
    results_rows,
)
from gateway.outputs.margin.detail_json import report_json_bytes
from gateway.theo_store import load_theo_set
from tests.benchmarks.bench_margin import synthetic_positions, synthetic_set

ROOT = Path(__file__).resolve().parents[4]
SAMPLES = ROOT / "config" / "samples" / "pmc"


def row_by_row(report) -> bytes:  # type: ignore[no-untyped-def]
    return _csv(RESULT_COLUMNS, results_rows(report))


@pytest.mark.parametrize("name", ["positions.csv", "positions.txt"])
def test_samples(name: str) -> None:
    theo = load_theo_set(SAMPLES / "theo" / "2026-11-20")
    report = margin_for_file(parse_position_file((SAMPLES / name).read_bytes()), theo)
    assert results_csv(report) == row_by_row(report)
    assert report_json_bytes(report) == (json.dumps(report_document(report)) + "\n").encode()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_synthetic_files_with_odd_values(seed: int) -> None:
    theo = synthetic_set(60, per_group=4, seed=seed)
    batch = synthetic_positions(theo, 3_000, n_accounts=7, seed=seed)
    rng = np.random.default_rng(seed)
    # accounts that need quoting, amounts on half cents, negative zeros, huge quantities
    account = batch.account.astype("<U20")
    account[rng.random(len(batch)) < 0.1] = 'A,"Q"'
    quantity = batch.quantity.copy()
    quantity[:5] = [1e9, -1e9, 3.0, -7.0, 12.0]
    market = batch.market_value.copy()
    market[market > 0] = np.round(market[market > 0], 3) + 0.005
    fields = {name: getattr(batch, name) for name in batch.__dataclass_fields__}
    fields.update(account=account, quantity=quantity, market_value=market)
    positions = type(batch)(**fields)
    report = margin_for_file(PositionFile("csv", None, None, positions, [], len(positions)), theo)
    fast = results_csv(report)
    assert fast == row_by_row(report)
    assert b'"A,""Q"""' in fast
    document = report_json_bytes(report)
    assert document == (json.dumps(report_document(report)) + "\n").encode()
    from gateway.outputs.margin import detail_csv, detail_json

    detail_json.CHUNK_POSITIONS, saved = 200, detail_json.CHUNK_POSITIONS
    detail_csv.PLAN_ROWS, saved_rows = 300, detail_csv.PLAN_ROWS
    try:  # accounts written a few at a time: the same bytes
        assert report_json_bytes(report) == document
        assert results_csv(report) == fast
    finally:
        detail_json.CHUNK_POSITIONS = saved
        detail_csv.PLAN_ROWS = saved_rows
    assert b'"A,\\"Q\\""' in document


def test_result_rows_a_block_at_a_time_are_the_rows() -> None:
    from gateway.outputs.margin.detail_csv import iter_result_rows

    theo = synthetic_set(40, per_group=4, seed=5)
    batch = synthetic_positions(theo, 2_500, n_accounts=5, seed=5)
    report = margin_for_file(PositionFile("csv", None, None, batch, [], len(batch)), theo)
    assert list(iter_result_rows(report, first_block=100)) == list(results_rows(report))
    from gateway.outputs.margin import detail_csv

    detail_csv.PLAN_ROWS, saved = 700, detail_csv.PLAN_ROWS
    try:  # the accounts' rows ordered a group of accounts at a time
        assert list(iter_result_rows(report, first_block=100)) == list(results_rows(report))
    finally:
        detail_csv.PLAN_ROWS = saved


def test_amounts_are_pythons_texts() -> None:
    from gateway.outputs.margin import bulk

    rng = np.random.default_rng(3)
    edges = [0.0, -0.0, 0.005, -0.005, 9.995, 99.995, 999.99, 1000.0, -1000.0, 12345678.9]
    edges += [-1e12, 9.99e12, 1e13, -1e13, float("nan"), float("inf"), 0.125, 1.005, 2.675]
    v = np.concatenate([rng.normal(0, 10.0 ** rng.integers(-3, 13, 20_000)), edges])

    def lines(mat: np.ndarray) -> list[str]:
        return bulk.join([mat, bulk.constant(b"\n", mat.shape[0])]).decode().split("\n")[:-1]

    assert lines(bulk.fixed2(v)) == [f"{x:.2f}" for x in v.tolist()]
    assert lines(bulk.fixed2(v, b", ")) == [f", {x:.2f}" for x in v.tolist()]
    exact = [json.dumps(round(x, 2)) for x in v.tolist()]
    assert lines(bulk.shortest2(v, numpy_round=False)) == exact
    rounded = [json.dumps(float(x)) for x in np.round(v, 2).tolist()]
    assert lines(bulk.shortest2(v, numpy_round=True, prefix=b":")) == [":" + t for t in rounded]
