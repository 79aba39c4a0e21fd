"""The DPL publication scheduler: publish each cycle after its cutoff, watch the deadline, catch up.

Theory of operation
-------------------
An APScheduler 3.11 ``BackgroundScheduler`` (time zone America/Chicago, in-memory job store, one
worker thread so that jobs never overlap, ``coalesce=True``, ``max_instances=1``) runs three jobs:

* ``dpl-publish``: cron, daily at ``dpl.publish_time`` (00:05 CT): publish every due cycle;
* ``dpl-deadline``: cron, daily at ``dpl.deadline_time`` (05:00 CT): alert on a late cycle;
* ``dpl-catchup``: once at start, then every ``tick_s`` seconds: both of the above;
* ``dpl-reports``: once after a publication reached every exchange, and at a tick that finds a
  complete cycle whose reports were not written for its publication (a stop in between): the
  firms' reports of the cycle (``firm_reports``), so the exchange file never waits for them.

Every job decides from the ledger and from ``runtime.clock()`` alone, never from when it fired, so
firing twice, late, or not at all changes nothing but timing. A cycle D is *due* once
``publish_time`` has passed on D+1 (CT) and D is a business day (:func:`due_cycles`, pure, tested
at its boundaries); it is *done* when every receiving exchange holds its publication and that
publication is final and still what the cycle holds (a preliminary one, or one a late-processed
file changed, is published again: see ``publish``). The cron jobs
give exact wall-clock times; the catch-up job makes the component right whatever happened in
between: a daemon that was down at 00:05 publishes at once when started, an exchange that was
unreachable gets the file at the next tick, and a clock shifted with ``POSGATE_CLOCK_START``
(drills) is honoured within ``tick_s``.

Catch-up looks back ``CATCH_UP_DAYS`` calendar days, but never before the ledger's first DPL
activity (first file or publication); a fresh ledger publishes only the latest due cycle, so a new
installation does not send exchanges a week of empty files. A cycle still missing at an exchange
when its deadline passes is alerted once (``publication_late``), counted in
``posgate_scheduler_misses_total{task="dpl-deadline"}`` and recorded as ``late``; checks already
recorded are not repeated after a restart.

A cycle whose files received before the cutoff are still in the intake (or failing: a full disk,
``failed``) waits (``waiting_intake``) and is retried at the next tick, until the cycle's deadline:
then it is published without them and the ``publication_without_files`` alert names them; once
they are processed, the changed cycle is published again. Each run that acts is recorded with
``Ledger.record_scheduler_run`` and counted in ``posgate_scheduler_runs_total{task,outcome}``;
catch-up ticks that find nothing to do are only counted (``outcome="idle"``), so the ledger does
not grow by a row a minute. After each
publication (and at start) the ``posgate_dpl_missing_submitters`` gauge is refreshed for that
cycle; the last-publication gauges are read back from the ledger at every tick, so they survive a
restart and include publications made with ``posgate dpl publish`` (``gauges``).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from engine.calendar import BusinessCalendar
from gateway import metrics
from gateway.alerts import raise_alert
from gateway.config import Config, ReferenceData
from gateway.daemon import Component
from gateway.publication.decide import (
    CATCH_UP_DAYS,
    cycle_complete,
    due_cycles,
    last_due_cycle,
    missing_exchanges,
)
from gateway.publication.errors import IntakePending, PublicationCancelled
from gateway.publication.firm_reports import REPORTS_JOB, reports_written, write_firm_reports
from gateway.publication.gauges import refresh_delivery_gauges, refresh_missing_submitters
from gateway.publication.publish import (
    Emit,
    PublicationResult,
    PublicationRuntime,
    publish_cycle,
)
from gateway.reference import business_calendar

log = logging.getLogger(__name__)

CHICAGO = ZoneInfo("America/Chicago")
TICK_S = 60.0
PUBLISH_JOB = "dpl-publish"
DEADLINE_JOB = "dpl-deadline"
CATCHUP_JOB = "dpl-catchup"
PUBLISH_GRACE_S = 3600
DEADLINE_GRACE_S = 900

Publish = Callable[..., PublicationResult]
"""``publish(cycle, ignore_intake=False)``: ``publish_cycle`` bound to the runtime."""


# ---------------------------------------------------------------------------------------------
# the component


class DplScheduler:
    """Daemon component: runs the DPL publication jobs (see the module docstring)."""

    name = "scheduler"

    def __init__(
        self,
        runtime: PublicationRuntime,
        publish: Publish,
        *,
        cancel: threading.Event | None = None,
        tick_s: float = TICK_S,
        lookback_days: int = CATCH_UP_DAYS,
    ) -> None:
        self.runtime = runtime
        self.publish = publish
        self.cancel = cancel if cancel is not None else threading.Event()
        self.tick_s = tick_s
        self.lookback_days = lookback_days
        self._scheduler: BackgroundScheduler | None = None
        self._lock = threading.Lock()
        self._calendar: tuple[ReferenceData, BusinessCalendar] | None = None
        self._failure_alerted: set[dt.date] = set()
        self._times: tuple[dt.time, dt.time] | None = None
        self._missing_refreshed = False
        self._reports_due: set[dt.date] = set()

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        config = self.runtime.config
        self.cancel.clear()
        scheduler = BackgroundScheduler(
            timezone=CHICAGO,
            executors={"default": ThreadPoolExecutor(max_workers=1)},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        publish_time, deadline_time = config.dpl.publish_time, config.dpl.deadline_time
        scheduler.add_job(
            self.run_publish,
            _daily(publish_time),
            id=PUBLISH_JOB,
            name=PUBLISH_JOB,
            misfire_grace_time=PUBLISH_GRACE_S,
        )
        scheduler.add_job(
            self.run_deadline,
            _daily(deadline_time),
            id=DEADLINE_JOB,
            name=DEADLINE_JOB,
            misfire_grace_time=DEADLINE_GRACE_S,
        )
        scheduler.add_job(
            self.run_catchup,
            IntervalTrigger(seconds=self.tick_s, timezone=CHICAGO),
            id=CATCHUP_JOB,
            name=CATCHUP_JOB,
            next_run_time=dt.datetime.now(CHICAGO),
            misfire_grace_time=int(max(1.0, self.tick_s)),
        )
        scheduler.add_listener(self._on_event, EVENT_JOB_MISSED | EVENT_JOB_ERROR)
        scheduler.start()
        self._scheduler = scheduler
        self._times = (publish_time, deadline_time)
        self._follow_reloads()
        log.info(
            "dpl scheduler started: publish %s CT, deadline %s CT, catch-up every %.0fs",
            publish_time.strftime("%H:%M"),
            deadline_time.strftime("%H:%M"),
            self.tick_s,
        )

    def stop(self, timeout: float) -> None:
        """Ask a running publication to stop (it leaves nothing half-done), then shut down."""
        self.cancel.set()
        scheduler = self._scheduler
        self._scheduler = None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
        # The job thread holds the lock while it works; waiting for it is waiting for the job.
        if self._lock.acquire(timeout=max(0.0, timeout)):
            self._lock.release()
        else:
            log.warning("dpl scheduler: a job was still running after %.1fs", timeout)
        log.info("dpl scheduler stopped")

    def healthy(self) -> bool:
        scheduler = self._scheduler
        return scheduler is not None and bool(scheduler.running)

    def _follow_reloads(self) -> None:
        """Follow SIGHUP reloads: new publish/deadline times move the cron jobs."""
        listeners = getattr(self.runtime, "reload_listeners", None)
        if listeners is not None and self._on_reload not in listeners:
            listeners.append(self._on_reload)

    def _on_reload(self, config: Config) -> None:
        scheduler = self._scheduler
        if scheduler is None:
            return
        times = (config.dpl.publish_time, config.dpl.deadline_time)
        if times == self._times:
            return
        scheduler.reschedule_job(PUBLISH_JOB, trigger=_daily(times[0]))
        scheduler.reschedule_job(DEADLINE_JOB, trigger=_daily(times[1]))
        self._times = times
        log.info(
            "dpl scheduler: publish at %s CT, deadline %s CT (reloaded)",
            times[0].strftime("%H:%M"),
            times[1].strftime("%H:%M"),
        )

    def _on_event(self, event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            if event.job_id != CATCHUP_JOB:  # a skipped tick is not a miss: the next one comes
                metrics.SCHEDULER_MISSES.labels(task=event.job_id).inc()
            log.warning(
                "scheduled job %s missed its run time %s", event.job_id, event.scheduled_run_time
            )
        elif event.code == EVENT_JOB_ERROR:
            metrics.SCHEDULER_RUNS.labels(task=event.job_id, outcome="error").inc()

    # -- jobs -----------------------------------------------------------------------------------

    def run_publish(self, trigger: str = "cron") -> list[dt.date]:
        """Publish every due cycle that is not done; returns the cycles it published."""
        with self._lock:
            return self._publish_due(trigger, record_idle=True)

    def run_deadline(self, trigger: str = "cron") -> list[dt.date]:
        """Check every cycle whose deadline passed and that was not checked; returns late ones."""
        with self._lock:
            return self._check_deadlines(trigger, record_idle=True)

    def run_reports(self) -> list[dt.date]:
        """Write the firms' reports of the cycles waiting for them; returns those cycles."""
        with self._lock:
            return self._write_reports()

    def _write_reports(self) -> list[dt.date]:
        done: list[dt.date] = []
        for cycle in sorted(self._reports_due):
            if self.cancel.is_set():
                break
            try:
                write_firm_reports(self.runtime, cycle)
            except Exception:
                log.exception("dpl scheduler: the reports of cycle %s failed", cycle)
                metrics.SCHEDULER_RUNS.labels(task=REPORTS_JOB, outcome="failed").inc()
                continue
            finally:
                self._reports_due.discard(cycle)
            metrics.SCHEDULER_RUNS.labels(task=REPORTS_JOB, outcome="written").inc()
            done.append(cycle)
        return done

    def _queue_reports(self) -> None:
        """Reports run as their own job, after the job that published (one worker thread);
        a scheduler that is not running (jobs driven by hand) writes them at once."""
        if not self._reports_due:
            return
        scheduler = self._scheduler
        if scheduler is None or not scheduler.running:
            self._write_reports()
            return
        scheduler.add_job(
            self.run_reports,
            id=REPORTS_JOB,
            name=REPORTS_JOB,
            replace_existing=True,
            misfire_grace_time=None,
        )

    def run_catchup(self) -> None:
        """Deadline checks first (a cycle published late after downtime was late), then publish."""
        with self._lock:
            try:
                late = self._check_deadlines("catchup", record_idle=False)
                published = self._publish_due("catchup", record_idle=False)
            except Exception:
                log.exception("dpl catch-up failed")
                metrics.SCHEDULER_RUNS.labels(task=CATCHUP_JOB, outcome="error").inc()
                return
            if not late and not published:
                metrics.SCHEDULER_RUNS.labels(task=CATCHUP_JOB, outcome="idle").inc()

    # -- decisions against the ledger ------------------------------------------------------------

    def calendar(self) -> BusinessCalendar:
        reference = self.runtime.config.reference
        cached = self._calendar
        if cached is None or cached[0] is not reference:
            cached = (reference, business_calendar(reference))
            self._calendar = cached
        return cached[1]

    def _earliest(self, now: dt.datetime, calendar: BusinessCalendar) -> dt.date | None:
        first = self.runtime.ledger.earliest_dpl_cycle()
        if first is not None:
            return dt.date.fromisoformat(first)
        return last_due_cycle(now, calendar, self.runtime.config.dpl.publish_time)

    def _window(self, now: dt.datetime) -> list[dt.date]:
        today = now.astimezone(CHICAGO).date()
        return [today - dt.timedelta(days=b) for b in range(self.lookback_days, 0, -1)]

    def _publish_due(self, trigger: str, *, record_idle: bool) -> list[dt.date]:
        config = self.runtime.config
        ledger = self.runtime.ledger
        now = self.runtime.clock()
        calendar = self.calendar()
        published = {d for d in self._window(now) if cycle_complete(ledger, config, d, now)}
        self._refresh_publication_gauges(published, now, calendar)
        self._reports_due.update(d for d in published if not reports_written(ledger, d))
        due = due_cycles(
            now,
            calendar,
            config.dpl.publish_time,
            published,
            lookback_days=self.lookback_days,
            earliest=self._earliest(now, calendar),
        )
        if not due:
            if record_idle:
                last = last_due_cycle(now, calendar, config.dpl.publish_time)
                ledger.record_scheduler_run(
                    PUBLISH_JOB,
                    last.isoformat() if last else "",
                    "already_published",
                    f"trigger={trigger}",
                )
                metrics.SCHEDULER_RUNS.labels(task=PUBLISH_JOB, outcome="already_published").inc()
            self._queue_reports()
            return []
        done: list[dt.date] = []
        for cycle in due:
            if self.cancel.is_set():
                break
            if self._publish_one(cycle, trigger):
                done.append(cycle)
        self._queue_reports()
        return done

    def _publish_one(self, cycle: dt.date, trigger: str) -> bool:
        ledger = self.runtime.ledger
        key = cycle.isoformat()
        log.info("dpl scheduler: publishing cycle %s (trigger=%s)", key, trigger)
        try:
            try:
                result = self.publish(cycle)
            except IntakePending as exc:
                config = self.runtime.config
                deadline = self.calendar().publication_instant(cycle, config.dpl.deadline_time)
                if self.runtime.clock() < deadline:
                    log.info("dpl scheduler: cycle %s waits: %s", key, exc)
                    ledger.record_scheduler_run(PUBLISH_JOB, key, "waiting_intake", str(exc))
                    metrics.SCHEDULER_RUNS.labels(task=PUBLISH_JOB, outcome="waiting_intake").inc()
                    return False
                # The deadline binds: publish what is processed, name what is left out; when
                # those files are processed the changed cycle is published again.
                names = [f"{firm}/{name} ({state})" for _id, firm, name, state in exc.files]
                raise_alert(
                    "publication_without_files",
                    f"DPL cycle {key} published at its deadline without {len(names)} file(s)"
                    f" still failing or in the intake: {', '.join(names)}",
                    {"cycle": key, "files": names},
                )
                result = self.publish(cycle, ignore_intake=True)
        except PublicationCancelled:
            ledger.record_scheduler_run(PUBLISH_JOB, key, "cancelled", f"trigger={trigger}")
            metrics.SCHEDULER_RUNS.labels(task=PUBLISH_JOB, outcome="cancelled").inc()
            return False
        except Exception as exc:
            log.exception("dpl scheduler: publication of cycle %s failed", key)
            ledger.record_scheduler_run(
                PUBLISH_JOB, key, "failed", f"trigger={trigger} {type(exc).__name__}: {exc}"[:1000]
            )
            metrics.SCHEDULER_RUNS.labels(task=PUBLISH_JOB, outcome="failed").inc()
            self._alert_failure(cycle, str(exc), [])
            return False
        if result.reports_due:
            self._reports_due.add(cycle)
        if result.complete:
            if result.finalized:
                outcome = "finalized"  # a preliminary publication, unchanged, is the final one
            elif result.replaces:
                outcome = "republished"  # the cycle changed since its last publication
            else:
                outcome = "already_published" if result.skipped else "published"
            detail = (
                f"trigger={trigger} records={result.records} sha256={result.sha256} "
                f"delivered={','.join(d.exchange for d in result.delivered) or '-'}"
            )
        else:
            outcome = "partial"
            detail = f"trigger={trigger} failed=" + ",".join(
                f"{f.exchange}: {f.error}" for f in result.failures
            )
            self._alert_failure(cycle, detail, [f.exchange for f in result.failures])
        ledger.record_scheduler_run(PUBLISH_JOB, key, outcome, detail[:1000])
        metrics.SCHEDULER_RUNS.labels(task=PUBLISH_JOB, outcome=outcome).inc()
        self.refresh_missing_submitters(cycle)
        return result.complete

    def _alert_failure(self, cycle: dt.date, detail: str, exchanges: list[str]) -> None:
        for exchange in exchanges:  # every attempt: the alert rule fires at once, not at 05:00
            metrics.DPL_DELIVERY_FAILURES.labels(exchange=exchange).inc()
        if cycle in self._failure_alerted:  # retried every tick: alert once per cycle
            return
        self._failure_alerted.add(cycle)
        raise_alert(
            "publication_failed",
            f"DPL cycle {cycle.isoformat()} could not be delivered",
            {"cycle": cycle.isoformat(), "exchanges": exchanges, "detail": detail},
        )

    def _check_deadlines(self, trigger: str, *, record_idle: bool) -> list[dt.date]:
        config = self.runtime.config
        ledger = self.runtime.ledger
        now = self.runtime.clock()
        calendar = self.calendar()
        if ledger.earliest_dpl_cycle() is None:
            return []  # nothing was ever published or submitted: nothing can be late yet
        checked = {
            d for d in self._window(now) if ledger.scheduler_outcomes(DEADLINE_JOB, d.isoformat())
        }
        reached = due_cycles(
            now,
            calendar,
            config.dpl.deadline_time,
            checked,
            lookback_days=self.lookback_days,
            earliest=self._earliest(now, calendar),
        )
        late: list[dt.date] = []
        for cycle in reached:
            key = cycle.isoformat()
            missing = missing_exchanges(ledger, config, cycle)
            if not missing:
                ledger.record_scheduler_run(DEADLINE_JOB, key, "ok", f"trigger={trigger}")
                metrics.SCHEDULER_RUNS.labels(task=DEADLINE_JOB, outcome="ok").inc()
                continue
            late.append(cycle)
            deadline = calendar.publication_instant(cycle, config.dpl.deadline_time)
            raise_alert(
                "publication_late",
                f"DPL cycle {key} not delivered by {deadline.isoformat()} to {', '.join(missing)}",
                {"cycle": key, "deadline": deadline.isoformat(), "missing_exchanges": missing},
            )
            metrics.SCHEDULER_MISSES.labels(task=DEADLINE_JOB).inc()
            metrics.SCHEDULER_RUNS.labels(task=DEADLINE_JOB, outcome="late").inc()
            ledger.record_scheduler_run(
                DEADLINE_JOB, key, "late", f"trigger={trigger} missing={','.join(missing)}"
            )
        if not reached and record_idle:
            metrics.SCHEDULER_RUNS.labels(task=DEADLINE_JOB, outcome="nothing_due").inc()
        return late

    def _refresh_publication_gauges(
        self, published: set[dt.date], now: dt.datetime, calendar: BusinessCalendar
    ) -> None:
        """Gauges from the ledger, so they are right after a restart or a CLI publication."""
        refresh_delivery_gauges(self.runtime.ledger, published)
        if not self._missing_refreshed:
            self._missing_refreshed = True
            last = last_due_cycle(now, calendar, self.runtime.config.dpl.publish_time)
            if last is not None:
                self.refresh_missing_submitters(last)

    def refresh_missing_submitters(self, cycle: dt.date) -> int:
        """Set ``posgate_dpl_missing_submitters`` for ``cycle``; returns the count."""
        lookback = self.runtime.config.dpl.missing_lookback_cycles
        return refresh_missing_submitters(self.runtime.ledger, self.calendar(), cycle, lookback)


def _daily(at: dt.time) -> CronTrigger:
    return CronTrigger(hour=at.hour, minute=at.minute, second=0, timezone=CHICAGO)


def build_publication_components(runtime: Any, emit: Emit | None = None) -> list[Component]:
    """The components of the publication flow, for the composition root (after AMQP).

    ``emit(routing_key, body)`` receives ``exchange.<id>.dpl.published`` events when given.
    """
    cancel = threading.Event()
    publish = functools.partial(
        publish_cycle, runtime, force=False, progress=False, emit=emit, cancel=cancel
    )
    tick_s = runtime.config.dpl.catchup_interval_s
    return [DplScheduler(runtime, publish, cancel=cancel, tick_s=tick_s)]
