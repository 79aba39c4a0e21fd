"""Accounts: the ``[[account]]`` tables of the config and of ``accounts_dir``, and their keys.

An account is an SFTP/AMQP login of a firm or an exchange; its public keys are given inline or as
paths (relative to the file that declares the account) to OpenSSH ``.pub`` files.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from gateway.config.schema import REQUIRED, Parser, Problems, line_of, parse_table, typed

ACCOUNT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class Account:
    """An SFTP/AMQP login. ``entity_id`` is the firm or exchange id; a firm's login is its id."""

    name: str
    kind: str  # "firm" | "exchange"
    entity_id: str
    submits_for: tuple[str, ...]
    public_keys: tuple[str, ...]
    amqp_user: str | None
    source: Path
    quota_bytes: int | None = None  # bytes the firm may hold in its inbound folders


ACCOUNT_SCHEMA: dict[str, tuple[Parser, Any]] = {
    "name": (
        typed(str, lambda v: bool(ACCOUNT_ID_RE.match(v)), "an id of letters, digits, - or _"),
        REQUIRED,
    ),
    "kind": (typed(str, lambda v: v in ("firm", "exchange"), '"firm" or "exchange"'), REQUIRED),
    "id": (
        typed(str, lambda v: bool(ACCOUNT_ID_RE.match(v)), "an id of letters, digits, - or _"),
        REQUIRED,
    ),
    "submits_for": (
        typed(list, lambda v: all(isinstance(x, str) and x for x in v), "a list of firm ids"),
        None,
    ),
    "public_keys": (
        typed(
            list,
            lambda v: all(isinstance(x, str) for x in v),
            "a list of public keys or key file paths",
        ),
        [],
    ),
    "amqp_user": (typed(str, lambda v: bool(v), "a non-empty string"), None),
    "quota_bytes": (
        typed(int, lambda v: v > 0 and not isinstance(v, bool), "a positive integer"),
        None,
    ),
}


def load_accounts(
    inline: list[Any], path: Path, text: str, accounts_dir: Path, problems: Problems
) -> list[Account]:
    """The config's inline accounts, then those of every ``*.toml`` of ``accounts_dir``."""
    accounts: list[Account] = []
    for entry in inline:
        account = _parse_account(entry, path, text, problems)
        if account is not None:
            accounts.append(account)
    if accounts_dir.is_dir():
        for file in sorted(accounts_dir.glob("*.toml")):
            accounts.extend(_load_account_file(file, problems))
    _check_accounts(accounts, problems)
    return accounts


def _parse_account(entry: Any, path: Path, text: str, problems: Problems) -> Account | None:
    if not isinstance(entry, dict):
        problems.add(path, "an account must be a table", None, "account")
        return None
    before = len(problems.items)
    values = parse_table(
        entry, ACCOUNT_SCHEMA, path=path, text=text, table="account", problems=problems
    )
    if len(problems.items) != before:
        return None
    keys: list[str] = []
    for item in values["public_keys"]:
        key = _read_public_key(item, path.parent, path, text, problems)
        if key:
            keys.append(key)
    submits_for = tuple(values["submits_for"] or [values["id"]])
    if values["kind"] == "exchange" and values["submits_for"]:
        problems.add(
            path,
            "an exchange account submits for no firm",
            line_of(text, None, "submits_for"),
            "account.submits_for",
        )
    return Account(
        name=values["name"],
        kind=values["kind"],
        entity_id=values["id"],
        submits_for=submits_for if values["kind"] == "firm" else (),
        public_keys=tuple(keys),
        amqp_user=values["amqp_user"],
        source=path,
        quota_bytes=values["quota_bytes"],
    )


# What looks like a key line (and not like a file path); whether it is a usable key is decided by
# parsing it (``_key_problem``). Security-key types (``sk-ssh-ed25519@openssh.com``) included.
KEY_LINE_RE = re.compile(
    r"^((sk-)?(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+|ssh-dss)(@openssh\.com)?|"
    r"sk-ecdsa-sha2-nistp256@openssh\.com)\s+[A-Za-z0-9+/=]+(\s.*)?$"
)


def _key_problem(line: str) -> str | None:
    """Why the OpenSSH public key line ``line`` cannot be used, or None when it can."""
    try:
        key = asyncssh.import_public_key(line)
    except (asyncssh.KeyImportError, ValueError, TypeError) as exc:
        return f"unreadable public key ({exc}): {line[:40]!r}"
    if key.get_algorithm() != line.split()[0]:
        return f"key type {line.split()[0]!r} does not match its data ({key.get_algorithm()})"
    if key.get_algorithm() == "ssh-dss":
        return f"DSA keys are not accepted (too weak): {line[:40]!r}"
    return None


def _read_public_key(
    item: str, base: Path, path: Path, text: str, problems: Problems
) -> str | None:
    """A key given inline, or a path (relative to the account file) to an OpenSSH .pub file."""
    line = line_of(text, None, "public_keys")
    candidate = item.strip()
    if not KEY_LINE_RE.match(candidate):
        key_path = Path(candidate).expanduser()
        key_path = key_path if key_path.is_absolute() else base / key_path
        try:
            candidate = key_path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            problems.add(
                path,
                f"public key file {str(key_path)!r} cannot be read",
                line,
                "account.public_keys",
            )
            return None
    if not KEY_LINE_RE.match(candidate):
        problems.add(
            path, f"not an OpenSSH public key: {candidate[:40]!r}", line, "account.public_keys"
        )
        return None
    problem = _key_problem(candidate)
    if problem is not None:
        problems.add(path, problem, line, "account.public_keys")
        return None
    return candidate


def load_ca_keys(path: Path, config: Path, problems: Problems) -> tuple[str, ...]:
    """The CA keys of ``[sftp] trusted_user_ca_keys`` (one OpenSSH public key a line, ``#``
    comments), each parsed; a user certificate signed by one of them logs in as its principals."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(config, f"trusted_user_ca_keys {str(path)!r} cannot be read: {exc}")
        return ()
    keys = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        problem = _key_problem(line) if KEY_LINE_RE.match(line) else f"not a key: {line[:40]!r}"
        if problem is not None:
            problems.add(path, problem, number, "sftp.trusted_user_ca_keys")
            continue
        keys.append(line)
    return tuple(keys)


def _load_account_file(file: Path, problems: Problems) -> list[Account]:
    try:
        text = file.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        problems.add(file, f"cannot read account file: {exc}")
        return []
    entries = data.get("account")
    if not isinstance(entries, list) or set(data) - {"account"}:
        problems.add(file, "an account file holds [[account]] tables only")
        return []
    out = []
    for entry in entries:
        account = _parse_account(entry, file, text, problems)
        if account is not None:
            out.append(account)
    return out


def _check_accounts(accounts: Iterable[Account], problems: Problems) -> None:
    names: dict[str, Account] = {}
    amqp: dict[str, Account] = {}
    for account in accounts:
        if account.name in names:
            problems.add(
                account.source,
                f"account name {account.name!r} is also declared in {names[account.name].source}",
                None,
                "account.name",
            )
        names[account.name] = account
        if account.amqp_user:
            if account.amqp_user in amqp:
                problems.add(
                    account.source,
                    f"AMQP user {account.amqp_user!r} is mapped twice",
                    None,
                    "account.amqp_user",
                )
            amqp[account.amqp_user] = account


# ---------------------------------------------------------------------------------------------
# Reference data
