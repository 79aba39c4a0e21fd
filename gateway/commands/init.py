"""Verb ``init DIR``: lay out the default config and ops files that ship with posgate.

``DIR/config/posgate.toml`` (spool at ``DIR/spool`` unless ``--spool``), ``DIR/config/reference/``,
an empty ``DIR/config/accounts/``, the Prometheus rules and their tests, the Grafana dashboard, the
sample position files and theo set, and the systemd units in ``DIR/systemd/``: the tree of a
checkout, so ``cd DIR && posgate check-config`` works as it does there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.cli import EX_OK
from gateway.commands.common import EX_CANTCREAT
from gateway.shipped_files import CONFIG, lay_out


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "init",
        help="lay out the default config, reference data, alert rules, dashboard and units",
        description=(
            "Copy the default configuration and ops files that ship with posgate into DIR "
            "(DIR/config/posgate.toml, reference/, accounts/, prometheus/, grafana/, samples/ "
            "and DIR/systemd/). Files that exist are kept unless --force."
        ),
    )
    parser.add_argument("dir", metavar="DIR", help="target folder (created; its parent must exist)")
    parser.add_argument(
        "--spool",
        metavar="PATH",
        help="the config's [spool] root (default: ../spool, that is DIR/spool)",
    )
    parser.add_argument("--force", action="store_true", help="replace files that exist")
    parser.set_defaults(func=run_init)


def run_init(args: argparse.Namespace) -> int:
    target = Path(args.dir)
    try:
        done = lay_out(target, spool=args.spool, force=args.force)
    except OSError as exc:
        print(f"posgate init: {exc}", file=sys.stderr)
        return EX_CANTCREAT
    for item in done:
        print(f"{item.action:6} {item.path}")
    config = target / CONFIG
    print(
        f"\nnext: posgate --config {config} check-config"
        f"\n      posgate --config {config} firm add ID --key KEY.pub"
        f"\n      posgate --config {config} serve"
    )
    return EX_OK
