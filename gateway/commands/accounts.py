"""Provisioning verbs: ``firm add/list/remove`` and ``exchange add/list``.

Each account is one TOML file in the config's ``accounts_dir`` (default ``config/accounts/``), so
adding or removing a login never rewrites the main config. The spool folders are created at once.
A running daemon picks the change up on SIGHUP (``systemctl reload posgate``). Removing a firm
removes its login only; its spool folder and ledger history stay for retention.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.cli import EX_CONFIG, EX_DATAERR, EX_FAILURE, EX_OK
from gateway.commands.common import load_config_or_report
from gateway.config import Config
from gateway.config.accounts import ACCOUNT_ID_RE, KEY_LINE_RE
from gateway.sftp.keys import fingerprint_of_line


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    firm = subparsers.add_parser("firm", help="firm accounts (SFTP/AMQP logins)")
    firm_verbs = firm.add_subparsers(dest="firm_verb", metavar="ACTION", required=True)
    add = firm_verbs.add_parser("add", help="add a firm account with its SFTP public key")
    add.add_argument("id", help="firm id (clearing member number or NCO id); also the SFTP login")
    add.add_argument("--key", required=True, help=KEY_HELP)
    add.add_argument(
        "--force",
        action="store_true",
        help="add a firm that is in neither clearing_members.csv nor ncos.csv",
    )
    add.add_argument(
        "--submits-for",
        default="",
        help="comma-separated firm ids it may submit for (default: itself)",
    )
    add.add_argument("--amqp-user", default=None, help="RabbitMQ user name mapped to this firm")
    add.set_defaults(func=lambda a: add_account(a, "firm"))
    lst = firm_verbs.add_parser("list", help="list firm accounts")
    lst.add_argument("--format", choices=("table", "json"), default="table")
    lst.set_defaults(func=lambda a: list_accounts(a, "firm"))
    rm = firm_verbs.add_parser("remove", help="remove a firm's login (its spool data stays)")
    rm.add_argument("id")
    rm.set_defaults(func=lambda a: remove_account(a, "firm"))

    exchange = subparsers.add_parser("exchange", help="exchange accounts (SFTP pick-up logins)")
    ex_verbs = exchange.add_subparsers(dest="exchange_verb", metavar="ACTION", required=True)
    ex_add = ex_verbs.add_parser("add", help="add an exchange account with its SFTP public key")
    ex_add.add_argument("id", help="exchange id as in reference/exchanges.csv")
    ex_add.add_argument("--key", required=True, help=KEY_HELP)
    ex_add.set_defaults(func=lambda a: add_account(a, "exchange"))
    ex_list = ex_verbs.add_parser("list", help="list exchange accounts")
    ex_list.add_argument("--format", choices=("table", "json"), default="table")
    ex_list.set_defaults(func=lambda a: list_accounts(a, "exchange"))
    ex_rm = ex_verbs.add_parser("remove", help="remove an exchange's login (its files stay)")
    ex_rm.add_argument("id")
    ex_rm.set_defaults(func=lambda a: remove_account(a, "exchange"))


KEY_HELP = "OpenSSH public key: the text of the key line, or a file holding it"


def read_key_argument(value: str) -> str:
    """``--key``: the key line itself (``ssh-ed25519 AAAA… comment``), or a file holding it."""
    text = value.strip()
    if KEY_LINE_RE.match(text):
        return text
    return Path(value).read_text(encoding="utf-8").strip()


def _fail(message: str, code: int = EX_FAILURE) -> int:
    print(f"posgate: {message}", file=sys.stderr)
    return code


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def add_account(args: argparse.Namespace, kind: str) -> int:
    config = load_config_or_report(args.config)
    if config is None:
        return EX_CONFIG
    account_id = args.id
    if not ACCOUNT_ID_RE.match(account_id):
        return _fail(
            f"{kind} id {account_id!r} must be letters, digits, '-' or '_' (max 32)", EX_DATAERR
        )
    if config.account(account_id) is not None:
        return _fail(f"account {account_id!r} already exists ({config.account(account_id).source})")  # type: ignore[union-attr]
    try:
        key_line = read_key_argument(args.key)
    except FileNotFoundError:
        return _fail(f"--key {args.key!r} is neither a public key line nor a file", 66)
    except (OSError, UnicodeDecodeError) as exc:
        return _fail(f"cannot read public key {args.key}: {exc}", EX_DATAERR)
    if not KEY_LINE_RE.match(key_line) or "PRIVATE KEY" in key_line:
        return _fail(
            f"{args.key} is not an OpenSSH public key (ssh-ed25519/ssh-rsa/ecdsa)", EX_DATAERR
        )
    lines = [
        "[[account]]",
        f"name = {_toml_str(account_id)}",
        f"kind = {_toml_str(kind)}",
        f"id = {_toml_str(account_id)}",
    ]
    if kind == "firm":
        submits = [s.strip() for s in args.submits_for.split(",") if s.strip()] or [account_id]
        lines.append("submits_for = [" + ", ".join(_toml_str(s) for s in submits) + "]")
        if args.amqp_user:
            lines.append(f"amqp_user = {_toml_str(args.amqp_user)}")
        if not _known_firm(config, account_id) and not args.force:
            # An unknown id is almost always a typo (12345 for 00123): refuse, like the
            # exchange-side tools refuse an unknown member number, unless told otherwise.
            return _fail(
                f"{account_id} is in neither clearing_members.csv nor ncos.csv (the reference "
                "data); add it there first, or give --force to add the login anyway",
                EX_DATAERR,
            )
    else:
        if not any(e.exchange_id == account_id for e in config.reference.exchanges):
            print(
                f"posgate: warning: {account_id} is not in exchanges.csv; it will receive no "
                "file until it is",
                file=sys.stderr,
            )
    lines.append(f"public_keys = [{_toml_str(key_line)}]")
    config.accounts_dir.mkdir(parents=True, exist_ok=True)
    target = config.accounts_dir / f"{account_id}.toml"
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    new = load_config_or_report(args.config)
    if new is None:
        target.unlink()
        return _fail(
            "the new account made the configuration invalid; nothing was changed", EX_CONFIG
        )
    from gateway.app import prepare_spool  # heavy import (adapters): only when needed

    prepare_spool(new)
    print(f"added {kind} {account_id} ({fingerprint_of_line(key_line)}) in {target}")
    print("a running daemon picks it up on reload: systemctl reload posgate (or kill -HUP)")
    return EX_OK


def _known_firm(config: Config, firm: str) -> bool:
    from engine.dpl.records import id_key

    key = id_key(firm)
    return any(id_key(cm.cm_number) == key for cm in config.reference.clearing_members) or any(
        id_key(n.nco_id) == key for n in config.reference.ncos
    )


def list_accounts(args: argparse.Namespace, kind: str) -> int:
    config = load_config_or_report(args.config)
    if config is None:
        return EX_CONFIG
    rows = [a for a in config.accounts if a.kind == kind]
    if getattr(args, "format", "table") == "json":
        import json

        doc = [
            {
                "login": a.name,
                "id": a.entity_id,
                "kind": a.kind,
                "submits_for": list(a.submits_for),
                "amqp_user": a.amqp_user,
                "keys": [fingerprint_of_line(k) for k in a.public_keys],
                "source": str(a.source),
            }
            for a in rows
        ]
        print(json.dumps(doc, indent=2))
        return EX_OK
    if not rows:
        print(f"no {kind} accounts")
        return EX_OK
    print(f"{'login':<12} {'id':<10} {'submits for':<20} {'amqp user':<22} keys")
    for a in rows:
        keys = ", ".join(fingerprint_of_line(k) for k in a.public_keys) or "(none: cannot log in)"
        print(
            f"{a.name:<12} {a.entity_id:<10} {','.join(a.submits_for) or '-':<20} "
            f"{a.amqp_user or '-':<22} {keys}"
        )
    return EX_OK


def remove_account(args: argparse.Namespace, kind: str) -> int:
    config = load_config_or_report(args.config)
    if config is None:
        return EX_CONFIG
    account = config.account(args.id)
    if account is None or account.kind != kind:
        return _fail(f"no {kind} account {args.id!r}")
    if account.source.parent != config.accounts_dir:
        return _fail(f"{kind} {args.id} is declared in {account.source}; remove it there")
    account.source.unlink()
    print(f"removed {kind} {args.id} (its spool folder and ledger history are kept)")
    print("a running daemon picks it up on reload: systemctl reload posgate (or kill -HUP)")
    return EX_OK
