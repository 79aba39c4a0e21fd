"""Portfolio margin through the real daemon: SFTP upload -> results; AMQP what-if and positions;
the real ``posgate worker`` serving what-if as a competing consumer."""

from __future__ import annotations

import ast
import csv
import dataclasses
import io
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.amqp_fixtures import *  # noqa: F403
from tests.integration.amqp_fixtures import AmqpSandbox, FirmClient, daemon_config_for
from tests.integration.test_dpl_flow_sftp import sftp_put
from tests.support.daemon import REPO, DaemonProcess, wait_for

SAMPLES = REPO / "config" / "samples" / "pmc"
THEO_DAY = "2026-11-20"
SPX_CALL = {
    "account": "CUST01",
    "account_type": "C",
    "symbol": "SPX",
    "security_type": "O",
    "put_call": "C",
    "series_date": "20261218",
    "strike": "6000",
    "exercise_style": "E",
}


def _scrape(port: int) -> str:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            return str(r.read().decode())
    except OSError:
        return ""


def expected_requirement(positions: Path) -> float:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "margin",
            "--theo",
            str(SAMPLES / "theo" / THEO_DAY),
            "--positions",
            str(positions),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    return float(json.loads(result.stdout)["firms"][0]["requirement"])


@pytest.mark.skipif(shutil.which("sftp") is None, reason="OpenSSH sftp client missing")
def test_position_file_waits_for_a_theo_set_then_gets_results(daemon: DaemonProcess) -> None:
    cfg = daemon.cfg
    sftp_put(cfg, SAMPLES / "positions.csv", "inbound/pmc")
    outbound = cfg.spool / "firms" / "00005" / "outbound" / "pmc"
    wait_for(lambda: "no theoretical P&L set" in daemon.log(), what="waiting for a theo set")
    assert not (outbound / "positions.csv.results.csv").exists()
    # the risk system drops a set: files first, meta.csv last
    target = cfg.spool / "internal" / "theo" / THEO_DAY
    target.mkdir(parents=True)
    for part in sorted(p for p in (SAMPLES / "theo" / THEO_DAY).iterdir() if p.name != "meta.csv"):
        shutil.copy(part, target / part.name)
    shutil.copy(SAMPLES / "theo" / THEO_DAY / "meta.csv", target / "meta.csv")
    wait_for(
        lambda: (outbound / "positions.csv.summary.csv").exists(),
        timeout=90,
        what="margin outputs after the theo set landed",
    )
    summary = (outbound / "positions.csv.summary.csv").read_text()
    assert f"{expected_requirement(SAMPLES / 'positions.csv'):.2f}" in summary
    errors = list(csv.DictReader(io.StringIO((outbound / "positions.csv.errors.csv").read_text())))
    assert len(errors) >= 2  # the sample's rejected line and its invalid series
    assert (outbound / "positions.csv.results.csv").stat().st_size > 0
    wait_for(
        lambda: daemon.metric("posgate_records_valid_total", {"flow": "pmc"}) == 15.0,
        what="pmc metrics",
    )


@dataclasses.dataclass(frozen=True)
class ReadmeExample:
    type: str
    body: bytes


def readme_amqp_examples() -> list[ReadmeExample]:
    """The JSON requests of the README's AMQP section: every ``routing_key="request.<type>"``
    of a Python example, with the ``body = {...}`` line above it."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    start = readme.index("## AMQP: requests, replies and events over RabbitMQ")
    section = readme[start : readme.index("\n## ", start + 10)]
    found = []
    for block in re.findall(r"```python\n(.*?)```", section, flags=re.S):
        bodies = re.findall(r"^body = (\{.*\})", block, flags=re.M)
        types = re.findall(r'routing_key="request\.([a-z.]+)"', block)
        for body, request_type in zip(bodies, types, strict=True):
            found.append(ReadmeExample(request_type, json.dumps(ast.literal_eval(body)).encode()))
    assert found, "the README's AMQP section has no example request"
    return found


@pytest.fixture
def pmc_amqp_daemon(tmp_path: Path, amqp_sandbox: AmqpSandbox) -> Iterator[DaemonProcess]:
    cfg = daemon_config_for(tmp_path, amqp_sandbox)
    shutil.copytree(SAMPLES / "theo" / THEO_DAY, cfg.spool / "internal" / "theo" / THEO_DAY)
    proc = DaemonProcess(cfg, env={"POSGATE_AMQP_PASSWORD": amqp_sandbox.broker.password})
    try:
        proc.wait_ready()
        wait_for(lambda: proc.metric("posgate_amqp_up") == 1.0, timeout=30, what="AMQP up")
        yield proc
    finally:
        assert proc.stop() == 0


@pytest.mark.broker
def test_whatif_and_positions_over_amqp(
    pmc_amqp_daemon: DaemonProcess, amqp_sandbox: AmqpSandbox
) -> None:
    client = FirmClient(amqp_sandbox, amqp_sandbox.firm_a)
    try:
        short = {**SPX_CALL, "quantity": -10}
        hedge = {**SPX_CALL, "strike": "6200", "quantity": 10}
        client.send("margin.whatif", json.dumps({"positions": [short, hedge]}).encode())
        reply = json.loads(client.replies(1, timeout=30)[0][1])
        assert "error" not in reply, reply
        assert reply["requirement"] > 0
        assert len(reply["positions"]) == 2
        alone = {**SPX_CALL, "quantity": -10}
        client.send("margin.whatif", json.dumps({"positions": [alone]}).encode())
        reply_alone = json.loads(client.replies(1, timeout=30)[0][1])
        # the long call hedges the short one: the pair needs less than the short alone
        assert reply["requirement"] < reply_alone["requirement"]
        # the firm of every row is the caller's own, whatever the body says
        client.send(
            "margin.whatif", json.dumps({"positions": [{**alone, "firm": "00352"}]}).encode()
        )
        forged = json.loads(client.replies(1, timeout=30)[0][1])
        assert forged["requirement"] == reply_alone["requirement"]
        assert [a["firm"] for a in forged["accounts"]] == ["00005"]
        client.send("margin.whatif", b'{"positions": "nope"}')
        bad = json.loads(client.replies(1, timeout=30)[0][1])
        assert bad["error"]["reason"] == "LAYOUT"
        # not one position can be priced (no such series in the set): an error, not 0.0
        nowhere = {**SPX_CALL, "strike": "123456", "quantity": 1}
        client.send("margin.whatif", json.dumps({"positions": [nowhere]}).encode())
        props, payload = client.replies(1, timeout=30)[0]
        assert json.loads(payload)["error"]["reason"] == "NO_VALID_POSITION", payload
        assert props.headers["posgate-outcome"] == "rejected"
        # the message names the JSON key, not the 346 field
        client.send(
            "margin.whatif",
            json.dumps({"positions": [{"account": "A", "symbol": "SPX", "quantity": 1}]}).encode(),
        )
        missing = json.loads(client.replies(1, timeout=30)[0][1])["error"]
        assert missing["reason"] == "MISSING_FIELD", missing
        assert "security_type" in missing["message"], missing
        for example in readme_amqp_examples():
            client.send(example.type, example.body)
            props, payload = client.replies(1, timeout=30)[0]
            assert props.headers["posgate-outcome"] == "ok", (example, payload)

        # the contracts list: the reply (and the request) checked against their schemas
        client.send(
            "pmc.contracts",
            json.dumps({"account_type": "C", "underlying": "SPX", "put_call": "P"}).encode(),
        )
        listed = json.loads(client.replies(1, timeout=30)[0][1])
        assert listed["theo_date"] == THEO_DAY and listed["count"] == len(listed["contracts"]) > 0
        assert {(c["underlying"], c["put_call"]) for c in listed["contracts"]} == {("SPX", "P")}
        client.send("pmc.contracts", json.dumps({"account_type": "C"}).encode())
        refused = json.loads(client.replies(1, timeout=30)[0][1])
        assert refused["error"]["reason"] == "MISSING_FILTER", refused

        body = (SAMPLES / "positions.csv").read_bytes()
        client.send("pmc.positions", body, content_type="text/csv")
        result = json.loads(client.replies(1, timeout=60)[0][1])
        assert result["status"] == "processed", result
        assert result["result"]["counts"]["accepted"] == 15
        assert result["result"]["requirement"] == pytest.approx(
            expected_requirement(SAMPLES / "positions.csv"), abs=0.01
        )
        outbound = pmc_amqp_daemon.cfg.spool / "firms" / "00005" / "outbound" / "pmc"
        assert len(list(outbound.glob("*.results.csv"))) == 1
    finally:
        client.close()


@pytest.mark.broker
def test_worker_process_serves_whatif(tmp_path: Path, amqp_sandbox: AmqpSandbox) -> None:
    cfg = daemon_config_for(tmp_path, amqp_sandbox)
    shutil.copytree(SAMPLES / "theo" / THEO_DAY, cfg.spool / "internal" / "theo" / THEO_DAY)
    log = open(cfg.root / "worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "--config",
            str(cfg.path),
            "worker",
            "--metrics-port",
            str(cfg.metrics_port),
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**__import__("os").environ, "POSGATE_AMQP_PASSWORD": amqp_sandbox.broker.password},
    )
    client = FirmClient(amqp_sandbox, amqp_sandbox.firm_a)
    try:
        wait_for(
            lambda: "posgate_amqp_up 1.0" in _scrape(cfg.metrics_port),
            timeout=30,
            what="worker connected",
        )
        for _ in range(5):
            client.send(
                "margin.whatif", json.dumps({"positions": [{**SPX_CALL, "quantity": -3}]}).encode()
            )
        replies = [json.loads(b) for _, b in client.replies(5, timeout=30)]
        assert len(replies) == 5
        assert all(r.get("requirement", 0) > 0 for r in replies), replies[0]
    finally:
        client.close()
        worker.terminate()
        assert worker.wait(timeout=30) == 0
        log.close()
