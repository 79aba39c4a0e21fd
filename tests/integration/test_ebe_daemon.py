"""Exercise by exception through the real daemon: the real sftp client, the real broker, and
every routed request type answered."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.publication.push import push_public_key
from tests.integration.amqp_fixtures import *  # noqa: F403
from tests.integration.amqp_fixtures import (
    AmqpSandbox,
    FirmClient,
    daemon_config_for,
    get_messages,
)
from tests.support.cir import valid_reports
from tests.support.daemon import DaemonProcess, TestConfig, make_test_config, running, wait_for
from tests.support.firm import SFTP, SftpSession, firm_folder, remote_exchange, run_sftp

DATA = Path(__file__).resolve().parents[1] / "data" / "ebe"
EXPIRY_AFTERNOON = "2026-12-18T15:00:00-06:00"
HEADER = "account,symbol,put_call,strike,expiration_date,action,quantity\n"
ROUTED_TYPES = (
    "dpl.submission",
    "pmc.positions",
    "pmc.contracts",
    "margin.whatif",
    "ebe.query",
    "ebe.instruction",
    "dpl.report",
    "no.such.type",
)


def install_set(cfg: TestConfig) -> None:
    """The corpus' base set with firm 00123 renamed to the test firm 00005."""
    folder = cfg.spool / "internal" / "ebe" / "2026-12-18"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("expiring_positions.csv", "closing_prices.csv", "meta.csv"):  # meta last
        text = (DATA / "sets" / "base" / name).read_text().replace("00123", "00005")
        (folder / name).write_text(text)


def sftp_batch(cfg: TestConfig, commands: str) -> None:
    result = run_sftp(cfg, commands)
    assert result.returncode == 0, result.stderr


def test_firm_sends_instructions_and_a_query_over_sftp(tmp_path: Path) -> None:
    if SFTP is None:
        pytest.skip("OpenSSH sftp client not installed")
    cfg = make_test_config(tmp_path)
    install_set(cfg)
    with running(cfg, clock_start=EXPIRY_AFTERNOON) as proc:
        wait_for(
            lambda: proc.metric("posgate_ebe_positions_loaded") == 8.0,
            timeout=30,
            what="expiring set loaded",
        )
        local = tmp_path / "up"
        local.mkdir()
        (local / "dec18.csv").write_text(
            HEADER
            + "ACC1,XYZ,C,45.66,2026-12-18,DO_NOT_EXERCISE,4\n"
            + "ACC1,XYZ,C,45.66,2026-12-18,EXERCISE,11\n"
        )
        (local / "contrary.query.json").write_text(
            json.dumps({"expiration_date": "2026-12-18", "contrary_only": True})
        )
        sftp_batch(cfg, f"put {local}/dec18.csv inbound/ebe/dec18.csv\n")
        out = firm_folder(cfg, "outbound", "ebe")
        wait_for(lambda: (out / "dec18.csv.ebe-receipt.json").exists(), timeout=30, what="receipt")
        sftp_batch(cfg, f"put {local}/contrary.query.json inbound/ebe/contrary.query.json\n")
        wait_for(
            lambda: (out / "contrary.query.json.answer.csv").exists(), timeout=30, what="answer"
        )
        got = tmp_path / "got"
        got.mkdir()
        sftp_batch(
            cfg,
            f"get outbound/ebe/dec18.csv.ebe-receipt.json {got}/\n"
            f"get outbound/ebe/contrary.query.json.answer.csv {got}/\n",
        )
        receipt = json.loads((got / "dec18.csv.ebe-receipt.json").read_text())
        assert [line["status"] for line in receipt["lines"]] == ["accepted", "rejected"]
        assert receipt["lines"][1]["reasons"] == ["QTY_EXCEEDS_LONG"]
        answer = (got / "contrary.query.json.answer.csv").read_text().splitlines()
        assert len(answer) == 2
        assert answer[1].startswith("00005,ACC1,C,XYZ,XYZ,C,45.66,")
        assert ",DO_NOT_EXERCISE,4,6,6.00" in answer[1]
        assert proc.metric("posgate_ebe_instructions_total", {"outcome": "accepted"}) == 1.0


@pytest.fixture
def ebe_daemon(tmp_path: Path, amqp_sandbox: AmqpSandbox) -> Iterator[DaemonProcess]:
    cfg = daemon_config_for(tmp_path, amqp_sandbox)
    password = amqp_sandbox.broker.password
    with running(cfg, clock_start=EXPIRY_AFTERNOON, amqp_password=password) as proc:
        yield proc


@pytest.mark.broker
def test_every_routed_request_type_gets_a_reply(
    ebe_daemon: DaemonProcess, amqp_sandbox: AmqpSandbox
) -> None:
    client = FirmClient(amqp_sandbox, amqp_sandbox.firm_a)
    try:
        sent = {client.send(t, b"{}"): t for t in ROUTED_TYPES}
        replies = client.replies(len(sent), timeout=60)
        answered = {props.correlation_id: json.loads(body) for props, body in replies}
        assert set(answered) == set(sent), sorted(sent[c] for c in set(sent) - set(answered))
        by_type = {sent[c]: doc for c, doc in answered.items()}
        assert by_type["no.such.type"]["error"]["reason"] == "UNKNOWN_TYPE"
        assert by_type["ebe.query"]["error"]["reason"] == "MISSING_FIELD"
    finally:
        client.close()


@pytest.mark.broker
def test_instruction_and_query_over_amqp_with_events(
    ebe_daemon: DaemonProcess, amqp_sandbox: AmqpSandbox
) -> None:
    box = amqp_sandbox
    admin = box.admin()
    events = admin.channel()
    events.queue_declare("test.ebe.events.00005", exclusive=False)
    events.queue_bind("test.ebe.events.00005", "posgate.events", "firm.00005.ebe.#")
    install_set(ebe_daemon.cfg)
    client = FirmClient(box, box.firm_a)
    try:
        ready = get_messages(box, "test.ebe.events.00005", 1, timeout=30)
        assert ready[0][0].routing_key == "firm.00005.ebe.ready"
        body = {
            "instructions": [
                {
                    "account": "ACC2",
                    "symbol": "ABC",
                    "put_call": "P",
                    "strike": "20",
                    "expiration_date": "2026-12-18",
                    "action": "EXERCISE",
                    "quantity": 3,
                },
                {"account": "ACC2", "symbol": "ABC"},
            ]
        }
        client.send("ebe.instruction", json.dumps(body).encode())
        receipt = json.loads(client.replies(1, timeout=30)[0][1])
        assert [line["status"] for line in receipt["lines"]] == ["accepted", "rejected"]
        assert receipt["lines"][1]["reasons"] == ["MISSING_FIELD"]
        query = {"expiration_date": "2026-12-18", "account": "ACC2", "symbol": "ABC"}
        client.send("ebe.query", json.dumps(query).encode())
        doc = json.loads(client.replies(1, timeout=30)[0][1])
        assert doc["status"] == "provisional"
        [row] = doc["rows"]
        assert (row["contrary_action"], row["final_exercise_qty"], row["dollar_extension"]) == (
            "EXERCISE",
            3,
            "-1500.00",
        )
        got = get_messages(box, "test.ebe.events.00005", 1, timeout=20)
        assert got[0][0].routing_key == "firm.00005.ebe.instruction"
    finally:
        client.close()
        admin.close()


CUTOFF_CLOCK_START = "2026-12-18T16:29:35-06:00"
CT = dt.timezone(dt.timedelta(hours=-6))


def test_instruction_cutoff_on_the_live_daemon_one_second_either_side(tmp_path: Path) -> None:
    """The daemon's clock starts at 16:29:35 CT on the expiration day (``POSGATE_CLOCK_START``)
    and runs at real speed. On one open sftp connection, a probe upload tells the daemon's time
    (the receipt instant is the server's close of the upload); the next two uploads are then
    sent to close at 16:29:59.5 and 16:30:01.5: the first is accepted, the second rejected
    AFTER_CUTOFF, and the exchanges' file published at the cutoff carries only the first, in
    the spool for XCBO and pushed to the SFTP server of an ``sftp://`` exchange."""
    if SFTP is None:
        pytest.skip("OpenSSH sftp client not installed")
    cfg = make_test_config(tmp_path)
    install_set(cfg)
    local = tmp_path / "up"
    local.mkdir()
    (local / "empty.csv").write_text(HEADER)
    (local / "before.csv").write_text(HEADER + "ACC2,ABC,P,20,2026-12-18,EXERCISE,3\n")
    (local / "after.csv").write_text(HEADER + "ACC1,XYZ,C,45.66,2026-12-18,DO_NOT_EXERCISE,4\n")
    out = firm_folder(cfg, "outbound", "ebe")

    def receipt(name: str) -> dict:
        path = out / f"{name}.ebe-receipt.json"
        wait_for(path.exists, timeout=30, what=f"receipt of {name}")
        return json.loads(path.read_text())

    def received(doc: dict) -> dt.datetime:
        return dt.datetime.fromisoformat(doc["received_at"]).astimezone(CT)

    with contextlib.ExitStack() as stack:
        # The remote exchange: a second embedded server whose firm-kind account plays the drop
        # folder (exchange accounts are read-only), with the daemon's push key authorized.
        remote = stack.enter_context(remote_exchange(tmp_path))
        remote.keys.append(push_public_key(load_config(cfg.path))[1])
        exchanges = cfg.root / "config" / "reference" / "exchanges.csv"
        exchanges.write_text(exchanges.read_text() + f"XREM,Remote Exchange,N,{remote.url},Y\n")
        proc = stack.enter_context(running(cfg, clock_start=CUTOFF_CLOCK_START))
        wait_for(
            lambda: proc.metric("posgate_ebe_positions_loaded") == 8.0,
            timeout=30,
            what="expiring set loaded",
        )
        with SftpSession(cfg) as session:
            session.command(f"put {local}/empty.csv inbound/ebe/warmup.csv")
            receipt("warmup.csv")  # connected and logged in: later puts pay no handshake
            sent = time.monotonic()
            session.command(f"put {local}/empty.csv inbound/ebe/probe.csv")
            probe = received(receipt("probe.csv"))
            assert probe < dt.datetime(2026, 12, 18, 16, 29, 55, tzinfo=CT), (
                f"the daemon started too slowly to aim before the cutoff (probe at {probe})"
            )

            def put_at(target: dt.datetime, name: str) -> dict:
                time.sleep(max(0.0, sent + (target - probe).total_seconds() - time.monotonic()))
                session.command(f"put {local}/{name} inbound/ebe/{name}")
                return receipt(name)

            before = put_at(dt.datetime(2026, 12, 18, 16, 29, 59, 500000, tzinfo=CT), "before.csv")
            after = put_at(dt.datetime(2026, 12, 18, 16, 30, 1, 500000, tzinfo=CT), "after.csv")

        assert received(before).strftime("%H:%M:%S") == "16:29:59", before["received_at"]
        assert [(line["status"], line["reasons"]) for line in before["lines"]] == [("accepted", [])]
        assert received(after).strftime("%H:%M:%S") == "16:30:01", after["received_at"]
        assert [(line["status"], line["reasons"]) for line in after["lines"]] == [
            ("rejected", ["AFTER_CUTOFF"])
        ]
        assert (
            proc.metric("posgate_ebe_instruction_rejects_total", {"reason": "AFTER_CUTOFF"}) == 1.0
        )

        cir = cfg.spool / "exchanges" / "XCBO" / "outbound" / "ebe" / "CIR_20261218.fixml"
        wait_for(lambda: cir.with_name(cir.name + ".sha256").exists(), timeout=30, what="CIR file")
        [report] = valid_reports(cir.read_bytes())
        instrument = report.find("{*}Instrmt")
        assert (instrument.get("Sym"), instrument.get("PutCall"), instrument.get("StrkPx")) == (
            "ABC",
            "0",
            "20.00",
        )
        assert report.get("TxnTm") == received(before).astimezone(dt.UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        drop = remote.drop
        wait_for(lambda: (drop / f"{cir.name}.sha256").exists(), timeout=30, what="CIR push")
        assert (drop / cir.name).read_bytes() == cir.read_bytes()
        wait_for(  # the gauge drops right after the push, once the delivery is recorded
            lambda: proc.metric("posgate_ebe_publication_late", {"exchange": "XREM"}) == 0.0,
            timeout=10,
            what="XREM no longer late",
        )
