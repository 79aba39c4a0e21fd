"""The DPL corpus: every file of tests/data/dpl against its expected outcome, record by record.

Each ``NNN_name.fixml`` has a ``NNN_name.expected.json``: the submitting ``firm``, the instant it
was ``received_at`` and the ``cycle`` that implies, optional ``entitled_firms`` (default: the firm
itself), either ``unreadable.reason`` or the ``records`` with ``line``, ``status`` and ``reasons``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from engine.dpl.fixml import iter_records
from engine.dpl.records import REASON_CODES
from engine.dpl.validate import DplValidator
from engine.errors import UnreadableInput

from .support import CALENDAR, REFERENCE

CORPUS = Path(__file__).resolve().parents[3] / "data" / "dpl"
CASES = sorted(CORPUS.glob("*/*.fixml"))


def expected_of(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((path.parent / f"{path.stem}.expected.json").read_text())
    return data


def run(path: Path, expected: dict[str, Any]) -> list[dict[str, Any]]:
    received = dt.datetime.fromisoformat(expected["received_at"])
    cycle = CALENDAR.cycle_of(received)
    assert cycle.isoformat() == expected["cycle"]
    entitled = expected.get("entitled_firms", [expected["firm"]])
    validator = DplValidator(REFERENCE, cycle, CALENDAR, entitled)
    data = path.read_bytes()
    lines = data.split(b"\n")
    out = []
    for record in iter_records([data], name=path.name):
        physical = lines[record.line - 1].removesuffix(b"\r").removeprefix(b"\xef\xbb\xbf")
        first = record.raw.split(b"\n")[0].removesuffix(b"\r")
        assert first in physical, "the raw bytes start on the record's line"
        if path.parent.name == "valid" or b"<Batch" not in data:
            assert record.raw in data
        result = validator.validate(record)
        assert (result.status == "valid") == (result.reasons == ())
        out.append({"line": result.line, "status": result.status, "reasons": list(result.reasons)})
    return out


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_corpus_file(path: Path) -> None:
    expected = expected_of(path)
    unreadable = expected.get("unreadable")
    if unreadable:
        with pytest.raises(UnreadableInput) as caught:
            run(path, expected)
        assert caught.value.reason == unreadable["reason"]
        assert caught.value.location.file == path.name
        return
    got = run(path, expected)
    assert got == expected["records"]
    if path.parent.name == "valid":
        assert got and all(r["status"] == "valid" for r in got)
    else:
        assert any(r["status"] == "rejected" for r in got)


def test_the_corpus_covers_every_reason_and_every_unreadable_kind() -> None:
    reasons: set[str] = set()
    unreadable: set[str] = set()
    for path in CASES:
        expected = expected_of(path)
        if "unreadable" in expected:
            unreadable.add(expected["unreadable"]["reason"])
        for record in expected["records"]:
            reasons.update(record["reasons"])
    assert reasons == set(REASON_CODES)
    assert unreadable == {
        "EMPTY",
        "BINARY",
        "ENCODING",
        "NO_FIXML",
        "TRUNCATED_BATCH",
        "MALFORMED_BATCH",
    }
