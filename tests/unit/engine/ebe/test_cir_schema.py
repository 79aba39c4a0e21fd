"""The contrary-intention file against its schema: the corpus' and generated files validate, and
the schema refuses what a FIXML 5.0 SP2 reader would (so it can fail)."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.ebe.answer import kept_from_verdicts
from engine.ebe.day import KeptInstruction, cutoff_instant
from engine.ebe.fixml import contrary_intention_file
from engine.ebe.instructions import judge, read_instruction_csv
from engine.ebe.positions import parse_expiring_set
from tests.support.cir import schema_errors, valid_reports
from tests.unit.engine.ebe.corpus import CUTOFF, DATA, DEFAULT_THRESHOLDS, load_set

HEADER = "account,symbol,put_call,strike,expiration_date,action,quantity\n"
RECEIVED = dt.datetime(2026, 12, 18, 16, 0, 0, 250000, tzinfo=dt.timezone(dt.timedelta(hours=-6)))


def cir_for(text: str, firm: str = "00123") -> bytes:
    positions = load_set(DATA / "sets" / "base")
    verdicts = judge(
        read_instruction_csv((HEADER + text).encode(), "i.csv"),
        firm=firm,
        received_at=RECEIVED,
        sets={"2026-12-18": positions}.get,
        cutoff=lambda day: cutoff_instant(day, CUTOFF),
    )
    kept = kept_from_verdicts(verdicts, RECEIVED, "i.csv")
    data, _ = contrary_intention_file(positions, kept, DEFAULT_THRESHOLDS)
    return data


def test_the_file_of_two_contrary_instructions_validates_with_the_fix_names() -> None:
    data = cir_for(
        "ACC1,XYZ,C,45.66,2026-12-18,DO_NOT_EXERCISE,4\nACC2,ABC,P,20,2026-12-18,EXERCISE,3\n"
    )
    reports = valid_reports(data)
    assert len(reports) == 2 and len(data.splitlines()) == 2
    first = reports[0]
    assert first.get("RptID") == "CIR-20261218-0000001"
    assert first.get("TxnTm") == "2026-12-18T22:00:00Z" and first.get("BizDt") == "2026-12-18"
    assert [child.tag.split("}")[1] for child in first] == ["Pty", "Pty", "Qty", "Qty", "Instrmt"]
    assert [(q.get("ExpTyp"), q.get("ExpQty")) for q in first.iter("{*}Qty")] == [
        ("4", "4"),
        ("3", "6"),
    ]


def test_a_day_without_contrary_instructions_is_an_empty_valid_file() -> None:
    assert cir_for("") == b""
    assert valid_reports(b"") == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (  # the element and attribute names some writers guess instead of the FIX ones
            (b'<Qty ExpTyp="4" ExpQty="4"/>', b'<ExpQty Typ="4" Qty="4"/>'),
            "ExpQty",
        ),
        ((b"<Instrmt", b"<Instrmt Bogus='1'"), "Bogus"),
        ((b'PutCall="1"', b'PutCall="C"'), "PutCall"),
        ((b'R="24"', b'R="99"'), "R"),
        ((b'BizDt="2026-12-18"', b'BizDt="20261218"'), "BizDt"),
        ((b' TxnTm="2026-12-18T22:00:00Z"', b' TxnTm="2026-12-18T16:00:00-06:00"'), "TxnTm"),
        ((b'StrkPx="45.66"', b'StrkPx="45,66"'), "StrkPx"),
        ((b'ExpQty="6"', b'ExpQty="-6"'), "ExpQty"),
        ((b' RptID="CIR-20261218-0000001"', b""), "RptID"),
    ],
)
def test_the_schema_refuses_what_a_fixml_reader_would(
    change: tuple[bytes, bytes], expected: str
) -> None:
    good = cir_for("ACC1,XYZ,C,45.66,2026-12-18,DO_NOT_EXERCISE,4\n")
    assert schema_errors(good) == []
    bad = good.replace(*change, 1)
    assert bad != good
    problems = schema_errors(bad)
    assert problems and expected in problems[0], problems


def test_the_schema_refuses_components_out_of_the_message_order() -> None:
    good = cir_for("ACC1,XYZ,C,45.66,2026-12-18,DO_NOT_EXERCISE,4\n").decode()
    start = good.index("<Instrmt")
    instrmt = good[start : good.index("/>", start) + 2]
    moved = good.replace(instrmt, "").replace('<Pty ID="00123"', instrmt + '<Pty ID="00123"')
    problems = schema_errors(moved.encode())
    assert problems and "Instrmt" in problems[0]


account = st.text(alphabet="AZaz09\"&<>'éß-", min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(
    accounts=st.lists(account, min_size=1, max_size=6, unique=True),
    quantities=st.lists(st.integers(0, 10), min_size=1, max_size=6),
    do_not=st.booleans(),
)
def test_any_set_of_accounts_and_instructions_gives_a_valid_file(
    accounts: list[str], quantities: list[int], do_not: bool
) -> None:
    """Account ids with quotes, ampersands, angle brackets and non-ASCII letters are escaped."""
    rows = [
        "firm,account,account_type,symbol,underlying,put_call,strike,expiration_date,"
        "multiplier,long_qty,short_qty"
    ]
    instructions = []
    for n, acct in enumerate(accounts):
        quoted = '"' + acct.replace('"', '""') + '"'
        rows.append(f"F&1,{quoted},C,S<{n}>,U,{'CP'[n % 2]},10.5,2026-12-18,100,10,0")
        qty = quantities[n % len(quantities)]
        action = "DO_NOT_EXERCISE" if do_not else "EXERCISE"
        instructions.append((n, action, qty))
    files = {
        "meta.csv": b"expiration_date,source\n2026-12-18,t\n",
        "expiring_positions.csv": ("\n".join(rows) + "\n").encode(),
        "closing_prices.csv": b"underlying,close,removed\nU,12,N\n",
    }
    positions = parse_expiring_set(files)
    keys = list(positions.index)  # row order
    kept = [
        KeptInstruction(keys[n], action, qty, RECEIVED, f"i.csv line {n + 2}")
        for n, action, qty in instructions
    ]
    data, count = contrary_intention_file(positions, kept, DEFAULT_THRESHOLDS)
    reports = valid_reports(data)
    assert len(reports) == count
    assert {r.find("{*}Pty[2]").get("ID") for r in reports} <= set(accounts)
