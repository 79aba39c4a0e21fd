"""``posgate worker``: a process that serves compute requests as a competing consumer.

Theory of operation
-------------------
A worker owns no spool and no ledger. It runs one ``AmqpService`` over the queues of the compute
types it is given (``posgate.requests.margin.whatif``, ... see ``gateway.amqp.topology``), so it
never receives a request type it does not serve, and any number of workers on any machines share
those queues with each other and with ``posgate serve``. Its lifecycle is the daemon's
(``gateway.daemon.Daemon``): signal handlers only queue the signal; SIGTERM/SIGINT stop intake,
let running requests finish and be acknowledged within ``[daemon] shutdown_grace_s``, then exit 0;
a second signal exits at once; SIGHUP reloads the config and with it the AMQP user -> firm map.
The broker may be down at start or go away later: the worker keeps retrying, it does not exit.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import threading
from collections.abc import Callable, Mapping, Sequence

from gateway.amqp.dispatch import Handler
from gateway.amqp.service import AmqpService
from gateway.config import Config, ConfigError, load_config
from gateway.daemon import EXIT_CONFIG, EXIT_FAILURE, Component, Daemon
from gateway.logs import configure_logging
from gateway.metrics import MetricsServer

log = logging.getLogger(__name__)


def identities_of(config: Config) -> dict[str, str]:
    """AMQP user -> firm id, from the firm accounts that have an ``amqp_user``."""
    return {
        account.amqp_user: account.entity_id
        for account in config.accounts
        if account.kind == "firm" and account.amqp_user
    }


class IdentityMap:
    """The current user -> firm map; replaced whole on reload, read per message."""

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._mapping: Mapping[str, str] = dict(mapping)
        self._lock = threading.Lock()

    def __call__(self) -> Mapping[str, str]:
        with self._lock:
            return self._mapping

    def replace(self, mapping: Mapping[str, str]) -> None:
        with self._lock:
            self._mapping = dict(mapping)


def run_worker(
    config: Config,
    handlers: Mapping[str, Handler],
    *,
    metrics_port: int | None = None,
    reload: Callable[[], Config] | None = None,
) -> int:
    """Serve ``handlers`` (compute types only) until SIGTERM; returns the exit code.

    ``metrics_port`` serves /metrics on 127.0.0.1 (off by default: the daemon on the same host
    already uses the configured port). ``reload`` loads a new config on SIGHUP (default: the
    same file again).
    """
    if not config.amqp.enabled:
        log.error("posgate worker needs [amqp] enabled = true in %s", config.path)
        return EXIT_CONFIG
    identities = IdentityMap(identities_of(config))
    try:
        service = AmqpService.for_worker(config.amqp, identities, handlers)
    except ValueError as exc:
        log.error("posgate worker: %s", exc)
        return EXIT_CONFIG
    load = reload or (lambda: load_config(config.path))

    def reload_identities() -> bool:
        try:
            new = load()
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("reload rejected: %s", problem)
            return False
        identities.replace(identities_of(new))
        log.info("configuration reloaded: %d AMQP users", len(identities()))
        return True

    components: list[Component] = []
    if metrics_port is not None:
        components.append(MetricsServer("127.0.0.1", metrics_port))
    components.append(service)
    log.info("posgate worker serving %s", ", ".join(sorted(handlers)))
    return Daemon(
        components, shutdown_grace_s=config.daemon.shutdown_grace_s, reload=reload_identities
    ).run()


def load_handler(spec: str) -> tuple[str, Handler]:
    """``TYPE=package.module:function`` -> (type, the function)."""
    request_type, sep, target = spec.partition("=")
    module_name, colon, attribute = target.partition(":")
    if not sep or not colon or not request_type or not module_name or not attribute:
        raise ValueError(f"handler {spec!r} is not TYPE=module:function")
    handler = getattr(importlib.import_module(module_name), attribute)
    if not callable(handler):
        raise ValueError(f"handler {target!r} is not callable")
    return request_type, handler


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gateway.worker --config PATH --handler TYPE=module:function ...``."""
    parser = argparse.ArgumentParser(prog="posgate-worker", description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="config file (default $POSGATE_CONFIG)")
    parser.add_argument(
        "--handler",
        action="append",
        default=[],
        metavar="TYPE=MODULE:FUNC",
        help="request type and the function that serves it (repeatable)",
    )
    parser.add_argument("--metrics-port", type=int, default=None)
    args = parser.parse_args(argv)
    configure_logging("INFO", "kv")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("%s", problem)
        return EXIT_CONFIG
    configure_logging(config.daemon.log_level, config.daemon.log_format)
    try:
        handlers = dict(load_handler(spec) for spec in args.handler)
    except (ValueError, ImportError, AttributeError) as exc:
        log.error("%s", exc)
        return EXIT_CONFIG
    try:
        return run_worker(config, handlers, metrics_port=args.metrics_port)
    except Exception:
        log.exception("posgate worker failed")
        return EXIT_FAILURE


if __name__ == "__main__":
    raise SystemExit(main())
