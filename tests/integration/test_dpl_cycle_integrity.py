"""DPL cycle integrity through the real daemon and the real OpenSSH ``sftp`` client: the server's
clock decides the cycle, a re-sent file is a new submission, every upload is answered, outputs
never collide, and a published cycle is exactly what the exchanges received."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gateway.ledger import Ledger
from tests.integration.test_dpl_flow_sftp import sftp_put
from tests.support.daemon import REPO, DaemonProcess, TestConfig, make_test_config, wait_for
from tests.support.dpl_records import posrpt

pytestmark = pytest.mark.skipif(shutil.which("sftp") is None, reason="OpenSSH sftp missing")
CT = dt.timezone(dt.timedelta(hours=-6))  # Chicago in November
FRIDAY_AFTERNOON = "2026-11-20T15:00:00-06:00"  # cycle 2026-11-20
TEN_DAYS_AGO = dt.datetime(2026, 11, 10, 12, 0, tzinfo=CT).timestamp()  # a published cycle
NEXT_MONTH = dt.datetime(2026, 12, 21, 12, 0, tzinfo=CT).timestamp()


def outbound(cfg: TestConfig) -> Path:
    return cfg.spool / "firms" / "00005" / "outbound" / "dpl"


def receipt(cfg: TestConfig, base: str) -> dict[str, object]:
    path = outbound(cfg) / f"{base}.receipt.json"
    wait_for(path.exists, timeout=20, what=f"{path.name}")
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def cli(cfg: TestConfig, *args: str, clock: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **({"POSGATE_CLOCK_START": clock} if clock else {})}
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "--config", str(cfg.path), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        env=env,
    )


def test_client_times_never_move_an_upload_into_another_cycle(tmp_path: Path) -> None:
    cfg = make_test_config(tmp_path)
    daemon = DaemonProcess(cfg, env={"POSGATE_CLOCK_START": FRIDAY_AFTERNOON})
    try:
        daemon.wait_ready()
        old = tmp_path / "old.fixml"
        old.write_bytes(posrpt("2026-11-20", sym="OLD") + b"\n")
        os.utime(old, (TEN_DAYS_AGO, TEN_DAYS_AGO))
        future = tmp_path / "future.fixml"
        future.write_bytes(posrpt("2026-11-20", sym="NEW") + b"\n")
        os.utime(future, (NEXT_MONTH, NEXT_MONTH))
        sftp_put(cfg, old, preserve=True)
        sftp_put(cfg, future, preserve=True)
        start = dt.datetime.fromisoformat(FRIDAY_AFTERNOON)
        for base in ("old.fixml", "future.fixml"):
            got = receipt(cfg, base)
            assert got["cycle"] == "2026-11-20", got
            received = dt.datetime.fromisoformat(str(got["received_at"]))
            assert start <= received < start + dt.timedelta(minutes=1)
            assert got["counts"] == {"total": 1, "valid": 1, "rejected": 0}
        # the same through a writer other than the embedded server: a file dropped in place
        inbound = cfg.spool / "firms" / "00005" / "inbound" / "dpl"
        (inbound / ".dropped.tmp").write_bytes(posrpt("2026-11-20", sym="DROP") + b"\n")
        os.utime(inbound / ".dropped.tmp", (TEN_DAYS_AGO, TEN_DAYS_AGO))
        (inbound / ".dropped.tmp").rename(inbound / "dropped.fixml")
        assert receipt(cfg, "dropped.fixml")["cycle"] == "2026-11-20"
    finally:
        assert daemon.stop() == 0


def test_upload_closed_at_235958_stays_in_its_cycle_and_after_midnight_goes_to_the_next(
    tmp_path: Path,
) -> None:
    cfg = make_test_config(tmp_path)
    origin = dt.datetime(2026, 11, 20, 23, 59, 50, tzinfo=CT)
    spawned = time.monotonic()
    daemon = DaemonProcess(cfg, env={"POSGATE_CLOCK_START": origin.isoformat()})
    try:
        daemon.wait_ready()
        ready = time.monotonic()
        late = tmp_path / "late.fixml"
        late.write_bytes(posrpt("2026-11-19") + b"\n")  # valid in cycle 2026-11-20 only
        sftp_put(cfg, late, preserve=True)
        # the daemon's clock began after the spawn, so it reads at most origin + elapsed
        if time.monotonic() - spawned >= 9.5:
            pytest.skip("the machine is too slow to upload before the injected midnight")
        got = receipt(cfg, "late.fixml")
        assert got["cycle"] == "2026-11-20" and got["counts"]["valid"] == 1  # type: ignore[index]
        assert dt.datetime.fromisoformat(str(got["received_at"])) < origin + dt.timedelta(
            seconds=10
        )
        # ... and once the daemon's clock has surely passed midnight (it began before `ready`)
        time.sleep(max(0.0, 11.0 - (time.monotonic() - ready)))
        sftp_put(cfg, late, preserve=True, remote_name="after.fixml")
        after = receipt(cfg, "after.fixml")
        assert after["cycle"] == "2026-11-23"  # Saturday: Monday's cycle
        assert after["counts"] == {"total": 1, "valid": 0, "rejected": 1}  # BizDt is now stale
        reasons = (outbound(cfg) / "after.fixml.reasons.csv").read_text()
        assert "1,BIZDT_OUT_OF_RANGE,BizDt,2026-11-19," in reasons
    finally:
        assert daemon.stop() == 0


def test_resending_a_file_makes_it_the_latest_and_names_never_collide(tmp_path: Path) -> None:
    cfg = make_test_config(tmp_path)
    daemon = DaemonProcess(cfg, env={"POSGATE_CLOCK_START": FRIDAY_AFTERNOON})
    try:
        daemon.wait_ready()
        a = tmp_path / "a.fixml"
        a.write_bytes(
            posrpt("2026-11-20", sym="AAA")
            + b"\n"
            + posrpt("2026-11-20", sym="BAD", qty='Long="1" Short="2"')
            + b"\n"
        )
        b = tmp_path / "b.fixml"
        b.write_bytes(posrpt("2026-11-20", sym="BBB") + b"\n")
        sftp_put(cfg, a)
        first = receipt(cfg, "a.fixml")
        sftp_put(cfg, b)
        assert receipt(cfg, "b.fixml")["superseded"]["file"] == "a.fixml"  # type: ignore[index]
        sftp_put(cfg, a)  # a again, same bytes, same name, outputs of the first still there
        again = receipt(cfg, "a.fixml.2")
        assert again["superseded"]["file"] == "b.fixml"  # type: ignore[index]
        assert again["identical_to"]["file"] == "a.fixml"  # type: ignore[index]
        assert again["counts"] == first["counts"] == {"total": 2, "valid": 1, "rejected": 1}
        assert receipt(cfg, "a.fixml") == first  # the unfetched outputs are untouched
        assert (outbound(cfg) / "a.fixml.rejects.fixml").exists()
        assert (outbound(cfg) / "a.fixml.2.rejects.fixml").read_bytes() == a.read_bytes().split(
            b"\n"
        )[1] + b"\n"
        # same stem, other extension: its own outputs, nothing of a.fixml's is touched
        same_xml = tmp_path / "a.xml"
        same_xml.write_bytes(posrpt("2026-11-20", sym="XML") + b"\n")
        sftp_put(cfg, same_xml)
        assert receipt(cfg, "a.xml")["rejects_file"] is None
        assert (outbound(cfg) / "a.fixml.2.rejects.fixml").exists()
        # once the firm fetched and removed the outputs, the plain name is free again
        for name in os.listdir(outbound(cfg)):
            if name.startswith("b.fixml."):
                os.unlink(outbound(cfg) / name)
        sftp_put(cfg, b)
        assert receipt(cfg, "b.fixml")["superseded"]["file"] == "a.xml"  # type: ignore[index]
        ledger = Ledger(cfg.spool / "state" / "ledger.sqlite3")
        try:
            symbols = [v[0] for v in ledger.iter_publishable_dpl_values("2026-11-20", ["symbol"])]
        finally:
            ledger.close()
        assert symbols == ["BBB"]
    finally:
        assert daemon.stop() == 0


def test_an_unreadable_upload_is_answered_to_the_firm(tmp_path: Path) -> None:
    cfg = make_test_config(tmp_path)
    daemon = DaemonProcess(cfg, env={"POSGATE_CLOCK_START": FRIDAY_AFTERNOON})
    try:
        daemon.wait_ready()
        junk = tmp_path / "scan.fixml"
        junk.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
        sftp_put(cfg, junk)
        notice = outbound(cfg) / "scan.fixml.unreadable.json"
        wait_for(notice.exists, timeout=20, what="unreadable notice")
        doc = json.loads(notice.read_text())
        assert doc["file"] == "scan.fixml" and doc["processed"] is False
        assert doc["sha256"] == hashlib.sha256(junk.read_bytes()).hexdigest()
        assert doc["reason"] and "upload it again" in doc["what_to_do"]
        assert doc["received_at"].startswith("2026-11-20T21:0")  # 15:0x CT, the server's clock
        assert list((cfg.spool / "quarantine").glob("*scan.fixml.reason.json"))
    finally:
        assert daemon.stop() == 0


def exchange_file(cfg: TestConfig, exchange: str = "XCBO") -> Path:
    return cfg.spool / "exchanges" / exchange / "outbound" / "dpl" / "DPL_20261120.fixml"


def test_forced_early_publication_is_preliminary_and_replaced_after_the_cutoff(
    tmp_path: Path,
) -> None:
    cfg = make_test_config(tmp_path)
    evening = DaemonProcess(cfg, env={"POSGATE_CLOCK_START": "2026-11-20T23:59:00-06:00"})
    try:
        evening.wait_ready()
        early = tmp_path / "early.fixml"
        early.write_bytes(posrpt("2026-11-20", sym="EARLY") + b"\n")
        sftp_put(cfg, early)
        receipt(cfg, "early.fixml")
        forced = cli(
            cfg,
            "dpl",
            "publish",
            "--date",
            "2026-11-20",
            "--force",
            clock="2026-11-20T23:59:10-06:00",
        )
        assert forced.returncode == 0, forced.stderr
        assert "preliminary" in forced.stdout
        first = exchange_file(cfg).read_bytes()
        assert b'Sym="EARLY"' in first
        first_sidecar = exchange_file(cfg).with_name("DPL_20261120.fixml.sha256").read_text()
        # a correction arrives before the cutoff, after the early publication
        late = tmp_path / "late.fixml"
        late.write_bytes(
            posrpt("2026-11-20", sym="LATE")
            + b"\n"
            + posrpt("2026-11-20", sym="OOPS", qty='Long="1" Short="1"')
            + b"\n"
        )
        sftp_put(cfg, late)
        assert receipt(cfg, "late.fixml")["cycle"] == "2026-11-20"
    finally:
        assert evening.stop() == 0

    morning = DaemonProcess(cfg, env={"POSGATE_CLOCK_START": "2026-11-21T00:06:00-06:00"})
    try:
        morning.wait_ready()
        wait_for(
            lambda: b"LATE" in exchange_file(cfg, "XISE").read_bytes(),
            timeout=30,
            what="the final publication",
        )
        final = exchange_file(cfg).read_bytes()
        assert final == exchange_file(cfg, "XISE").read_bytes() != first
        assert b"EARLY" not in final and b"OOPS" not in final
        sidecar = exchange_file(cfg).with_name("DPL_20261120.fixml.sha256").read_text()
        assert sidecar != first_sidecar
        assert sidecar == f"{hashlib.sha256(final).hexdigest()}  DPL_20261120.fixml\n"
        assert b'DlvDt="2026-11-21"' in final and b'RptID="20261120000000001"' in final
        # the firm's report of the cycle, in its outbound folder, is what was published
        report = outbound(cfg) / "reports" / "DPL_20261120.report.csv"
        # the early publication wrote a report too: wait for the final one
        wait_for(
            lambda: report.exists() and "LATE" in report.read_text(),
            timeout=30,
            what="the firm's report of the final publication",
        )
        rows = list(csv.DictReader(io.StringIO(report.read_text())))
        assert [(r["status"], r["symbol"], r["rpt_id"], r["dlv_dt"]) for r in rows] == [
            ("valid", "LATE", "20261120000000001", "2026-11-21"),
            ("rejected", "OOPS", "", ""),
        ]
        assert rows[1]["reasons"] == "LONG_AND_SHORT"
        ledger = Ledger(cfg.spool / "state" / "ledger.sqlite3")
        try:
            publication = ledger.publication("2026-11-20")
            assert publication is not None and publication["preliminary"] == 0
        finally:
            ledger.close()
    finally:
        assert morning.stop() == 0

    # the cycle is closed: a publication run again changes nothing, the CLI report agrees
    again = cli(cfg, "dpl", "publish", "--date", "2026-11-20", clock="2026-11-21T01:00:00-06:00")
    assert again.returncode == 0 and "already published" in again.stdout, again.stderr
    assert exchange_file(cfg).read_bytes() == final
    doc = cli(cfg, "report", "dpl", "--date", "2026-11-20", "--status", "valid", "--format", "json")
    assert doc.returncode == 0, doc.stderr
    records = json.loads(doc.stdout)["records"]
    assert [(r["fields"]["rpt_id"], r["fields"]["dlv_dt"]) for r in records] == [
        ("20261120000000001", "2026-11-21")
    ]
