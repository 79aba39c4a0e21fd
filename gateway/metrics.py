"""Prometheus metrics of posgate and the HTTP endpoint that serves them.

Names follow ``posgate_<what>_<unit>`` with ``_total`` for counters; histograms of seconds have
buckets reaching minutes. Labels never carry file names. Metrics live in the default registry
(with the process and platform collectors) and are module-level: one daemon per process.
"""

from __future__ import annotations

import logging
import platform
import threading

from prometheus_client import Counter, Gauge, Histogram, Info, start_http_server

from gateway import __version__

log = logging.getLogger(__name__)

SECONDS_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
)

BUILD_INFO = Info("posgate_build", "posgate build information")
BUILD_INFO.info({"version": __version__, "python": platform.python_version()})

UP = Gauge("posgate_up", "1 while the daemon is running and every component is healthy")
START_TIME = Gauge("posgate_start_time_seconds", "Unix time the daemon became ready")
CONFIG_RELOADS = Counter("posgate_config_reloads_total", "SIGHUP reloads by outcome", ["outcome"])
CONFIG_LAST_RELOAD = Gauge(
    "posgate_config_last_reload_success_timestamp_seconds",
    "Unix time of the last successful config load (start-up or SIGHUP)",
)
CONFIG_LAST_RELOAD_OK = Gauge(
    "posgate_config_last_reload_successful",
    "1 when the last config load (start-up or SIGHUP) succeeded, 0 while a rejected one stands",
)

FILES_RECEIVED = Counter("posgate_files_received_total", "Input files received", ["flow", "firm"])
FILES_DUPLICATE = Counter(
    "posgate_files_duplicate_total",
    "Input files with the bytes of an earlier file of the same firm (processed all the same)",
    ["flow"],
)
FILES_QUARANTINED = Counter(
    "posgate_files_quarantined_total", "Files that could not be read", ["flow", "firm"]
)
FILES_FAILED = Counter(
    "posgate_files_failed_total",
    "Files whose processing failed transiently and will be retried",
    ["flow"],
)
PROCESSING_SECONDS = Histogram(
    "posgate_processing_seconds",
    "Time to process one input file",
    ["flow"],
    buckets=SECONDS_BUCKETS,
)
SPOOL_BACKLOG = Gauge(
    "posgate_spool_backlog_files", "Files waiting in inbound folders or claimed but not finished"
)

RECORDS_VALID = Counter("posgate_records_valid_total", "Valid records", ["flow"])
RECORDS_REJECTED = Counter("posgate_records_rejected_total", "Rejected records", ["flow"])
DPL_REJECTS_BY_REASON = Counter(
    "posgate_dpl_rejected_records_total",
    "DPL reject reasons (a record may carry several)",
    ["reason"],
)

DPL_LAST_PUBLICATION = Gauge(
    "posgate_dpl_last_publication_timestamp_seconds",
    "Unix time of the last successful delivery",
    ["exchange"],
)
DPL_LAST_PUBLISHED_CYCLE = Gauge(
    "posgate_dpl_last_published_cycle_timestamp_seconds",
    "Cycle date (as Unix time of its midnight UTC) last published",
)
DPL_PUBLISHED_RECORDS = Counter(
    "posgate_dpl_published_records_total", "Records written into aggregated files"
)
DPL_PUBLICATION_SECONDS = Histogram(
    "posgate_dpl_publication_seconds",
    "Time to build and deliver one cycle",
    buckets=SECONDS_BUCKETS,
)
DPL_FIRMS_MISSING = Gauge(
    "posgate_dpl_missing_submitters",
    "Firms that submitted in recent cycles but not in the current one",
)
DPL_FIRM_MISSING = Gauge(
    "posgate_dpl_missing_submitter",
    "1 for each firm that submitted in recent cycles but not in the current one",
    ["firm"],
)
DPL_DELIVERY_FAILURES = Counter(
    "posgate_dpl_delivery_failures_total",
    "Failed deliveries of a DPL cycle to an exchange (every attempt)",
    ["exchange"],
)

SPOOL_FREE_BYTES = Gauge(
    "posgate_spool_free_bytes", "Bytes available to posgate on the spool's file system"
)
SPOOL_SIZE_BYTES = Gauge("posgate_spool_size_bytes", "Size of the spool's file system")
PMC_THEO_SET_DATE = Gauge(
    "posgate_pmc_theo_set_date_timestamp_seconds",
    "Activity date of the newest complete theo P&L set (Unix time of its midnight UTC)",
)

SCHEDULER_RUNS = Counter("posgate_scheduler_runs_total", "Scheduled job runs", ["task", "outcome"])
SCHEDULER_MISSES = Counter(
    "posgate_scheduler_misses_total",
    "Scheduled jobs missed (late or not delivered by the deadline)",
    ["task"],
)  # not "job": Prometheus owns that label on every target

ALERTS = Counter("posgate_alerts_total", "Operator alerts raised", ["name"])

PMC_THEO_STALE = Gauge(
    "posgate_pmc_theo_stale",
    "1 while the newest loaded P&L set is older than the previous business day (or none is "
    "loaded), 0 otherwise",
)
PMC_THEO_DATE = Gauge(
    "posgate_pmc_theo_activity_date_seconds",
    "Activity date of the newest loaded P&L set (Unix time of its midnight UTC)",
)

SFTP_FAILED_LOGINS = Counter("posgate_sftp_failed_logins_total", "Failed SFTP logins")
SFTP_SESSIONS = Gauge("posgate_sftp_sessions", "Open SFTP sessions")
SFTP_UPLOADS = Counter("posgate_sftp_uploads_total", "Completed SFTP uploads")
SFTP_PARTIALS_EXPIRED = Counter(
    "posgate_sftp_partial_uploads_expired_total",
    "Interrupted SFTP uploads removed unresumed after their keep time",
)

EBE_INSTRUCTIONS = Counter(
    "posgate_ebe_instructions_total",
    "Contrary instruction lines judged, by outcome (accepted/rejected)",
    ["outcome"],
)
EBE_INSTRUCTION_REJECTS = Counter(
    "posgate_ebe_instruction_rejects_total",
    "Rejected contrary instruction lines by reason code",
    ["reason"],
)
EBE_POSITIONS_LOADED = Gauge(
    "posgate_ebe_positions_loaded",
    "Expiring positions of the newest loaded set",
)
EBE_LAST_LOAD = Gauge(
    "posgate_ebe_last_load_timestamp_seconds",
    "Unix time an expiring-position set was last loaded",
)
EBE_POSITIONS_OVERDUE = Gauge(
    "posgate_ebe_positions_overdue",
    "1 on an expiration day past [ebe] positions_expected_time with no set loaded for today",
)
EBE_EXPIRATION_TODAY = Gauge(
    "posgate_ebe_expiration_day",
    "1 when today (Chicago) is an expiration day under [ebe] expiration_days / expiration_dates",
)
EBE_SET_REJECTED = Counter(
    "posgate_ebe_sets_rejected_total", "Expiring-position sets refused (bad rows)"
)
EBE_LAST_PUBLICATION = Gauge(
    "posgate_ebe_last_publication_timestamp_seconds",
    "Unix time the contrary-intention file was last delivered, per exchange",
    ["exchange"],
)
EBE_PUBLICATION_LATE = Gauge(
    "posgate_ebe_publication_late",
    "1 while today's contrary-intention file is past the cutoff and not yet delivered",
    ["exchange"],
)
HTTP_REQUESTS = Counter(
    "posgate_http_requests_total", "HTTP requests of the web calculator", ["route", "status"]
)
HTTP_SECONDS = Histogram(
    "posgate_http_request_seconds",
    "HTTP request latency of the web calculator",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


FLOWS = ("dpl", "pmc", "ebe")
ALERT_NAMES = (
    "file_quarantined",
    "ebe_set_rejected",
    "processing_retrying",
    "processing_failed",
    "publication_late",
    "publication_failed",
    "publication_without_files",
)


def initialise_series(firms: list[str], reasons: tuple[str, ...], tasks: tuple[str, ...]) -> None:
    """Create the known label values at 0, so rate()/increase() see the first event too."""
    for flow in FLOWS:
        for counter in (
            FILES_DUPLICATE,
            FILES_FAILED,
            RECORDS_VALID,
            RECORDS_REJECTED,
        ):
            counter.labels(flow=flow)
        for firm in firms:
            FILES_RECEIVED.labels(flow=flow, firm=firm)
            FILES_QUARANTINED.labels(flow=flow, firm=firm)
    for reason in reasons:
        DPL_REJECTS_BY_REASON.labels(reason=reason)
    for name in ALERT_NAMES:
        ALERTS.labels(name=name)
    for task in tasks:
        SCHEDULER_MISSES.labels(task=task)
    for outcome in ("ok", "rejected"):
        CONFIG_RELOADS.labels(outcome=outcome)
    for outcome in ("accepted", "rejected"):
        EBE_INSTRUCTIONS.labels(outcome=outcome)
    from engine.ebe.instructions import REASON_CODES as EBE_REASONS

    for reason in EBE_REASONS:
        EBE_INSTRUCTION_REJECTS.labels(reason=reason)


class MetricsServer:
    """The /metrics endpoint as a daemon component."""

    name = "metrics"

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._server: object | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        server, thread = start_http_server(self.port, addr=self.host)
        self._server, self._thread = server, thread
        self.port = server.server_address[1]
        log.info("metrics listening on http://%s:%d/metrics", self.host, self.port)

    def stop(self, timeout: float) -> None:
        server = self._server
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]
            server.server_close()  # type: ignore[attr-defined]
        if self._thread is not None:
            self._thread.join(timeout)

    def healthy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
