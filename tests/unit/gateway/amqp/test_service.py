"""AmqpService and its parts without a broker: topology, settings, metrics, life without one."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from gateway.amqp.outbox import Outbox
from gateway.amqp.service import AmqpService, AmqpSettings, PrometheusAmqpMetrics, Reply
from gateway.amqp.topology import (
    COMPUTE_TYPES,
    REQUESTS_QUEUE,
    compute_queue,
    connection_parameters,
    queues_for_worker,
    queues_to_serve,
    request_queue_arguments,
)
from gateway.worker import IdentityMap, identities_of, load_handler


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings(**kw: Any) -> AmqpSettings:
    values: dict[str, Any] = {
        "enabled": True,
        "url": f"amqp://127.0.0.1:{closed_port()}/%2F",
        "username": "svc",
        "password": "pw",
        "heartbeat_s": 10,
        "prefetch": 4,
        "max_backoff_s": 0.2,
        "delivery_limit": 3,
        "request_timeout_s": 5.0,
    }
    values.update(kw)
    return AmqpSettings(**values)


class Metrics:
    def __init__(self) -> None:
        self.up: list[bool] = []
        self.depths: list[int] = []

    def set_up(self, up: bool) -> None:
        self.up.append(up)

    def observe_request(self, type_label: str, outcome: str, seconds: float) -> None:
        raise AssertionError("no request can arrive without a broker")

    def set_outbox_depth(self, depth: int) -> None:
        self.depths.append(depth)


def echo(request: Any) -> Reply:
    return Reply({})


def test_the_daemon_serves_the_shared_queue_and_every_compute_queue() -> None:
    # Every routed queue has a consumer in serve, so no request type can go unanswered: a type
    # serve has no handler for is answered UNKNOWN_TYPE instead of waiting forever.
    every = [
        REQUESTS_QUEUE,
        "posgate.requests.margin.whatif",
        "posgate.requests.dpl.report",
        "posgate.requests.ebe.query",
    ]
    assert queues_to_serve(["dpl.submission"]) == every
    assert queues_to_serve(["margin.whatif", "dpl.submission", "dpl.report"]) == every


def test_a_worker_serves_compute_types_only() -> None:
    assert queues_for_worker(["margin.whatif"]) == [compute_queue("margin.whatif")]
    assert set(queues_for_worker(COMPUTE_TYPES)) == {compute_queue(t) for t in COMPUTE_TYPES}
    with pytest.raises(ValueError, match="not dpl.submission"):
        queues_for_worker(["margin.whatif", "dpl.submission"])
    with pytest.raises(ValueError, match="at least one"):
        queues_for_worker([])
    with pytest.raises(ValueError):
        AmqpService.for_worker(settings(), dict, {"pmc.positions": echo})


def test_request_queues_are_quorum_with_an_explicit_delivery_limit_and_dead_letters() -> None:
    assert request_queue_arguments(7) == {
        "x-queue-type": "quorum",
        "x-dead-letter-exchange": "posgate.dlx",
        "x-delivery-limit": 7,
    }


def test_login_comes_from_the_settings_never_from_the_url() -> None:
    params = connection_parameters(
        settings(url="amqp://intruder:leaked@10.0.0.1:5673/posgate%2Fprod", password="s3cret"),
        "serve",
    )
    assert (params.host, params.port, params.virtual_host) == ("10.0.0.1", 5673, "posgate/prod")
    assert params.credentials.username == "svc"
    assert params.credentials.password == "s3cret"
    assert params.heartbeat == 10
    assert params.client_properties["connection_name"].startswith("posgate serve ")


def test_without_a_broker_the_service_keeps_retrying_and_stops_promptly(tmp_path: Path) -> None:
    metrics = Metrics()
    outbox = Outbox(tmp_path / "db")
    outbox.emit("ops.alert.test", {"n": 1})
    service = AmqpService(settings(), dict, {"margin.whatif": echo}, outbox, None, metrics)
    service.start()
    try:
        time.sleep(1.5)  # several connection attempts with backoff
        assert service.healthy() and not service.is_up()
        assert metrics.up and not any(metrics.up)
        assert 1 in metrics.depths  # the outbox depth is reported while the broker is away
    finally:
        began = time.monotonic()
        service.stop(5)
    assert time.monotonic() - began < 3
    assert outbox.depth() == 1  # kept for the next start
    assert service.stopped_cleanly is False  # the outbox could not be drained


def test_a_disabled_service_does_nothing() -> None:
    service = AmqpService(settings(enabled=False), dict, {"margin.whatif": echo}, metrics=Metrics())
    service.start()
    assert service.healthy() and not service.is_up()
    service.stop(1)


def test_prometheus_metrics_exist_with_buckets_reaching_minutes() -> None:
    metrics = PrometheusAmqpMetrics()
    metrics.set_up(True)
    metrics.observe_request("margin.whatif", "ok", 0.004)
    metrics.set_outbox_depth(3)
    assert REGISTRY.get_sample_value("posgate_amqp_up") == 1.0
    assert REGISTRY.get_sample_value("posgate_outbox_depth") == 3.0
    assert (
        REGISTRY.get_sample_value(
            "posgate_amqp_requests_total", {"type": "margin.whatif", "outcome": "ok"}
        )
        or 0
    ) >= 1
    top = REGISTRY.get_sample_value(
        "posgate_amqp_request_seconds_bucket", {"type": "margin.whatif", "le": "600.0"}
    )
    assert top is not None and top >= 1
    metrics.set_up(False)


def test_prometheus_children_are_kept_and_every_request_is_counted() -> None:
    def count(outcome: str) -> float:
        labels = {"type": "pmc.contracts", "outcome": outcome}
        return REGISTRY.get_sample_value("posgate_amqp_requests_total", labels) or 0.0

    def observed() -> float:
        labels = {"type": "pmc.contracts"}
        return REGISTRY.get_sample_value("posgate_amqp_request_seconds_count", labels) or 0.0

    ok, rejected, seconds = count("ok"), count("rejected"), observed()
    metrics = PrometheusAmqpMetrics()
    for outcome in ("ok", "rejected", "ok"):
        metrics.observe_request("pmc.contracts", outcome, 0.002)
    assert (count("ok") - ok, count("rejected") - rejected, observed() - seconds) == (2, 1, 3)


def test_a_worker_runs_two_handler_threads_unless_told_otherwise() -> None:
    def pool(**kw: Any) -> int:
        service = AmqpService.for_worker(settings(**kw), dict, {"margin.whatif": echo})
        return service._consumer._pool_size

    assert pool(prefetch=32) == 2
    assert pool(prefetch=1) == 1
    serve = AmqpService(settings(prefetch=32), dict, {"margin.whatif": echo})
    assert serve._consumer._pool_size == 32  # the daemon's handlers wait on disks


def test_identities_come_from_firm_accounts_with_an_amqp_user() -> None:
    config = SimpleNamespace(
        accounts=(
            SimpleNamespace(kind="firm", entity_id="00005", amqp_user="amqp-5"),
            SimpleNamespace(kind="firm", entity_id="00390", amqp_user=None),
            SimpleNamespace(kind="exchange", entity_id="XCBO", amqp_user="amqp-x"),
        )
    )
    mapping = IdentityMap(identities_of(config))  # type: ignore[arg-type]
    assert mapping() == {"amqp-5": "00005"}
    mapping.replace({"amqp-9": "00009"})
    assert mapping() == {"amqp-9": "00009"}


def test_handlers_are_named_type_equals_module_colon_function() -> None:
    request_type, handler = load_handler("margin.whatif=gateway.amqp.dispatch:parse_json")
    assert request_type == "margin.whatif" and handler(b"[1]") == [1]
    for bad in ("margin.whatif", "margin.whatif=gateway.amqp.dispatch", "=x:y"):
        with pytest.raises(ValueError):
            load_handler(bad)


def test_broker_tests_skip_locally_but_fail_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.integration import amqp_fixtures

    monkeypatch.setattr(amqp_fixtures, "BROKER_PORT", closed_port())
    problem = amqp_fixtures.broker_problem()
    assert problem is not None  # no rabbitmqctl, or nothing listening on that port
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="RabbitMQ not available"):
        amqp_fixtures._unavailable(problem)  # noqa: SLF001
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="RabbitMQ needed in CI"):
        amqp_fixtures._unavailable(problem)  # noqa: SLF001


def test_events_are_typed_by_their_routing_key_without_the_id() -> None:
    from gateway.amqp.publisher import event_type

    assert event_type("firm.00005.dpl.receipt") == "dpl.receipt"
    assert event_type("exchange.XCBO.dpl.published") == "dpl.published"
    assert event_type("ops.alert.publication_late") == "ops.alert"
