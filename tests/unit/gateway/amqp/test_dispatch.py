"""The AMQP dispatcher without a broker: identity, redelivery, errors, replies."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import InputRejected
from gateway.amqp.dispatch import (
    Action,
    Delivery,
    Dispatcher,
    Reply,
    Request,
    StoredReply,
    request_key,
)
from gateway.amqp.outbox import MemoryProcessedStore
from gateway.amqp.reply_to import reply_queue_owner, reply_to_allowed
from gateway.errors import TransientError

USERS = {"amqp-a": "00005", "amqp-b": "00390"}


class Recorder:
    """A handler that records what it saw and echoes the firm."""

    def __init__(self) -> None:
        self.calls: list[Request] = []
        self.lock = threading.Lock()

    def __call__(self, request: Request) -> Reply:
        with self.lock:
            self.calls.append(request)
        doc = request.json_object()
        return Reply({"firm": request.firm, "echo": doc})


def make(
    handlers: Mapping[str, Any] | None = None,
    identities: Mapping[str, str] | None = None,
    store: MemoryProcessedStore | None = None,
    max_backoff_s: float = 4.0,
) -> tuple[Dispatcher, Recorder, MemoryProcessedStore]:
    recorder = Recorder()
    store = store if store is not None else MemoryProcessedStore()
    ids = dict(USERS if identities is None else identities)
    dispatcher = Dispatcher(
        handlers if handlers is not None else {"margin.whatif": recorder},
        lambda: ids,
        store,
        max_backoff_s=max_backoff_s,
    )
    return dispatcher, recorder, store


def delivery(body: bytes = b'{"positions": []}', **kw: Any) -> Delivery:
    values: dict[str, Any] = {
        "routing_key": "request.margin.whatif",
        "user_id": "amqp-a",
        "content_type": "application/json",
        "message_id": "m-1",
        "correlation_id": "c-1",
        "reply_to": "reply.amqp-a",
    }
    values.update(kw)
    return Delivery(body=body, **values)


def reply_doc(outcome: Any) -> dict[str, Any]:
    assert outcome.reply is not None
    return json.loads(outcome.reply.body)


def test_firm_comes_from_the_mapped_user_and_the_reply_is_versioned_json() -> None:
    dispatcher, recorder, _ = make()
    outcome = dispatcher.dispatch(delivery(b'{"x": 1}'))
    assert outcome.action is Action.REPLY_ACK
    assert outcome.outcome == "ok" and outcome.type_label == "margin.whatif"
    assert reply_doc(outcome) == {"schema_version": 1, "firm": "00005", "echo": {"x": 1}}
    assert outcome.reply is not None and outcome.reply.content_type == "application/json"
    (request,) = recorder.calls
    assert (request.type, request.firm, request.message_id, request.correlation_id) == (
        "margin.whatif",
        "00005",
        "m-1",
        "c-1",
    )
    other = dispatcher.dispatch(delivery(b'{"x": 1}', user_id="amqp-b", reply_to="reply.amqp-b.x"))
    assert reply_doc(other)["firm"] == "00390"


@pytest.mark.parametrize("user_id", [None, "", "stranger"])
def test_missing_or_unmapped_user_is_dead_lettered_without_calling_the_handler(
    user_id: str | None,
) -> None:
    dispatcher, recorder, store = make()
    outcome = dispatcher.dispatch(delivery(user_id=user_id))
    assert outcome.action is Action.REJECT and outcome.outcome == "unauthorized"
    assert outcome.reply is None
    assert recorder.calls == [] and len(store) == 0


@pytest.mark.parametrize(
    "reply_to, allowed",
    [
        ("reply.amqp-a", True),
        ("reply.amqp-a.whatif.1", True),
        ("amq.rabbitmq.reply-to.g1h2AA", True),
        ("reply.amqp-b", False),  # another firm's queue
        ("reply.amqp-ab", False),
        ("posgate.requests", False),
        ("reply.amqp-a-evil", False),
        ("amq.rabbitmq.reply-toX", False),  # not a direct reply-to address
    ],
)
def test_replies_only_go_to_the_senders_own_queues(reply_to: str, allowed: bool) -> None:
    dispatcher, recorder, _ = make()
    outcome = dispatcher.dispatch(delivery(reply_to=reply_to))
    if allowed:
        assert outcome.action is Action.REPLY_ACK and len(recorder.calls) == 1
    else:
        assert outcome.action is Action.REJECT and outcome.outcome == "bad_reply_to"
        assert recorder.calls == [] and outcome.reply is None


@pytest.mark.parametrize(
    "sender, reply_to, allowed",
    [
        ("amqp-00005", "reply.amqp-00005", True),
        ("amqp-00005", "reply.amqp-00005.x", True),
        ("amqp-00005", "reply.amqp-00005.b", False),  # the exact reply queue of amqp-00005.b
        ("amqp-00005", "reply.amqp-00005.b.x", False),
        ("amqp-00005.b", "reply.amqp-00005.b", True),
        ("amqp-00005.b", "reply.amqp-00005.b.x", True),
        ("amqp-00005.b", "reply.amqp-00005", False),
        ("amqp-00005.b", "reply.amqp-00005.c", False),
    ],
)
def test_a_user_name_that_extends_another_cannot_be_reached_through_the_shorter_one(
    sender: str, reply_to: str, allowed: bool
) -> None:
    dispatcher, recorder, _ = make(identities={"amqp-00005": "00005", "amqp-00005.b": "00390"})
    outcome = dispatcher.dispatch(delivery(user_id=sender, reply_to=reply_to))
    assert (outcome.action is Action.REPLY_ACK) is allowed
    assert len(recorder.calls) == (1 if allowed else 0)
    if not allowed:
        assert outcome.outcome == "bad_reply_to"


def owner_by_scanning(reply_to: str, users: set[str]) -> str | None:
    """The rule of ``reply_queue_owner`` as a pass over every user (the reading it replaces)."""
    owner: str | None = None
    for user in users:
        own = f"reply.{user}"
        if (reply_to == own or reply_to.startswith(own + ".")) and (
            owner is None or len(user) > len(owner)
        ):
            owner = user
    return owner


NAMES = st.text(alphabet="ab.-", max_size=5)


@settings(max_examples=300, deadline=None)
@given(st.sets(NAMES, max_size=6), NAMES, st.sampled_from(["reply.", "reply", "x.", ""]), NAMES)
def test_the_owner_of_a_reply_queue_is_the_longest_matching_user(
    users: set[str], sender: str, prefix: str, tail: str
) -> None:
    reply_to = prefix + tail
    assert reply_queue_owner(reply_to, users) == owner_by_scanning(reply_to, users)
    assert reply_queue_owner(reply_to, list(users)) == owner_by_scanning(reply_to, users)
    mapping = dict.fromkeys(users, "00001")
    expected = owner_by_scanning(reply_to, {sender, *users}) == sender
    assert reply_to_allowed(sender, reply_to, mapping) is expected


def test_identities_are_read_per_message() -> None:
    mapping = {"amqp-a": "00005"}
    recorder = Recorder()
    dispatcher = Dispatcher(
        {"margin.whatif": recorder}, lambda: mapping, MemoryProcessedStore(), max_backoff_s=1
    )
    assert dispatcher.dispatch(delivery(message_id="1")).action is Action.REPLY_ACK
    mapping.pop("amqp-a")  # what a SIGHUP reload that drops the user does
    assert dispatcher.dispatch(delivery(message_id="2")).action is Action.REJECT
    assert len(recorder.calls) == 1


def test_redelivery_with_the_same_message_id_is_answered_from_the_record() -> None:
    dispatcher, recorder, store = make()
    first = dispatcher.dispatch(delivery(b'{"n": 1}'))
    again = dispatcher.dispatch(delivery(b'{"n": 1}', correlation_id="c-2"))
    assert len(recorder.calls) == 1
    assert again.action is Action.REPLY_ACK and again.outcome == "duplicate"
    assert again.reply is not None and first.reply is not None
    assert again.reply.body == first.reply.body
    assert again.key == first.key and len(store) == 1


def test_without_message_id_the_body_hash_recognises_the_redelivery() -> None:
    dispatcher, recorder, _ = make()
    dispatcher.dispatch(delivery(b'{"n": 1}', message_id=None))
    dispatcher.dispatch(delivery(b'{"n": 1}', message_id=None))
    dispatcher.dispatch(delivery(b'{"n": 2}', message_id=None))
    assert [json.loads(c.body)["n"] for c in recorder.calls] == [1, 2]


def test_keys_are_per_firm_so_two_firms_never_share_an_answer() -> None:
    dispatcher, recorder, _ = make()
    a = dispatcher.dispatch(delivery(message_id="same"))
    b = dispatcher.dispatch(delivery(message_id="same", user_id="amqp-b", reply_to="reply.amqp-b"))
    assert len(recorder.calls) == 2
    assert reply_doc(a)["firm"] == "00005" and reply_doc(b)["firm"] == "00390"
    assert request_key("00005", "t", "same", b"") != request_key("00390", "t", "same", b"")


def test_a_deliberate_resend_gets_the_same_answer_again() -> None:
    dispatcher, recorder, _ = make()
    first = dispatcher.dispatch(delivery())
    again = dispatcher.dispatch(delivery(correlation_id="c-resend"))
    assert again.action is Action.REPLY_ACK and again.reply == first.reply
    assert len(recorder.calls) == 1


def test_record_survives_a_new_dispatcher_like_a_restart() -> None:
    store = MemoryProcessedStore()
    first, rec1, _ = make(store=store)
    first.dispatch(delivery())
    second, rec2, _ = make(store=store)
    outcome = second.dispatch(delivery())
    assert outcome.outcome == "duplicate" and rec2.calls == [] and len(rec1.calls) == 1


def test_input_rejected_becomes_an_error_reply_and_is_recorded() -> None:
    def refuse(request: Request) -> Reply:
        raise InputRejected("LAYOUT", "qty='-3' (position 2)")

    dispatcher, _, store = make({"margin.whatif": refuse})
    outcome = dispatcher.dispatch(delivery())
    assert outcome.action is Action.REPLY_ACK and outcome.outcome == "rejected"
    assert reply_doc(outcome) == {
        "schema_version": 1,
        "error": {"reason": "LAYOUT", "message": "qty='-3' (position 2)"},
    }
    assert len(store) == 1


@pytest.mark.parametrize(
    "body, fragment",
    [
        (b"{not json", "not JSON"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "JSON"),
        (b"", "not JSON"),
    ],
)
def test_malformed_json_body_is_answered_malformed_and_the_handler_never_runs(
    body: bytes, fragment: str
) -> None:
    dispatcher, recorder, _ = make()
    outcome = dispatcher.dispatch(delivery(body))
    assert outcome.action is Action.REPLY_ACK and outcome.outcome == "malformed"
    error = reply_doc(outcome)["error"]
    assert error["reason"] == "MALFORMED" and fragment in error["message"]
    assert recorder.calls == []


def test_handler_asking_for_json_rejects_a_non_object_body_as_malformed() -> None:
    dispatcher, recorder, _ = make()
    outcome = dispatcher.dispatch(delivery(b"[1, 2]"))
    assert reply_doc(outcome)["error"]["reason"] == "MALFORMED"
    assert "not an object" in reply_doc(outcome)["error"]["message"]
    assert len(recorder.calls) == 1


def test_unknown_type_is_answered_unknown_type() -> None:
    dispatcher, recorder, _ = make()
    outcome = dispatcher.dispatch(delivery(routing_key="request.margin.whatnot"))
    assert outcome.outcome == "unknown_type" and outcome.type_label == "unknown"
    assert reply_doc(outcome)["error"]["reason"] == "UNKNOWN_TYPE"
    assert "'margin.whatnot'" in reply_doc(outcome)["error"]["message"]
    assert recorder.calls == []


def test_type_property_must_agree_with_the_routing_key() -> None:
    dispatcher, recorder, _ = make()
    outcome = dispatcher.dispatch(delivery(type="dpl.submission"))
    assert reply_doc(outcome)["error"]["reason"] == "MALFORMED"
    assert recorder.calls == []
    ok = dispatcher.dispatch(delivery(type="margin.whatif", message_id="m-2"))
    assert ok.outcome == "ok"


def test_type_from_the_property_when_not_routed_by_request_key() -> None:
    dispatcher, recorder, _ = make()
    outcome = dispatcher.dispatch(delivery(routing_key="posgate.requests", type="margin.whatif"))
    assert outcome.outcome == "ok" and len(recorder.calls) == 1
    none = dispatcher.dispatch(delivery(routing_key="posgate.requests", message_id="m-9"))
    assert reply_doc(none)["error"]["reason"] == "UNKNOWN_TYPE"


def test_transient_error_requeues_with_capped_exponential_backoff() -> None:
    def flaky(request: Request) -> Reply:
        raise TransientError("ledger busy")

    dispatcher, _, store = make({"margin.whatif": flaky}, max_backoff_s=1.5)
    delays = []
    for count in range(5):
        outcome = dispatcher.dispatch(delivery(delivery_count=count))
        assert outcome.action is Action.RETRY and outcome.reply is None
        delays.append(outcome.retry_after_s)
    assert delays == [0.25, 0.5, 1.0, 1.5, 1.5]
    assert len(store) == 0  # nothing recorded: the retry runs the handler again


def test_a_bug_in_a_handler_answers_internal_error_and_dead_letters() -> None:
    def broken(request: Request) -> Reply:
        raise KeyError("oops")

    dispatcher, _, store = make({"margin.whatif": broken})
    outcome = dispatcher.dispatch(delivery())
    assert outcome.action is Action.REPLY_REJECT and outcome.outcome == "error"
    error = reply_doc(outcome)["error"]
    assert error["reason"] == "INTERNAL_ERROR" and "oops" not in error["message"]
    assert len(store) == 0


def test_handler_returning_something_else_than_a_reply_is_a_bug() -> None:
    dispatcher, _, _ = make({"margin.whatif": lambda r: {"not": "a Reply"}})
    assert dispatcher.dispatch(delivery()).outcome == "error"


def test_bytes_reply_keeps_its_content_type() -> None:
    dispatcher, _, _ = make({"margin.whatif": lambda r: Reply(b"a,b\n1,2\n", "text/csv")})
    outcome = dispatcher.dispatch(delivery())
    assert outcome.reply == StoredReply("ok", b"a,b\n1,2\n", "text/csv")


def test_stored_reply_round_trips_binary_bodies() -> None:
    reply = StoredReply("ok", b"\x00\n\xff{}\n", None)
    assert StoredReply.decode(reply.encode()) == reply


def test_record_write_failure_retries_instead_of_risking_a_second_run() -> None:
    class FullDisk(MemoryProcessedStore):
        def put(self, key: str, reply_bytes: bytes) -> None:
            raise TransientError("database or disk is full")

    dispatcher, recorder, _ = make(store=FullDisk())
    outcome = dispatcher.dispatch(delivery())
    assert outcome.action is Action.RETRY and outcome.reply is None


def test_a_copy_arriving_while_the_first_runs_waits_and_is_not_run_twice() -> None:
    started = threading.Event()
    release = threading.Event()
    calls: list[str] = []

    def slow(request: Request) -> Reply:
        calls.append(request.correlation_id or "")
        started.set()
        release.wait(5)
        return Reply({"done": True})

    dispatcher, _, _ = make({"margin.whatif": slow})
    results: dict[str, Any] = {}

    def run(name: str, corr: str) -> None:
        results[name] = dispatcher.dispatch(delivery(correlation_id=corr))

    first = threading.Thread(target=run, args=("first", "c-1"))
    first.start()
    assert started.wait(5)
    second = threading.Thread(target=run, args=("second", "c-2"))
    second.start()
    time.sleep(0.1)
    assert second.is_alive()  # waiting for the first copy
    release.set()
    first.join(5)
    second.join(5)
    assert calls == ["c-1"]
    assert results["first"].outcome == "ok" and results["second"].outcome == "duplicate"
