"""``kill -9`` of the real daemon at random instants loses no notification.

Each iteration starts ``posgate serve``, drops DPL files (valid and rejected records mixed) into
a firm's inbound folder and kills the process with SIGKILL after a random delay: during intake,
processing, outbox sending or start-up. A last run lets everything finish. Every receipt event
and every rejected-record event must then have reached the broker at least once, and copies of
one event carry the same ``message_id``.
"""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.integration.amqp_fixtures import *  # noqa: F403
from tests.integration.amqp_fixtures import AmqpSandbox, daemon_config_for
from tests.support.daemon import DaemonProcess, wait_for
from tests.support.dpl_records import posrpt

pytestmark = pytest.mark.broker

FRIDAY_AFTERNOON = "2026-11-20T15:00:00-06:00"
ITERATIONS = 18  # the long run is `scripts/chaos`
FILES_PER_ITERATION = 1
RECORDS_PER_FILE = 1500


def _submission(seed: int) -> tuple[bytes, set[int]]:
    """A file of valid and rejected records and the line numbers of the rejected ones."""
    rng = random.Random(seed)
    lines, rejected = [], set()
    for n in range(1, RECORDS_PER_FILE + 1):
        if rng.random() < 0.3:
            lines.append(posrpt("2026-11-20", sym=f"S{n}", qty='Long="1" Short="2"'))
            rejected.add(n)
        else:
            lines.append(posrpt("2026-11-20", sym=f"S{n}"))
    return b"\n".join(lines) + b"\n", rejected


def _drain(box: AmqpSandbox, queue: str) -> list[tuple[Any, Any, bytes]]:
    """Every message in ``queue`` (consumed until it stays empty for a second)."""
    connection = box.admin()
    got: list[tuple[Any, Any, bytes]] = []
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=1000)
        for method, props, body in channel.consume(queue, auto_ack=True, inactivity_timeout=1.0):
            if method is None:
                break
            got.append((method, props, body))
        channel.cancel()
    finally:
        connection.close()
    return got


def test_no_receipt_or_rejected_event_is_lost_across_kill_9(
    tmp_path: Path, amqp_sandbox: AmqpSandbox
) -> None:
    box = amqp_sandbox
    admin = box.admin()
    queue = "test.kill.events.00005"
    channel = admin.channel()
    channel.exchange_declare("posgate.events", "topic", durable=True)  # as posgate declares it
    channel.queue_declare(queue, durable=True)
    channel.queue_bind(queue, "posgate.events", "firm.00005.dpl.#")
    admin.close()
    cfg = daemon_config_for(tmp_path, box)
    env = {
        "POSGATE_CLOCK_START": FRIDAY_AFTERNOON,
        "POSGATE_AMQP_PASSWORD": box.broker.password,
    }
    inbound = cfg.spool / "firms" / "00005" / "inbound" / "dpl"
    rng = random.Random(12)
    expected: dict[str, set[int]] = {}
    for iteration in range(ITERATIONS):
        proc = DaemonProcess(cfg, env=env)
        if rng.random() < 0.8:
            proc.wait_ready()
        for k in range(FILES_PER_ITERATION):
            name = f"kill-{iteration:02d}-{k}.fixml"
            body, rejected = _submission(iteration * 10 + k)
            (inbound / f".{name}.tmp").write_bytes(body)
            (inbound / f".{name}.tmp").rename(inbound / name)
            expected[name] = rejected
        time.sleep(rng.uniform(0.0, 2.0))
        proc.kill9()
    final = DaemonProcess(cfg, env=env)
    try:
        final.wait_ready()
        ledger = cfg.spool / "state" / "ledger.sqlite3"

        def settled() -> bool:
            with contextlib.closing(sqlite3.connect(ledger, timeout=10)) as db:
                done = db.execute(
                    "SELECT COUNT(*) FROM files WHERE flow = 'dpl'"
                    " AND state IN ('processed', 'archived')"
                ).fetchone()[0]
                waiting = db.execute("SELECT COUNT(*) FROM amqp_outbox").fetchone()[0]
            return bool(done == len(expected) and waiting == 0)

        wait_for(settled, timeout=180, interval=0.5, what="every file processed, outbox empty")
    finally:
        assert final.stop() == 0
    want = len(expected) + sum(len(r) for r in expected.values())
    got = _drain(box, queue)
    assert len(got) >= want
    receipts: dict[str, set[str]] = defaultdict(set)
    rejected_seen: dict[tuple[str, int], set[str]] = defaultdict(set)
    for method, props, body in got:
        doc = json.loads(body)
        if method.routing_key.endswith(".dpl.receipt"):
            receipts[doc["file"]].add(props.message_id)
        else:
            rejected_seen[(doc["file"], doc["line"])].add(props.message_id)
    lost_receipts = sorted(set(expected) - set(receipts))
    lost_rejected = sorted(
        (name, line)
        for name, lines in expected.items()
        for line in lines
        if (name, line) not in rejected_seen
    )
    assert lost_receipts == [] and lost_rejected == []
    assert set(receipts) == set(expected)
    assert {key[0] for key in rejected_seen} <= set(expected)
    # A copy sent again (its confirm was lost with the process) has the same message id.
    assert all(len(ids) == 1 for ids in receipts.values())
    assert all(len(ids) == 1 for ids in rejected_seen.values())
