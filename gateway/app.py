"""THE composition root: config -> adapters -> pipelines -> Daemon.

Nothing else in posgate builds adapters or decides their start order. ``Runtime`` is what the
components share: the current configuration (swapped atomically on a valid SIGHUP reload), the
ledger and the clock. Components read ``runtime.config`` each time they need it, so a reload
reaches new SFTP logins, the next file and the next scheduled run without restarting anything.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from engine.calendar import BusinessCalendar
from engine.dpl.records import REASON_CODES
from gateway import alerts, metrics
from gateway.amqp.outbox import Outbox, SqliteProcessedStore, insert_event
from gateway.amqp.service import AmqpService, Handler
from gateway.config import Config, ConfigError, load_config
from gateway.daemon import EXIT_UNAVAILABLE, Component, Daemon, StartupError
from gateway.ebe_store import ExpiringStore
from gateway.ledger import Ledger
from gateway.ops_gauges import OpsGauges
from gateway.pipelines.dpl import DplArrival, Emit, no_events
from gateway.pipelines.ebe import EbeFlow, EbeLoader
from gateway.pipelines.pmc import PmcArrival, TheoLoader
from gateway.pipelines.requests import (
    compute_handlers,
    dpl_report_handler,
    dpl_submission_handler,
    ebe_instruction_handler,
    ebe_query_handler,
    pmc_positions_handler,
    theo_handlers,
)
from gateway.publication.scheduler import DEADLINE_JOB, PUBLISH_JOB, build_publication_components
from gateway.reference import business_calendar
from gateway.sftp import SftpAccount, SftpServer, SftpStartError
from gateway.spool.intake import SpoolIntake
from gateway.theo_store import TheoStore
from gateway.worker import identities_of

log = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def clock_from_environment(environ: dict[str, str] | None = None) -> Clock:
    """The wall clock, or with ``POSGATE_CLOCK_START=ISO8601`` a clock that starts at that instant.

    The shifted clock runs at real speed from the given instant; it exists for drills and tests of
    cycle boundaries (e.g. an upload at 23:59:59 CT) against the real process.
    """
    env = os.environ if environ is None else environ
    start = env.get("POSGATE_CLOCK_START")
    if not start:
        return system_clock
    origin = dt.datetime.fromisoformat(start)
    if origin.tzinfo is None:
        raise ValueError("POSGATE_CLOCK_START needs a UTC offset, e.g. 2026-11-20T23:59:59-06:00")
    began = time.monotonic()

    def shifted() -> dt.datetime:
        return origin.astimezone(dt.UTC) + dt.timedelta(seconds=time.monotonic() - began)

    log.warning("clock shifted: now is %s", origin.isoformat())
    return shifted


class Runtime:
    """Shared state of one daemon: current config, ledger, clock."""

    def __init__(self, config: Config, ledger: Ledger, clock: Clock) -> None:
        self._config = config
        self._lock = threading.Lock()
        self.ledger = ledger
        self.clock = clock
        self.reload_listeners: list[Callable[[Config], None]] = []

    @property
    def config(self) -> Config:
        with self._lock:
            return self._config

    def replace_config(self, config: Config) -> None:
        with self._lock:
            self._config = config
        for listener in self.reload_listeners:
            try:
                listener(config)
            except Exception:
                log.exception("reload listener failed")


class _CalendarCache:
    """The business calendar of the current reference data, rebuilt only after a reload."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._source: object | None = None
        self._calendar: BusinessCalendar | None = None

    def get(self) -> BusinessCalendar:
        reference = self.runtime.config.reference
        if self._calendar is None or reference is not self._source:
            self._calendar = business_calendar(reference)
            self._source = reference
        return self._calendar


def make_dated_pmc_folders(config: Config, dates: list[str]) -> None:
    """``inbound/pmc/<date>/`` of every firm for each loaded set (SFTP users cannot mkdir)."""
    root = config.spool.root
    owner = root.stat()
    for account in config.accounts:
        if account.kind != "firm":
            continue
        for day in dates:
            folder = root / "firms" / account.entity_id / "inbound" / "pmc" / day
            try:
                _make_owned(folder, root, owner.st_uid, owner.st_gid)
            except OSError as exc:
                log.warning("cannot create %s: %s", folder, exc)


def prepare_spool(config: Config) -> None:
    """Create the spool tree for every account and receiving exchange (idempotent).

    Folders created by root (an admin running ``posgate firm add`` with sudo) are given to the
    owner of the spool root, so the daemon's own user can write in them.
    """
    root = config.spool.root
    root.mkdir(parents=True, exist_ok=True)
    owner = root.stat()
    folders = [
        root / f
        for f in ("internal/theo", "internal/ebe", "quarantine", "archive", "state", "work")
    ]
    for account in config.accounts:
        if account.kind == "firm":
            firm = root / "firms" / account.entity_id
            folders += [
                firm / flow_dir
                for flow_dir in (
                    "inbound/dpl",
                    "inbound/pmc",
                    "inbound/ebe",
                    "outbound/dpl",
                    "outbound/pmc",
                    "outbound/ebe",
                )
            ]
        else:
            folders.append(root / "exchanges" / account.entity_id / "outbound" / "dpl")
            folders.append(root / "exchanges" / account.entity_id / "outbound" / "ebe")
    folders += [
        root / "exchanges" / e.exchange_id / "outbound" / "dpl"
        for e in config.reference.exchanges
        if e.delivery == "spool"
    ]
    folders += [
        root / "exchanges" / e.exchange_id / "outbound" / "ebe"
        for e in config.reference.exchanges
        if e.delivery == "spool" and e.receives_ebe
    ]
    for folder in folders:
        _make_owned(folder, root, owner.st_uid, owner.st_gid)
    os.chmod(root / "state", 0o700)


def _make_owned(folder: Path, root: Path, uid: int, gid: int) -> None:
    """mkdir -p ``folder``; as root, hand every folder it creates below ``root`` to uid:gid."""
    missing = []
    current = folder
    while current != root and not current.exists():
        missing.append(current)
        current = current.parent
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0 and uid != 0:
        for created in missing:
            os.chown(created, uid, gid)


class LedgerComponent:
    """Keeps the ledger open for the daemon's lifetime, checkpoints its WAL in the background
    (every ``checkpoint_interval_s``, and fully at stop) and closes it last."""

    name = "ledger"

    def __init__(self, ledger: Ledger, checkpoint_interval_s: float = 15.0) -> None:
        self.ledger = ledger
        self.checkpoint_interval_s = checkpoint_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        log.info("ledger %s at schema version %d", self.ledger.path, self.ledger.schema_version())
        self._thread = threading.Thread(target=self._run, name="ledger-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.checkpoint_interval_s):
            try:
                self.ledger.checkpoint("PASSIVE")
            except Exception:
                log.exception("ledger checkpoint failed")

    def stop(self, timeout: float) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        try:
            self.ledger.checkpoint("TRUNCATE")
        except Exception:
            log.exception("final ledger checkpoint failed")
        self.ledger.close()

    def healthy(self) -> bool:
        try:
            self.ledger.connect().execute("SELECT 1").fetchone()
        except Exception:
            return False
        return self._thread is not None and self._thread.is_alive()


INSTANCE_LOCK = "posgate.lock"
_held_locks: list[int] = []  # open for the life of the process: the kernel drops it at exit


def lock_instance(state_dir: Path) -> None:
    """One ``posgate serve`` per spool: an exclusive ``flock`` on ``state/posgate.lock``, taken
    before the ledger is opened, so a second daemon on the same spool touches nothing and exits
    69. The lock goes with the process (crash or kill -9 included); the file stays, harmlessly."""
    import fcntl

    path = state_dir / INSTANCE_LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise StartupError(
            f"another posgate serve (pid {holder}) already runs on this spool ({path})",
            EXIT_UNAVAILABLE,
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _held_locks.append(fd)


def build_daemon(config: Config) -> Daemon:
    """Build every adapter and pipeline of ``config``; return the Daemon ready to ``run``.

    SIGHUP reloads the same file (``config.path``)."""
    prepare_spool(config)
    lock_instance(config.spool.state_dir)
    try:
        ledger = Ledger(config.spool.ledger_path)
    except Exception as exc:
        raise StartupError(f"cannot open ledger {config.spool.ledger_path}: {exc}") from exc
    runtime = Runtime(config, ledger, clock_from_environment())
    components: list[Component] = [LedgerComponent(ledger)]
    components.extend(_flow_components(runtime))

    def reload() -> bool:
        try:
            new = load_config(config.path)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload rejected: %s", problem)
            return False
        prepare_spool(new)
        runtime.replace_config(new)
        log.info("configuration reloaded: %d accounts", len(new.accounts))
        return True

    calendars: dict[int, BusinessCalendar] = {}

    def calendar() -> BusinessCalendar:
        reference = runtime.config.reference  # rebuilt only when a reload replaced it
        if id(reference) not in calendars:
            calendars.clear()
            calendars[id(reference)] = business_calendar(reference)
        return calendars[id(reference)]

    gauges = OpsGauges(config.spool.root, runtime.clock, calendar)
    return Daemon(
        components,
        shutdown_grace_s=config.daemon.shutdown_grace_s,
        reload=reload,
        on_tick=gauges.tick,
        watchdog=config.daemon.watchdog,
    )


def _unexport_amqp_gauges() -> None:
    """With AMQP off there is no broker to be up or down: the gauges are not exported at all,
    so the AMQP alerts stay silent instead of seeing a permanent 0."""
    from prometheus_client import REGISTRY

    from gateway.amqp.service import AMQP_UP, OUTBOX_DEPTH

    for gauge in (AMQP_UP, OUTBOX_DEPTH):
        with contextlib.suppress(KeyError):
            REGISTRY.unregister(gauge)


def sftp_accounts(config: Config) -> dict[str, SftpAccount]:
    """SFTP logins of the config: a firm's root is its spool folder, an exchange's likewise."""
    root = config.spool.root
    out = {}
    for account in config.accounts:
        folder = "firms" if account.kind == "firm" else "exchanges"
        out[account.name] = SftpAccount(
            login=account.name,
            kind=account.kind,  # type: ignore[arg-type]
            root=root / folder / account.entity_id,
            public_keys=account.public_keys,
            quota_bytes=account.quota_bytes,
        )
    return out


class _SftpMetrics:
    failed_logins = metrics.SFTP_FAILED_LOGINS
    sftp_connections = metrics.SFTP_SESSIONS
    sftp_uploads = metrics.SFTP_UPLOADS
    sftp_partials_expired = metrics.SFTP_PARTIALS_EXPIRED


def _flow_components(runtime: Runtime) -> list[Component]:
    """Adapters in start order: metrics -> AMQP -> scheduler -> SFTP -> intake (scan, watcher)."""
    config = runtime.config
    out: list[Component] = []
    if config.metrics.enabled:
        out.append(metrics.MetricsServer(config.metrics.host, config.metrics.port))
    metrics.initialise_series(
        firms=sorted({a.entity_id for a in config.accounts if a.kind == "firm"}),
        reasons=REASON_CODES,
        tasks=(PUBLISH_JOB, DEADLINE_JOB),
    )
    # Events go to the outbox table first (sent from there when the broker is up); with AMQP
    # off they are only logged.
    outbox = Outbox(config.spool.ledger_path) if config.amqp.enabled else None
    if outbox is None:
        _unexport_amqp_gauges()
    emit: Emit = outbox.emit if outbox is not None else no_events  # type: ignore[assignment]
    if outbox is not None:
        alerts.add_event_sink(outbox.emit)
        # Events that report a ledger state change are written in its transaction.
        runtime.ledger.event_writer = insert_event
        runtime.ledger.events_committed = outbox.notify
    dpl_arrival = DplArrival(
        spool_root=config.spool.root,
        ledger=runtime.ledger,
        config=lambda: runtime.config,
    )
    theo_store = TheoStore(config.spool.root / "internal" / "theo", keep=config.pmc.theo_keep)
    calendars = _CalendarCache(runtime)
    theo_loader = TheoLoader(theo_store, clock=runtime.clock, calendar=calendars.get)
    pmc_arrival = PmcArrival(
        spool_root=config.spool.root,
        ledger=runtime.ledger,
        theo=theo_store,
        write_pdf=lambda: runtime.config.pmc.write_pdf,
        emit=emit,
        clock=runtime.clock,
        calendar=calendars.get,
    )
    ebe_store = ExpiringStore(config.spool.root / "internal" / "ebe")
    ebe_flow = EbeFlow(
        spool_root=config.spool.root,
        ledger=runtime.ledger,
        store=ebe_store,
        config=lambda: runtime.config,
        clock=runtime.clock,
        emit=emit,
        calendar=calendars.get,
    )
    ebe_store.on_loaded = ebe_flow.set_loaded
    ebe_store.on_rejected = ebe_flow.set_rejected
    ebe_loader = EbeLoader(ebe_flow)

    def on_internal(path: Path) -> None:
        theo_loader.poke(path)
        ebe_loader.poke(path)

    intake = SpoolIntake(
        spool_root=config.spool.root,
        ledger=runtime.ledger,
        handlers={"dpl": dpl_arrival, "pmc": pmc_arrival, "ebe": ebe_flow},
        on_internal=on_internal,
        clock=runtime.clock,
        stable_interval_s=config.intake.stable_interval_s,
        sweep_interval_s=config.intake.sweep_interval_s,
        workers=config.intake.workers,
        retry_max_s=config.intake.retry_max_s,
        technical_contact=lambda firm: runtime.config.technical_contact(firm),
    )
    dpl_arrival.stopping = intake.stopping  # a long file in hand does not outlive the grace

    def on_theo_loaded() -> None:
        make_dated_pmc_folders(runtime.config, theo_store.dates())
        intake.retry_now()  # margin files waiting for a set go at once

    theo_loader.on_loaded = on_theo_loaded
    if outbox is not None:
        handlers: dict[str, Handler] = {
            "dpl.submission": dpl_submission_handler(intake, dpl_arrival),
            "dpl.report": dpl_report_handler(runtime.ledger),
            "pmc.positions": pmc_positions_handler(intake, pmc_arrival),
            "ebe.query": ebe_query_handler(ebe_flow),
            "ebe.instruction": ebe_instruction_handler(ebe_flow),
        }
        handlers.update(compute_handlers(theo_store))
        handlers.update(theo_handlers(theo_store))
        out.append(
            AmqpService(
                config.amqp,
                lambda: identities_of(runtime.config),
                handlers,
                outbox,
                SqliteProcessedStore(config.spool.ledger_path),
            )
        )
    out.append(theo_loader)
    out.append(ebe_loader)
    if config.web.enabled:
        out.append(_web_component(config, theo_store))
    out.extend(build_publication_components(runtime))  # events: with the delivery row
    if config.sftp.enabled:
        out.append(
            _SftpComponent(
                SftpServer(
                    host=config.sftp.host,
                    port=config.sftp.port,
                    host_key_path=config.sftp.host_key_path,
                    accounts=lambda: sftp_accounts(runtime.config),
                    max_file_bytes=config.sftp.max_file_bytes,
                    failed_login_delay_s=config.sftp.failed_login_delay_s,
                    max_connections=config.sftp.max_connections,
                    login_grace_s=config.sftp.login_grace_s,
                    max_unauthenticated=config.sftp.max_unauthenticated,
                    max_unauthenticated_per_address=config.sftp.max_unauthenticated_per_address,
                    max_sessions_per_account=config.sftp.max_sessions_per_account,
                    resume_keep_s=config.sftp.resume_keep_s,
                    trusted_user_ca_keys=config.sftp.trusted_user_ca_keys,
                    on_upload=lambda account, path, received_at: intake.nominate(
                        path, complete=True, received_at=received_at
                    ),
                    metrics=_SftpMetrics(),
                    clock=runtime.clock,
                )
            )
        )
    out.append(intake)
    return out


def _web_component(config: Config, theo_store: TheoStore) -> Component:
    from gateway.web.api import create_app
    from gateway.web.server import WebServer, limits_of
    from gateway.web.sets import TheoSets

    sets = TheoSets(theo_store.root, store=theo_store)
    app = create_app(sets, limits_of(config.web))
    return WebServer(app, config.web.host, config.web.port, config.web.trusted_proxies)


class _SftpComponent:
    """The embedded SFTP server as a daemon component; a port in use is a dependency problem."""

    name = "sftp"

    def __init__(self, server: SftpServer) -> None:
        self.server = server

    def start(self) -> None:
        try:
            self.server.start()
        except SftpStartError as exc:
            raise StartupError(f"SFTP server: {exc}", EXIT_UNAVAILABLE) from exc
        log.info("SFTP listening on %s:%d", self.server.host, self.server.port)

    def stop(self, timeout: float) -> None:
        self.server.stop(timeout)

    def healthy(self) -> bool:
        return self.server.healthy()
