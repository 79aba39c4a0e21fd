"""The DPL scheduler component against a real ledger and spool, with an injected clock."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import REGISTRY

from gateway.commands.dpl_publish import CliRuntime
from gateway.config import load_config
from gateway.ledger import Ledger
from gateway.publication.firm_reports import REPORTS_JOB
from gateway.publication.publish import publish_cycle
from gateway.publication.scheduler import (
    DEADLINE_JOB,
    PUBLISH_JOB,
    DplScheduler,
    build_publication_components,
)
from tests.benchmarks.bench_dpl_publish import add_dpl_file, ledger_row, valid_fields
from tests.support.daemon import make_test_config

CT = ZoneInfo("America/Chicago")


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


class Runtime(CliRuntime):
    reload_listeners: list  # type: ignore[type-arg]


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    cfg = make_test_config(tmp_path)
    config = load_config(cfg.path)
    ledger = Ledger(config.spool.ledger_path)
    rt = Runtime(config, ledger, Clock(dt.datetime(2026, 3, 10, 10, tzinfo=CT)))
    rt.reload_listeners = []
    yield rt
    ledger.close()


def sample(metric: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(metric, labels) or 0.0


def scheduler_for(runtime: Runtime, calls: list[dt.date] | None = None) -> DplScheduler:
    def publish(cycle: dt.date, **kw: Any):  # type: ignore[no-untyped-def]
        if calls is not None:
            calls.append(cycle)
        return publish_cycle(runtime, cycle, **kw)

    return DplScheduler(runtime, publish)


def published(runtime: Runtime) -> list[str]:
    out = []
    day = dt.date(2026, 2, 20)
    while day < dt.date(2026, 4, 1):
        if runtime.ledger.publication(day.isoformat()) is not None:
            out.append(day.isoformat())
        day += dt.timedelta(days=1)
    return out


def submit(runtime: Runtime, firm: str, cycle: str) -> None:
    add_dpl_file(
        runtime.ledger,
        submitter=firm,
        cycle=dt.date.fromisoformat(cycle),
        rows=[
            ledger_row(1, valid_fields(firm, "AU", "IBM")),
        ],
    )


def test_a_fresh_ledger_publishes_only_the_latest_due_cycle(runtime: Runtime) -> None:
    scheduler = scheduler_for(runtime)
    scheduler.run_catchup()
    assert published(runtime) == ["2026-03-09"]
    stamp = sample("posgate_dpl_last_publication_timestamp_seconds", exchange="XCBO")
    assert abs(stamp - time.time()) < 60
    assert runtime.ledger.scheduler_outcomes(PUBLISH_JOB, "2026-03-09") == ["published"]
    # The next tick checks the deadline of that cycle (delivered: ok) and publishes nothing.
    before = sample("posgate_scheduler_misses_total", task=DEADLINE_JOB)
    scheduler.run_catchup()
    assert runtime.ledger.scheduler_outcomes(DEADLINE_JOB, "2026-03-09") == ["ok"]
    assert runtime.ledger.scheduler_outcomes(PUBLISH_JOB, "2026-03-09") == ["published"]
    assert sample("posgate_scheduler_misses_total", task=DEADLINE_JOB) == before


def test_a_daemon_down_over_night_catches_up_and_reports_the_late_cycles(
    runtime: Runtime,
) -> None:
    # Active installation: cycle 2026-03-04 was submitted and published on time.
    submit(runtime, "00005", "2026-03-04")
    runtime.clock.now = dt.datetime(2026, 3, 5, 0, 5, tzinfo=CT)
    publish_cycle(runtime, dt.date(2026, 3, 4))
    submit(runtime, "00005", "2026-03-05")
    submit(runtime, "00005", "2026-03-06")
    # ... then the daemon was down until Tuesday 06:00: 5th, 6th and 9th are due and late.
    runtime.clock.now = dt.datetime(2026, 3, 10, 6, 0, tzinfo=CT)
    misses = sample("posgate_scheduler_misses_total", task=DEADLINE_JOB)
    alerts = sample("posgate_alerts_total", name="publication_late")
    calls: list[dt.date] = []
    scheduler = scheduler_for(runtime, calls)
    scheduler.run_catchup()
    assert calls == [dt.date(2026, 3, 5), dt.date(2026, 3, 6), dt.date(2026, 3, 9)]
    assert published(runtime) == ["2026-03-04", "2026-03-05", "2026-03-06", "2026-03-09"]
    assert sample("posgate_scheduler_misses_total", task=DEADLINE_JOB) == misses + 3
    assert sample("posgate_alerts_total", name="publication_late") == alerts + 3
    for cycle in ("2026-03-05", "2026-03-06", "2026-03-09"):
        assert runtime.ledger.scheduler_outcomes(DEADLINE_JOB, cycle) == ["late"]
    # Idempotent: the cron jobs firing again change nothing and alert no more.
    assert scheduler.run_publish() == []
    assert scheduler.run_deadline() == []
    assert len(calls) == 3
    assert sample("posgate_alerts_total", name="publication_late") == alerts + 3


def test_cron_publish_at_0005_and_deadline_alert_for_an_undelivered_exchange(
    runtime: Runtime,
) -> None:
    submit(runtime, "00005", "2026-03-06")
    runtime.clock.now = dt.datetime(2026, 3, 7, 0, 5, tzinfo=CT)
    scheduler = scheduler_for(runtime)
    scheduler.run_catchup()  # Friday's cycle, published Saturday 00:05
    blocker = runtime.config.spool.root / "exchanges/XISE/outbound/dpl/DPL_20260309.fixml"
    blocker.mkdir(parents=True)  # XISE cannot receive Monday's file
    submit(runtime, "00005", "2026-03-09")

    runtime.clock.now = dt.datetime(2026, 3, 10, 0, 4, 59, tzinfo=CT)
    assert scheduler.run_publish() == []
    runtime.clock.now = dt.datetime(2026, 3, 10, 0, 5, tzinfo=CT)
    failed = sample("posgate_alerts_total", name="publication_failed")
    assert scheduler.run_publish() == []  # partial: XCBO has it, XISE does not
    assert runtime.ledger.scheduler_outcomes(PUBLISH_JOB, "2026-03-09") == ["partial"]
    assert sample("posgate_alerts_total", name="publication_failed") == failed + 1
    assert runtime.ledger.deliveries("2026-03-09").keys() == {"XCBO"}

    runtime.clock.now = dt.datetime(2026, 3, 10, 4, 59, 59, tzinfo=CT)
    assert scheduler.run_deadline() == []
    runtime.clock.now = dt.datetime(2026, 3, 10, 5, 0, tzinfo=CT)
    late = sample("posgate_alerts_total", name="publication_late")
    assert scheduler.run_deadline() == [dt.date(2026, 3, 9)]
    assert sample("posgate_alerts_total", name="publication_late") == late + 1
    # The exchange comes back: the next catch-up tick delivers without another alert.
    blocker.rmdir()
    runtime.clock.now = dt.datetime(2026, 3, 10, 5, 1, tzinfo=CT)
    scheduler.run_catchup()
    assert set(runtime.ledger.deliveries("2026-03-09")) == {"XCBO", "XISE"}
    assert runtime.ledger.scheduler_outcomes(PUBLISH_JOB, "2026-03-09") == ["partial", "published"]
    assert sample("posgate_alerts_total", name="publication_late") == late + 1


def test_missing_submitters_gauge_is_refreshed_after_publication(runtime: Runtime) -> None:
    for firm in ("00005", "00010", "IAN"):
        submit(runtime, firm, "2026-03-06")
    submit(runtime, "00005", "2026-03-09")
    runtime.clock.now = dt.datetime(2026, 3, 10, 0, 5, tzinfo=CT)
    scheduler = scheduler_for(runtime)
    scheduler.run_publish()
    assert sample("posgate_dpl_missing_submitters") == 2.0


def test_the_component_starts_catches_up_at_once_and_stops(runtime: Runtime) -> None:
    (component,) = build_publication_components(runtime)
    assert isinstance(component, DplScheduler) and component.name == "scheduler"
    component.start()
    try:
        assert component.healthy()
        deadline = time.monotonic() + 10
        while runtime.ledger.publication("2026-03-09") is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert published(runtime) == ["2026-03-09"]
        jobs = {job.id: job for job in component._scheduler.get_jobs()}  # type: ignore[union-attr]
        publish_at = jobs[PUBLISH_JOB].next_run_time
        assert (publish_at.hour, publish_at.minute) == (0, 5)
        assert str(publish_at.tzinfo) == "America/Chicago"
        # A SIGHUP reload with another publish time moves the cron job.
        config = runtime.config
        new = dataclasses.replace(
            config, dpl=dataclasses.replace(config.dpl, publish_time=dt.time(0, 30))
        )
        for listener in runtime.reload_listeners:
            listener(new)
        jobs = {job.id: job for job in component._scheduler.get_jobs()}  # type: ignore[union-attr]
        assert jobs[PUBLISH_JOB].next_run_time.minute == 30
    finally:
        component.stop(5.0)
    assert not component.healthy()


@pytest.mark.parametrize("late_file, outcome", [(False, "finalized"), (True, "republished")])
def test_the_run_after_the_cutoff_finalizes_or_republishes_a_preliminary_publication(
    runtime: Runtime, late_file: bool, outcome: str
) -> None:
    submit(runtime, "00005", "2026-03-09")
    runtime.clock.now = dt.datetime(2026, 3, 9, 15, tzinfo=CT)  # the cycle is still open
    early = publish_cycle(runtime, dt.date(2026, 3, 9), force=True)
    assert early.preliminary
    if late_file:  # arrives before the cutoff, after the early publication
        submit(runtime, "00352", "2026-03-09")
    runtime.clock.now = dt.datetime(2026, 3, 10, 0, 5, tzinfo=CT)
    scheduler = scheduler_for(runtime)
    scheduler.run_catchup()
    assert runtime.ledger.scheduler_outcomes(PUBLISH_JOB, "2026-03-09") == [outcome]
    publication = runtime.ledger.publication("2026-03-09")
    assert publication["preliminary"] == 0
    assert publication["records"] == (2 if late_file else 1)
    scheduler.run_catchup()  # done now: the next tick leaves the cycle alone
    assert runtime.ledger.scheduler_outcomes(PUBLISH_JOB, "2026-03-09") == [outcome]


def test_a_failing_file_holds_the_publication_until_the_deadline_then_is_named_and_republished(
    runtime: Runtime,
) -> None:
    submit(runtime, "00005", "2026-03-09")
    stuck = runtime.ledger.record_file(
        flow="dpl",
        firm="00390",
        account="00390",
        name="disk-full.fixml",
        sha256="",
        size=10,
        received_at=dt.datetime(2026, 3, 9, 15, tzinfo=CT),
        cycle=None,
        work_path="work/disk-full.fixml",
        source="test",
    )
    runtime.ledger.set_file_state(stuck, "failed", "OSError: [Errno 28] No space left on device")
    alerts = sample("posgate_alerts_total", name="publication_without_files")
    scheduler = scheduler_for(runtime)
    runtime.clock.now = dt.datetime(2026, 3, 10, 1, 0, tzinfo=CT)  # after 00:05, before 05:00
    scheduler.run_catchup()
    assert published(runtime) == []
    assert runtime.ledger.scheduler_outcomes(PUBLISH_JOB, "2026-03-09") == ["waiting_intake"]
    runtime.clock.now = dt.datetime(2026, 3, 10, 5, 1, tzinfo=CT)  # the deadline has passed
    scheduler.run_catchup()
    first = runtime.ledger.publication("2026-03-09")
    assert first is not None and first["records"] == 1
    assert sample("posgate_alerts_total", name="publication_without_files") == alerts + 1
    # The file is processed at last (space was freed): the changed cycle goes out again.
    runtime.ledger.replace_dpl_records(
        stuck,
        [ledger_row(1, valid_fields("00390", "AU", "LATE"))],
        cycle="2026-03-09",
        submitter="00390",
        totals=(1, 1, 0),
    )
    runtime.clock.now = dt.datetime(2026, 3, 10, 5, 30, tzinfo=CT)
    scheduler.run_catchup()
    again = runtime.ledger.publication("2026-03-09")
    assert again["records"] == 2 and again["sha256"] != first["sha256"]
    assert runtime.ledger.scheduler_outcomes(PUBLISH_JOB, "2026-03-09")[-1] == "republished"


def _report_of(runtime: Runtime, firm: str, cycle: str) -> Path:
    day = cycle.replace("-", "")
    return runtime.config.spool.root / f"firms/{firm}/outbound/dpl/reports/DPL_{day}.report.csv"


def test_the_firm_reports_are_a_job_after_the_publication(runtime: Runtime) -> None:
    submit(runtime, "00005", "2026-03-09")
    report = _report_of(runtime, "00005", "2026-03-09")
    seen: list[bool] = []

    def publish(cycle: dt.date, **kw: Any):  # type: ignore[no-untyped-def]
        result = publish_cycle(runtime, cycle, **kw)
        seen.append(report.exists())  # the exchanges are served before any report is written
        return result

    scheduler = DplScheduler(runtime, publish)
    scheduler.run_catchup()
    assert seen == [False] and published(runtime) == ["2026-03-09"]
    assert "IBM" in report.read_text()  # written next: by hand-driven jobs at once
    assert runtime.ledger.scheduler_outcomes(REPORTS_JOB, "2026-03-09") == ["written"]
    scheduler.run_catchup()  # done: not written again
    assert runtime.ledger.scheduler_outcomes(REPORTS_JOB, "2026-03-09") == ["written"]


def test_reports_a_stop_left_unwritten_are_written_at_the_next_tick(runtime: Runtime) -> None:
    submit(runtime, "00005", "2026-03-09")
    publish_cycle(runtime, dt.date(2026, 3, 9))  # published, then stopped before the reports
    report = _report_of(runtime, "00005", "2026-03-09")
    assert not report.exists()
    scheduler_for(runtime).run_catchup()
    assert "IBM" in report.read_text()
    assert runtime.ledger.scheduler_outcomes(PUBLISH_JOB, "2026-03-09") == []  # nothing resent


def test_a_running_scheduler_writes_the_reports_as_their_own_job(runtime: Runtime) -> None:
    submit(runtime, "00005", "2026-03-09")
    scheduler = DplScheduler(runtime, functools.partial(publish_cycle, runtime), tick_s=3600)
    scheduler.start()
    try:
        report = _report_of(runtime, "00005", "2026-03-09")
        deadline = time.monotonic() + 30
        while not report.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "IBM" in report.read_text()
    finally:
        scheduler.stop(10)
    assert runtime.ledger.scheduler_outcomes(PUBLISH_JOB, "2026-03-09") == ["published"]
    assert runtime.ledger.scheduler_outcomes(REPORTS_JOB, "2026-03-09") == ["written"]
