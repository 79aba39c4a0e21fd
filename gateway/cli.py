"""The ``posgate`` command line: global options and the registry of verb modules.

Each module named in ``VERB_MODULES`` defines ``register(subparsers)`` and adds its verbs with
``set_defaults(func=handler)``; a handler takes the parsed arguments and returns the exit code
(sysexits: 0 ok, 1 failure, 2 usage, 65 bad data, 69 dependency unavailable, 78 bad config).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from gateway import __version__

VERB_MODULES = [
    "gateway.commands.core",
    "gateway.commands.init",
    "gateway.commands.accounts",
    "gateway.commands.dpl_validate",
    "gateway.commands.dpl_publish",
    "gateway.commands.report",
    "gateway.commands.calendar",
    "gateway.commands.dpl_sample",
    "gateway.commands.margin",
    "gateway.commands.pmc_tools",
    "gateway.commands.ebe",
    "gateway.commands.web",
]

EX_OK = 0
EX_FAILURE = 1
EX_USAGE = 2
EX_DATAERR = 65
EX_UNAVAILABLE = 69
EX_CONFIG = 78


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="posgate",
        description="Clearing-house position file gateway.",
    )
    parser.add_argument(
        "--config",
        default=os.environ.get("POSGATE_CONFIG", "config/posgate.toml"),
        help="config file (default: $POSGATE_CONFIG, else config/posgate.toml)",
    )
    parser.add_argument("--version", action="version", version=version_text())
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in VERB_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


DAEMON_VERBS = ("serve", "worker")
"""Verbs that log as a service (structured lines, see gateway.logs); the others talk to a person."""


def version_text() -> str:
    """``posgate X.Y.Z (commit abc1234)``: the commit recorded at install, else the checkout's."""
    from pathlib import Path

    package = Path(__file__).resolve().parent
    commit = ""
    recorded = package / "COMMIT"
    if recorded.is_file():
        commit = recorded.read_text(encoding="utf-8").strip()
    else:
        import subprocess

        try:
            commit = subprocess.run(
                ["git", "-C", str(package), "rev-parse", "--short=12", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                check=False,
            ).stdout.strip()
        except OSError:
            commit = ""
    return f"posgate {__version__} (commit {commit or 'unknown'})"


def hoist_global_options(argv: Sequence[str]) -> list[str]:
    """Move ``--config PATH`` / ``--config=PATH`` written after the verb to the front, so
    ``posgate check-config --config x.toml`` works like ``posgate --config x.toml check-config``.
    Nothing after ``--`` is touched."""
    args = list(argv)
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        if arg == "--config" and i + 1 < len(args):
            front += [arg, args[i + 1]]
            i += 2
            continue
        if arg.startswith("--config="):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(hoist_global_options(sys.argv[1:] if argv is None else argv))
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EX_USAGE
    if not logging.getLogger().handlers:
        from gateway.logs import configure_cli_logging, configure_logging

        if args.verb in DAEMON_VERBS:
            configure_logging("INFO", "kv")
        else:
            configure_cli_logging()
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EX_OK


if __name__ == "__main__":
    sys.exit(main())
