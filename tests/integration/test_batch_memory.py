"""A 200 MB Batch document through the real daemon and through ``posgate dpl validate``, each
under a fixed peak RSS: memory does not grow with the document (a whole-document parse costs
about 20 times its size)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.daemon import REPO, DaemonProcess, make_test_config, wait_for
from tests.support.dpl_records import write_batch

DOCUMENT_BYTES = 200_000_000
# The daemon at rest is about 70-100 MB; a whole-document parse of 200 MB would be about 4 GB.
PEAK_RSS_BOUND_MB = 320
RECEIVED = "2026-03-09T18:30:00-05:00"


@pytest.fixture(scope="module")
def big_batch(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("batch") / "BIG_BATCH.fixml"
    count = write_batch(path, DOCUMENT_BYTES, "2026-03-09")
    assert path.stat().st_size >= DOCUMENT_BYTES
    return path, count


def test_the_daemon_takes_a_200_mb_batch_under_a_fixed_rss(
    tmp_path: Path, big_batch: tuple[Path, int]
) -> None:
    source, count = big_batch
    cfg = make_test_config(tmp_path)
    daemon = DaemonProcess(cfg, env={"POSGATE_CLOCK_START": RECEIVED})
    try:
        daemon.wait_ready()
        inbound = cfg.spool / "firms" / "00005" / "inbound" / "dpl"
        staged = cfg.root / "staged.fixml"  # then renamed in: the intake sees it whole
        if source.stat().st_dev == cfg.root.stat().st_dev:
            os.link(source, staged)
        else:
            _copy(source, staged)
        os.rename(staged, inbound / "BIG_BATCH.fixml")
        receipt_path = cfg.spool / "firms" / "00005" / "outbound" / "dpl"
        receipt_path /= "BIG_BATCH.fixml.receipt.json"
        wait_for(receipt_path.exists, timeout=900, interval=1.0, what="the receipt")
        # The receipt is written inside the processing transaction: wait for the commit and the
        # move into the archive before stopping.
        wait_for(lambda: _archived(cfg.spool), timeout=300, interval=1.0, what="the archive")
        receipt = json.loads(receipt_path.read_text())
        counts = receipt["counts"]
        assert (counts["total"], counts["valid"], counts["rejected"]) == (count, count, 0)
        peak_mb = peak_rss_mb(daemon.proc.pid) or 0.0  # the daemon is running: it has one
        daemon.signal(signal.SIGTERM)
        _, status, _ = os.wait4(daemon.proc.pid, 0)
        daemon.proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        daemon.stop()
    assert daemon.proc.returncode == 0, daemon.log()[-2000:]
    print(f"daemon peak RSS over a {DOCUMENT_BYTES // 10**6} MB Batch: {peak_mb:.0f} MB")
    assert 0 < peak_mb < PEAK_RSS_BOUND_MB


def test_dpl_validate_reads_a_200_mb_batch_under_a_fixed_rss(big_batch: tuple[Path, int]) -> None:
    source, count = big_batch
    command = [sys.executable, "-m", "gateway.cli", "--config", str(REPO / "config/posgate.toml")]
    command += ["dpl", "validate", str(source), "--firm", "00005", "--received-at", RECEIVED]
    out = source.parent / "validate.out"
    with open(out, "wb") as stdout:
        child = subprocess.Popen(command, cwd=REPO, stdout=stdout, stderr=subprocess.PIPE)
        peak_mb = 0.0
        while child.poll() is None:  # the high-water mark only grows: the last reading holds
            with contextlib.suppress(OSError):
                peak_mb = peak_rss_mb(child.pid) or peak_mb
            time.sleep(0.05)
        status = child.returncode
    assert status == 0, child.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
    with open(out, "rb") as fh:
        lines = sum(1 for _ in fh)
        fh.seek(max(out.stat().st_size - 4096, 0))
        summary = json.loads(fh.read().splitlines()[-1])["summary"]
    assert (summary["total"], summary["valid"], lines) == (count, count, count + 1)
    print(f"dpl validate peak RSS over a {DOCUMENT_BYTES // 10**6} MB Batch: {peak_mb:.0f} MB")
    assert 0 < peak_mb < PEAK_RSS_BOUND_MB


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak RSS since it started its program (``VmHWM``). Not ``ru_maxrss``: on
    Linux that carries over the RSS of the forked parent (here the test runner, hundreds of MB
    late in a full run) across ``exec``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None  # exited (a zombie has no memory lines): the caller keeps its last reading


def _archived(spool: Path) -> bool:
    with sqlite3.connect(spool / "state" / "ledger.sqlite3", timeout=30) as db:
        row = db.execute("SELECT state FROM files WHERE name = 'BIG_BATCH.fixml'").fetchone()
    return row is not None and row[0] == "archived"


def _copy(source: Path, target: Path) -> None:
    with open(source, "rb") as fin, open(target, "wb") as fout:
        while chunk := fin.read(1 << 20):
            fout.write(chunk)
