"""``parse_json`` (orjson first) reads every body as the standard library does: the same values
of the same types, and the same MALFORMED messages."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import InputRejected
from gateway.amqp.dispatch import Delivery, Dispatcher, Reply, Request, parse_json
from gateway.amqp.outbox import MemoryProcessedStore


def reference(body: bytes) -> tuple[str, Any]:
    """What the standard library makes of the body (the reading before orjson)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return "error", f"body is not UTF-8 (byte {exc.start})"
    try:
        return "ok", json.loads(text)
    except json.JSONDecodeError as exc:
        return "error", f"body is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    except RecursionError:
        return "error", "body is not JSON: nested too deeply"


def ours(body: bytes) -> tuple[str, Any]:
    try:
        return "ok", parse_json(body)
    except InputRejected as exc:
        assert exc.reason == "MALFORMED"
        return "error", exc.message


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types (-0.0 is not 0.0, NaN is NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def check(body: bytes) -> None:
    (kind_a, a), (kind_b, b) = ours(body), reference(body)
    assert kind_a == kind_b, (body, a, b)
    assert same(a, b), (body, a, b)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)
HOSTILE = [
    b"",
    b" ",
    b"\xef\xbb\xbf{}",
    b"\xff",
    b"\xed\xa0\x80",
    b'"\\ud800"',
    b'{"a":1,"a":2}',
    b"[1,]",
    b"01",
    b"NaN",
    b"-Infinity",
    b"1e400",
    b"-1e400",
    b"1.0e-400",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"123456789012345678901234567890.5",
    b"0.1000000000000000055511151231257827",
    b"[2.2250738585072011e-308, 2.2250738585072012e-308, 4.9406564584124654e-324]",
    b"[2.4703282292062328e-324, 1.7976931348623157e308, 1.7976931348623159e308]",
    b"[9007199254740993, 123456789012345678, -0.0, -0, 9.999999999999999e22, 1e23]",
    b"[" * 3000 + b"]" * 3000,
    b'{"a":1}\x0c',
    b'"\x01"',
    b"\t[1]\r\n",
    b'{"positions": [{"quantity": 99999999999999999999}]}',
]


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_bodies_read_as_the_standard_library_reads_them(body: bytes) -> None:
    check(body)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, st.booleans(), st.integers(0, 40), st.binary(max_size=2))
def test_any_json_and_its_damaged_copies_read_alike(
    value: Any, ascii_only: bool, cut: int, junk: bytes
) -> None:
    body = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8")
    check(body)
    check(body[:cut] + junk + body[cut:])


def test_the_handler_reads_the_json_the_dispatcher_parsed_once() -> None:
    seen: list[Any] = []

    def handler(request: Request) -> Reply:
        seen.append(request.json())
        return Reply({"n": len(request.json_object())})

    dispatcher = Dispatcher(
        {"t": handler}, lambda: {"u": "00001"}, MemoryProcessedStore(), max_backoff_s=1.0
    )
    outcome = dispatcher.dispatch(
        Delivery("request.t", b'{"a": 1, "b": [2.5]}', user_id="u", content_type="application/json")
    )
    assert outcome.reply is not None and json.loads(outcome.reply.body)["n"] == 2
    assert seen == [{"a": 1, "b": [2.5]}]
    # outside the dispatcher (no parsed body) the request still reads its own body
    assert Request("t", "00001", b"[1]", None, None, None).json() == [1]
