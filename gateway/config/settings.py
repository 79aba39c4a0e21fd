"""The config file's tables: frozen settings dataclasses, ``Config``, and ``SCHEMA`` (each table's
keys with their parser and default).

``gateway.config.load`` reads a file into them; this module only says what a valid config holds.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.config.accounts import Account
from gateway.config.reference_data import ReferenceData, numeric_key
from gateway.config.schema import (
    BOOL,
    NONEMPTY,
    NONNEG_NUM,
    PORT,
    POS_INT,
    POS_NUM,
    STR,
    Parser,
    clock_time,
    typed,
)


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
    login_grace_s: float = 20.0
    max_connections: int = 64
    max_unauthenticated: int = 32
    max_unauthenticated_per_address: int = 4
    max_sessions_per_account: int = 10
    resume_keep_s: float = 86_400.0
    trusted_user_ca_keys: tuple[str, ...] = ()


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
    retry_max_s: float = 300.0
    """Longest wait between two attempts at a file that met transient trouble (a full disk,
    EIO); the wait starts at 5 s and doubles up to this."""


@dataclass(frozen=True)
class DplSettings:
    publish_time: dt.time
    deadline_time: dt.time
    missing_lookback_cycles: int
    max_line_bytes: int
    publish_window_days: int = 10
    """``dpl publish`` also accepts cycles this many calendar days back when the ledger has no
    DPL history that old (a fresh install); older and future cycles are refused."""
    max_records: int = 5_000_000
    """Records one DPL file may hold; a file with more is quarantined (``TOO_MANY_RECORDS``)."""
    catchup_interval_s: float = 60.0
    """How often the scheduler's catch-up tick runs: a missed or waiting publication, a delivery
    that failed or a late-processed file that changed a published cycle is acted on within it."""


@dataclass(frozen=True)
class PmcSettings:
    write_pdf: bool
    theo_keep: int


@dataclass(frozen=True)
class EbeSettings:
    """Exercise by exception. Thresholds are ticks of 1/10,000 USD per account type."""

    instruction_cutoff: dt.time
    positions_expected_time: dt.time
    thresholds: Mapping[str, int]
    inline_rows: int
    expiration_days: str = "monthly"
    """which days are expiration days (``engine.ebe.expirations.RULES``)"""
    expiration_dates: frozenset[dt.date] = frozenset()
    """dates that are expiration days whatever the rule"""


def default_ebe_settings() -> EbeSettings:
    """``[ebe]`` with every key at its default (offline tools without a config)."""
    table = SCHEMA["ebe"]
    return EbeSettings(
        instruction_cutoff=clock_time(table["instruction_cutoff"][1]),
        positions_expected_time=clock_time(table["positions_expected_time"][1]),
        thresholds={t.upper(): parse_amount(table[f"threshold_{t}"][1]) for t in ("c", "f", "m")},
        inline_rows=table["inline_rows"][1],
        expiration_days=table["expiration_days"][1],
        expiration_dates=frozenset(table["expiration_dates"][1]),
    )


def parse_amount(value: Any) -> int:
    """A threshold in USD (TOML string "0.01" or number 0.01) as exact ticks."""
    from engine.ebe.money import parse_ticks

    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("expected a decimal amount such as 0.01")
    ticks = parse_ticks(value if isinstance(value, str) else repr(value))
    if ticks < 0:
        raise ValueError("expected an amount >= 0")
    return ticks


AMOUNT = typed((str, int, float), lambda v: _ok_amount(v), "a decimal amount >= 0, e.g. 0.01")


def expiration_rule(value: Any) -> str:
    from engine.ebe.expirations import RULES

    if value not in RULES:
        raise ValueError(f"expected one of {', '.join(RULES)}, got {value!r}")
    return str(value)


def date_list(value: Any) -> tuple[dt.date, ...]:
    """A TOML list of dates, as TOML dates (2026-12-24) or strings ("2026-12-24")."""
    if not isinstance(value, list):
        raise ValueError(f"expected a list of dates, got {type(value).__name__} {value!r}")
    days = []
    for item in value:
        if isinstance(item, dt.date) and not isinstance(item, dt.datetime):
            days.append(item)
        elif isinstance(item, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", item):
            try:
                days.append(dt.date.fromisoformat(item))
            except ValueError:
                raise ValueError(f"not a calendar date: {item!r}") from None
        else:
            raise ValueError(f"expected dates YYYY-MM-DD, got {item!r}")
    return tuple(days)


def _ok_amount(value: Any) -> bool:
    try:
        parse_amount(value)
    except ValueError:
        return False
    return True


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
    ca_file: Path | None = None
    """amqps: the CA bundle that signed the broker's certificate (default: the system's)"""
    cert_file: Path | None = None
    """amqps: posgate's client certificate (PEM), for brokers that require one"""
    key_file: Path | None = None
    """amqps: the client certificate's private key (PEM); keep it 0600, owned by posgate"""


@dataclass(frozen=True)
class WebSettings:
    """The calculator page and HTTP API inside ``serve`` (``posgate web`` reads it too).

    Off when the table is absent: a daemon opts into a listener meant for the public; the
    shipped configuration turns it on at 127.0.0.1:8080.
    """

    enabled: bool
    host: str
    port: int
    max_body_bytes: int
    rate_per_s: float
    rate_burst: int
    calc_timeout_s: float
    max_positions: int
    trusted_proxies: str  # comma-separated addresses whose X-Forwarded-For is believed


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
    ebe: EbeSettings
    amqp: AmqpSettings
    daemon: DaemonSettings
    web: WebSettings
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
        "login_grace_s": (POS_NUM, 20.0),
        "max_connections": (POS_INT, 64),
        "max_unauthenticated": (POS_INT, 32),
        "max_unauthenticated_per_address": (POS_INT, 4),
        "max_sessions_per_account": (POS_INT, 10),
        "resume_keep_s": (NONNEG_NUM, 86_400.0),
        "trusted_user_ca_keys": (STR, ""),
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
        "retry_max_s": (POS_NUM, 300.0),
    },
    "dpl": {
        "publish_time": (clock_time, "00:05"),
        "deadline_time": (clock_time, "05:00"),
        "missing_lookback_cycles": (POS_INT, 5),
        "max_line_bytes": (POS_INT, 64 * 1024),
        "publish_window_days": (POS_INT, 10),
        "max_records": (POS_INT, 5_000_000),
        "catchup_interval_s": (POS_NUM, 60.0),
    },
    "pmc": {"write_pdf": (BOOL, False), "theo_keep": (POS_INT, 3)},
    "ebe": {
        "instruction_cutoff": (clock_time, "16:30"),
        "positions_expected_time": (clock_time, "09:00"),
        "threshold_c": (AMOUNT, "0.01"),
        "threshold_f": (AMOUNT, "0.01"),
        "threshold_m": (AMOUNT, "0.01"),
        "inline_rows": (POS_INT, 1000),
        "expiration_days": (expiration_rule, "monthly"),
        "expiration_dates": (date_list, []),
    },
    "amqp": {
        "enabled": (BOOL, True),
        "url": (NONEMPTY, "amqp://127.0.0.1:5672/%2F"),
        "username": (NONEMPTY, "guest"),
        "heartbeat_s": (POS_INT, 30),
        "prefetch": (POS_INT, 32),
        "max_backoff_s": (POS_NUM, 30.0),
        "delivery_limit": (POS_INT, 5),
        "request_timeout_s": (POS_NUM, 30.0),
        "ca_file": (STR, ""),
        "cert_file": (STR, ""),
        "key_file": (STR, ""),
    },
    "web": {
        "enabled": (BOOL, False),
        "host": (NONEMPTY, "127.0.0.1"),
        "port": (PORT, 8080),
        "max_body_bytes": (POS_INT, 10 * 1024 * 1024),
        "rate_per_s": (NONNEG_NUM, 20.0),
        "rate_burst": (POS_INT, 60),
        "calc_timeout_s": (POS_NUM, 10.0),
        "max_positions": (POS_INT, 100_000),
        "trusted_proxies": (STR, ""),
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
