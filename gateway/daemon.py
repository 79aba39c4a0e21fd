"""The daemon's lifecycle: run states, the signal queue, health, sd_notify, ordered shutdown.

Theory of operation: signal handlers only put the signal on a queue; the main loop takes signals
from the queue and acts. Components start in the order the composition root gives (ledger ->
reconcile -> metrics -> AMQP -> scheduler -> SFTP -> spool scan -> watcher) and stop in reverse.
The first SIGTERM/SIGINT starts a graceful stop with a deadline (``shutdown_grace_s``); a second
one, or the deadline passing, ends the process at once with exit code 1. SIGHUP asks the
composition root to reload the config; an invalid config is logged and the old one kept. The
systemd watchdog is pinged only while every component reports healthy.
"""

from __future__ import annotations

import enum
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from gateway import metrics, systemd

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_UNAVAILABLE = 69
EXIT_CONFIG = 78


class State(enum.Enum):
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class Component(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self, timeout: float) -> None: ...

    def healthy(self) -> bool: ...


class StartupError(Exception):
    """A component could not start; ``exit_code`` says why (69 dependency, 78 config, 1 other)."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Daemon:
    def __init__(
        self,
        components: Sequence[Component],
        *,
        shutdown_grace_s: float,
        reload: Callable[[], bool],
        tick_s: float = 1.0,
        on_tick: Callable[[], None] | None = None,
        watchdog: bool = True,
    ) -> None:
        self.components = list(components)
        self.shutdown_grace_s = shutdown_grace_s
        self.reload = reload
        self.tick_s = tick_s
        self.on_tick = on_tick
        self.watchdog = watchdog
        self.state = State.STARTING
        self.signals: queue.Queue[int] = queue.Queue()
        self._started: list[Component] = []

    # -- signals ------------------------------------------------------------------------------

    def _enqueue(self, signum: int, _frame: object) -> None:
        self.signals.put(signum)

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._enqueue)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self.state = State.STARTING
        for component in self.components:
            log.info("starting %s", component.name)
            try:
                component.start()
            except StartupError:
                self._stop_started(self.shutdown_grace_s)
                raise
            except Exception as exc:
                self._stop_started(self.shutdown_grace_s)
                raise StartupError(f"{component.name} failed to start: {exc}") from exc
            self._started.append(component)
        self.state = State.RUNNING
        metrics.START_TIME.set(time.time())
        metrics.CONFIG_LAST_RELOAD.set(time.time())  # the config loaded at start-up
        metrics.CONFIG_LAST_RELOAD_OK.set(1)
        metrics.UP.set(1)
        systemd.notify("READY=1\nSTATUS=running")
        log.info("posgate running (pid %d)", os.getpid())

    def unhealthy(self) -> list[str]:
        return [c.name for c in self._started if not _healthy(c)]

    def run(self) -> int:
        """Start, serve until a stop signal, stop. Returns the process exit code."""
        self.install_signal_handlers()
        try:
            self.start()
        except StartupError as exc:
            log.error("startup failed: %s", exc)
            self.state = State.STOPPED
            return exc.exit_code
        watchdog_s = systemd.watchdog_interval_s() if self.watchdog else None
        last_ping = 0.0
        while True:
            try:
                signum = self.signals.get(timeout=self.tick_s)
            except queue.Empty:
                signum = None
            if signum in (signal.SIGTERM, signal.SIGINT):
                return self.stop_gracefully(signum)
            if signum == signal.SIGHUP:
                self._reload()
            if self.on_tick is not None:
                try:
                    self.on_tick()
                except Exception:
                    log.exception("periodic tick failed")
            bad = self.unhealthy()
            metrics.UP.set(0 if bad else 1)
            if watchdog_s is not None and not bad and time.monotonic() - last_ping >= watchdog_s:
                systemd.notify("WATCHDOG=1")
                last_ping = time.monotonic()
            elif bad:
                log.warning("unhealthy components: %s", ", ".join(bad))

    def _reload(self) -> None:
        log.info("SIGHUP: reloading configuration")
        systemd.notify("RELOADING=1")
        try:
            ok = self.reload()
        except Exception:
            log.exception("reload failed; keeping the running configuration")
            ok = False
        metrics.CONFIG_RELOADS.labels(outcome="ok" if ok else "rejected").inc()
        metrics.CONFIG_LAST_RELOAD_OK.set(1 if ok else 0)
        if ok:
            metrics.CONFIG_LAST_RELOAD.set(time.time())
        systemd.notify(f"READY=1\nSTATUS=running ({'reloaded' if ok else 'reload rejected'})")

    def stop_gracefully(self, signum: int) -> int:
        self.state = State.STOPPING
        metrics.UP.set(0)
        systemd.notify("STOPPING=1")
        log.info(
            "%s: stopping (grace %.0fs; send again to force)",
            signal.Signals(signum).name,
            self.shutdown_grace_s,
        )
        done = threading.Event()

        def stop_all() -> None:
            self._stop_started(self.shutdown_grace_s)
            done.set()

        stopper = threading.Thread(target=stop_all, name="shutdown", daemon=True)
        stopper.start()
        deadline = time.monotonic() + self.shutdown_grace_s
        while not done.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.error("graceful stop exceeded %.0fs; exiting now", self.shutdown_grace_s)
                return self._force_exit()
            try:
                again = self.signals.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                continue
            if again in (signal.SIGTERM, signal.SIGINT):
                log.warning("second %s: exiting now", signal.Signals(again).name)
                return self._force_exit()
        self.state = State.STOPPED
        log.info("stopped cleanly")
        return EXIT_OK

    def _force_exit(self) -> int:
        logging.shutdown()
        sys.stderr.flush()
        os._exit(EXIT_FAILURE)

    def _stop_started(self, timeout: float) -> None:
        for component in reversed(self._started):
            log.info("stopping %s", component.name)
            try:
                component.stop(timeout)
            except Exception:
                log.exception("stopping %s failed", component.name)
        self._started.clear()


def _healthy(component: Component) -> bool:
    try:
        return bool(component.healthy())
    except Exception:
        log.exception("health check of %s failed", component.name)
        return False
