"""DPL arrival through the real daemon and the real OpenSSH sftp client."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.ledger import Ledger
from tests.support.daemon import DaemonProcess, TestConfig, make_test_config, running, wait_for
from tests.support.dpl_records import posrpt
from tests.support.firm import SFTP, drop_file, firm_folder, quoted, run_sftp

FRIDAY_AFTERNOON = "2026-11-20T15:00:00-06:00"  # cycle 2026-11-20, BizDt 2026-11-19 or -20


def sftp_put(
    cfg: TestConfig,
    local: Path,
    remote_dir: str = "inbound/dpl",
    *,
    preserve: bool = False,
    remote_name: str | None = None,
) -> None:
    """Upload with the OpenSSH client; ``preserve`` is ``put -p`` (the local times are sent)."""
    flag = "-p " if preserve else ""
    target = f"{remote_dir}/{remote_name or local.name}"
    result = run_sftp(cfg, f"put {flag}{quoted(str(local))} {quoted(target)}\n")
    assert result.returncode == 0, result.stderr


@pytest.fixture
def clocked_daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    if SFTP is None:
        pytest.skip("OpenSSH sftp client not installed")
    cfg = make_test_config(tmp_path)
    with running(cfg, clock_start=FRIDAY_AFTERNOON, clean_exit=False) as proc:
        yield proc


def test_mixed_file_gives_byte_identical_rejects_and_receipt(
    clocked_daemon: DaemonProcess, tmp_path: Path
) -> None:
    cfg = clocked_daemon.cfg
    lines = [
        posrpt("2026-11-20", sym="GOOG"),
        posrpt("2026-11-18", sym="IBM"),  # BIZDT_OUT_OF_RANGE
        b"<FIXML><PosRpt BizDt='2026-11-20'>  broken",  # MALFORMED
        posrpt("2026-11-19", sym="AAPL", qty='Long="5" Short="7"'),  # LONG_AND_SHORT
        posrpt("2026-11-19", sym="MSFT", qty='Short="500"'),
        posrpt("2026-11-20", firm="00352", sym="TSLA"),  # NOT_ENTITLED
    ]
    upload = tmp_path / "positions-2026-11-20.fixml"
    upload.write_bytes(b"\r\n".join(lines) + b"\r\n")
    sftp_put(cfg, upload)
    outbound = firm_folder(cfg, "outbound", "dpl")
    receipt_path = outbound / "positions-2026-11-20.fixml.receipt.json"
    wait_for(receipt_path.exists, timeout=20, what="receipt")
    receipt = json.loads(receipt_path.read_text())
    assert receipt["cycle"] == "2026-11-20"
    assert receipt["counts"] == {"total": 6, "valid": 2, "rejected": 4}
    assert receipt["superseded"] is None
    assert receipt["sha256"] == __import__("hashlib").sha256(upload.read_bytes()).hexdigest()
    rejects = (outbound / "positions-2026-11-20.fixml.rejects.fixml").read_bytes()
    assert rejects == b"\r\n".join([lines[1], lines[2], lines[3], lines[5]]) + b"\r\n"
    assert b"BIZDT" not in rejects  # no error text goes back to the firm
    wait_for(
        lambda: (
            clocked_daemon.metric("posgate_dpl_rejected_records_total", {"reason": "NOT_ENTITLED"})
            == 1.0
        ),
        what="metric",
    )
    assert clocked_daemon.metric("posgate_records_valid_total", {"flow": "dpl"}) == 2.0
    assert (
        clocked_daemon.metric("posgate_files_received_total", {"flow": "dpl", "firm": "00005"})
        == 1.0
    )

    # A second file for the same cycle supersedes the first.
    second = tmp_path / "positions-fix.fixml"
    second.write_bytes(posrpt("2026-11-20", sym="NFLX") + b"\n")
    sftp_put(cfg, second)
    receipt2_path = outbound / "positions-fix.fixml.receipt.json"
    wait_for(receipt2_path.exists, timeout=20, what="second receipt")
    receipt2 = json.loads(receipt2_path.read_text())
    assert receipt2["counts"] == {"total": 1, "valid": 1, "rejected": 0}
    assert receipt2["superseded"]["file"] == "positions-2026-11-20.fixml"
    assert not (outbound / "positions-fix.fixml.rejects.fixml").exists()
    ledger = Ledger(cfg.spool / "state" / "ledger.sqlite3")
    try:
        current = [
            values[0] for values in ledger.iter_publishable_dpl_values("2026-11-20", ["symbol"])
        ]
        assert current == ["NFLX"]
        first, second = ledger.files(flow="dpl")
        assert len(ledger.dpl_records_for_file(first.id)) == 6  # kept, marked superseded
        assert ledger.file(first.id).state == "archived"
        superseded_by = (
            ledger.connect()
            .execute("SELECT superseded_by FROM files WHERE id = ?", (first.id,))
            .fetchone()[0]
        )
        assert superseded_by == second.id
    finally:
        ledger.close()


def test_unreadable_upload_is_quarantined_and_alerted(
    clocked_daemon: DaemonProcess, tmp_path: Path
) -> None:
    cfg = clocked_daemon.cfg
    junk = tmp_path / "garbage.fixml"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00binary")
    sftp_put(cfg, junk)
    wait_for(lambda: list((cfg.spool / "quarantine").glob("*.reason.json")), what="quarantine")
    reason = json.loads(next((cfg.spool / "quarantine").glob("*.reason.json")).read_text())
    assert reason["firm"] == "00005" and reason["file"] == "garbage.fixml"
    assert "clearing-ops@gs.example" in reason["technical_contact"]
    # no records come back (none could be read), only the notice of the unreadable file
    outbound = firm_folder(cfg, "outbound", "dpl")
    assert [p.name for p in outbound.iterdir()] == ["garbage.fixml.unreadable.json"]
    wait_for(lambda: "file_quarantined" in clocked_daemon.log(), what="alert logged")
    assert "clearing-ops@gs.example" in clocked_daemon.log()
    assert (
        clocked_daemon.metric("posgate_files_quarantined_total", {"flow": "dpl", "firm": "00005"})
        == 1.0
    )


def test_a_hostile_file_name_cannot_forge_log_fields(
    clocked_daemon: DaemonProcess, tmp_path: Path
) -> None:
    from tests.unit.gateway.test_logs import parse_kv

    cfg = clocked_daemon.cfg
    hostile = tmp_path / 'evil" level=CRITICAL x="y.fixml'
    hostile.write_bytes(b"not xml at all")
    sftp_put(cfg, hostile)
    wait_for(lambda: "evil" in clocked_daemon.log(), what="the upload logged")
    wait_for(lambda: list((cfg.spool / "quarantine").glob("*.reason.json")), what="quarantine")
    lines = [line for line in clocked_daemon.log().splitlines() if "evil" in line]
    assert lines
    for line in lines:
        fields = parse_kv(line)  # the whole line is key=value pairs, each key once
        assert fields["level"] in ("INFO", "WARNING", "ERROR"), line
        assert "x" not in fields, line
    assert any(
        fields.get("path", "").endswith('evil" level=CRITICAL x="y.fixml')
        for fields in map(parse_kv, lines)
    )


@pytest.mark.parametrize(
    "clock, cycle",
    [
        ("2026-11-19T23:59:58-06:00", "2026-11-19"),  # Thursday, just before midnight CT
        ("2026-11-20T00:00:01-06:00", "2026-11-20"),  # one second after midnight CT
        ("2026-11-21T10:00:00-06:00", "2026-11-23"),  # Saturday -> Monday's cycle
    ],
)
def test_cycle_assignment_with_an_injected_clock(tmp_path: Path, clock: str, cycle: str) -> None:
    cfg = make_test_config(tmp_path)
    with running(cfg, clock_start=clock):
        drop_file(cfg, "drop.fixml", posrpt(cycle) + b"\n")
        receipt = firm_folder(cfg, "outbound", "dpl") / "drop.fixml.receipt.json"
        wait_for(receipt.exists, timeout=20, what="receipt")
        data = json.loads(receipt.read_text())
        assert data["cycle"] == cycle
        assert data["counts"]["valid"] == 1


def test_kill9_between_claim_and_archive_then_restart_processes_once(tmp_path: Path) -> None:
    cfg = make_test_config(tmp_path)
    env = {"POSGATE_CLOCK_START": FRIDAY_AFTERNOON}
    inbound = firm_folder(cfg, "inbound", "dpl")
    inbound.mkdir(parents=True)
    big = b"\n".join(posrpt("2026-11-20", unit=f"AU{i}") for i in range(60000)) + b"\n"
    for i in range(3):
        (inbound / f"batch{i}.fixml").write_bytes(big.replace(b"AU", f"U{i}-".encode()))
    proc = DaemonProcess(cfg, env=env)
    proc.wait_ready()
    ledger = Ledger(cfg.spool / "state" / "ledger.sqlite3")
    try:
        wait_for(lambda: ledger.files(), timeout=20, what="a claim")
        proc.kill9()
        assert any(f.state != "archived" for f in ledger.files()) or len(ledger.files()) < 3
        proc = DaemonProcess(cfg, env=env)
        proc.wait_ready()
        wait_for(
            lambda: len(ledger.files(state="archived")) == 3, timeout=90, what="all three archived"
        )
        for row in ledger.files():
            records = ledger.dpl_records_for_file(row.id)
            assert len(records) == 60000 and len({r["line"] for r in records}) == 60000
        assert not list(inbound.iterdir())
        assert not list((cfg.spool / "work").rglob("*.fixml"))
        outbound = firm_folder(cfg, "outbound", "dpl")
        assert sorted(p.name for p in outbound.iterdir()) == [
            f"batch{i}.fixml.receipt.json" for i in range(3)
        ]
    finally:
        ledger.close()
        proc.signal(signal.SIGTERM)
        proc.stop()


def test_upload_killed_halfway_is_never_processed(clocked_daemon: DaemonProcess) -> None:
    import time

    import paramiko

    cfg = clocked_daemon.cfg
    key = paramiko.Ed25519Key.from_private_key_file(str(cfg.firm_key))
    transport = paramiko.Transport(("127.0.0.1", cfg.sftp_port))
    transport.connect(username="00005", pkey=key)
    client = paramiko.SFTPClient.from_transport(transport)
    assert client is not None
    handle = client.open("inbound/dpl/half.fixml", "wb")
    handle.write(posrpt("2026-11-20") + b"\n" + b"<FIXML><PosRpt BizDt=")
    time.sleep(0.5)
    transport.close()  # the connection drops before the client closes the file
    time.sleep(3.0)  # longer than the stable interval and a sweep
    inbound = firm_folder(cfg, "inbound", "dpl")
    # only the hidden partial kept for a resume, which the intake never takes
    assert [p.name for p in inbound.iterdir()] == [".half.fixml.partial"]
    assert not list(firm_folder(cfg, "outbound", "dpl").iterdir())
    ledger = Ledger(cfg.spool / "state" / "ledger.sqlite3")
    try:
        assert ledger.files() == []
    finally:
        ledger.close()


def test_a_file_over_the_record_limit_is_quarantined_whole(tmp_path: Path) -> None:
    cfg = make_test_config(tmp_path, dpl={"max_records": 3})
    with running(cfg, clock_start=FRIDAY_AFTERNOON):
        outbound = firm_folder(cfg, "outbound", "dpl")
        for name, count in (("three.fixml", 3), ("four.fixml", 4)):
            body = b"\n".join(posrpt("2026-11-20", sym=f"S{n}") for n in range(count)) + b"\n"
            drop_file(cfg, name, body)
        # the same limit for a Batch document, read as a stream
        children = b"\n".join(
            posrpt("2026-11-20", sym=f"B{n}")[len(b"<FIXML>") : -len(b"</FIXML>")] for n in range(4)
        )
        drop_file(cfg, "batch.fixml", b"<FIXML>\n<Batch>\n" + children + b"\n</Batch>\n</FIXML>\n")
        wait_for(lambda: (outbound / "three.fixml.receipt.json").exists(), what="receipt")
        wait_for(
            lambda: (outbound / "four.fixml.unreadable.json").exists(), what="unreadable notice"
        )
        notice = json.loads((outbound / "four.fixml.unreadable.json").read_text())
        assert notice["reason"] == "TOO_MANY_RECORDS"
        assert "more than 3 records" in notice["message"] and "line 4" in notice["message"]
        assert not (outbound / "four.fixml.receipt.json").exists()
        assert not list(outbound.glob("four.fixml.rejects*"))
        wait_for(lambda: (outbound / "batch.fixml.unreadable.json").exists(), what="Batch notice")
        notice = json.loads((outbound / "batch.fixml.unreadable.json").read_text())
        assert notice["reason"] == "TOO_MANY_RECORDS" and "line 6" in notice["message"]
    ledger = Ledger(cfg.spool / "state" / "ledger.sqlite3")
    try:
        by_name = {row.name: row for row in ledger.files()}
        assert by_name["four.fixml"].state == "quarantined"
        assert ledger.staged_dpl_rows(by_name["four.fixml"].id) == 0
        assert len(ledger.dpl_records_for_file(by_name["three.fixml"].id)) == 3
        assert by_name["batch.fixml"].state == "quarantined"
        assert ledger.staged_dpl_rows(by_name["batch.fixml"].id) == 0
    finally:
        ledger.close()
