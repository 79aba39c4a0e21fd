"""The AMQP contract files: valid JSON Schemas, an AsyncAPI 3 document that names them all."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from tests.support import contract


def test_every_schema_is_a_valid_2020_12_schema_with_its_own_id() -> None:
    names = contract.schema_names()
    assert {"error.reply", "reply", "margin.whatif.request", "margin.whatif.reply"} <= set(names)
    for name in names:
        schema = json.loads((contract.SCHEMAS / f"{name}.json").read_text())
        assert schema["$id"].endswith(f"/{name}.json"), name
        assert schema["description"], name
        contract.validator(name)  # check_schema + resolvable references


def test_the_asyncapi_document_refers_to_every_schema_and_only_existing_ones() -> None:
    doc = yaml.safe_load((contract.CONTRACTS / "asyncapi.yaml").read_text())
    assert doc["asyncapi"].startswith("3.")
    text = (contract.CONTRACTS / "asyncapi.yaml").read_text()
    referenced = set(re.findall(r"schemas/([a-z.]+)\.json", text))
    existing = set(contract.schema_names()) - {"common"}
    assert referenced == existing
    for channel in doc["channels"].values():
        for message in channel.get("messages", {}).values():
            name = message["$ref"].rsplit("/", 1)[1]
            assert name in doc["components"]["messages"], name
    assert {s["protocol"] for s in doc["servers"].values()} == {"amqp", "amqps"}


def test_the_schemas_refuse_what_the_contract_forbids() -> None:
    ok = {"positions": [{"account": "A", "symbol": "SPX", "security_type": "O", "quantity": 1}]}
    contract.validate("margin.whatif.request", ok)
    with pytest.raises(AssertionError, match="positions"):
        contract.validate("margin.whatif.request", {"positions": []})
    with pytest.raises(AssertionError):
        contract.validate("dpl.report.request", {})  # cycle is required
    with pytest.raises(AssertionError, match="firm"):
        contract.validate(
            "pmc.positions.reply",
            {
                "schema_version": 1,
                "status": "processed",
                "result": {"firm": "5", "counts": {}, "requirement": 1.0, "firms": {}},
            },
        )
    with pytest.raises(AssertionError):
        contract.validate("reply", {"schema_version": 1, "error": {"reason": "X", "message": "m"}})
    contract.validate(
        "error.reply", {"schema_version": 1, "error": {"reason": "X", "message": "m"}}
    )
    contract.validate("pmc.contracts.request", {"account_type": "C", "symbol": "SPX"})
    with pytest.raises(AssertionError):
        contract.validate("pmc.contracts.request", {"symbol": "SPX"})  # account type required
    with pytest.raises(AssertionError):
        contract.validate("pmc.contracts.request", {"account_type": "C"})  # and a class group...
