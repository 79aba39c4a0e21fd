"""The hostile SFTP names (``tests/data/hostile/sftp/names.json``) through the real daemon and
the OpenSSH ``sftp`` client: each name is refused at upload with a reason, or processed with a
receipt that names it exactly, as the corpus expects; nothing lands outside ``inbound/dpl/``, and
the daemon keeps running."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.daemon import DaemonProcess, TestConfig, make_test_config, wait_for
from tests.support.dpl_records import posrpt
from tests.support.firm import SFTP, quoted, run_sftp

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile" / "sftp" / "names.json"
pytestmark = pytest.mark.skipif(SFTP is None, reason="OpenSSH sftp client not installed")


def put(cfg: TestConfig, local: Path, remote: str) -> subprocess.CompletedProcess[str]:
    return run_sftp(cfg, f"put {quoted(str(local))} {quoted('inbound/dpl/' + remote)}\n")


def test_hostile_upload_names_are_refused_or_processed_as_expected(tmp_path: Path) -> None:
    corpus = json.loads(CORPUS.read_text())
    cfg = make_test_config(tmp_path)
    local = tmp_path / "upload.fixml"
    local.write_bytes(posrpt("2026-11-20") + b"\n")
    proc = DaemonProcess(cfg, env={"POSGATE_CLOCK_START": "2026-11-20T15:00:00-06:00"})
    try:
        proc.wait_ready()
        refused: dict[str, str] = {}
        for name in corpus:
            done = put(cfg, local, name)
            if done.returncode != 0:
                refused[name] = done.stderr
        outbound = cfg.spool / "firms" / "00005" / "outbound" / "dpl"
        accepted = [n for n in corpus if n not in refused]

        def receipts() -> dict[str, dict[str, object]]:
            found = {}
            for path in outbound.glob("*.receipt.json"):
                receipt = json.loads(path.read_text())
                found[str(receipt["file"])] = receipt
            return found

        wait_for(lambda: set(accepted) <= set(receipts()), timeout=60, what="every receipt")
        got = {n: "refused" if n in refused else "processed" for n in corpus}
        assert got == {n: case["expect"] for n, case in corpus.items()}
        for name, stderr in refused.items():
            said = stderr.lower()  # the server's status reaches the client
            assert "permission denied" in said or "no such file" in said, (name, stderr)
        assert all(
            receipts()[n]["counts"] == {"total": 1, "valid": 1, "rejected": 0} for n in accepted
        )
        # nothing landed anywhere else: every file of the spool is in the expected places
        stray = [
            p
            for p in cfg.spool.rglob("*")
            if p.is_file()
            and not any(
                part in p.parts
                for part in ("state", "archive", "outbound", "internal", "exchanges")
            )
        ]
        assert stray == [], stray
        assert proc.proc.poll() is None
    finally:
        assert proc.stop() == 0
