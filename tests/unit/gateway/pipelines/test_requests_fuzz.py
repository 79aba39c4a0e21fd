"""AMQP request bodies from hypothesis: the daemon's handlers answer or refuse with a reason code
(InputRejected), and never fail any other way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import InputRejected
from gateway.amqp.dispatch import Reply, Request
from gateway.ledger import Ledger
from gateway.pipelines.requests import compute_handlers, dpl_report_handler
from gateway.theo_store import TheoStore

REPO = Path(__file__).resolve().parents[4]
WHATIF = compute_handlers(TheoStore(REPO / "config" / "samples" / "pmc" / "theo"))["margin.whatif"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
position = st.fixed_dictionaries(
    {},
    optional={
        "account": st.text(max_size=6),
        "account_type": st.sampled_from(["C", "F", "M", "X", ""]),
        "symbol": st.sampled_from(["SPX", "SPY", "AAPL", "ZZZ", ""]),
        "security_type": st.sampled_from(["O", "S", "F", "Q", ""]),
        "put_call": st.sampled_from(["C", "P", "", "X"]),
        "series_date": st.sampled_from(["20261218", "2026-12-18", "bad", ""]),
        "strike": st.one_of(st.integers(-1, 10000), st.text(max_size=5)),
        "exercise_style": st.sampled_from(["A", "E", ""]),
        "quantity": st.one_of(
            st.integers(-(10**9), 10**9), st.floats(), st.text(max_size=4), st.none()
        ),
        "market_value": scalars,
        "basket_id": st.text(max_size=4),
        "firm": st.text(max_size=6),
    },
)


def request(body: bytes, content_type: str = "application/json") -> Request:
    return Request(
        type="margin.whatif",
        firm="00005",
        body=body,
        content_type=content_type,
        message_id="m",
        correlation_id="c",
    )


def answer(handler: Any, req: Request) -> None:
    try:
        reply = handler(req)
    except InputRejected as exc:
        assert exc.reason and exc.reason.isupper()
        return
    assert isinstance(reply, Reply)
    json.dumps(reply.body, allow_nan=False)  # replies are strict JSON


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_whatif_any_json_value(value: Any) -> None:
    answer(WHATIF, request(json.dumps(value).encode()))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(position, max_size=6), st.one_of(st.none(), st.lists(position, max_size=3)))
def test_whatif_position_like_bodies(
    positions: list[dict[str, Any]], base: list[dict[str, Any]] | None
) -> None:
    body: dict[str, Any] = {"positions": positions}
    if base is not None:
        body["base"] = base
    answer(WHATIF, request(json.dumps(body).encode()))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_whatif_any_bytes_as_json_or_346(body: bytes) -> None:
    answer(WHATIF, request(body))
    answer(WHATIF, request(body, content_type="text/csv"))


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(json_values)
def test_report_any_json_value(tmp_path: Path, value: Any) -> None:
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    try:
        answer(
            dpl_report_handler(ledger),
            Request(
                type="dpl.report",
                firm="00005",
                body=json.dumps(value).encode(),
                content_type="application/json",
                message_id="m",
                correlation_id="c",
            ),
        )
    finally:
        ledger.close()
