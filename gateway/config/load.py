"""Loading the config file: ``load_config`` and where it looks by default.

Theory of operation: ``load_config`` reads the TOML with ``tomllib``, walks every known table with
its schema (``gateway.config.settings.SCHEMA``: key -> parser, default), collects *every* problem
(unknown key, wrong type, bad value, missing file) with the file, line and key it concerns, then
reads the account files of ``accounts_dir`` (``gateway.config.accounts``) and the reference CSVs
(``gateway.config.reference_data``). Only when nothing is wrong does it build the ``Config``;
otherwise it raises one ``ConfigError`` listing all problems. Relative paths resolve against the
folder of the config file. Secrets never come from the TOML: the AMQP password comes from
``$POSGATE_AMQP_PASSWORD`` or the systemd credential ``amqp_password``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gateway.config.accounts import load_accounts, load_ca_keys
from gateway.config.reference_data import load_reference
from gateway.config.schema import ConfigError, Problems, line_of, parse_table
from gateway.config.settings import (
    SCHEMA,
    AmqpSettings,
    Config,
    DaemonSettings,
    DplSettings,
    EbeSettings,
    IntakeSettings,
    MetricsSettings,
    PmcSettings,
    SftpSettings,
    SpoolSettings,
    WebSettings,
    parse_amount,
)

DEFAULT_CONFIG = Path("config/posgate.toml")


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
    ca_keys = (
        load_ca_keys(resolve(sftp["trusted_user_ca_keys"]), cfg_path, problems)
        if sftp["trusted_user_ca_keys"]
        else ()
    )
    amqp = tables["amqp"]
    for key in ("ca_file", "cert_file", "key_file"):
        if amqp[key] and not os.access(resolve(amqp[key]), os.R_OK):
            problems.add(
                cfg_path,
                f"{resolve(amqp[key])} cannot be read",
                line_of(text, "amqp", key),
                f"amqp.{key}",
            )
    if amqp["key_file"] and not amqp["cert_file"]:  # a cert_file alone may hold the key too
        problems.add(
            cfg_path,
            "a key_file needs its cert_file",
            line_of(text, "amqp", "key_file"),
            "amqp.key_file",
        )
    if (amqp["ca_file"] or amqp["cert_file"]) and not str(amqp["url"]).startswith("amqps://"):
        problems.add(
            cfg_path,
            "TLS files are set but the url is not amqps://",
            line_of(text, "amqp", "url"),
            "amqp.url",
        )
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
            login_grace_s=float(sftp["login_grace_s"]),
            max_connections=sftp["max_connections"],
            max_unauthenticated=sftp["max_unauthenticated"],
            max_unauthenticated_per_address=sftp["max_unauthenticated_per_address"],
            max_sessions_per_account=sftp["max_sessions_per_account"],
            resume_keep_s=float(sftp["resume_keep_s"]),
            trusted_user_ca_keys=ca_keys,
        ),
        metrics=MetricsSettings(**tables["metrics"]),
        intake=IntakeSettings(
            stable_interval_s=float(tables["intake"]["stable_interval_s"]),
            sweep_interval_s=float(tables["intake"]["sweep_interval_s"]),
            workers=tables["intake"]["workers"],
            retry_max_s=float(tables["intake"]["retry_max_s"]),
        ),
        dpl=DplSettings(**tables["dpl"]),
        pmc=PmcSettings(**tables["pmc"]),
        ebe=EbeSettings(
            instruction_cutoff=tables["ebe"]["instruction_cutoff"],
            positions_expected_time=tables["ebe"]["positions_expected_time"],
            thresholds={
                t.upper(): parse_amount(tables["ebe"][f"threshold_{t}"]) for t in ("c", "f", "m")
            },
            inline_rows=tables["ebe"]["inline_rows"],
            expiration_days=tables["ebe"]["expiration_days"],
            expiration_dates=frozenset(tables["ebe"]["expiration_dates"]),
        ),
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
            ca_file=resolve(amqp["ca_file"]) if amqp["ca_file"] else None,
            cert_file=resolve(amqp["cert_file"]) if amqp["cert_file"] else None,
            key_file=resolve(amqp["key_file"]) if amqp["key_file"] else None,
        ),
        daemon=DaemonSettings(
            shutdown_grace_s=float(daemon["shutdown_grace_s"]),
            watchdog=daemon["watchdog"],
            log_format=daemon["log_format"],
            log_level=daemon["log_level"].upper(),
        ),
        web=WebSettings(
            **{
                **tables["web"],
                "rate_per_s": float(tables["web"]["rate_per_s"]),
                "calc_timeout_s": float(tables["web"]["calc_timeout_s"]),
            }
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
