"""AmqpService against the real broker: identity, replies, errors, dead letters, events, stop."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
import pytest

from engine.errors import InputRejected
from gateway.amqp.outbox import Outbox, SqliteProcessedStore
from gateway.amqp.service import AmqpService, Reply, Request
from gateway.amqp.topology import DEAD_QUEUE, REQUESTS_QUEUE, compute_queue
from gateway.errors import TransientError
from tests.integration.amqp_fixtures import *  # noqa: F403  (fixtures rabbitmq, amqp_sandbox)
from tests.integration.amqp_fixtures import (
    FIRM_A,
    FIRM_B,
    AmqpSandbox,
    FirmClient,
    get_messages,
    queue_depth,
    wait_until,
)

pytestmark = pytest.mark.broker


class Calls:
    """What the test handlers saw, by correlation id."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[str, Request]] = []

    def add(self, kind: str, request: Request) -> None:
        with self.lock:
            self.seen.append((kind, request))

    def for_corr(self, correlation_id: str) -> list[str]:
        with self.lock:
            return [k for k, r in self.seen if r.correlation_id == correlation_id]


class RecordingMetrics:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self.up: list[bool] = []
        self.depths: list[int] = []

    def set_up(self, up: bool) -> None:
        self.up.append(up)

    def observe_request(self, type_label: str, outcome: str, seconds: float) -> None:
        assert seconds >= 0
        with self.lock:
            self.requests.append((type_label, outcome))

    def set_outbox_depth(self, depth: int) -> None:
        self.depths.append(depth)


def make_handlers(calls: Calls) -> dict[str, Any]:
    def whatif(request: Request) -> Reply:
        calls.add("whatif", request)
        body = request.json_object()
        if body.get("reject"):
            raise InputRejected("NOT_ENTITLED", f"firm {request.firm} may not see {body['reject']}")
        return Reply({"firm": request.firm, "echo": body})

    def poison(request: Request) -> Reply:
        calls.add("poison", request)
        raise TransientError("theo set not loaded yet")

    def broken(request: Request) -> Reply:
        calls.add("broken", request)
        raise ZeroDivisionError("bug")

    return {"margin.whatif": whatif, "ebe.query": poison, "pmc.positions": broken}


@pytest.fixture(scope="module")
def served(
    amqp_sandbox: AmqpSandbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AmqpService, Calls, RecordingMetrics, Outbox]]:
    calls = Calls()
    metrics = RecordingMetrics()
    db = tmp_path_factory.mktemp("amqp") / "ledger.db"
    outbox = Outbox(db)
    service = AmqpService(
        amqp_sandbox.settings(),
        amqp_sandbox.identities,
        make_handlers(calls),
        outbox,
        SqliteProcessedStore(db),
        metrics,
    )
    service.start()
    try:
        wait_until(service.is_up, 15, "service connected")
        yield service, calls, metrics, outbox
    finally:
        service.stop(10)


@pytest.fixture
def firm_a(amqp_sandbox: AmqpSandbox) -> Iterator[FirmClient]:
    client = FirmClient(amqp_sandbox, amqp_sandbox.firm_a)
    yield client
    client.close()


def test_round_trip_answers_each_firm_as_itself(served: Any, amqp_sandbox: AmqpSandbox) -> None:
    service, calls, _, _ = served
    assert service.queues == [
        REQUESTS_QUEUE,
        compute_queue("margin.whatif"),
        compute_queue("ebe.query"),
    ]
    a = FirmClient(amqp_sandbox, amqp_sandbox.firm_a)
    b = FirmClient(amqp_sandbox, amqp_sandbox.firm_b)
    try:
        corr_a = a.send("margin.whatif", b'{"positions": [1]}')
        corr_b = b.send("margin.whatif", b'{"positions": [2]}')
        ((props_a, body_a),) = a.replies(1)
        ((props_b, body_b),) = b.replies(1)
    finally:
        a.close()
        b.close()
    assert props_a.correlation_id == corr_a and props_b.correlation_id == corr_b
    assert json.loads(body_a) == {"schema_version": 1, "firm": FIRM_A, "echo": {"positions": [1]}}
    assert json.loads(body_b)["firm"] == FIRM_B
    assert props_a.content_type == "application/json"
    assert props_a.delivery_mode == 2
    assert props_a.user_id == amqp_sandbox.service_user  # broker-checked: it is from posgate
    assert props_a.headers == {"posgate-outcome": "ok"}
    assert calls.for_corr(corr_a) == ["whatif"]


def test_forged_user_id_is_refused_by_the_broker(
    served: Any, amqp_sandbox: AmqpSandbox, firm_a: FirmClient
) -> None:
    _, calls, _, _ = served
    forged = uuid.uuid4().hex
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        firm_a.send("margin.whatif", b"{}", correlation_id=forged, user_id=amqp_sandbox.firm_b)
    assert info.value.reply_code == 406
    assert "PRECONDITION_FAILED" in info.value.reply_text
    # The firm's honest request on a fresh channel still works, and the forged one was never seen.
    honest = FirmClient(amqp_sandbox, amqp_sandbox.firm_a, suffix="honest")
    try:
        corr = honest.send("margin.whatif", b"{}")
        ((props, body),) = honest.replies(1)
    finally:
        honest.close()
    assert props.correlation_id == corr and json.loads(body)["firm"] == FIRM_A
    assert calls.for_corr(forged) == []


def test_unmapped_user_and_missing_user_id_are_dead_lettered_unserved(
    served: Any, amqp_sandbox: AmqpSandbox, firm_a: FirmClient
) -> None:
    _, calls, metrics, _ = served
    stranger = FirmClient(amqp_sandbox, amqp_sandbox.stranger)
    try:
        corr_s = stranger.send("margin.whatif", b"{}", message_id="from-stranger")
        corr_n = firm_a.send("margin.whatif", b"{}", message_id="no-user-id", user_id=None)
        dead = get_messages(amqp_sandbox, DEAD_QUEUE, 2, timeout=10)
        assert stranger.replies(1, timeout=0.5) == []
        assert firm_a.replies(1, timeout=0.2) == []
    finally:
        stranger.close()
    by_id = {props.message_id: (method, props) for method, props, _ in dead}
    assert set(by_id) == {"from-stranger", "no-user-id"}
    method, props = by_id["from-stranger"]
    assert props.user_id == amqp_sandbox.stranger
    assert method.routing_key == "request.margin.whatif"
    assert props.headers["x-death"][0]["reason"] == "rejected"
    assert calls.for_corr(corr_s) == [] and calls.for_corr(corr_n) == []
    assert metrics.requests.count(("margin.whatif", "unauthorized")) >= 2


def test_replies_cannot_be_aimed_at_another_firms_queue(
    served: Any, amqp_sandbox: AmqpSandbox, firm_a: FirmClient
) -> None:
    _, calls, _, _ = served
    victim = FirmClient(amqp_sandbox, amqp_sandbox.firm_b)
    try:
        corr = firm_a.send("margin.whatif", b"{}", message_id="aimed", reply_to=victim.reply_queue)
        dead = get_messages(amqp_sandbox, DEAD_QUEUE, 1, timeout=10)
        assert victim.replies(1, timeout=0.5) == []
    finally:
        victim.close()
    assert [p.message_id for _, p, _ in dead] == ["aimed"]
    assert calls.for_corr(corr) == []


def test_malformed_unknown_and_rejected_requests_get_error_replies(
    served: Any, firm_a: FirmClient
) -> None:
    _, calls, _, _ = served
    sent = {
        firm_a.send("margin.whatif", b'{"positions": [1,'): "MALFORMED",
        firm_a.send("margin.whatif", b"\x89PNG\r\n\x1a\n\x00\x00"): "MALFORMED",
        firm_a.send("margin.whatif", b"[1, 2]"): "MALFORMED",
        firm_a.send("margin.whatif", b"{}", type_property="dpl.submission"): "MALFORMED",
        firm_a.send("margin.whatnot", b"{}"): "UNKNOWN_TYPE",
        firm_a.send("no.such.thing", b"{}"): "UNKNOWN_TYPE",
        firm_a.send("margin.whatif", b'{"reject": "00390"}'): "NOT_ENTITLED",
    }
    replies = firm_a.replies(len(sent))
    got = {p.correlation_id: json.loads(b) for p, b in replies}
    assert set(got) == set(sent)
    for corr, reason in sent.items():
        assert got[corr]["schema_version"] == 1
        assert got[corr]["error"]["reason"] == reason, got[corr]
        assert got[corr]["error"]["message"]
    handled = [corr for corr in sent if calls.for_corr(corr)]
    # Only the well-formed JSON requests reached the handler ([1, 2] and the entitlement one).
    assert sorted(sent[c] for c in handled) == ["MALFORMED", "NOT_ENTITLED"]


def test_the_same_message_id_is_served_once_and_answered_each_time(
    served: Any, firm_a: FirmClient
) -> None:
    _, calls, _, _ = served
    message_id = uuid.uuid4().hex
    first = firm_a.send("margin.whatif", b'{"n": 1}', message_id=message_id)
    second = firm_a.send("margin.whatif", b'{"n": 1}', message_id=message_id)
    replies = {p.correlation_id: b for p, b in firm_a.replies(2)}
    assert replies[first] == replies[second]
    assert len(calls.for_corr(first)) + len(calls.for_corr(second)) == 1


def test_poison_request_is_dead_lettered_after_the_delivery_limit(
    served: Any, amqp_sandbox: AmqpSandbox, firm_a: FirmClient
) -> None:
    service, calls, _, _ = served
    corr = firm_a.send("ebe.query", b"{}", message_id="poison-1")
    dead = [m for m in get_messages(amqp_sandbox, DEAD_QUEUE, 1, timeout=20)]
    assert [p.message_id for _, p, _ in dead] == ["poison-1"]
    attempts = len(calls.for_corr(corr))
    limit = service.settings.delivery_limit
    assert limit <= attempts <= limit + 1
    assert firm_a.replies(1, timeout=0.3) == []


def test_a_handler_bug_answers_internal_error_and_dead_letters(
    served: Any, amqp_sandbox: AmqpSandbox, firm_a: FirmClient
) -> None:
    _, calls, _, _ = served
    corr = firm_a.send("pmc.positions", b"{}", message_id="bug-1")
    ((props, body),) = firm_a.replies(1)
    assert props.correlation_id == corr
    assert json.loads(body)["error"]["reason"] == "INTERNAL_ERROR"
    dead = get_messages(amqp_sandbox, DEAD_QUEUE, 1, timeout=10)
    assert [p.message_id for _, p, _ in dead] == ["bug-1"]
    assert calls.for_corr(corr) == ["broken"]


def test_outbox_events_reach_queues_bound_to_the_events_exchange(
    served: Any, amqp_sandbox: AmqpSandbox
) -> None:
    _, _, metrics, outbox = served
    connection = amqp_sandbox.admin()
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, "posgate.events", "firm.00005.#")
    try:
        for n in range(3):
            outbox.emit("firm.00005.dpl.receipt", {"file": f"f{n}.fixml", "total": n})
        outbox.emit("firm.00390.dpl.receipt", {"file": "other"})
        got: list[tuple[Any, Any, bytes]] = []
        deadline = time.monotonic() + 10
        while len(got) < 3 and time.monotonic() < deadline:
            method, props, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                time.sleep(0.05)
            else:
                got.append((method, props, body))
    finally:
        connection.close()
    assert [json.loads(b)["file"] for _, _, b in got] == ["f0.fixml", "f1.fixml", "f2.fixml"]
    method, props, body = got[0]
    assert method.routing_key == "firm.00005.dpl.receipt"
    assert json.loads(body)["schema_version"] == 1
    assert props.delivery_mode == 2 and props.content_type == "application/json"
    assert props.user_id == amqp_sandbox.service_user and len(props.message_id) == 32
    wait_until(lambda: outbox.depth() == 0, 5, "outbox drained")


def test_a_firm_can_bind_only_to_its_own_events(amqp_sandbox: AmqpSandbox) -> None:
    amqp_sandbox.restrict_topics(amqp_sandbox.firm_b, FIRM_B)
    client = FirmClient(amqp_sandbox, amqp_sandbox.firm_b, durable=True, suffix="events")
    try:
        client.channel.queue_bind(client.reply_queue, "posgate.events", f"firm.{FIRM_B}.#")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            client.channel.queue_bind(client.reply_queue, "posgate.events", "firm.#")
        assert info.value.reply_code == 403
    finally:
        client.close()


def test_metrics_hook_sees_outcomes_and_up(served: Any, firm_a: FirmClient) -> None:
    service, _, metrics, _ = served
    with metrics.lock:
        metrics.requests.clear()
    firm_a.send("margin.whatif", b"{}")
    firm_a.send("margin.whatif", b"{oops")
    firm_a.send("no.such.type", b"{}")
    assert len(firm_a.replies(3)) == 3
    expected = [
        ("margin.whatif", "ok"),
        ("margin.whatif", "malformed"),
        ("unknown", "unknown_type"),
    ]
    wait_until(lambda: all(e in metrics.requests for e in expected), 5, "outcomes recorded")
    assert metrics.up and metrics.up[-1] is True and service.is_up() and service.healthy()


def test_stop_finishes_in_flight_requests_before_closing(
    amqp_sandbox: AmqpSandbox, tmp_path: Path
) -> None:
    started = threading.Event()

    def slow(request: Request) -> Reply:
        started.set()
        time.sleep(0.8)
        return Reply({"done": request.correlation_id})

    service = AmqpService(
        amqp_sandbox.settings(prefetch=4),
        amqp_sandbox.identities,
        {"dpl.report": slow},
        Outbox(tmp_path / "db"),
    )
    client = FirmClient(amqp_sandbox, amqp_sandbox.firm_a, suffix="stop")
    service.start()
    try:
        wait_until(service.is_up, 15, "service connected")
        sent = [client.send("dpl.report", b"{}") for _ in range(3)]
        assert started.wait(10)
        began = time.monotonic()
        service.stop(15)
        took = time.monotonic() - began
        assert service.stopped_cleanly is True and not service.is_up()
        assert took < 10
        # After stop nothing more is taken from the queue.
        late = client.send("dpl.report", b"{}")
        time.sleep(0.3)
        replies = {p.correlation_id for p, _ in client.replies(4, timeout=2)}
        in_queue = queue_depth(amqp_sandbox, compute_queue("dpl.report"))
    finally:
        service.stop(5)
        client.close()
    # The in-flight ones were answered before the connection closed; the prefetched but
    # unstarted ones went back to the queue (none lost), and the late one waits there.
    assert late not in replies
    assert len(replies) + in_queue == len(sent) + 1
    assert len(replies) >= 1


def _direct_reply_to_address(box: AmqpSandbox) -> str:
    """A real direct reply-to address, as the broker makes them (of a connection since closed)."""
    connection = box.admin()
    try:
        channel = connection.channel()
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.basic_consume("amq.rabbitmq.reply-to", lambda *_: None, auto_ack=True)
        channel.basic_publish(
            "", queue, b"x", pika.BasicProperties(reply_to="amq.rabbitmq.reply-to")
        )
        for _ in range(100):
            method, props, _ = channel.basic_get(queue, auto_ack=True)
            if method is not None:
                return str(props.reply_to)
            time.sleep(0.05)
    finally:
        connection.close()
    raise AssertionError("no message came back to learn a direct reply-to address")


def test_forged_direct_reply_to_costs_only_its_own_request(
    served: Any, amqp_sandbox: AmqpSandbox, firm_a: FirmClient
) -> None:
    service, calls, _, _ = served
    real = _direct_reply_to_address(amqp_sandbox)
    pid, _, key = real.removeprefix("amq.rabbitmq.reply-to.").partition(".")
    # Addresses the broker cannot route: a channel id that never existed, bytes that are no pid.
    raw = bytearray(base64.b64decode(pid))
    raw[-12:-8] = b"\x00\x0f\xff\xff"
    forged = [
        real,  # its channel is gone
        f"amq.rabbitmq.reply-to.{base64.b64encode(bytes(raw)).decode()}.{key}",
        "amq.rabbitmq.reply-to.YWJj.def",
        "amq.rabbitmq.reply-to.g1h2AA.x",
        f"amq.rabbitmq.reply-to.{pid[:-4]}.{key}",
    ]
    generation = service._consumer.generation
    other = FirmClient(amqp_sandbox, amqp_sandbox.firm_b, suffix="bystander")
    try:
        sent_b: list[str] = []
        forged_ids = []
        forged_corrs = []
        for i in range(20):
            if i < len(forged):
                forged_ids.append(f"forged-{uuid.uuid4().hex}")
                forged_corrs.append(
                    firm_a.send(
                        "margin.whatif", b"{}", message_id=forged_ids[-1], reply_to=forged[i]
                    )
                )
            sent_b.append(other.send("margin.whatif", json.dumps({"i": i}).encode()))
        replies = other.replies(20, timeout=20)
        dead = get_messages(amqp_sandbox, DEAD_QUEUE, 50, timeout=5)
    finally:
        other.close()
    assert sorted(p.correlation_id for p, _ in replies) == sorted(sent_b)
    dead_ids = [p.message_id for _, p, _ in dead if p.message_id in forged_ids]
    # The addresses the broker cannot decode are dead-lettered at the first try, once each; the
    # others (a gone channel) are answered into nothing, as RabbitMQ does for any client.
    assert len(dead_ids) == len(set(dead_ids)) and set(forged_ids[1:4]) <= set(dead_ids)
    assert all(calls.for_corr(corr) == ["whatif"] for corr in forged_corrs)
    assert service._consumer.generation == generation  # the request connection never dropped
    # A genuine direct reply-to still gets its reply.
    answers: list[bytes] = []
    firm_a.channel.basic_consume(
        "amq.rabbitmq.reply-to", lambda _c, _m, _p, body: answers.append(body), auto_ack=True
    )
    firm_a.send("margin.whatif", b'{"direct": true}', reply_to="amq.rabbitmq.reply-to")
    deadline = time.monotonic() + 10
    while not answers and time.monotonic() < deadline:
        firm_a.connection.process_data_events(0.1)
    assert [json.loads(b)["echo"] for b in answers] == [{"direct": True}]
