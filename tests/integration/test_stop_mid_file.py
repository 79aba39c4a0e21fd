"""SIGTERM while the daemon is in the middle of a long DPL file: the file is rolled back at once
(the stop does not wait for the file, so it fits the grace), nothing of it is shown or written (the
rows it had staged stay unseen), it stays claimed in ``work/``, and the next start processes it
exactly once, deleting those rows first."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from gateway.ledger import Ledger
from tests.support.daemon import DaemonProcess, make_test_config, wait_for
from tests.support.dpl_records import posrpt

FRIDAY_AFTERNOON = "2026-11-20T15:00:00-06:00"
RECORDS = 150_000


def test_sigterm_mid_file_rolls_it_back_and_the_next_start_does_it_once(tmp_path: Path) -> None:
    # A grace far longer than the stop may take: the first stop is timed against 10 s below, and
    # the last one (a checkpoint of both runs' WAL) must not fail on a machine busy with fsyncs.
    cfg = make_test_config(tmp_path, daemon={"shutdown_grace_s": 30.0})
    env = {"POSGATE_CLOCK_START": FRIDAY_AFTERNOON}
    inbound = cfg.spool / "firms" / "00005" / "inbound" / "dpl"
    outbound = cfg.spool / "firms" / "00005" / "outbound" / "dpl"
    inbound.mkdir(parents=True)
    lines = [posrpt("2026-11-20", unit=f"AU{i}") for i in range(RECORDS)]
    lines[7] = posrpt("2026-11-20", qty='Long="-5"')  # one rejected record among them
    body = b"\n".join(lines) + b"\n"
    proc = DaemonProcess(cfg, env=env)
    proc.wait_ready()
    ledger = Ledger(cfg.spool / "state" / "ledger.sqlite3")
    try:
        (inbound / ".long.fixml.tmp").write_bytes(body)
        (inbound / ".long.fixml.tmp").rename(inbound / "long.fixml")
        wait_for(lambda: ledger.files(state="claimed"), timeout=20, interval=0.02, what="a claim")
        asked = time.monotonic()
        proc.signal(signal.SIGTERM)
        assert proc.stop(timeout=40) == 0, proc.log()
        stop_seconds = time.monotonic() - asked
        log = proc.log()
        assert "rolled back, it stays claimed for the next start" in log, log
        [row] = ledger.files()
        assert row.state == "claimed" and Path(row.work_path).exists()
        assert ledger.dpl_records_for_file(row.id) == []
        assert not list(outbound.iterdir()) if outbound.exists() else True
        assert stop_seconds < 10, stop_seconds  # the test config's usual grace

        proc = DaemonProcess(cfg, env=env)
        proc.wait_ready()
        wait_for(lambda: ledger.files(state="archived"), timeout=90, what="the file archived")
        [row] = ledger.files()
        assert len(ledger.dpl_records_for_file(row.id)) == RECORDS
        assert ledger.staged_dpl_rows(row.id) == RECORDS  # the stopped run's rows are gone
        assert sorted(p.name for p in outbound.iterdir()) == [
            "long.fixml.reasons.csv",
            "long.fixml.receipt.json",
            "long.fixml.rejects.fixml",
        ]
        assert (outbound / "long.fixml.rejects.fixml").read_bytes() == lines[7] + b"\n"
    finally:
        ledger.close()
        assert proc.stop() == 0
