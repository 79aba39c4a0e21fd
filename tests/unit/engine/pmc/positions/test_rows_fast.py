"""The fast path of JSON rows (``positions_from_rows``) gives exactly what the general field
checks give: the same accepted rows and values, the same rejections and warnings with the same
reasons and messages, on plain rows and on hostile ones."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.pmc.positions import rows as rows_module
from engine.pmc.positions.model import _BATCH_FIELDS
from engine.pmc.positions.rows import positions_from_rows

PLAIN = {
    "firm": ["00123", "5", "12345", "123456", "0"],
    "account": ["ACC1", "", " A ", "x" * 21],
    "put_call": ["", "C", "P"],
    "symbol": ["SPX", "AAPL", "BRK.B", "spy", "^VIX", "-X"],
    "exercise_style": ["", "A", "E"],
    "settlement_style": ["", "O", "C"],
    "series_date": ["", "20261218", "2026-12-18", "12/18/2026", "1261218", "261218", "0"],
    "expiration_date": ["", "2026-12-18", "20270115"],
    "strike": ["6000", "0", "", "5.5", ".5", "+3", 6000, 0, 90.5, 0.0],
    "security_type": ["O", "S", "I", "F", "W", "X"],
    "market_value": ["", "12.5", "0", "abc"],
    "account_type": ["C", "F", "M"],
    "basket_id": ["", "B1", "000"],
    "quantity": [1, -3, 2, 0, 999_999_999, -1_000_000_000],
}
FIELDS = tuple(PLAIN)  # every key of a JSON row

HOSTILE_TEXT = st.sampled_from(
    [
        "o",
        " O",
        "O ",
        "c",
        "\u017f",  # long s: upper() is "S"
        "\u0131",  # dotless i: upper() is "I"
        "\uff2f",  # fullwidth O
        "\u0661\u0662",  # Arabic-Indic digits: isdigit() and float() accept them
        "\uff11\uff12",  # fullwidth digits
        "\u00b2",  # superscript two: isdigit() but not a decimal
        "2026-02-30",
        "20261318",
        "2026121",
        "-5",
        "1e3",
        "inf",
        "nan",
        "1" * 400,
        "6000\n",
        "\n6000",
        "\x00",
        "SPX\u00e9",
        "A B",
        "9" * 21,
        "",
        " ",
    ]
)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1e7),
    HOSTILE_TEXT,
    st.text(max_size=12),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)


OPTION = {
    "firm": "00123",
    "account": "ACC1",
    "account_type": "C",
    "symbol": "SPX",
    "security_type": "O",
    "exercise_style": "E",
    "series_date": "20261218",
    "put_call": "P",
    "strike": "6000",
    "quantity": -3,
}
TEMPLATES = [
    OPTION,
    {**OPTION, "security_type": "W", "put_call": "C", "strike": 12.5, "settlement_style": "C"},
    {**OPTION, "security_type": "F", "put_call": "", "strike": None, "expiration_date": ""},
    {"firm": "5", "account_type": "M", "symbol": "AAPL", "security_type": "S", "quantity": 7},
    {**OPTION, "security_type": "X", "put_call": "", "strike": "0", "market_value": ""},
    {**OPTION, "security_type": "S", "put_call": None, "strike": 0, "market_value": "101.25"},
]


@st.composite
def a_row(draw: st.DrawFn) -> dict[str, object]:
    """A valid row, a few of its fields changed to other plain values (some of them wrong),
    hostile values or left out."""
    row = dict(draw(st.sampled_from(TEMPLATES)))
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
        how = draw(st.integers(0, 2))
        if how == 0:
            row[name] = draw(st.sampled_from(PLAIN[name]))
        elif how == 1:
            row[name] = draw(VALUES)
        else:
            row.pop(name, None)
    return row


def assert_same(rows: list[dict[str, object]], allow_zero: bool) -> None:
    fast_batch, fast_problems = positions_from_rows(rows, allow_zero=allow_zero)
    slow_batch, slow_problems = positions_from_rows(rows, allow_zero=allow_zero, fast=False)
    assert fast_problems == slow_problems
    for name in _BATCH_FIELDS:
        x, y = getattr(fast_batch, name), getattr(slow_batch, name)
        assert x.dtype == y.dtype, name
        assert x.tobytes() == y.tobytes(), (name, x.tolist(), y.tolist())  # -0.0 too


@settings(max_examples=400, deadline=None)
@given(st.lists(a_row(), min_size=1, max_size=6), st.booleans())
def test_fast_rows_equal_the_general_checks(
    rows: list[dict[str, object]], allow_zero: bool
) -> None:
    assert_same(rows, allow_zero)


def test_plain_rows_take_the_fast_path_and_hostile_ones_do_not() -> None:
    plain = {**OPTION, "put_call": "C"}
    stock = {**plain, "symbol": "AAPL", "security_type": "S", "put_call": "", "strike": "0"}
    assert rows_module._fast_row(plain, 1, False) is not None
    assert rows_module._fast_row(stock, 2, False) is not None
    for hostile in (
        {"security_type": "\u017f"},  # the general checks read it as S
        {"firm": "\u0661\u0662"},
        {"strike": 1e-13},
        {"quantity": 2.0},
        {"quantity": True},
        {"series_date": "2026-02-30"},
        {"basket_id": "B1"},
    ):
        assert rows_module._fast_row({**plain, **hostile}, 1, False) is None, hostile
        assert_same([{**plain, **hostile}], False)
    # accepted by both: the general checks read Arabic-Indic digits as a number
    assert_same([plain, stock, {**plain, "strike": "\u0661\u0662"}], False)
    assert positions_from_rows([{**plain, "strike": "\u0661\u0662"}])[0].strike.tolist() == [12.0]
    assert_same([json.loads(json.dumps(plain))], False)
