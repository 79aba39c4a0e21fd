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
    "gateway.commands.accounts",
    "gateway.commands.dpl_validate",
    "gateway.commands.dpl_publish",
    "gateway.commands.report",
    "gateway.commands.calendar",
    "gateway.commands.dpl_sample",
    "gateway.commands.margin",
    "gateway.commands.pmc_tools",
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
    parser.add_argument("--version", action="version", version=f"posgate {__version__}")
    subparsers = parser.add_subparsers(dest="verb", metavar="VERB")
    for name in VERB_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EX_USAGE
    if not logging.getLogger().handlers:
        from gateway.logs import configure_logging

        configure_logging("INFO", "kv")
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EX_OK


if __name__ == "__main__":
    sys.exit(main())
