"""``posgate worker`` processes as competing consumers of the compute queues."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.amqp.topology import REQUESTS_QUEUE, compute_queue
from tests.integration.amqp_fixtures import *  # noqa: F403  (fixtures rabbitmq, amqp_sandbox)
from tests.integration.amqp_fixtures import (
    FIRM_A,
    AmqpSandbox,
    FirmClient,
    queue_depth,
    wait_until,
)
from tests.support.daemon import REPO, make_test_config

pytestmark = pytest.mark.broker

HANDLER = "margin.whatif=tests.integration.amqp_fixtures:whatif_with_pid"


def write_config(box: AmqpSandbox, root: Path) -> Path:
    cfg = make_test_config(
        root,
        amqp={
            "enabled": True,
            "url": box.url(),
            "username": box.service_user,
            "prefetch": 10,
            "max_backoff_s": 1.0,
            "delivery_limit": 3,
            "heartbeat_s": 10,
        },
        daemon={"shutdown_grace_s": 10.0},
    )
    account = cfg.root / "config" / "accounts" / "00005.toml"
    text = account.read_text().replace('"posgate-test-00005"', f'"{box.firm_a}"')
    account.write_text(text)
    return cfg.path


class Worker:
    def __init__(self, config: Path, log: Path, password: str, *handlers: str) -> None:
        self.log_path = log
        env = {**os.environ, "POSGATE_AMQP_PASSWORD": password, "PYTHONUNBUFFERED": "1"}
        env.pop("NOTIFY_SOCKET", None)
        args = [sys.executable, "-m", "gateway.worker", "--config", str(config)]
        for handler in handlers:
            args += ["--handler", handler]
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                args, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def workers(amqp_sandbox: AmqpSandbox, tmp_path: Path) -> Iterator[list[Worker]]:
    config = write_config(amqp_sandbox, tmp_path / "w")
    started = [
        Worker(config, tmp_path / f"worker{n}.log", amqp_sandbox.broker.password, HANDLER)
        for n in range(2)
    ]
    yield started
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait(10)


def consumers(box: AmqpSandbox, queue: str) -> int:
    connection = box.admin()
    try:
        return int(connection.channel().queue_declare(queue, passive=True).method.consumer_count)
    finally:
        connection.close()


def test_two_workers_share_the_load_and_leave_other_types_alone(
    amqp_sandbox: AmqpSandbox, workers: list[Worker]
) -> None:
    whatif_queue = compute_queue("margin.whatif")

    def both_consuming() -> bool:
        for worker in workers:
            assert worker.proc.poll() is None, worker.log()
        try:
            return consumers(amqp_sandbox, whatif_queue) == 2
        except Exception:
            return False  # not declared yet

    wait_until(both_consuming, 40, "two workers consuming", interval=0.3)
    client = FirmClient(amqp_sandbox, amqp_sandbox.firm_a, suffix="workers")
    try:
        sent = {client.send("margin.whatif", b"{}") for _ in range(200)}
        replies = client.replies(200, timeout=30)
        other = client.send("dpl.submission", b"<FIXML/>", content_type="application/xml")
        report = client.send("dpl.report", b"{}")
        time.sleep(1.0)
        late = client.replies(1, timeout=0.5)
    finally:
        client.close()
    docs = [json.loads(body) for _, body in replies]
    assert {p.correlation_id for p, _ in replies} == sent
    assert {d["firm"] for d in docs} == {FIRM_A}
    per_worker = collections.Counter(d["pid"] for d in docs)
    assert set(per_worker) == {w.proc.pid for w in workers}, per_worker
    assert min(per_worker.values()) >= 20, per_worker  # both took a real share
    # Types the workers do not serve are never consumed by them: they wait for posgate serve.
    assert late == [] and other and report
    assert queue_depth(amqp_sandbox, REQUESTS_QUEUE) == 1
    assert queue_depth(amqp_sandbox, compute_queue("dpl.report")) == 1

    for worker in workers:
        worker.proc.send_signal(signal.SIGTERM)
    for worker in workers:
        assert worker.proc.wait(20) == 0, worker.log()
        assert "stopped cleanly" in worker.log()
    assert consumers(amqp_sandbox, whatif_queue) == 0


def test_a_worker_refuses_types_it_could_never_receive(
    amqp_sandbox: AmqpSandbox, tmp_path: Path
) -> None:
    config = write_config(amqp_sandbox, tmp_path / "w")
    worker = Worker(
        config,
        tmp_path / "bad.log",
        amqp_sandbox.broker.password,
        "dpl.submission=tests.integration.amqp_fixtures:whatif_with_pid",
    )
    assert worker.proc.wait(30) == 78
    assert "can only serve" in worker.log()
