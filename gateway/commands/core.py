"""Verbs ``serve`` and ``check-config``."""

from __future__ import annotations

import argparse
import logging
import sys

from gateway.cli import EX_CONFIG, EX_OK
from gateway.config import ConfigError, load_config
from gateway.logs import configure_logging

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = subparsers.add_parser("serve", help="run the daemon in the foreground")
    serve.set_defaults(func=run_serve)
    check = subparsers.add_parser("check-config",
                                  help="validate config and reference data (exit 0 or 78)")
    check.set_defaults(func=run_check_config)


def run_serve(args: argparse.Namespace) -> int:
    from gateway.app import build_daemon
    from gateway.daemon import StartupError

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        configure_logging("INFO", "kv")
        for problem in exc.problems:
            log.error("config: %s", problem)
        return EX_CONFIG
    configure_logging(config.daemon.log_level, config.daemon.log_format)
    try:
        daemon = build_daemon(args.config)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("config: %s", problem)
        return EX_CONFIG
    except StartupError as exc:
        log.error("startup failed: %s", exc)
        return exc.exit_code
    return daemon.run()


def run_check_config(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"{len(exc.problems)} problem(s) in the configuration:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
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
