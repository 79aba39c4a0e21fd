"""The real ``posgate serve`` publishes a due cycle at start (catch-up) on a shifted clock."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.support.daemon import DaemonProcess, make_test_config, wait_for

NAME = "DPL_20260309.fixml"


def test_daemon_started_after_0005_publishes_the_due_cycle_at_once(tmp_path: Path) -> None:
    cfg = make_test_config(tmp_path)
    # Tuesday 00:06 CDT: Monday's cycle became due a minute ago, while the daemon was down.
    daemon = DaemonProcess(cfg, env={"POSGATE_CLOCK_START": "2026-03-10T00:06:00-05:00"})
    try:
        daemon.wait_ready()
        folder = cfg.spool / "exchanges" / "XCBO" / "outbound" / "dpl"
        sidecar = wait_for(
            lambda: (folder / f"{NAME}.sha256").exists(),
            timeout=30,
            what="the publication at start",
        )
        assert sidecar
        data = (folder / NAME).read_bytes()
        assert data == b""  # nothing was submitted: an empty file, not a missing one
        assert (folder / f"{NAME}.sha256").read_text() == (
            f"{hashlib.sha256(data).hexdigest()}  {NAME}\n"
        )
        wait_for(
            lambda: (
                daemon.metric(
                    "posgate_scheduler_runs_total", {"task": "dpl-publish", "outcome": "published"}
                )
                == 1.0
            ),
            what="the run counted",
        )
        stamp = daemon.metric(
            "posgate_dpl_last_publication_timestamp_seconds", {"exchange": "XCBO"}
        )
        assert stamp is not None and stamp > 0
        assert daemon.stop() == 0
    finally:
        daemon.stop()
