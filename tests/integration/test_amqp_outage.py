"""Broker outages: one service's connections cut by a loopback proxy, and a whole-broker restart.

Every test here talks to a RabbitMQ node of this module's own (own node name, AMQP and
distribution ports, database and logs in a temporary folder; see ``rabbitmq_node``), never to the
machine's broker. A proxy between the service and the node cuts exactly this service's
connections, which lets the first tests repeat an outage cheaply. The last test stops the private
node's broker application with ``rabbitmqctl -n <node> stop_app`` and starts it again.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from gateway.amqp.outbox import Outbox, SqliteProcessedStore
from gateway.amqp.service import AmqpService, Reply, Request
from tests.integration.amqp_fixtures import *  # noqa: F403  (fixture amqp_sandbox)
from tests.integration.amqp_fixtures import (
    AmqpSandbox,
    Broker,
    FirmClient,
    TcpProxy,
    add_users,
    get_messages,
    queue_depth,
    wait_for_broker,
    wait_until,
)
from tests.integration.rabbitmq_node import RabbitNode, node_problem

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def private_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    """This module's own RabbitMQ node; skip (or fail when CI=true) where none can start."""
    problem = node_problem()
    if problem is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"a private RabbitMQ node is needed in CI: {problem}")
        pytest.skip(f"cannot start a private RabbitMQ node: {problem}")
    node = RabbitNode(tmp_path_factory.mktemp("rabbit"))
    try:
        node.start()
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="module")
def rabbitmq(private_node: RabbitNode) -> Broker:
    """Overrides the shared fixture: the users live on the private node."""
    broker = Broker(
        run=uuid.uuid4().hex[:8],
        password=secrets.token_hex(12),
        port=private_node.port,
        ctl=private_node.ctl,
        ctl_all=private_node.ctl_all,
    )
    add_users(broker)
    return broker


@pytest.fixture
def proxy(private_node: RabbitNode) -> Iterator[TcpProxy]:
    link = TcpProxy(private_node.port)
    yield link
    link.cut()


def test_outbox_keeps_events_while_the_broker_is_away_and_sends_them_after(
    amqp_sandbox: AmqpSandbox, proxy: TcpProxy, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "ledger.db")
    service = AmqpService(
        amqp_sandbox.settings(url=amqp_sandbox.url(proxy.port), max_backoff_s=0.5),
        amqp_sandbox.identities,
        {},
        outbox,
    )
    admin = amqp_sandbox.admin()
    channel = admin.channel()
    service.start()
    try:
        wait_until(service.is_up, 15, "service connected")
        queue = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(queue, "posgate.events", "ops.alert.#")

        proxy.cut()
        wait_until(lambda: not service.is_up(), 10, "service saw the outage")
        for n in range(20):
            outbox.emit("ops.alert.drill", {"n": n})
        time.sleep(1.0)
        assert service.healthy()  # still running, retrying
        assert outbox.depth() == 20
        assert channel.queue_declare(queue, passive=True).method.message_count == 0

        proxy.restore()
        wait_until(service.is_up, 15, "service reconnected")
        wait_until(lambda: outbox.depth() == 0, 10, "outbox drained")
        got = []
        deadline = time.monotonic() + 5
        while len(got) < 20 and time.monotonic() < deadline:
            method, _props, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                time.sleep(0.05)
            else:
                got.append(json.loads(body)["n"])
    finally:
        service.stop(5)
        admin.close()
    assert got == list(range(20))  # all of them, in order


def test_requests_in_flight_when_the_connection_drops_are_answered_exactly_once(
    amqp_sandbox: AmqpSandbox, proxy: TcpProxy, tmp_path: Path
) -> None:
    calls: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()

    def work(request: Request) -> Reply:
        time.sleep(0.01)
        with lock:
            calls[request.correlation_id or ""] += 1
        return Reply({"n": request.json_object()["n"]})

    db = tmp_path / "ledger.db"
    service = AmqpService(
        amqp_sandbox.settings(url=amqp_sandbox.url(proxy.port), max_backoff_s=0.5, prefetch=20),
        amqp_sandbox.identities,
        {"dpl.report": work},
        Outbox(db),
        SqliteProcessedStore(db),
    )
    client = FirmClient(amqp_sandbox, amqp_sandbox.firm_a, durable=True, suffix="cut")
    total = 300
    service.start()
    try:
        wait_until(service.is_up, 15, "service connected")
        sent = [client.send("dpl.report", b'{"n": %d}' % n) for n in range(total)]
        for _ in range(3):  # cut it three times while requests are being answered
            start = sum(calls.values())
            wait_until(lambda s=start: sum(calls.values()) >= s + 30, 20, "progress")
            proxy.cut()
            time.sleep(0.3)
            proxy.restore()
        replies = client.replies(total, timeout=30, settle_s=1.0)
    finally:
        service.stop(5)
        client.channel.queue_delete(client.reply_queue)
        client.close()
    per_corr = collections.Counter(p.correlation_id for p, _ in replies)
    missing = set(sent) - set(per_corr)
    assert not missing, _whereabouts(amqp_sandbox, missing, calls)
    duplicated = {c: n for c, n in per_corr.items() if n != 1}
    assert duplicated == {}
    assert max(calls.values()) == 1  # and no handler ran twice


def _whereabouts(box: AmqpSandbox, missing: set[str], calls: collections.Counter[str]) -> str:
    """For a failure message: where the unanswered requests are."""
    dead = get_messages(box, "posgate.dead", 1000, timeout=1)
    dead_corr = {p.correlation_id: p.headers for _, p, _ in dead}
    return (
        f"{len(missing)} unanswered; handled: {sum(calls[c] for c in missing)};"
        f" dead-lettered: {[dead_corr.get(c) for c in missing if c in dead_corr]};"
        f" still queued: {queue_depth(box, 'posgate.requests.dpl.report')}"
    )


TOTAL = 1000


@pytest.mark.slow
def test_every_request_is_answered_exactly_once_across_a_broker_restart(
    amqp_sandbox: AmqpSandbox, private_node: RabbitNode, tmp_path: Path
) -> None:
    calls: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    gate = threading.Event()
    db = tmp_path / "ledger.db"
    outbox = Outbox(db)

    def whatif(request: Request) -> Reply:
        gate.wait(60)
        time.sleep(0.002)
        with lock:
            calls[request.correlation_id or ""] += 1
        outbox.emit(f"firm.{request.firm}.pmc.result", {"correlation_id": request.correlation_id})
        return Reply({"firm": request.firm, "n": request.json_object()["n"]})

    service = AmqpService(
        amqp_sandbox.settings(prefetch=50, max_backoff_s=1.0, heartbeat_s=5),
        amqp_sandbox.identities,
        {"margin.whatif": whatif},
        outbox,
        SqliteProcessedStore(db),
    )
    admin = amqp_sandbox.admin()
    admin.channel().queue_declare("test.events", durable=True, arguments={"x-queue-type": "quorum"})
    client = FirmClient(
        amqp_sandbox, amqp_sandbox.firm_a, durable=True, suffix="restart", confirms=False
    )
    service.start()
    stopped = False
    try:
        wait_until(service.is_up, 15, "service connected")
        admin.channel().queue_bind("test.events", "posgate.events", "firm.#")
        admin.close()
        # All 1,000 go to the broker in one transaction; the handler holds until they are in.
        client.channel.tx_select()
        sent = [client.send("margin.whatif", b'{"n": %d}' % n) for n in range(TOTAL)]
        client.channel.tx_commit()
        client.close()
        gate.set()
        wait_until(lambda: sum(calls.values()) >= 250, 30, "a quarter answered")

        private_node.stop_app()
        stopped = True
        wait_until(lambda: not service.is_up(), 10, "service saw the broker go")
        time.sleep(1.0)
        assert service.healthy()  # retrying, not failed
    finally:
        if stopped:
            private_node.start_app()
            wait_for_broker(60, private_node.port)
        if not stopped:
            service.stop(5)
    try:
        wait_until(service.is_up, 30, "service reconnected after the restart")
        reader = FirmClient(amqp_sandbox, amqp_sandbox.firm_a, durable=True, suffix="restart")
        try:
            replies = reader.replies(TOTAL, timeout=60, settle_s=1.5)
        finally:
            reader.close()
        wait_until(lambda: outbox.depth() == 0, 30, "outbox drained")
        events = _drain(amqp_sandbox, "test.events", TOTAL)
    finally:
        service.stop(10)

    per_corr = collections.Counter(p.correlation_id for p, _ in replies)
    assert set(per_corr) == set(sent), f"{len(set(sent) - set(per_corr))} requests unanswered"
    assert [c for c, n in per_corr.items() if n != 1] == []  # exactly once each
    assert all(json.loads(body)["firm"] == "00005" for _, body in replies)
    assert max(calls.values()) == 1  # no handler ran twice
    # Events are at-least-once (stable message ids): every request's event arrived.
    assert {e["correlation_id"] for e in events} == set(sent)


def _drain(box: AmqpSandbox, queue: str, at_least: int) -> list[dict[str, object]]:
    connection = box.admin()
    channel = connection.channel()
    got: list[dict[str, object]] = []
    deadline = time.monotonic() + 30
    try:
        for method, _props, body in channel.consume(queue, inactivity_timeout=1.0):
            if method is None:
                if len(got) >= at_least or time.monotonic() > deadline:
                    break
                continue
            channel.basic_ack(method.delivery_tag)
            got.append(json.loads(body))
        channel.cancel()
    finally:
        with contextlib.suppress(pika.exceptions.AMQPError):
            connection.close()
    return got
