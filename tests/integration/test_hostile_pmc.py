"""The hostile PMC corpus (``tests/data/hostile/pmc/``) through the real daemon: each position
file gets the outcome ``expected.json`` names (quarantined with a reason, or computed with the
reasons of its rejected lines), the firm's CSV outputs never carry a live spreadsheet formula,
and the daemon keeps running."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

from tests.support.daemon import REPO, DaemonProcess, make_test_config, wait_for

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile" / "pmc"
THEO = REPO / "config" / "samples" / "pmc" / "theo" / "2026-11-20"


def outcome(outbound: Path, name: str) -> dict[str, object] | None:
    unreadable = outbound / f"{name}.unreadable.json"
    if unreadable.exists():
        return {"outcome": "quarantined", "reason": json.loads(unreadable.read_text())["reason"]}
    summary = outbound / f"{name}.summary.csv"
    if not summary.exists():
        return None
    errors = outbound / f"{name}.errors.csv"
    rows = list(csv.DictReader(io.StringIO(errors.read_text()))) if errors.exists() else []
    return {
        "outcome": "computed",
        "problems": sorted({(r["kind"], r["reason"]) for r in rows}),
    }


def test_hostile_position_files_get_their_expected_outcomes(tmp_path: Path) -> None:
    expected = json.loads((CORPUS / "expected.json").read_text())
    assert sorted(expected) == sorted(p.name for p in CORPUS.iterdir() if p.name != "expected.json")
    cfg = make_test_config(tmp_path)
    shutil.copytree(THEO, cfg.spool / "internal" / "theo" / THEO.name)
    proc = DaemonProcess(cfg, env={"POSGATE_CLOCK_START": "2026-11-20T15:00:00-06:00"})
    try:
        proc.wait_ready()
        inbound = cfg.spool / "firms" / "00005" / "inbound" / "pmc"
        for name in expected:
            (inbound / f".{name}.tmp").write_bytes((CORPUS / name).read_bytes())
            (inbound / f".{name}.tmp").rename(inbound / name)
        outbound = cfg.spool / "firms" / "00005" / "outbound" / "pmc"
        wait_for(lambda: all(outcome(outbound, n) for n in expected), timeout=90, what="outcomes")
        got = {n: outcome(outbound, n) for n in expected}
        want = {n: {k: v for k, v in e.items() if k != "why"} for n, e in expected.items()}
        for case in want.values():
            if case["outcome"] == "computed":
                case["problems"] = [tuple(p) for p in case["problems"]]
        assert got == want
        for path in outbound.glob("*.csv"):
            for row in csv.reader(io.StringIO(path.read_text(errors="replace"))):
                assert not any(cell[:1] in ("=", "+", "@") for cell in row), (path.name, row)
        assert proc.proc.poll() is None
    finally:
        assert proc.stop() == 0
