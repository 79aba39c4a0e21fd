"""``kill -9`` of ``posgate dpl publish`` midway: no partial file visible, the rerun completes.

Two kill points, each detected on disk rather than guessed with a timer: while the file is being
built (its hidden temporary exists and grows), and, in a ``--force`` run, right after an
exchange's old sidecar was removed (the delivery is under way).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from gateway.config import load_config
from gateway.ledger import Ledger
from tests.benchmarks.bench_dpl_publish import fill_ledger
from tests.support.daemon import REPO, TestConfig, make_test_config

CYCLE = dt.date(2026, 3, 9)
NAME = "DPL_20260309.fixml"
RECORDS = 150_000
RECEIVERS = ("XCBO", "XISE")
ENV = {**os.environ, "POSGATE_CLOCK_START": "2026-03-10T01:00:00-05:00", "PYTHONUNBUFFERED": "1"}


def start(cfg: TestConfig, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "--config",
            str(cfg.path),
            "dpl",
            "publish",
            "--date",
            CYCLE.isoformat(),
            *extra,
        ],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def kill_when(proc: subprocess.Popen[str], condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert proc.poll() is None, f"finished before {what}:\n{proc.communicate()[0]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.001)
    proc.kill()
    proc.wait()


def run(cfg: TestConfig, *extra: str) -> str:
    proc = start(cfg, *extra)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    return out


def folder(cfg: TestConfig, exchange: str) -> Path:
    return cfg.spool / "exchanges" / exchange / "outbound" / "dpl"


def hidden_temps(path: Path) -> list[Path]:
    return list(path.glob(".DPL_*.tmp")) if path.is_dir() else []


def check_complete(cfg: TestConfig) -> bytes:
    data = (folder(cfg, RECEIVERS[0]) / NAME).read_bytes()
    assert data.count(b"\n") == RECORDS and data.endswith(b"</FIXML>\n")
    sha = hashlib.sha256(data).hexdigest()
    for exchange in RECEIVERS:
        where = folder(cfg, exchange)
        assert sorted(p.name for p in where.iterdir()) == [NAME, f"{NAME}.sha256"]
        assert (where / NAME).read_bytes() == data
        assert (where / f"{NAME}.sha256").read_text() == f"{sha}  {NAME}\n"
    assert hidden_temps(cfg.spool / "state" / "publications") == []
    return data


def test_kill_9_during_publication_then_rerun(tmp_path: Path) -> None:
    cfg = make_test_config(tmp_path)
    config = load_config(cfg.path)
    ledger = Ledger(config.spool.ledger_path)
    fill_ledger(ledger, CYCLE, RECORDS)
    ledger.close()
    building = cfg.spool / "state" / "publications"

    # 1. Killed while building: nothing reaches any exchange, nothing is recorded.
    proc = start(cfg)
    kill_when(
        proc,
        lambda: any(p.stat().st_size > 3_000_000 for p in hidden_temps(building)),
        "the build to be under way",
    )
    for exchange in RECEIVERS:
        assert not (folder(cfg, exchange) / NAME).exists()
    ledger = Ledger(config.spool.ledger_path)
    assert ledger.publication(CYCLE.isoformat()) is None
    ledger.close()

    # 2. The rerun completes the cycle and cleans the leftover temporary.
    run(cfg)
    expected = check_complete(cfg)

    # 3. A forced run killed in the middle of delivering to XCBO: the visible file is still the
    #    complete one, the sidecar is gone (the signal "not ready"), the ledger no longer claims
    #    the delivery.
    sidecar = folder(cfg, "XCBO") / f"{NAME}.sha256"
    proc = start(cfg, "--force")
    kill_when(proc, lambda: not sidecar.exists(), "the XCBO delivery to start")
    assert (folder(cfg, "XCBO") / NAME).read_bytes() == expected
    assert all(
        p.name in (NAME, f"{NAME}.sha256")
        for p in folder(cfg, "XCBO").iterdir()
        if not p.name.startswith(".")
    )
    ledger = Ledger(config.spool.ledger_path)
    assert "XCBO" not in ledger.deliveries(CYCLE.isoformat())
    ledger.close()

    # 4. A plain rerun redelivers what is missing; identical bytes everywhere.
    out = run(cfg)
    assert "delivered to XCBO" in out
    assert check_complete(cfg) == expected
    assert hidden_temps(folder(cfg, "XCBO")) == []
