"""Verbs ``serve`` and ``check-config``."""

from __future__ import annotations

import argparse
import logging

from gateway.cli import EX_CONFIG, EX_OK
from gateway.commands.common import load_config_or_report
from gateway.config import Config, ConfigError, load_config
from gateway.logs import configure_logging

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = subparsers.add_parser("serve", help="run the daemon in the foreground")
    serve.set_defaults(func=run_serve)
    worker = subparsers.add_parser(
        "worker", help="serve compute requests (margin what-if) from RabbitMQ as a scale-out worker"
    )
    worker.add_argument(
        "--handler",
        action="append",
        default=[],
        metavar="TYPE=MODULE:FUNC",
        help="serve only these request types (default: every compute type)",
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve /metrics on 127.0.0.1:PORT (default: no endpoint)",
    )
    worker.set_defaults(func=run_worker_verb)
    check = subparsers.add_parser(
        "check-config", help="validate config and reference data (exit 0 or 78)"
    )
    check.set_defaults(func=run_check_config)


def _load_for_process(path: str) -> Config | None:
    """The config of a long-running process, with its logging set up; None (after logging every
    problem) when the config is invalid."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        configure_logging("INFO", "kv")
        for problem in exc.problems:
            log.error("config: %s", problem)
        return None
    configure_logging(config.daemon.log_level, config.daemon.log_format)
    return config


def run_serve(args: argparse.Namespace) -> int:
    from gateway.app import build_daemon
    from gateway.daemon import StartupError

    config = _load_for_process(args.config)
    if config is None:
        return EX_CONFIG
    try:
        daemon = build_daemon(config)
    except StartupError as exc:
        log.error("startup failed: %s", exc)
        return exc.exit_code
    return daemon.run()


def run_worker_verb(args: argparse.Namespace) -> int:
    from gateway.pipelines.requests import compute_handlers, worker_ebe_handlers
    from gateway.theo_store import TheoStore
    from gateway.worker import load_handler, run_worker

    config = _load_for_process(args.config)
    if config is None:
        return EX_CONFIG
    try:
        theo = TheoStore(config.spool.root / "internal" / "theo", keep=config.pmc.theo_keep)
        handlers = dict(load_handler(spec) for spec in args.handler) or {
            **compute_handlers(theo),
            **worker_ebe_handlers(config),
        }
    except (ValueError, ImportError, AttributeError) as exc:
        log.error("worker: %s", exc)
        return EX_CONFIG
    if not handlers:
        log.error("worker: no compute request type to serve")
        return EX_CONFIG
    return run_worker(config, handlers, metrics_port=args.metrics_port)


def run_check_config(args: argparse.Namespace) -> int:
    config = load_config_or_report(args.config)
    if config is None:
        return EX_CONFIG
    ref = config.reference
    print(
        f"config OK: {config.path}\n"
        f"  spool: {config.spool.root}\n"
        f"  accounts: {len(config.accounts)} "
        f"({sum(a.kind == 'firm' for a in config.accounts)} firms, "
        f"{sum(a.kind == 'exchange' for a in config.accounts)} exchanges)\n"
        f"  reference: {len(ref.clearing_members)} clearing members, {len(ref.ncos)} NCOs, "
        f"{len(ref.exchanges)} exchanges, {len(ref.occ_holidays)} OCC holiday overrides\n"
        f"  sftp: {config.sftp.host}:{config.sftp.port}  metrics: "
        f"{config.metrics.host}:{config.metrics.port}"
    )
    return EX_OK
