"""The hostile DPL corpus (``tests/data/hostile/dpl/``) through the real daemon: each file gets
its expected outcome (processed with counts, or quarantined with a reason), no entity is ever
resolved, and the daemon keeps running."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.daemon import DaemonProcess, make_test_config, wait_for

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile" / "dpl"


def test_hostile_dpl_files_get_their_expected_outcomes(tmp_path: Path) -> None:
    expected = json.loads((CORPUS / "expected.json").read_text())
    cfg = make_test_config(tmp_path)
    proc = DaemonProcess(cfg, env={"POSGATE_CLOCK_START": "2026-11-20T15:00:00-06:00"})
    try:
        proc.wait_ready()
        inbound = cfg.spool / "firms" / "00005" / "inbound" / "dpl"
        for name in expected:
            (inbound / f".{name}.tmp").write_bytes((CORPUS / name).read_bytes())
            (inbound / f".{name}.tmp").rename(inbound / name)
        out = cfg.spool / "firms" / "00005" / "outbound" / "dpl"

        def outcome(name: str) -> dict[str, object] | None:
            if (out / f"{name}.receipt.json").exists():
                receipt = json.loads((out / f"{name}.receipt.json").read_text())
                return {"outcome": "processed", "counts": receipt["counts"]}
            if (out / f"{name}.unreadable.json").exists():
                notice = json.loads((out / f"{name}.unreadable.json").read_text())
                return {"outcome": "quarantined", "reason": notice["reason"]}
            return None

        wait_for(lambda: all(outcome(n) for n in expected), timeout=60, what="every outcome")
        assert {n: outcome(n) for n in expected} == expected
        assert proc.proc.poll() is None
        rejects = b"".join(p.read_bytes() for p in out.glob("*.rejects.fixml"))
        assert b"root:" not in rejects  # the external entity was never read
    finally:
        assert proc.stop() == 0
