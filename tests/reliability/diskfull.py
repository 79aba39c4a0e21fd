"""``scripts/chaos disk-full``: a really full filesystem under a real ``posgate serve``.

Needs root: a small tmpfs is mounted as a firm's ``outbound/`` in a scratch folder of the drill's
own (own config, spool, ledger, ports; AMQP off) and filled to the last byte. The daemon's clock
starts shortly before a cutoff; DPL files arrive while the disk is full, so every one fails and
is retried. The cycle is published at its deadline without them. Then space is freed: every file
must be processed, and the cycle published again with all their valid records, without a restart.
Last, with the disk full again, a SIGTERM must end the daemon within its grace. The figures
(files, records, receipts, cycles checked; lost; duplicated) print as JSON; any loss exits 1.
"""

from __future__ import annotations

import argparse
import errno
import json
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.daemon import DaemonProcess, make_test_config, wait_for
from tests.support.dpl_records import posrpt

CYCLE = "2026-11-19"
CLOCK_START = "2026-11-19T23:59:50-06:00"
GRACE_S = 10.0


def submission(rng: random.Random, records: int, tag: str) -> tuple[bytes, int]:
    """A file of the cycle: about 30% of its records rejected (both long and short)."""
    lines, rejected = [], 0
    for n in range(records):
        if rng.random() < 0.3:
            lines.append(posrpt(CYCLE, sym=f"{tag}S{n}", qty='Long="1" Short="2"'))
            rejected += 1
        else:
            lines.append(posrpt(CYCLE, sym=f"{tag}S{n}"))
    return b"\n".join(lines) + b"\n", rejected


def fill(folder: Path) -> Path:
    filler = folder / "filler.bin"
    with open(filler, "ab", buffering=0) as fh:
        for size in (65_536, 4096, 512, 1):
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler


def run(files: int, records: int, seed: int) -> int:
    rng = random.Random(seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="posgate-chaos-disk-") as scratch:
        root = Path(scratch)
        outbound = root / "spool" / "firms" / "00005" / "outbound"
        outbound.mkdir(parents=True)
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "tmpfs", str(outbound)],
            capture_output=True,
            text=True,
            check=False,
        )
        if mounted.returncode != 0:
            print(f"cannot mount a tmpfs (root needed): {mounted.stderr.strip()}", file=sys.stderr)
            return 2
        try:
            return _drill(root, outbound, files, records, rng, started)
        finally:
            subprocess.run(["umount", "-l", str(outbound)], check=False)


def _drill(
    root: Path, outbound: Path, files: int, records: int, rng: random.Random, started: float
) -> int:
    cfg = make_test_config(
        root,
        dpl={"publish_time": "00:00", "deadline_time": "00:00"},
        intake={"stable_interval_s": 0.2, "sweep_interval_s": 1.0, "retry_max_s": 2.0},
        daemon={"shutdown_grace_s": GRACE_S},
    )
    inbound = cfg.spool / "firms" / "00005" / "inbound" / "dpl"
    daemon = DaemonProcess(cfg, env={"POSGATE_CLOCK_START": CLOCK_START})
    sent: dict[str, tuple[int, int]] = {}
    stop_s = -1.0
    try:
        daemon.wait_ready()
        filler = fill(outbound)
        for k in range(files):
            name = f"full-{k:03d}.fixml"
            body, rejected = submission(rng, records, f"F{k}")
            (root / name).write_bytes(body)
            (root / name).rename(inbound / name)
            sent[name] = (records, rejected)

        def failed() -> float:
            return daemon.metric("posgate_files_failed_total", {"flow": "dpl"}) or 0.0

        wait_for(lambda: failed() >= files, timeout=60, what="every file failed once")
        failures_while_full = failed()
        exchange = cfg.spool / "exchanges" / "XCBO" / "outbound" / "dpl"
        published = exchange / f"DPL_{CYCLE.replace('-', '')}.fixml"
        wait_for(published.exists, timeout=150, interval=1.0, what="publication at the deadline")
        first_publication = published.read_bytes().count(b"<PosRpt")
        dpl_out = outbound / "dpl"
        half_written = sorted(p.name for p in dpl_out.glob("*")) if dpl_out.exists() else []

        filler.unlink()
        receipts = outbound / "dpl"
        wait_for(
            lambda: all((receipts / f"{n}.receipt.json").exists() for n in sent),
            timeout=120,
            what="every receipt once space is free",
        )
        # Each file of the firm supersedes the one before: the cycle holds the latest one's
        # valid records, as the ledger decided.
        ledger = cfg.spool / "state" / "ledger.sqlite3"
        wait_for(lambda: _latest_valid(ledger) > 0, timeout=30, what="the cycle's current file")
        latest = _latest_valid(ledger)
        wait_for(
            lambda: published.read_bytes().count(b"<PosRpt") == latest,
            timeout=150,
            interval=1.0,
            what="the cycle published again with the late files",
        )
        lines = [line for line in published.read_bytes().splitlines() if b"<PosRpt" in line]

        fill(outbound)
        extra = "full-extra.fixml"
        (root / extra).write_bytes(submission(rng, 5, "X")[0])
        before = failed()
        (root / extra).rename(inbound / extra)
        wait_for(lambda: failed() > before, timeout=30, what="a failure with the disk full again")
        stopping = time.monotonic()
        daemon.signal(signal.SIGTERM)
        code = daemon.proc.wait(GRACE_S + 20)
        stop_s = time.monotonic() - stopping
    finally:
        daemon.stop()
    with sqlite3.connect(cfg.spool / "state" / "ledger.sqlite3") as db:
        rows = db.execute(
            "SELECT name, total, valid, rejected FROM files WHERE flow = 'dpl' AND name != ?",
            (extra,),
        ).fetchall()
        stored = db.execute("SELECT COUNT(*) FROM dpl_records").fetchone()[0]
    by_name: dict[str, list[tuple[int, int, int]]] = {}
    for name, total, valid, rejected in rows:
        by_name.setdefault(name, []).append((total, valid, rejected))
    records_sent = sum(t for t, _ in sent.values())
    figures = {
        "files": len(sent),
        "records sent": records_sent,
        "records stored": stored,
        "failed attempts while full": int(failures_while_full),
        "outputs visible while full": len(half_written),
        "receipts": sum((outbound / "dpl" / f"{n}.receipt.json").exists() for n in sent),
        "cycles checked": 1,
        "records in the deadline publication": first_publication,
        "records in the republication": len(lines),
        "valid records of the current file": latest,
        "lost files": len(set(sent) - set(by_name)),
        "duplicated files": sum(len(v) > 1 for v in by_name.values()),
        "records lost": max(0, records_sent - stored) + max(0, latest - len(set(lines))),
        "records duplicated": max(0, stored - records_sent) + len(lines) - len(set(lines)),
        "stop with the disk full (s)": round(stop_s, 1),
        "stop exit code": code,
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(figures, indent=2))
    bad = figures["lost files"] or figures["duplicated files"] or figures["records lost"]
    bad = bad or figures["records duplicated"] or figures["outputs visible while full"]
    bad = bad or figures["receipts"] != len(sent) or code != 0 or stop_s >= GRACE_S
    return 1 if bad else 0


def _latest_valid(ledger: Path) -> int:
    with sqlite3.connect(ledger, timeout=10) as db:
        row = db.execute(
            "SELECT SUM(valid) FROM files WHERE flow = 'dpl' AND cycle = ?"
            " AND superseded_by IS NULL AND state IN ('processed', 'archived')",
            (CYCLE,),
        ).fetchone()
    return int(row[0] or 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/chaos disk-full", description=__doc__)
    parser.add_argument("--files", type=int, default=10, help="files that arrive while full")
    parser.add_argument("--records", type=int, default=500, help="records per file")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args(argv)
    return run(args.files, args.records, args.seed)


if __name__ == "__main__":
    sys.exit(main())
