"""Upload-to-receipt latency: a 10,000-record DPL file uploaded over SFTP to the real
``posgate serve`` until its receipt can be read back, repeated; p50/p99/max.

    python -m tests.benchmarks.bench_upload_receipt [--uploads 30] [--records 10000]

Each round uploads a fresh file (distinct content, so no duplicate) with paramiko, closes it, and
polls ``outbound/dpl/<name>.receipt.json`` over the same SFTP session every 10 ms: the time a
firm waits from closing the upload to being able to read its receipt. The daemon runs with its
default intake settings (the SFTP server's completion hint makes the intake take the file at
once). Target: p99 < 2 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import paramiko

from tests.support.daemon import DaemonProcess, make_test_config
from tests.support.dpl_records import posrpt

TARGET_P99_S = 2.0
CLOCK = "2026-11-20T15:00:00-06:00"  # cycle 2026-11-20


def make_file(records: int, round_no: int) -> bytes:
    lines = [
        posrpt(
            "2026-11-20" if i % 10 else "2026-11-19",
            unit=f"R{round_no}-{i % 50}",
            sym=f"S{i:05d}",
            qty=f'Long="{i}"',
        )
        for i in range(records)
    ]
    return b"\n".join(lines) + b"\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=30)
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_test_config(
            Path(tmp), intake={"stable_interval_s": 2.0, "sweep_interval_s": 30.0}
        )
        daemon = DaemonProcess(cfg, env={"POSGATE_CLOCK_START": CLOCK})
        try:
            daemon.wait_ready()
            key = paramiko.Ed25519Key.from_private_key_file(str(cfg.firm_key))
            transport = paramiko.Transport(("127.0.0.1", cfg.sftp_port))
            transport.connect(username="00005", pkey=key)
            sftp = paramiko.SFTPClient.from_transport(transport)
            assert sftp is not None
            latencies: list[float] = []
            for n in range(args.uploads):
                data = make_file(args.records, n)
                with sftp.open(f"inbound/dpl/round{n}.fixml", "wb") as fh:
                    fh.set_pipelined(True)
                    fh.write(data)
                closed = time.perf_counter()  # the upload is complete once close returns
                receipt = f"outbound/dpl/round{n}.fixml.receipt.json"
                while True:
                    try:
                        with sftp.open(receipt, "rb") as fh:
                            body = json.loads(fh.read())
                        break
                    except OSError:
                        if time.perf_counter() - closed > 30:
                            raise SystemExit(f"no receipt for round {n} after 30 s") from None
                        time.sleep(0.01)
                latencies.append(time.perf_counter() - closed)
                assert body["counts"]["total"] == args.records, body
            transport.close()
        finally:
            daemon.stop()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(round(0.99 * (len(latencies) - 1))))]
    p50 = statistics.median(latencies)
    ok = p99 < TARGET_P99_S
    sys.stdout.write(
        f"upload-to-receipt, {args.uploads} uploads of {args.records:,} records "
        f"({len(make_file(args.records, 0)) / 1e6:.1f} MB) over SFTP to the real daemon:\n"
        f"  p50 {p50:.3f} s, p99 {p99:.3f} s, max {latencies[-1]:.3f} s "
        f"(target p99 < {TARGET_P99_S:.0f} s): {'met' if ok else 'NOT met'}\n"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
