"""The bulk check of plain CSV detail records gives exactly what the line-by-line check gives:
the same records, values, problems (reasons, lines, fields, messages) and counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.pmc.positions import read
from engine.pmc.positions.model import _BATCH_FIELDS, PositionFile
from engine.pmc.positions.read import parse_position_file

ROOT = Path(__file__).resolve().parents[5]


def line_by_line(data: bytes, monkeypatch: pytest.MonkeyPatch, **kw: object) -> PositionFile:
    with monkeypatch.context() as m:
        m.setattr(read, "_plain_csv", lambda data, allow_zero: None)
        return parse_position_file(data, **kw)  # type: ignore[arg-type]


def assert_same(a: PositionFile, b: PositionFile) -> None:
    assert (a.format, a.header, a.trailer, a.records) == (b.format, b.header, b.trailer, b.records)
    assert a.problems == b.problems
    for name in _BATCH_FIELDS:
        x, y = getattr(a.positions, name), getattr(b.positions, name)
        # compare row by row: a failing assertion over 5,000 values makes pytest's diff quadratic
        assert len(x) == len(y), name
        pairs = enumerate(zip(x.tolist(), y.tolist(), strict=True))
        bad = next((i for i, (u, v) in pairs if u != v), None)
        assert bad is None, f"{name}[{bad}]: {x[bad]!r} != {y[bad]!r}"


def test_sample_and_corpus_files(monkeypatch: pytest.MonkeyPatch) -> None:
    files = [ROOT / "config" / "samples" / "pmc" / "positions.csv"]
    files += sorted((ROOT / "tests" / "data").rglob("*.csv"))
    checked = 0
    for path in files:
        data = path.read_bytes()
        try:
            slow = line_by_line(data, monkeypatch, default_firm="5")
        except Exception:  # not a position file: the fast path must fail the same way
            with pytest.raises(Exception):  # noqa: B017
                parse_position_file(data, default_firm="5")
            continue
        assert_same(parse_position_file(data, default_firm="5"), slow)
        checked += 1
    assert checked >= 1


FIELD_CHOICES = {
    2: ["5", "00005", "161", "", "123456", "5a", " 5"],
    3: ["ACCT1", "acct.2", "A B", "", "X" * 21, 'Q"'],
    4: ["C", "P", "", "c", "X"],
    5: ["SPX", "K12", "spx", "", "A.B", "-X", "SPX^"],
    7: ["", "A", "E", "a", "Z"],
    8: ["", "O", "C", "Q"],
    9: ["20261218", "", "00000000", "20260230", "20240229", "1261218", "261218", "2026-12-18"],
    10: ["", "20261218", "00000000", "20261301"],
    11: ["6000", "6000.0000", "0", "", ".5", "5.", "1e3", "-5", "1.2.3"],
    12: ["L", "S", "l", "X", ""],
    13: ["O", "S", "F", "I", "W", "X", "Q", ""],
    14: ["", "0.00", "12.5", "abc", "0"],
    15: ["10", "0", "007", "", "1.0", "1000000000", "-3"],
    16: ["C", "F", "M", "c", "Z", ""],
    17: ["", "10101", "00000", "b1", "AB-1"],
}


def random_line(rng: np.random.Generator) -> str:
    fields = ["346", "", "5", "ACCT1", "C", "SPX", "", "", "", "20261218", "", "6000", "L"]
    fields += ["O", "", "10", "C", ""]
    for k, choices in FIELD_CHOICES.items():
        if rng.random() < 0.25:
            fields[k] = str(rng.choice(choices))
    if rng.random() < 0.1:
        fields = fields[:17]
    if rng.random() < 0.05:
        fields = fields[:12]
    return ",".join(f'"{f}"' if '"' in f else f for f in fields)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_random_files(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lines = [random_line(rng) for _ in range(int(rng.integers(1, 40)))]
    if rng.random() < 0.5:
        lines.insert(0, "346,H,5,20261120")
    if rng.random() < 0.5:
        lines.insert(int(rng.integers(0, len(lines) + 1)), "346,T,5,10,0")
    if rng.random() < 0.2:
        lines.insert(int(rng.integers(0, len(lines) + 1)), "346,H,5,20261120")
    if rng.random() < 0.2:
        lines.insert(int(rng.integers(0, len(lines) + 1)), "   ")
    end = "\r\n" if rng.random() < 0.2 else "\n"
    data = (end.join(lines) + (end if rng.random() < 0.7 else "")).encode()
    allow_zero = bool(rng.random() < 0.3)
    mp = pytest.MonkeyPatch()
    try:
        slow = line_by_line(data, mp, default_firm="7", allow_zero=allow_zero)
    finally:
        mp.undo()
    assert_same(parse_position_file(data, default_firm="7", allow_zero=allow_zero), slow)


def test_a_large_synthetic_file(monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.pmc.positions.write import render_position_file
    from tests.benchmarks.bench_margin import synthetic_positions, synthetic_set

    theo = synthetic_set(50, per_group=5)
    batch = synthetic_positions(theo, 5_000, n_accounts=30)
    data = render_position_file(batch, fmt="csv", firm="5", date="2026-11-20")
    fast = parse_position_file(data)
    assert len(fast.positions) == 5_000
    assert_same(fast, line_by_line(data, monkeypatch))
