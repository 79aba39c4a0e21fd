"""The config file: its tables as frozen settings dataclasses, ``Config`` and ``load_config``.

Theory of operation: ``load_config`` reads the TOML with ``tomllib``, walks every known table with a
small schema (key -> type, default), collects *every* problem (unknown key, wrong type, bad value,
missing file) with the file, line and key it concerns, then reads the account files of
``accounts_dir`` (``gateway.config.accounts``) and the reference CSVs
(``gateway.config.reference_data``). Only when nothing is wrong does it build the ``Config``;
otherwise it raises one ``ConfigError`` listing all problems. Relative paths resolve against the
folder of the config file. Secrets never come from the TOML: the AMQP password comes from
``$POSGATE_AMQP_PASSWORD`` or the systemd credential ``amqp_password``.
"""

from __future__ import annotations

import datetime as dt
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config.accounts import Account, load_accounts
from gateway.config.reference_data import ReferenceData, load_reference, numeric_key
from gateway.config.schema import (
    BOOL,
    NONEMPTY,
    NONNEG_NUM,
    PORT,
    POS_INT,
    POS_NUM,
    STR,
    ConfigError,
    Parser,
    Problems,
    clock_time,
    line_of,
    parse_table,
    typed,
)

DEFAULT_CONFIG = Path("config/posgate.toml")


@dataclass(frozen=True)
class SpoolSettings:
    root: Path

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def ledger_path(self) -> Path:
        return self.state_dir / "ledger.sqlite3"


@dataclass(frozen=True)
class SftpSettings:
    enabled: bool
    host: str
    port: int
    max_file_bytes: int
    failed_login_delay_s: float
    host_key_path: Path


@dataclass(frozen=True)
class MetricsSettings:
    enabled: bool
    host: str
    port: int


@dataclass(frozen=True)
class IntakeSettings:
    stable_interval_s: float
    sweep_interval_s: float
    workers: int


@dataclass(frozen=True)
class DplSettings:
    publish_time: dt.time
    deadline_time: dt.time
    missing_lookback_cycles: int
    max_line_bytes: int
    publish_window_days: int = 10
    """``dpl publish`` also accepts cycles this many calendar days back when the ledger has no
    DPL history that old (a fresh install); older and future cycles are refused."""


@dataclass(frozen=True)
class PmcSettings:
    write_pdf: bool
    theo_keep: int


@dataclass(frozen=True)
class AmqpSettings:
    enabled: bool
    url: str
    username: str
    password: str = field(repr=False)
    heartbeat_s: int
    prefetch: int
    max_backoff_s: float
    delivery_limit: int
    request_timeout_s: float


@dataclass(frozen=True)
class DaemonSettings:
    shutdown_grace_s: float
    watchdog: bool
    log_format: str  # "kv" or "json"
    log_level: str


@dataclass(frozen=True)
class Config:
    path: Path
    base_dir: Path
    spool: SpoolSettings
    sftp: SftpSettings
    metrics: MetricsSettings
    intake: IntakeSettings
    dpl: DplSettings
    pmc: PmcSettings
    amqp: AmqpSettings
    daemon: DaemonSettings
    accounts: tuple[Account, ...]
    accounts_dir: Path
    reference_dir: Path
    reference: ReferenceData

    def account(self, name: str) -> Account | None:
        return next((a for a in self.accounts if a.name == name), None)

    def firm_account(self, firm_id: str) -> Account | None:
        return next((a for a in self.accounts if a.kind == "firm" and a.entity_id == firm_id), None)

    def technical_contact(self, firm_id: str) -> str:
        """'name <email> phone' of the firm's technical contact, or '' when unknown."""
        key = numeric_key(firm_id)
        for cm in self.reference.clearing_members:
            if numeric_key(cm.cm_number) == key:
                return _contact(cm.technical_contact, cm.contact_email, cm.contact_phone)
        for nco in self.reference.ncos:
            if nco.nco_id == firm_id:
                return _contact(nco.technical_contact, nco.contact_email, nco.contact_phone)
        return ""


def _contact(name: str, email: str, phone: str) -> str:
    return " ".join(p for p in (name, f"<{email}>" if email else "", phone) if p)


# Schema: table -> key -> (parser, default). A default of REQUIRED means the key must be given.

SCHEMA: dict[str, dict[str, tuple[Parser, Any]]] = {
    "spool": {"root": (NONEMPTY, "../spool")},
    "sftp": {
        "enabled": (BOOL, True),
        "host": (NONEMPTY, "127.0.0.1"),
        "port": (PORT, 2222),
        "max_file_bytes": (POS_INT, 1024 * 1024 * 1024),
        "failed_login_delay_s": (NONNEG_NUM, 1.0),
        "host_key_path": (STR, ""),
    },
    "metrics": {
        "enabled": (BOOL, True),
        "host": (NONEMPTY, "127.0.0.1"),
        "port": (PORT, 9464),
    },
    "intake": {
        "stable_interval_s": (NONNEG_NUM, 2.0),
        "sweep_interval_s": (POS_NUM, 30.0),
        "workers": (POS_INT, 2),
    },
    "dpl": {
        "publish_time": (clock_time, "00:05"),
        "deadline_time": (clock_time, "05:00"),
        "missing_lookback_cycles": (POS_INT, 5),
        "max_line_bytes": (POS_INT, 64 * 1024),
        "publish_window_days": (POS_INT, 10),
    },
    "pmc": {"write_pdf": (BOOL, False), "theo_keep": (POS_INT, 3)},
    "amqp": {
        "enabled": (BOOL, True),
        "url": (NONEMPTY, "amqp://127.0.0.1:5672/%2F"),
        "username": (NONEMPTY, "guest"),
        "heartbeat_s": (POS_INT, 30),
        "prefetch": (POS_INT, 32),
        "max_backoff_s": (POS_NUM, 30.0),
        "delivery_limit": (POS_INT, 5),
        "request_timeout_s": (POS_NUM, 30.0),
    },
    "daemon": {
        "shutdown_grace_s": (POS_NUM, 30.0),
        "watchdog": (BOOL, True),
        "log_format": (typed(str, lambda v: v in ("kv", "json"), '"kv" or "json"'), "kv"),
        "log_level": (
            typed(
                str,
                lambda v: v.upper() in ("DEBUG", "INFO", "WARNING", "ERROR"),
                "DEBUG, INFO, WARNING or ERROR",
            ),
            "INFO",
        ),
    },
    "paths": {
        "accounts_dir": (NONEMPTY, "accounts"),
        "reference_dir": (NONEMPTY, "reference"),
    },
}


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Load and validate the config at ``path`` (default: ``$POSGATE_CONFIG``, else the shipped)."""
    env = os.environ if environ is None else environ
    cfg_path = Path(path or env.get("POSGATE_CONFIG") or DEFAULT_CONFIG).absolute()
    problems = Problems()
    try:
        text = cfg_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{cfg_path}: cannot read config: {exc.strerror}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{cfg_path}: not UTF-8 text ({exc.reason})"]) from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{cfg_path}: not valid TOML: {exc}"]) from exc

    base = cfg_path.parent
    tables: dict[str, dict[str, Any]] = {}
    for name in data:
        if name not in SCHEMA and name != "account":
            problems.add(
                cfg_path,
                f"unknown table (known: {', '.join(sorted(SCHEMA))}, account)",
                line_of(text, None, name),
                name,
            )
    for name, schema in SCHEMA.items():
        raw = data.get(name, {})
        if not isinstance(raw, dict):
            problems.add(cfg_path, "expected a table", line_of(text, None, name), name)
            raw = {}
        tables[name] = parse_table(
            raw, schema, path=cfg_path, text=text, table=name, problems=problems
        )

    def resolve(value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (base / p).resolve()

    spool_root = resolve(tables["spool"]["root"] or "../spool")
    accounts_dir = resolve(tables["paths"]["accounts_dir"] or "accounts")
    reference_dir = resolve(tables["paths"]["reference_dir"] or "reference")

    inline = data.get("account", [])
    if not isinstance(inline, list):
        problems.add(
            cfg_path, "expected [[account]] entries", line_of(text, None, "account"), "account"
        )
        inline = []
    accounts = load_accounts(inline, cfg_path, text, accounts_dir, problems)

    reference = load_reference(reference_dir, problems)

    sftp = tables["sftp"]
    host_key = sftp["host_key_path"]
    amqp = tables["amqp"]
    daemon = tables["daemon"]
    if problems.items:
        raise ConfigError(problems.items)
    return Config(
        path=cfg_path,
        base_dir=base,
        spool=SpoolSettings(root=spool_root),
        sftp=SftpSettings(
            enabled=sftp["enabled"],
            host=sftp["host"],
            port=sftp["port"],
            max_file_bytes=sftp["max_file_bytes"],
            failed_login_delay_s=float(sftp["failed_login_delay_s"]),
            host_key_path=resolve(host_key) if host_key else spool_root / "state" / "ssh_host_key",
        ),
        metrics=MetricsSettings(**tables["metrics"]),
        intake=IntakeSettings(
            stable_interval_s=float(tables["intake"]["stable_interval_s"]),
            sweep_interval_s=float(tables["intake"]["sweep_interval_s"]),
            workers=tables["intake"]["workers"],
        ),
        dpl=DplSettings(**tables["dpl"]),
        pmc=PmcSettings(**tables["pmc"]),
        amqp=AmqpSettings(
            enabled=amqp["enabled"],
            url=amqp["url"],
            username=amqp["username"],
            password=_amqp_password(env, amqp["username"]),
            heartbeat_s=amqp["heartbeat_s"],
            prefetch=amqp["prefetch"],
            max_backoff_s=float(amqp["max_backoff_s"]),
            delivery_limit=amqp["delivery_limit"],
            request_timeout_s=float(amqp["request_timeout_s"]),
        ),
        daemon=DaemonSettings(
            shutdown_grace_s=float(daemon["shutdown_grace_s"]),
            watchdog=daemon["watchdog"],
            log_format=daemon["log_format"],
            log_level=daemon["log_level"].upper(),
        ),
        accounts=tuple(accounts),
        accounts_dir=accounts_dir,
        reference_dir=reference_dir,
        reference=reference,
    )


def _amqp_password(env: Mapping[str, str], username: str) -> str:
    """The broker password: environment, then systemd credential; 'guest' only for user guest."""
    if env.get("POSGATE_AMQP_PASSWORD"):
        return env["POSGATE_AMQP_PASSWORD"]
    cred_dir = env.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        cred = Path(cred_dir) / "amqp_password"
        if cred.is_file():
            return cred.read_text(encoding="utf-8").strip()
    return "guest" if username == "guest" else ""
