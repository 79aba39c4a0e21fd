"""The AMQP contract as tests see it: every reply a test client reads, and every JSON request that
was answered ``ok``, is validated against ``contracts/schemas/`` (see ``contracts/asyncapi.yaml``).

``check_exchange`` is called by the test clients for each reply, so every broker test of the suite
checks the contract as a side effect; a message that does not match fails the test that read it.
With ``POSGATE_CONTRACT_LOG`` set, each exchange is also appended there as a JSON line.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import pika
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
SCHEMAS = CONTRACTS / "schemas"


@functools.cache
def registry() -> Registry:
    resources = []
    for path in sorted(SCHEMAS.glob("*.json")):
        schema = json.loads(path.read_text())
        resources.append((schema["$id"], Resource.from_contents(schema)))
    return Registry().with_resources(resources)


@functools.cache
def validator(name: str) -> Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry())


def schema_names() -> list[str]:
    return sorted(p.stem for p in SCHEMAS.glob("*.json"))


def validate(name: str, document: Any) -> None:
    """Raise AssertionError naming every problem of ``document`` against schema ``name``."""
    errors = sorted(validator(name).iter_errors(document), key=lambda e: list(e.path))
    if errors:
        problems = "; ".join(
            f"{'/'.join(map(str, e.path)) or '(root)'}: {e.message}" for e in errors
        )
        raise AssertionError(f"{name}: {problems} in {json.dumps(document)[:500]}")


def reply_schema(request_type: str | None, document: Any, typed: bool = True) -> str:
    if isinstance(document, dict) and "error" in document:
        return "error.reply"
    if typed and request_type and (SCHEMAS / f"{request_type}.reply.json").exists():
        return f"{request_type}.reply"
    return "reply"


def check_exchange(
    sent: tuple[str, bytes, str | None] | None,
    properties: pika.BasicProperties,
    body: bytes,
    *,
    typed: bool = True,
) -> None:
    """Validate one reply (and its request, when answered ``ok``); ``typed`` = by their type's
    schemas, else only the envelope every reply shares."""
    request_type = sent[0] if sent else None
    document = json.loads(body)
    outcome = (properties.headers or {}).get("posgate-outcome")
    _log(request_type, sent, outcome, document)
    validate(reply_schema(request_type, document, typed), document)
    if properties.type is not None and request_type and not properties.type.endswith(".reply"):
        raise AssertionError(f"reply type property {properties.type!r} is not <type>.reply")
    if not typed or sent is None or outcome != "ok" or sent[2] != "application/json":
        return
    if (SCHEMAS / f"{request_type}.request.json").exists():
        validate(f"{request_type}.request", json.loads(sent[1]))


def _log(
    request_type: str | None,
    sent: tuple[str, bytes, str | None] | None,
    outcome: object,
    document: Any,
) -> None:
    target = os.environ.get("POSGATE_CONTRACT_LOG")
    if not target:
        return
    request: Any = None
    if sent is not None and sent[2] == "application/json":
        try:
            request = json.loads(sent[1])
        except ValueError:
            request = "<not json>"
    with open(target, "a") as out:
        out.write(
            json.dumps(
                {"type": request_type, "outcome": outcome, "request": request, "reply": document},
                default=str,
            )
            + "\n"
        )
