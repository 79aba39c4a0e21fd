"""The real daemon with the real broker: DPL submitted over AMQP, events through the outbox,
and file flows that keep running while the broker is unreachable."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.amqp_fixtures import *  # noqa: F403
from tests.integration.amqp_fixtures import (
    AmqpSandbox,
    FirmClient,
    daemon_config_for,
    get_messages,
)
from tests.support import contract
from tests.support.daemon import DaemonProcess, free_port, make_test_config, running, wait_for
from tests.support.dpl_records import posrpt
from tests.support.firm import drop_file, firm_folder

FRIDAY_AFTERNOON = "2026-11-20T15:00:00-06:00"


@pytest.fixture
def amqp_daemon(tmp_path: Path, amqp_sandbox: AmqpSandbox) -> Iterator[DaemonProcess]:
    cfg = daemon_config_for(tmp_path, amqp_sandbox)
    password = amqp_sandbox.broker.password
    with running(cfg, clock_start=FRIDAY_AFTERNOON, amqp_password=password) as proc:
        yield proc


@pytest.mark.broker
def test_dpl_submission_over_amqp_gives_receipt_outputs_and_events(
    amqp_daemon: DaemonProcess, amqp_sandbox: AmqpSandbox
) -> None:
    box = amqp_sandbox
    admin = box.admin()
    events = admin.channel()
    events.queue_declare("test.events.00005", exclusive=False)
    events.queue_bind("test.events.00005", "posgate.events", "firm.00005.#")
    client = FirmClient(box, box.firm_a)
    try:
        body = (
            b"\n".join(
                [
                    posrpt("2026-11-20", sym="GOOG"),
                    posrpt("2026-11-20", sym="IBM", qty='Long="1" Short="2"'),
                ]
            )
            + b"\n"
        )
        corr = client.send("dpl.submission", body, content_type="application/xml")
        replies = client.replies(1, timeout=30)
        assert len(replies) == 1
        props, raw = replies[0]
        assert props.correlation_id == corr
        reply = json.loads(raw)
        assert reply["status"] == "processed", reply
        assert reply["receipt"]["counts"] == {"total": 2, "valid": 1, "rejected": 1}
        assert reply["receipt"]["cycle"] == "2026-11-20"
        outbound = firm_folder(amqp_daemon.cfg, "outbound", "dpl")
        rejects = next(outbound.glob("*.rejects.fixml")).read_bytes()
        assert rejects == body.split(b"\n")[1] + b"\n"
        # notify=Y for 00005: one receipt event and one event per rejected record, via the outbox
        got = get_messages(box, "test.events.00005", 2, timeout=20)
        keys = sorted(m.routing_key for m, _, _ in got)
        assert keys == ["firm.00005.dpl.receipt", "firm.00005.dpl.rejected"]
        assert sorted(p.type for _, p, _ in got) == ["dpl.receipt", "dpl.rejected"]
        for _, _, event_body in got:
            contract.validate("event", json.loads(event_body))
        rejected = next(json.loads(b) for m, _, b in got if m.routing_key.endswith("rejected"))
        assert rejected["record"].encode() == body.split(b"\n")[1]
        # the same body again (a new message) is a new submission that names the earlier one
        client.send("dpl.submission", body, content_type="application/xml")
        again = json.loads(client.replies(1, timeout=30)[0][1])
        assert again["status"] == "processed", again
        assert again["receipt"]["identical_to"]["file"] == reply["receipt"]["file"]
        assert again["receipt"]["superseded"]["file"] == reply["receipt"]["file"]
    finally:
        client.close()
        admin.close()


@pytest.mark.broker
def test_report_over_amqp_refuses_unpublished_cycle(
    amqp_daemon: DaemonProcess, amqp_sandbox: AmqpSandbox
) -> None:
    client = FirmClient(amqp_sandbox, amqp_sandbox.firm_a)
    try:
        client.send("dpl.report", json.dumps({"cycle": "2026-11-20"}).encode())
        reply = json.loads(client.replies(1, timeout=30)[0][1])
        assert reply["error"]["reason"] == "NOT_PUBLISHED"
    finally:
        client.close()


def test_file_flows_run_while_the_broker_is_unreachable(tmp_path: Path) -> None:
    closed_port = free_port()
    cfg = make_test_config(
        tmp_path,
        amqp={"enabled": True, "max_backoff_s": 1.0, "url": f"amqp://127.0.0.1:{closed_port}/%2F"},
    )
    proc = DaemonProcess(cfg, env={"POSGATE_CLOCK_START": FRIDAY_AFTERNOON})
    try:
        proc.wait_ready()
        assert proc.metric("posgate_amqp_up") == 0.0
        drop_file(cfg, "x.fixml", posrpt("2026-11-20") + b"\n")
        receipt = firm_folder(cfg, "outbound", "dpl") / "x.fixml.receipt.json"
        wait_for(receipt.exists, timeout=20, what="receipt without broker")
        # the receipt event waits in the outbox
        wait_for(lambda: (proc.metric("posgate_outbox_depth") or 0) >= 1, what="outbox depth")
        proc.signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=20) == 0
    finally:
        proc.stop()


@pytest.mark.broker
def test_operator_alerts_are_published_as_events(
    amqp_daemon: DaemonProcess, amqp_sandbox: AmqpSandbox
) -> None:
    admin = amqp_sandbox.admin()
    try:
        channel = admin.channel()
        channel.queue_declare("test.ops.alerts")
        channel.queue_bind("test.ops.alerts", "posgate.events", "ops.alert.#")
        drop_file(amqp_daemon.cfg, "junk.fixml", b"\x00\x01binary")
        got = get_messages(amqp_sandbox, "test.ops.alerts", 1, timeout=20)
        assert [m.routing_key for m, _, _ in got] == ["ops.alert.file_quarantined"]
        event = json.loads(got[0][2])
        assert event["details"]["firm"] == "00005"
        assert "clearing-ops@gs.example" in event["details"]["technical_contact"]
    finally:
        admin.close()
