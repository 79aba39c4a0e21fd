"""``scripts/chaos kill``: repeated ``kill -9`` of a real ``posgate serve`` during DPL intake.

Runs in a scratch folder of its own (its own config, spool, ledger and ports; AMQP off), so it can
be run on any staging box with the repository checked out. Each iteration starts the daemon, drops
DPL files into a firm's inbound folder and sends SIGKILL after a random delay (during start-up,
intake, processing or archiving). A last run lets everything finish, then the figures are checked
against what was sent: files, records (valid and rejected), receipts; lost; duplicated; hidden
temporaries still visible.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from tests.support.daemon import DaemonProcess, make_test_config, wait_for
from tests.support.dpl_records import posrpt

CLOCK_START = "2026-11-20T15:00:00-06:00"


def submission(rng: random.Random, records: int) -> tuple[bytes, int]:
    lines, rejected = [], 0
    for n in range(records):
        if rng.random() < 0.3:
            lines.append(posrpt("2026-11-20", sym=f"S{n}", qty='Long="1" Short="2"'))
            rejected += 1
        else:
            lines.append(posrpt("2026-11-20", sym=f"S{n}"))
    return b"\n".join(lines) + b"\n", rejected


def run(iterations: int, files: int, records: int, max_delay_s: float, seed: int) -> int:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="posgate-chaos-") as scratch:
        cfg = make_test_config(Path(scratch))
        env = {"POSGATE_CLOCK_START": CLOCK_START}
        inbound = cfg.spool / "firms" / "00005" / "inbound" / "dpl"
        sent: dict[str, tuple[int, int]] = {}
        started = time.monotonic()
        for i in range(iterations):
            proc = DaemonProcess(cfg, env=env)
            if rng.random() < 0.8:
                proc.wait_ready()
            for k in range(files):
                name = f"chaos-{i:04d}-{k}.fixml"
                body, rejected = submission(rng, records)
                (inbound / f".{name}.tmp").write_bytes(body)
                (inbound / f".{name}.tmp").rename(inbound / name)
                sent[name] = (records, rejected)
            time.sleep(rng.uniform(0.0, max_delay_s))
            proc.kill9()
        final = DaemonProcess(cfg, env=env)
        ledger = cfg.spool / "state" / "ledger.sqlite3"

        def settled() -> bool:
            with sqlite3.connect(ledger, timeout=10) as db:
                n = db.execute(
                    "SELECT COUNT(*) FROM files WHERE flow = 'dpl' AND state = 'archived'"
                ).fetchone()[0]
            return bool(n >= len(sent))

        try:
            final.wait_ready()
            wait_for(settled, timeout=600, interval=0.5, what="every file archived")
        finally:
            final.stop()
        with sqlite3.connect(ledger) as db:
            rows = db.execute(
                "SELECT name, state, total, valid, rejected FROM files WHERE flow = 'dpl'"
            ).fetchall()
            stored = db.execute("SELECT COUNT(*) FROM dpl_records").fetchone()[0]
        by_name: dict[str, list[tuple[str, int, int, int]]] = {}
        for name, state, total, valid, rejected in rows:
            by_name.setdefault(name, []).append((state, total, valid, rejected))
        outbound = cfg.spool / "firms" / "00005" / "outbound" / "dpl"
        lost_files = sorted(set(sent) - set(by_name))
        duplicated_files = sorted(n for n, r in by_name.items() if len(r) > 1)
        wrong_counts = sorted(
            n
            for n, (total, rejected) in sent.items()
            if n in by_name and by_name[n][0][1:] != (total, total - rejected, rejected)
        )
        missing_receipts = sorted(n for n in sent if not (outbound / f"{n}.receipt.json").exists())
        hidden = sorted(p.name for p in outbound.iterdir() if p.name.startswith("."))
        expected_records = sum(t for t, _ in sent.values())
        figures = {
            "iterations": iterations,
            "files": len(sent),
            "records sent": expected_records,
            "records stored": stored,
            "rejected sent": sum(r for _, r in sent.values()),
            "receipts": len(sent) - len(missing_receipts),
            "lost files": len(lost_files),
            "duplicated files": len(duplicated_files),
            "files with wrong counts": len(wrong_counts),
            "records lost": max(0, expected_records - stored),
            "records duplicated": max(0, stored - expected_records),
            "hidden temporaries visible": len(hidden),
            "seconds": round(time.monotonic() - started, 1),
        }
        print(json.dumps(figures, indent=2))
        bad = lost_files or duplicated_files or wrong_counts or missing_receipts or hidden
        bad = bad or stored != expected_records
        return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/chaos kill", description=__doc__)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--files", type=int, default=1, help="files dropped per iteration")
    parser.add_argument("--records", type=int, default=1500, help="records per file")
    parser.add_argument("--max-delay", type=float, default=2.0, help="seconds before the kill")
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args(argv)
    return run(args.iterations, args.files, args.records, args.max_delay, args.seed)


if __name__ == "__main__":
    sys.exit(main())
