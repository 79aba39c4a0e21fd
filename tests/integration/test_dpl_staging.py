"""A big DPL file does not hold the ledger for its whole intake: its records are staged in short
transactions while it is claimed, unseen by every reader, and another firm's upload is claimed
and answered in the meantime; ``kill -9`` midway, and the next start stores the file once."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from gateway.ledger import STAGE_ROWS, Ledger
from tests.support.daemon import DaemonProcess, make_test_config, wait_for
from tests.support.dpl_records import posrpt

FRIDAY_AFTERNOON = "2026-11-20T15:00:00-06:00"
CYCLE = "2026-11-20"
ENV = {"POSGATE_CLOCK_START": FRIDAY_AFTERNOON}


def _drop(inbound: Path, name: str, body: bytes) -> None:
    inbound.mkdir(parents=True, exist_ok=True)
    (inbound / f".{name}.tmp").write_bytes(body)
    (inbound / f".{name}.tmp").rename(inbound / name)


def _big(records: int) -> bytes:
    return b"\n".join(posrpt(CYCLE, unit=f"AU{i}") for i in range(records)) + b"\n"


def _staging(ledger: Ledger, firm: str) -> int:
    """The id of the firm's one claimed file once some of its rows are staged (else 0)."""
    claimed = ledger.files(firm=firm, state="claimed")
    return claimed[0].id if claimed and ledger.staged_dpl_rows(claimed[0].id) else 0


def _at(ledger: Ledger, file_id: int, state: str) -> dt.datetime:
    rows = ledger.connect().execute(
        "SELECT at FROM file_events WHERE file_id = ? AND state = ?", (file_id, state)
    )
    [(at,)] = rows.fetchall()
    return dt.datetime.fromisoformat(at)


def test_another_firms_upload_is_answered_while_a_big_file_is_staged(tmp_path: Path) -> None:
    cfg = make_test_config(tmp_path, intake={"stable_interval_s": 0.2})
    firms = cfg.spool / "firms"
    big = _big(300_000)
    small = b"\n".join(
        posrpt(CYCLE, firm="00352", crd="79", name="J.P. Morgan", unit=f"JP{i}") for i in range(3)
    )
    proc = DaemonProcess(cfg, env=ENV)
    proc.wait_ready()
    ledger = Ledger(cfg.spool / "state" / "ledger.sqlite3")
    try:
        _drop(firms / "00005" / "inbound" / "dpl", "big.fixml", big)
        big_id = wait_for(lambda: _staging(ledger, "00005"), timeout=20, interval=0.01)
        _drop(firms / "00352" / "inbound" / "dpl", "small.fixml", small + b"\n")
        receipt = firms / "00352" / "outbound" / "dpl" / "small.fixml.receipt.json"
        wait_for(receipt.exists, timeout=20, interval=0.02, what="the small file's receipt")
        # The big file is still in its intake; its staged rows are there but nobody sees them.
        assert ledger.file(big_id).state == "claimed"
        staged = ledger.staged_dpl_rows(big_id)
        assert STAGE_ROWS <= staged < 300_000
        assert json.loads(receipt.read_text())["counts"] == {"total": 3, "valid": 3, "rejected": 0}
        assert ledger.dpl_records_for_file(big_id) == []
        assert ledger.count_publishable_dpl(CYCLE) == 3
        assert [v[0] for v in ledger.iter_publishable_dpl_values(CYCLE, ["agg_unit"])] == [
            "JP0",
            "JP1",
            "JP2",
        ]
        assert {r["submitter"] for r in ledger.iter_dpl_report(CYCLE)} == {"00352"}
        assert ledger.dpl_submitters([CYCLE]) == {CYCLE: {"00352"}}

        wait_for(
            lambda: ledger.files(firm="00005", state="archived"), timeout=60, what="big archived"
        )
        [small_row] = ledger.files(firm="00352")
        assert _at(ledger, small_row.id, "processed") < _at(ledger, big_id, "processed")
        assert _at(ledger, small_row.id, "received") > _at(ledger, big_id, "claimed")
        assert ledger.staged_dpl_rows(big_id) == 300_000
        assert ledger.count_publishable_dpl(CYCLE) == 300_003
    finally:
        ledger.close()
        assert proc.stop() == 0, proc.log()


def test_kill_mid_file_leaves_hidden_rows_and_the_restart_stores_the_file_once(
    tmp_path: Path,
) -> None:
    records = 150_000
    cfg = make_test_config(tmp_path, intake={"stable_interval_s": 0.2})
    inbound = cfg.spool / "firms" / "00005" / "inbound" / "dpl"
    outbound = cfg.spool / "firms" / "00005" / "outbound" / "dpl"
    lines = _big(records).split(b"\n")[:-1]
    lines[records - 2] = posrpt(CYCLE, qty='Long="-5"')  # one rejected record, near the end
    proc = DaemonProcess(cfg, env=ENV)
    proc.wait_ready()
    ledger = Ledger(cfg.spool / "state" / "ledger.sqlite3")
    try:
        _drop(inbound, "long.fixml", b"\n".join(lines) + b"\n")
        file_id = wait_for(lambda: _staging(ledger, "00005"), timeout=20, interval=0.01)
        proc.kill9()
        [row] = ledger.files()
        assert row.state == "claimed"
        assert 0 < ledger.staged_dpl_rows(file_id) < records  # left by the killed attempt
        assert ledger.dpl_records_for_file(file_id) == []
        assert ledger.count_publishable_dpl(CYCLE) == 0

        proc = DaemonProcess(cfg, env=ENV)
        proc.wait_ready()
        wait_for(lambda: ledger.files(state="archived"), timeout=60, what="the file archived")
        [row] = ledger.files()
        assert ledger.staged_dpl_rows(file_id) == records
        stored = ledger.dpl_records_for_file(file_id)
        assert [r["line"] for r in stored] == list(range(1, records + 1))
        assert [r["line"] for r in stored if r["status"] == "rejected"] == [records - 1]
        assert [s for s, _ in ledger.file_events(file_id)].count("processed") == 1
        receipt = json.loads((outbound / "long.fixml.receipt.json").read_text())
        assert receipt["counts"] == {"total": records, "valid": records - 1, "rejected": 1}
        assert (outbound / "long.fixml.rejects.fixml").read_bytes() == lines[records - 2] + b"\n"
        assert ledger.count_publishable_dpl(CYCLE) == records - 1
    finally:
        ledger.close()
        assert proc.stop() == 0, proc.log()
