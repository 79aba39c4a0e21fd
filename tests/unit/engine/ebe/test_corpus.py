"""Every rule and reason code of instructions, outcomes and queries, over tests/data/ebe/."""

from __future__ import annotations

import json

import pytest

from engine.ebe.positions import FILES, ExpiringSetInvalid, parse_expiring_set
from tests.unit.engine.ebe.corpus import DATA, run_case

CASES = sorted(p for p in (DATA / "cases").iterdir() if p.is_dir())
INVALID = sorted(p for p in (DATA / "invalid").iterdir() if p.is_dir())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_answers_exactly_as_expected(case):
    expected = json.loads((case / "expected.json").read_text())
    assert run_case(case) == expected


@pytest.mark.parametrize("case", INVALID, ids=[c.name for c in INVALID])
def test_invalid_set_is_refused_with_every_problem(case):
    files = {name: (case / name).read_bytes() for name in FILES}
    with pytest.raises(ExpiringSetInvalid) as caught:
        parse_expiring_set(files)
    wanted = (case / "expected_problems.txt").read_text().splitlines()
    for text in wanted:
        assert any(text in p for p in caught.value.problems), (text, caught.value.problems)


def _by_symbol(doc):
    return {(r["account"], r["symbol"], r["put_call"], r["strike"]): r for r in doc["rows"]}


def test_one_cent_in_the_money_call_is_auto_exercised_exactly():
    rows = _by_symbol(run_case(DATA / "cases" / "001_no_instructions"))
    row = rows[("ACC1", "XYZ", "C", "45.66")]
    assert (row["itm_amount"], row["moneyness"], row["auto_exercise_qty"]) == ("0.01", "ITM", 10)
    assert rows[("ACC1", "XYZ", "P", "45.67")]["moneyness"] == "ATM"
    assert rows[("ACC2", "XYZ", "C", "45.665")]["auto_exercise_qty"] == 0  # 0.005 < 0.01
    assert rows[("ACC3", "HLT", "C", "10.00")]["auto_exercise_qty"] == 0  # removed underlying
    assert rows[("ACC1", "XYZ1", "C", "33.3333")]["dollar_extension"] == "3701.01"


def test_every_reason_code_is_in_the_corpus():
    seen = set()
    for case in CASES:
        for line in json.loads((case / "expected.json").read_text())["instructions"]:
            seen.update(line["reasons"])
    assert seen == {
        "LAYOUT",
        "MISSING_FIELD",
        "UNKNOWN_POSITION",
        "QTY_EXCEEDS_LONG",
        "AFTER_CUTOFF",
        "NO_POSITIONS_LOADED",
    }


def test_a_firm_never_sees_another_firms_rows():
    for case in CASES:
        doc = json.loads((case / "expected.json").read_text())
        firm = json.loads((case / "case.json").read_text())["firm"]
        assert {r["firm"] for r in doc["rows"]} <= {firm}
