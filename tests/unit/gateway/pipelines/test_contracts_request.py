"""``pmc.contracts`` over AMQP: the same filters, rules and sort as ``posgate theo contracts``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.errors import InputRejected
from gateway.amqp.dispatch import Request
from gateway.pipelines.requests import theo_handlers
from gateway.theo_store import TheoStore

ROOT = Path(__file__).resolve().parents[4]
THEO_DIR = ROOT / "config" / "samples" / "pmc" / "theo" / "2026-11-20"


@pytest.fixture
def handle(tmp_path: Path):  # type: ignore[no-untyped-def]
    shutil.copytree(THEO_DIR, tmp_path / "2026-11-20")
    return theo_handlers(TheoStore(tmp_path))["pmc.contracts"]


def ask(handle, body: object):  # type: ignore[no-untyped-def]
    request = Request("pmc.contracts", "00005", json.dumps(body).encode(), None, "m1", "c1")
    return handle(request).body


def test_contracts_of_a_class_group(handle) -> None:  # type: ignore[no-untyped-def]
    doc = ask(handle, {"account_type": "C", "class_group": "SPX", "put_call": "C"})
    assert doc["theo_date"] == "2026-11-20" and doc["account_type"] == "C"
    assert doc["count"] == len(doc["contracts"]) > 0 and doc["truncated"] is False
    assert {c["put_call"] for c in doc["contracts"]} == {"C"}
    assert {c["class_group"] for c in doc["contracts"]} == {"SPX"}
    strikes = [
        c["strike"]
        for c in ask(
            handle, {"account_type": "C", "symbol": "SPX", "sort": "strike", "descending": True}
        )["contracts"]
    ]
    assert strikes == sorted(strikes, reverse=True)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"account_type": "C"}, "MISSING_FILTER"),
        ({"account_type": "C", "product_group": "9"}, "MISSING_FILTER"),
        ({"account_type": "Z", "symbol": "SPX"}, "BAD_FILTER"),
        ({"account_type": "C", "symbol": "SPX", "strike": "high"}, "BAD_FILTER"),
        ({"account_type": "C", "symbol": "SPX", "colour": "red"}, "LAYOUT"),
        ({"account_type": "C", "symbol": "SPX", "theo_date": "2020-01-02"}, "NO_THEO_SET"),
        ([1, 2], "MALFORMED"),
    ],
)
def test_bad_requests_name_the_rule(handle, body: object, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputRejected) as info:
        ask(handle, body)
    assert info.value.reason == reason


def test_replies_match_the_published_schema(handle) -> None:  # type: ignore[no-untyped-def]
    from tests.support import contract

    for body in (
        {"account_type": "C", "underlying": "SPX"},
        {"account_type": "C", "symbol": "SPX", "sort": "strike", "descending": True},
    ):
        contract.validate("pmc.contracts.request", body)
        contract.validate("pmc.contracts.reply", {"schema_version": 1, **ask(handle, body)})
