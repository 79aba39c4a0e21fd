"""The sampled gauges: free disk space, newest theo set, expiring-positions inputs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from engine.calendar import BusinessCalendar
from gateway import metrics
from gateway.ops_gauges import OpsGauges, expiration_date, third_friday


def test_expiration_is_the_third_friday_or_the_business_day_before() -> None:
    calendar = BusinessCalendar()
    assert third_friday(2026, 12) == dt.date(2026, 12, 18)
    assert third_friday(2026, 5) == dt.date(2026, 5, 15)
    assert expiration_date(2026, 12, calendar) == dt.date(2026, 12, 18)
    # Good Friday 2025-04-18 is the third Friday of April: Thursday expires instead.
    assert expiration_date(2025, 4, calendar) == dt.date(2025, 4, 17)


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


def test_expiring_positions_missing_only_on_an_expiration_morning(tmp_path: Path) -> None:
    def missing(at: dt.datetime) -> float:
        _gauges(tmp_path, at).tick()
        return metrics.EBE_INPUTS_MISSING._value.get()  # noqa: SLF001

    expiration_9ct = dt.datetime(2026, 12, 18, 15, 0, tzinfo=dt.UTC)
    assert missing(expiration_9ct) == 1
    assert missing(dt.datetime(2026, 12, 18, 13, 0, tzinfo=dt.UTC)) == 0  # 07:00 CT, not due
    assert missing(dt.datetime(2026, 12, 17, 15, 0, tzinfo=dt.UTC)) == 0  # not an expiration
    folder = tmp_path / "internal" / "ebe" / "2026-12-18"
    folder.mkdir(parents=True)
    assert missing(expiration_9ct) == 1  # meta.csv (written last) not there yet
    (folder / "meta.csv").write_text("x\n")
    assert missing(expiration_9ct) == 0
