"""A really full filesystem under the real daemon: a small tmpfs mounted as the firm's outbound
area and filled to the last byte.

What must hold: the input stays claimed for a retry, nothing half-written appears, the failure is
counted in ``posgate_files_failed_total`` (the metric of the ``PosgateProcessingFailing`` alert),
the cycle is published at its deadline without the file (``publication_without_files``), and once
space is freed the file is processed and the cycle published again, without a restart. A stop
while the disk is full ends within the shutdown grace. Needs root (``mount -t tmpfs``).
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, make_test_config, wait_for
from tests.support.dpl_records import posrpt

CYCLE = "2026-11-19"  # a Thursday
CLOCK_START = "2026-11-19T23:59:56-06:00"  # four seconds before the cutoff
GRACE_S = 10.0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path / "config-root" / "spool" / "firms" / "00005" / "outbound"
    mount_point.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k,mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs not permitted here: {done.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` to its last byte; the filler file."""
    filler = folder / "filler.bin"
    with open(filler, "wb", buffering=0) as fh:
        for size in (65_536, 4096, 512, 1):
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler


def drop(cfg_root: Path, spool: Path, name: str, data: bytes) -> None:
    staged = cfg_root / f"staged-{name}"
    staged.write_bytes(data)
    os.rename(staged, spool / "firms" / "00005" / "inbound" / "dpl" / name)


def visible_outputs(outbound: Path) -> list[str]:
    dpl = outbound / "dpl"
    return sorted(p.name for p in dpl.rglob("*")) if dpl.exists() else []


def test_a_full_disk_is_survived_without_a_restart(tmp_path: Path, small_disk: Path) -> None:
    cfg = make_test_config(
        tmp_path / "config-root",
        dpl={"publish_time": "00:00", "deadline_time": "00:00", "catchup_interval_s": 5.0},
        intake={"stable_interval_s": 0.2, "sweep_interval_s": 1.0, "retry_max_s": 2.0},
        daemon={"shutdown_grace_s": GRACE_S},
    )
    spool, outbound = cfg.spool, small_disk
    daemon = DaemonProcess(cfg, env={"POSGATE_CLOCK_START": CLOCK_START})
    try:
        daemon.wait_ready()
        filler = fill(outbound)
        records = [
            posrpt(CYCLE, sym="FULL1"),
            posrpt(CYCLE, sym="FULL2", unit="AU2"),
            posrpt("2026-01-02", sym="FULL3"),  # rejected: a rejects file and a reasons file
        ]
        drop(cfg.root, spool, "late.fixml", b"\n".join(records) + b"\n")  # before the cutoff

        failed = lambda: daemon.metric("posgate_files_failed_total", {"flow": "dpl"}) or 0  # noqa: E731
        wait_for(lambda: failed() >= 1, timeout=30, what="the failure counted")
        work = list((spool / "work" / "dpl" / "00005").glob("*"))
        assert [p.read_bytes().count(b"<PosRpt") for p in work] == [3]  # kept for the retry
        assert visible_outputs(outbound) == []  # no receipt, no half-written or hidden temp file

        # The cycle's deadline (00:00 here) has passed at the next tick: published without it.
        exchange = spool / "exchanges" / "XCBO" / "outbound" / "dpl"
        published = exchange / f"DPL_{CYCLE.replace('-', '')}.fixml"
        wait_for((exchange / f"{published.name}.sha256").exists, timeout=150, what="publication")
        assert b"FULL1" not in published.read_bytes()
        alerts = daemon.metric("posgate_alerts_total", {"name": "publication_without_files"})
        assert alerts is not None and alerts >= 1
        assert (spool / "firms" / "00005" / "inbound" / "dpl" / "late.fixml").exists() is False
        assert failed() >= 2  # still retried with backoff while full

        filler.unlink()  # space again: the next retry gets through, no restart
        receipt_path = outbound / "dpl" / "late.fixml.receipt.json"
        wait_for(receipt_path.exists, timeout=30, what="the receipt once space is free")
        receipt = json.loads(receipt_path.read_text())
        assert receipt["counts"] == {"total": 3, "valid": 2, "rejected": 1}
        assert sorted(visible_outputs(outbound)) == sorted(
            ["late.fixml.receipt.json", "late.fixml.rejects.fixml", "late.fixml.reasons.csv"]
        )
        wait_for(
            lambda: b"FULL1" in published.read_bytes() and b"FULL2" in published.read_bytes(),
            timeout=150,
            what="the cycle published again with the late file",
        )
        assert b"FULL3" not in published.read_bytes()

        # Full again, a file in trouble, then a stop: it ends within the grace.
        fill(outbound)
        before = failed()
        drop(cfg.root, spool, "second.fixml", posrpt("2026-11-20", sym="FULL4") + b"\n")
        wait_for(lambda: failed() > before, timeout=30, what="the second failure counted")
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        code = daemon.proc.wait(GRACE_S + 5)
        took = time.monotonic() - started
        assert code == 0, daemon.log()[-3000:]
        assert took < GRACE_S, f"the stop took {took:.1f}s"
        assert list((spool / "work" / "dpl" / "00005").glob("*second*"))  # kept for the next start
    finally:
        daemon.stop()
