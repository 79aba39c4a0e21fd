"""The whole DPL day through the real process: firms upload over SFTP before the cutoff, the daemon
is down at 00:05 and publishes at start, every receiving exchange gets the same file, and the
on-demand report opens with the reasons."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from tests.integration.test_dpl_flow_sftp import sftp_put
from tests.support.daemon import REPO, DaemonProcess, make_test_config, wait_for
from tests.support.dpl_records import posrpt

pytestmark = pytest.mark.skipif(shutil.which("sftp") is None, reason="OpenSSH sftp missing")
NAME = "DPL_20261120.fixml"


def test_uploads_before_cutoff_are_published_to_every_exchange(tmp_path: Path) -> None:
    cfg = make_test_config(tmp_path)
    # Friday 2026-11-20, 23:59:40 CT: a first file, then a correction that supersedes it.
    evening = DaemonProcess(cfg, env={"POSGATE_CLOCK_START": "2026-11-20T23:59:40-06:00"})
    try:
        evening.wait_ready()
        first = tmp_path / "first.fixml"
        first.write_bytes(
            b"\n".join([posrpt("2026-11-20", sym="OLD1"), posrpt("2026-11-19", sym="OLD2")]) + b"\n"
        )
        sftp_put(cfg, first)
        outbound = cfg.spool / "firms" / "00005" / "outbound" / "dpl"
        wait_for((outbound / "first.fixml.receipt.json").exists, what="first receipt")
        second = tmp_path / "second.fixml"
        lines = [
            posrpt("2026-11-20", unit="AU2", sym="MSFT", qty='Short="40"'),
            posrpt("2026-11-19", unit="AU1", sym="IBM", sub="CMB"),
            posrpt("2026-11-20", unit="AU1", sym="AAPL", qty='Long="7" Short="9"'),  # rejected
            posrpt("2026-11-20", unit="AU1", sym="GOOG"),
        ]
        second.write_bytes(b"\n".join(lines) + b"\n")
        sftp_put(cfg, second)
        wait_for((outbound / "second.fixml.receipt.json").exists, what="second receipt")
        receipt = json.loads((outbound / "second.fixml.receipt.json").read_text())
        assert receipt["cycle"] == "2026-11-20" and receipt["superseded"]["file"] == "first.fixml"
    finally:
        assert evening.stop() == 0

    # Saturday 00:06 CT: the daemon was down at 00:05 and catches up at start.
    morning = DaemonProcess(cfg, env={"POSGATE_CLOCK_START": "2026-11-21T00:06:00-06:00"})
    try:
        morning.wait_ready()
        exchanges = cfg.spool / "exchanges"
        wait_for(
            lambda: all(
                (exchanges / x / "outbound" / "dpl" / f"{NAME}.sha256").exists()
                for x in ("XCBO", "XISE")
            ),
            timeout=30,
            what="publication",
        )
        data = (exchanges / "XCBO" / "outbound" / "dpl" / NAME).read_bytes()
        assert (exchanges / "XISE" / "outbound" / "dpl" / NAME).read_bytes() == data
        assert not (exchanges / "XPHL" / "outbound" / "dpl" / NAME).exists()  # receives_dpl=N
        sidecar = (exchanges / "XISE" / "outbound" / "dpl" / f"{NAME}.sha256").read_text()
        assert sidecar == f"{hashlib.sha256(data).hexdigest()}  {NAME}\n"
        records = [etree.fromstring(line) for line in data.splitlines()]
        reports = [r[0] for r in records]
        # exactly the valid records of the latest file, in order: unit, symbol
        got = [
            (
                r.find("Pty[2]").get("ID") if r.find("Pty[2]") is not None else None,
                r.find("Instrmt").get("Sym"),
            )
            for r in reports
        ]
        assert got == [("AU1", "GOOG"), ("AU1", "IBM"), ("AU2", "MSFT")]
        assert len({r.get("RptID") for r in reports}) == 3
        assert {r.get("DlvDt") for r in reports} == {"2026-11-21"}
        assert b"OLD1" not in data and b"AAPL" not in data
    finally:
        assert morning.stop() == 0

    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "--config",
            str(cfg.path),
            "report",
            "dpl",
            "--date",
            "2026-11-20",
            "--firm",
            "00005",
            "--status",
            "rejected",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert report.returncode == 0, report.stderr
    doc = json.loads(report.stdout)
    assert [(r["line"], r["reasons"]) for r in doc["records"]] == [(3, ["LONG_AND_SHORT"])]
