"""Theo P&L sets: loading, indexes, located errors, fuzzing of the CSV loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import UnreadableInput
from engine.pmc.theo.model import FILES
from engine.pmc.theo.read import TheoSetInvalid, parse_theo_set
from tests.unit.engine.pmc.support import Inst, SetSpec, build_files, stock

SAMPLE = Path(__file__).resolve().parents[5] / "config" / "samples" / "pmc" / "theo" / "2026-11-20"
VEC = [-5.0, -4.0, -3.0, -2.0, -1.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def spec() -> SetSpec:
    return SetSpec(
        ports=[("USIDX", "C", 0.9)],
        pgs=[("9", "USIDX", "C", 0.9, 0.08, 0.06), ("999", "", "C", float("nan"), 0.15, 0.15)],
        cgs=[("SPX", "9", "10101"), ("AAPL", "999", "")],
        insts=[
            Inst("SPX", "SPX", "9", VEC, strike=6000.0, price=112.5),
            Inst("SPX", "SPX", "9", VEC, pc="P", strike=6000.0),
            Inst("SPXW", "SPX", "9", VEC, strike=6000.0),
            stock("AAPL", "AAPL", "999", VEC, price=228.0),
        ],
    )


def files() -> dict[str, bytes]:
    return build_files(spec())


def test_loads_arrays_and_indexes() -> None:
    theo = parse_theo_set(files(), name="2026-11-20")
    assert theo.activity_date == "2026-11-20" and theo.equity_product_group == "999"
    assert theo.size == 4 and theo.pnl.shape == (4, 10) and theo.pnl.dtype == np.float64
    assert theo.cg_ids.tolist() == ["SPX", "AAPL"]
    assert theo.basket_index == {"10101": 0}
    assert theo.pg_port.tolist() == [0, -1]
    assert np.isnan(theo.pg_offsets[1])
    rows = theo.lookup_columns(
        np.array(["C", "C", "C", "F", "C"]),
        np.array(["SPX", "SPX", "AAPL", "SPX", "SPX"]),
        np.array(["O", "O", "S", "O", "O"]),
        np.array(["P", "C", "", "C", "C"]),
        np.array(["2026-12-18", "2026-12-18", "", "2026-12-18", "2026-12-19"]),
        np.array([6000.0, 6000.0, 0.0, 6000.0, 6000.0]),
    )
    assert rows.tolist() == [1, 0, 3, -2, -2]
    np.testing.assert_allclose(theo.equity_moves("C"), np.array(VEC) * 0.03)  # 0.15 / 5


def test_ambiguous_key_is_decided_by_styles() -> None:
    s = spec()
    s.insts[0].ex, s.insts[0].st = "E", "O"
    s.insts.append(Inst("SPX", "SPX", "9", VEC, strike=6000.0, ex="E", st="C"))
    theo = parse_theo_set(build_files(s))
    rows = theo.lookup_columns(
        np.array(["C"]),
        np.array(["SPX"]),
        np.array(["O"]),
        np.array(["C"]),
        np.array(["2026-12-18"]),
        np.array([6000.0]),
    )
    assert rows.tolist() == [-1]
    key = ("C", "SPX", "O", "C", "2026-12-18", 60_000_000)
    assert theo.full_index[(key, "E", "O")] == 0 and theo.full_index[(key, "E", "C")] == 4


def test_sample_set_loads() -> None:
    theo = parse_theo_set({f: (SAMPLE / f).read_bytes() for f in FILES})
    assert theo.size > 0 and np.isfinite(theo.pnl).all()


def _with(name: str, old: str, new: str) -> dict[str, bytes]:
    f = files()
    text = f[name].decode()
    assert old in text, (old, text)
    f[name] = text.replace(old, new, 1).encode()
    return f


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda: _with("pnl.csv", ",6000,", ",six,"), "pnl.csv line 2 column strike: strike='six'"),
        (lambda: _with("pnl.csv", "C,9,SPX", "Q,9,SPX"), "pnl.csv line 2 column account_type"),
        (lambda: _with("pnl.csv", "9,SPX,SPX", "9,NOPE,SPX"), "class_group_id='NOPE' is not in"),
        (lambda: _with("pnl.csv", "-5,", "-5e999,"), "column pnl_m5"),
        (lambda: _with("pnl.csv", "theo_price", "price"), "pnl.csv line 1: missing column(s)"),
        (lambda: _with("meta.csv", "2026-11-20", "2026-13-01"), "activity_date='2026-13-01'"),
        (lambda: _with("product_groups.csv", "0.9,0.08", "1.5,0.08"), "offset_pct='1.5' is above"),
        (
            lambda: _with("product_groups.csv", "9,USIDX", "9,NOWHERE"),
            "portfolio_group_id='NOWHERE'",
        ),
        (lambda: _with("class_groups.csv", "AAPL,999", "AAPL,123"), "product_group_id='123'"),
        (lambda: _with("pnl.csv", ",O,,,2026-12-18", ",O,,,"), "series_date is required"),
        (
            lambda: _with("pnl.csv", ",6000,", ",,"),
            "line 2 column strike: strike must be a positive",
        ),
    ],
)
def test_errors_are_located(mutate, expected: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TheoSetInvalid) as info:
        parse_theo_set(mutate())
    assert any(expected in p for p in info.value.problems), info.value.problems
    assert info.value.reason == "THEO_INVALID"
    assert info.value.location.file is not None


def test_stock_and_future_rows_with_empty_strike_are_accepted() -> None:
    s = spec()
    s.insts.append(Inst("ES", "SPX", "9", VEC, type="F", pc="", strike=0.0, price=6010.0))
    f = build_files(s)
    text = f["pnl.csv"].decode()
    # the stock and the future row: strike written as 0 by the builder, blank in the file
    f["pnl.csv"] = (
        text.replace(",S,,,,,,0,", ",S,,,,,,,")
        .replace(",F,,,2026-12-18,2026-12-18,,0,", ",F,,,2026-12-18,2026-12-18,,,")
        .encode()
    )
    assert f["pnl.csv"].count(b",,,,,,,1,") == 1
    theo = parse_theo_set(f)
    assert theo.strike.tolist() == [6000.0, 6000.0, 6000.0, 0.0, 0.0]
    rows = theo.lookup_columns(
        np.array(["C", "C"]),
        np.array(["AAPL", "ES"]),
        np.array(["S", "F"]),
        np.array(["", ""]),
        np.array(["", "2026-12-18"]),
        np.array([0.0, 0.0]),
    )
    assert rows.tolist() == [3, 4]


def test_optional_exchange_column() -> None:
    assert parse_theo_set(files()).exchange.tolist() == ["", "", "", ""]
    f = files()
    lines = f["pnl.csv"].decode().splitlines()
    venues = ["exchange", "CBOE", "CBOE", "C2", "NYSE"]
    f["pnl.csv"] = "".join(f"{line},{v}\n" for line, v in zip(lines, venues, strict=True)).encode()
    assert parse_theo_set(f).exchange.tolist() == ["CBOE", "CBOE", "C2", "NYSE"]


def test_every_problem_is_listed() -> None:
    f = _with("pnl.csv", ",6000,", ",six,")
    f["pnl.csv"] = f["pnl.csv"].replace(b",228,", b",lots,")
    with pytest.raises(TheoSetInvalid) as info:
        parse_theo_set(f)
    assert len(info.value.problems) == 2
    assert "and 1 more problem" in str(info.value)


def test_missing_file_and_binary_content() -> None:
    f = files()
    del f["pnl.csv"]
    with pytest.raises(TheoSetInvalid, match="pnl.csv: file is missing"):
        parse_theo_set(f)
    f = files()
    f["class_groups.csv"] = b"\x00\x01\x02"
    with pytest.raises(UnreadableInput, match="binary"):
        parse_theo_set(f)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FILES), st.binary(max_size=200))
def test_random_bytes_in_any_file_give_typed_errors(name: str, data: bytes) -> None:
    f = files()
    f[name] = data
    try:
        parse_theo_set(f)
    except TheoSetInvalid as exc:
        assert exc.problems
    # a valid replacement (e.g. an empty-but-valid file) may also load: no other exception


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(FILES), st.data())
def test_mutated_valid_files_never_crash(name: str, data: st.DataObject) -> None:
    f = files()
    text = f[name].decode()
    i = data.draw(st.integers(0, len(text) - 1))
    junk = data.draw(st.text(alphabet=',\n"0123456789.-eE CPSOFIWnan', max_size=6))
    f[name] = (text[:i] + junk + text[i + data.draw(st.integers(0, 4)) :]).encode()
    try:
        theo = parse_theo_set(f)
    except TheoSetInvalid:
        return
    assert np.isfinite(theo.pnl).all()
