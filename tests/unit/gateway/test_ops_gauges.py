"""The sampled gauges: free disk space and the newest theo set."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from engine.calendar import BusinessCalendar
from gateway import metrics
from gateway.ops_gauges import OpsGauges


def _gauges(root: Path, at: dt.datetime) -> OpsGauges:
    return OpsGauges(root, lambda: at, BusinessCalendar, interval_s=0)


def test_disk_and_theo_gauges(tmp_path: Path) -> None:
    theo = tmp_path / "internal" / "theo"
    (theo / "2026-11-27").mkdir(parents=True)
    (theo / "2026-11-27" / "meta.csv").write_text("x\n")
    (theo / "2026-11-30").mkdir()  # incomplete: no meta.csv yet
    _gauges(tmp_path, dt.datetime(2026, 12, 1, 15, 0, tzinfo=dt.UTC)).tick()
    assert metrics.SPOOL_FREE_BYTES._value.get() > 0  # noqa: SLF001
    assert metrics.SPOOL_SIZE_BYTES._value.get() >= metrics.SPOOL_FREE_BYTES._value.get()  # noqa: SLF001
    assert (
        metrics.PMC_THEO_SET_DATE._value.get()
        == dt.datetime(  # noqa: SLF001
            2026, 11, 27, tzinfo=dt.UTC
        ).timestamp()
    )
