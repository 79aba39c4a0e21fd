"""The hostile AMQP corpus (``tests/data/hostile/amqp/``) through the real daemon and a real
broker (a vhost of the test's own): every body gets the reply ``cases.json`` expects, a clear
reason and message, never ``INTERNAL_ERROR``; no entity is resolved; the daemon keeps serving."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.amqp_fixtures import *  # noqa: F403
from tests.integration.amqp_fixtures import AmqpSandbox, FirmClient, daemon_config_for
from tests.support.daemon import REPO, DaemonProcess, wait_for

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile" / "amqp"
THEO = REPO / "config" / "samples" / "pmc" / "theo" / "2026-11-20"
FRIDAY_AFTERNOON = "2026-11-20T15:00:00-06:00"


@pytest.fixture
def served(tmp_path: Path, amqp_sandbox: AmqpSandbox) -> Iterator[DaemonProcess]:
    cfg = daemon_config_for(tmp_path, amqp_sandbox)
    shutil.copytree(THEO, cfg.spool / "internal" / "theo" / THEO.name)
    proc = DaemonProcess(
        cfg,
        env={
            "POSGATE_CLOCK_START": FRIDAY_AFTERNOON,
            "POSGATE_AMQP_PASSWORD": amqp_sandbox.broker.password,
        },
    )
    try:
        proc.wait_ready()
        wait_for(lambda: proc.metric("posgate_amqp_up") == 1.0, timeout=30, what="AMQP up")
        yield proc
    finally:
        assert proc.stop() == 0


def summary(reply: dict[str, object]) -> dict[str, object]:
    """What a case expects of its reply: the error reason, or the status and counts."""
    error = reply.get("error")
    if isinstance(error, dict):
        assert error.get("message"), reply  # every refusal says why
        return {"reason": error["reason"]}
    out: dict[str, object] = {"status": reply.get("status", "answered")}
    receipt = reply.get("receipt")
    if isinstance(receipt, dict):
        out["counts"] = receipt["counts"]
    return out


@pytest.mark.broker
def test_hostile_request_bodies_get_their_expected_replies(
    served: DaemonProcess, amqp_sandbox: AmqpSandbox
) -> None:
    cases = json.loads((CORPUS / "cases.json").read_text())
    assert sorted(cases) == sorted(p.name for p in CORPUS.iterdir() if p.name != "cases.json")
    client = FirmClient(amqp_sandbox, amqp_sandbox.firm_a)
    try:
        sent = {}
        for name, case in cases.items():
            corr = client.send(
                case["type"], (CORPUS / name).read_bytes(), content_type=case["content_type"]
            )
            sent[corr] = name
        replies = client.replies(len(sent), timeout=60)
        got = {sent[p.correlation_id]: summary(json.loads(body)) for p, body in replies}
        assert got == {name: case["expect"] for name, case in cases.items()}
        # still serving: a plain request after the corpus is answered
        corr = client.send("margin.whatif", b'{"positions": []}')
        ((props, body),) = client.replies(1, timeout=30)
        assert props.correlation_id == corr and "INTERNAL_ERROR" not in body.decode()
    finally:
        client.close()
    assert served.proc.poll() is None
    outbound = served.cfg.spool / "firms" / "00005" / "outbound" / "dpl"
    assert b"root:" not in b"".join(p.read_bytes() for p in outbound.glob("*"))
