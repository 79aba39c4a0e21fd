"""``scripts/chaos broker``: the broker stopped and started under load, under a real daemon.

The drill starts a RabbitMQ node of its own (own node name, ports, database; see
``tests/integration/rabbitmq_node.py``; the machine's broker is never touched) and a real
``posgate serve`` in a scratch folder talking to it. A firm sends DPL submissions over AMQP (each
with its own ``message_id``) and drops DPL files into its inbound folder while the node's broker
application is stopped and started again, ``--outages`` times. A request whose confirm or reply
was lost with the connection is sent again with the same ``message_id``, as a firm's client does.
With the broker down, ``posgate dpl publish --force`` publishes the cycle; its events must arrive
once the broker is back. Counted at the end: requests answered; files and records in the ledger;
receipt, rejected-record and publication events delivered at least once (a duplicate carries the
same ``message_id``); lost; duplicated. Figures print as JSON; any loss exits 1.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pika

from tests.integration.amqp_fixtures import (
    AmqpSandbox,
    Broker,
    FirmClient,
    add_users,
    daemon_config_for,
    open_sandbox,
)
from tests.integration.rabbitmq_node import RabbitNode, node_problem
from tests.support.daemon import REPO, DaemonProcess, wait_for
from tests.support.dpl_records import posrpt

CLOCK_START = "2026-11-20T15:00:00-06:00"
CYCLE = "2026-11-20"


def body_of(rng: random.Random, tag: str, records: int) -> tuple[bytes, int]:
    lines, rejected = [], 0
    for n in range(records):
        if rng.random() < 0.3:
            lines.append(posrpt(CYCLE, sym=f"{tag}S{n}", qty='Long="1" Short="2"'))
            rejected += 1
        else:
            lines.append(posrpt(CYCLE, sym=f"{tag}S{n}"))
    return b"\n".join(lines) + b"\n", rejected


class Firm:
    """The firm's client: reconnects after an outage and sends again what was not answered."""

    def __init__(self, box: AmqpSandbox) -> None:
        self.box = box
        self.client: FirmClient | None = None
        self.pending: dict[str, tuple[str, bytes]] = {}  # correlation id -> (message id, body)
        self.answers: collections.Counter[str] = collections.Counter()
        self.resent = 0

    def _connected(self) -> FirmClient:
        while self.client is None:
            try:
                self.client = FirmClient(self.box, self.box.firm_a, durable=True)
            except Exception:
                time.sleep(0.5)
        return self.client

    def send(self, correlation: str, message_id: str, body: bytes) -> None:
        self.pending[correlation] = (message_id, body)
        while True:
            client = self._connected()
            try:
                client.send(
                    "dpl.submission",
                    body,
                    content_type="application/xml",
                    message_id=message_id,
                    correlation_id=correlation,
                )
                return
            except Exception:  # the broker went away mid-send: reconnect, send again
                self._drop()

    def _drop(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None

    def collect(self, timeout: float) -> bool:
        """Read the replies that came; False when the connection broke (nothing to conclude)."""
        try:
            got = self._connected().replies(10_000, timeout=timeout)
        except (pika.exceptions.AMQPError, OSError):
            self._drop()
            return False
        for props, _ in got:
            self.answers[props.correlation_id or ""] += 1
        return True

    def resend_unanswered(self) -> None:
        for correlation, (message_id, body) in list(self.pending.items()):
            if correlation not in self.answers:
                self.resent += 1
                self.send(correlation, message_id, body)


def drain(box: AmqpSandbox, queue: str) -> list[tuple[str, str, bytes]]:
    """Every message of ``queue``: (routing key, message id, body)."""
    conn = box.admin()
    out = []
    try:
        channel = conn.channel()
        while True:
            method, props, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append((method.routing_key, props.message_id or "", body))
    finally:
        conn.close()


def run(requests: int, outages: int, records: int, seed: int) -> int:
    problem = node_problem()
    if problem is not None:
        print(f"cannot start a private RabbitMQ node: {problem}", file=sys.stderr)
        return 2
    rng = random.Random(seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="posgate-chaos-broker-") as scratch:
        node = RabbitNode(Path(scratch) / "rabbit")
        node.start()
        try:
            broker = Broker(
                run=uuid.uuid4().hex[:8],
                password=secrets.token_hex(12),
                port=node.port,
                ctl=node.ctl,
                ctl_all=node.ctl_all,
            )
            add_users(broker)
            with open_sandbox(broker) as box:
                return _drill(Path(scratch), node, box, requests, outages, records, rng, started)
        finally:
            node.stop()


def _drill(
    scratch: Path,
    node: RabbitNode,
    box: AmqpSandbox,
    requests: int,
    outages: int,
    records: int,
    rng: random.Random,
    started: float,
) -> int:
    cfg = daemon_config_for(scratch / "gateway", box)
    env = {"POSGATE_CLOCK_START": CLOCK_START, "POSGATE_AMQP_PASSWORD": box.broker.password}
    daemon = DaemonProcess(cfg, env=env)
    inbound = cfg.spool / "firms" / "00005" / "inbound" / "dpl"
    firm = Firm(box)
    sent_records = sent_rejected = files = 0
    outage_log: list[float] = []
    try:
        daemon.wait_ready()
        wait_for(lambda: daemon.metric("posgate_amqp_up") == 1.0, timeout=60, what="AMQP up")
        admin = box.admin()  # the daemon has declared its topology: bind the drill's queues
        channel = admin.channel()
        for queue, key in (("drill.firm", "firm.00005.#"), ("drill.exchange", "exchange.#")):
            channel.queue_declare(queue, durable=True)
            channel.queue_bind(queue, "posgate.events", key)
        admin.close()

        def outage_loop() -> None:
            for _ in range(outages):
                time.sleep(rng.uniform(2.0, 4.0))
                began = time.monotonic()
                node.stop_app()
                time.sleep(3.0)
                node.start_app()
                outage_log.append(time.monotonic() - began)

        breaker = threading.Thread(target=outage_loop, daemon=True)
        breaker.start()
        i = 0
        while breaker.is_alive() or i < requests:
            body, rejected = body_of(rng, f"R{i}", records)
            firm.send(uuid.uuid4().hex, f"drill-{i}", body)
            sent_records += records
            sent_rejected += rejected
            if i % 2 == 0:
                body, rejected = body_of(rng, f"F{i}", records)
                name = f"drill-{i:04d}.fixml"
                (cfg.root / name).write_bytes(body)
                (cfg.root / name).rename(inbound / name)
                sent_records += records
                sent_rejected += rejected
                files += 1
            i += 1
            time.sleep(0.1)
        breaker.join()
        sent_requests = i

        # The cycle published while the broker is down: its events wait in the outbox.
        node.stop_app()
        published = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "--config", str(cfg.path)]
            + ["dpl", "publish", "--date", CYCLE, "--force"],
            cwd=REPO,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=False,
        )
        node.start_app()

        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and len(firm.answers) < len(firm.pending):
            if firm.collect(timeout=10) and len(firm.answers) < len(firm.pending):
                firm.resend_unanswered()
        ledger = cfg.spool / "state" / "ledger.sqlite3"

        def settled() -> bool:
            with sqlite3.connect(ledger, timeout=10) as db:
                left = db.execute(
                    "SELECT COUNT(*) FROM files WHERE flow = 'dpl' AND state != 'archived'"
                ).fetchone()[0]
                outbox = db.execute("SELECT COUNT(*) FROM amqp_outbox").fetchone()[0]
            return bool(left == 0 and outbox == 0)

        wait_for(settled, timeout=180, interval=1.0, what="every file archived, outbox empty")
    finally:
        daemon.stop()
    with sqlite3.connect(cfg.spool / "state" / "ledger.sqlite3") as db:
        stored_files = db.execute("SELECT COUNT(*) FROM files WHERE flow = 'dpl'").fetchone()[0]
        stored_records = db.execute("SELECT COUNT(*) FROM dpl_records").fetchone()[0]
        rejected_stored = db.execute(
            "SELECT COALESCE(SUM(rejected), 0) FROM files WHERE flow = 'dpl'"
        ).fetchone()[0]
    events = drain(box, "drill.firm")
    exchange_events = drain(box, "drill.exchange")
    by_kind: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for key, message_id, _ in events + exchange_events:
        if key.endswith(".published") and f".{CYCLE}." not in message_id:
            continue  # the daemon's own publication of the day before, at its start
        by_kind[key.rsplit(".", 1)[-1]][message_id] += 1
    submissions = sent_requests + files
    figures = {
        "outages": len(outage_log),
        "outage seconds (stop to started)": [round(s, 1) for s in outage_log],
        "requests sent": sent_requests,
        "requests sent again (same message_id)": firm.resent,
        "requests answered": len(firm.answers),
        "requests lost": len(firm.pending) - len(firm.answers),
        "replies duplicated": sum(n - 1 for n in firm.answers.values()),
        "files": files,
        "submissions stored (requests + files)": stored_files,
        "records sent / stored": [sent_records, stored_records],
        "receipt events (unique / delivered)": [
            len(by_kind["receipt"]),
            sum(by_kind["receipt"].values()),
        ],
        "rejected-record events (unique / delivered)": [
            len(by_kind["rejected"]),
            sum(by_kind["rejected"].values()),
        ],
        "cycles checked": 1,
        "publication during the outage (exit code)": published.returncode,
        "publication events of the cycle (unique / delivered)": [
            len(by_kind["published"]),
            sum(by_kind["published"].values()),
        ],
        "events lost": (submissions - len(by_kind["receipt"]))
        + (rejected_stored - len(by_kind["rejected"]))
        + (2 - len(by_kind["published"])),
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(figures, indent=2))
    bad = figures["requests lost"] or figures["events lost"] or published.returncode != 0
    bad = bad or stored_files != submissions or stored_records != sent_records
    bad = bad or rejected_stored != sent_rejected
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/chaos broker", description=__doc__)
    parser.add_argument("--requests", type=int, default=40, help="AMQP submissions at least")
    parser.add_argument("--outages", type=int, default=3, help="broker stop/start episodes")
    parser.add_argument("--records", type=int, default=50, help="records per submission")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args(argv)
    return run(args.requests, args.outages, args.records, args.seed)


if __name__ == "__main__":
    sys.exit(main())
