"""Configuration: one TOML file plus the reference CSVs beside it, loaded into frozen dataclasses.

Theory of operation: ``load_config`` reads the TOML with ``tomllib``, walks every known table with a
small schema (key -> type, default), collects *every* problem (unknown key, wrong type, bad value,
missing file) with the file, line and key it concerns, then reads the account files of
``accounts_dir`` and the reference CSVs. Only when nothing is wrong does it build the ``Config``;
otherwise it raises one ``ConfigError`` listing all problems. Relative paths resolve against the
folder of the config file. Secrets never come from the TOML: the AMQP password comes from
``$POSGATE_AMQP_PASSWORD`` or the systemd credential ``amqp_password``.
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CONFIG = Path("config/posgate.toml")
ACCOUNT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")


class ConfigError(Exception):
    """The configuration or reference data is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


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
class Account:
    """An SFTP/AMQP login. ``entity_id`` is the firm or exchange id; a firm's login is its id."""

    name: str
    kind: str  # "firm" | "exchange"
    entity_id: str
    submits_for: tuple[str, ...]
    public_keys: tuple[str, ...]
    amqp_user: str | None
    source: Path


@dataclass(frozen=True)
class ClearingMember:
    cm_number: str
    name: str
    crd: str
    active: bool
    technical_contact: str
    contact_email: str
    contact_phone: str
    notify: bool


@dataclass(frozen=True)
class Nco:
    nco_id: str
    name: str
    crd: str
    dpl_eligible: bool
    technical_contact: str
    contact_email: str
    contact_phone: str
    notify: bool


@dataclass(frozen=True)
class Exchange:
    exchange_id: str
    name: str
    receives_dpl: bool
    delivery: str  # "spool" or "sftp://user@host:port/path"


@dataclass(frozen=True)
class OccHoliday:
    date: dt.date
    action: str  # "close" | "open"
    description: str


@dataclass(frozen=True)
class ReferenceData:
    clearing_members: tuple[ClearingMember, ...]
    ncos: tuple[Nco, ...]
    exchanges: tuple[Exchange, ...]
    occ_holidays: tuple[OccHoliday, ...]


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
        key = _numeric_key(firm_id)
        for cm in self.reference.clearing_members:
            if _numeric_key(cm.cm_number) == key:
                return _contact(cm.technical_contact, cm.contact_email, cm.contact_phone)
        for nco in self.reference.ncos:
            if nco.nco_id == firm_id:
                return _contact(nco.technical_contact, nco.contact_email, nco.contact_phone)
        return ""


def _contact(name: str, email: str, phone: str) -> str:
    return " ".join(p for p in (name, f"<{email}>" if email else "", phone) if p)


def _numeric_key(value: str) -> str:
    return str(int(value)) if value.isdigit() else value


# ---------------------------------------------------------------------------------------------
# Schema: table -> key -> (parser, default). A default of REQUIRED means the key must be given.

REQUIRED = object()
Parser = Callable[[Any], Any]


def _typed(
    kind: type | tuple[type, ...], check: Callable[[Any], bool] | None = None, what: str = ""
) -> Parser:
    def parse(value: Any) -> Any:
        if isinstance(value, bool) and kind is not bool and kind != (bool,):
            raise ValueError(f"expected {what or kind}, got a boolean")
        if not isinstance(value, kind):
            raise ValueError(
                f"expected {what or getattr(kind, '__name__', kind)}, "
                f"got {type(value).__name__} {value!r}"
            )
        if check is not None and not check(value):
            raise ValueError(f"{value!r} is not {what}")
        return value

    return parse


def _clock_time(value: Any) -> dt.time:
    if not isinstance(value, str) or not re.fullmatch(r"\d{2}:\d{2}", value):
        raise ValueError(f"expected a time HH:MM, got {value!r}")
    try:
        return dt.time.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"expected a time HH:MM, got {value!r}") from exc


_STR = _typed(str, what="a string")
_NONEMPTY = _typed(str, lambda v: bool(v.strip()), "a non-empty string")
_BOOL = _typed(bool, what="true or false")
_PORT = _typed(int, lambda v: 0 <= v <= 65535, "a port number 0..65535")
_POS_INT = _typed(int, lambda v: v > 0, "a positive integer")
_POS_NUM = _typed((int, float), lambda v: v > 0, "a positive number")
_NONNEG_NUM = _typed((int, float), lambda v: v >= 0, "a non-negative number")

SCHEMA: dict[str, dict[str, tuple[Parser, Any]]] = {
    "spool": {"root": (_NONEMPTY, "../spool")},
    "sftp": {
        "enabled": (_BOOL, True),
        "host": (_NONEMPTY, "127.0.0.1"),
        "port": (_PORT, 2222),
        "max_file_bytes": (_POS_INT, 1024 * 1024 * 1024),
        "failed_login_delay_s": (_NONNEG_NUM, 1.0),
        "host_key_path": (_STR, ""),
    },
    "metrics": {
        "enabled": (_BOOL, True),
        "host": (_NONEMPTY, "127.0.0.1"),
        "port": (_PORT, 9464),
    },
    "intake": {
        "stable_interval_s": (_NONNEG_NUM, 2.0),
        "sweep_interval_s": (_POS_NUM, 30.0),
        "workers": (_POS_INT, 2),
    },
    "dpl": {
        "publish_time": (_clock_time, "00:05"),
        "deadline_time": (_clock_time, "05:00"),
        "missing_lookback_cycles": (_POS_INT, 5),
        "max_line_bytes": (_POS_INT, 64 * 1024),
    },
    "pmc": {"write_pdf": (_BOOL, False), "theo_keep": (_POS_INT, 3)},
    "amqp": {
        "enabled": (_BOOL, True),
        "url": (_NONEMPTY, "amqp://127.0.0.1:5672/%2F"),
        "username": (_NONEMPTY, "guest"),
        "heartbeat_s": (_POS_INT, 30),
        "prefetch": (_POS_INT, 32),
        "max_backoff_s": (_POS_NUM, 30.0),
        "delivery_limit": (_POS_INT, 5),
        "request_timeout_s": (_POS_NUM, 30.0),
    },
    "daemon": {
        "shutdown_grace_s": (_POS_NUM, 30.0),
        "watchdog": (_BOOL, True),
        "log_format": (_typed(str, lambda v: v in ("kv", "json"), '"kv" or "json"'), "kv"),
        "log_level": (
            _typed(
                str,
                lambda v: v.upper() in ("DEBUG", "INFO", "WARNING", "ERROR"),
                "DEBUG, INFO, WARNING or ERROR",
            ),
            "INFO",
        ),
    },
    "paths": {
        "accounts_dir": (_NONEMPTY, "accounts"),
        "reference_dir": (_NONEMPTY, "reference"),
    },
}

ACCOUNT_SCHEMA: dict[str, tuple[Parser, Any]] = {
    "name": (
        _typed(str, lambda v: bool(ACCOUNT_ID_RE.match(v)), "an id of letters, digits, - or _"),
        REQUIRED,
    ),
    "kind": (_typed(str, lambda v: v in ("firm", "exchange"), '"firm" or "exchange"'), REQUIRED),
    "id": (
        _typed(str, lambda v: bool(ACCOUNT_ID_RE.match(v)), "an id of letters, digits, - or _"),
        REQUIRED,
    ),
    "submits_for": (
        _typed(list, lambda v: all(isinstance(x, str) and x for x in v), "a list of firm ids"),
        None,
    ),
    "public_keys": (
        _typed(
            list,
            lambda v: all(isinstance(x, str) for x in v),
            "a list of public keys or key file paths",
        ),
        [],
    ),
    "amqp_user": (_typed(str, lambda v: bool(v), "a non-empty string"), None),
}


class _Problems:
    """Collects problems, each located in a file (and a line and key where known)."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(
        self, path: Path, message: str, line: int | None = None, key: str | None = None
    ) -> None:
        where = str(path) + (f":{line}" if line else "")
        self.items.append(f"{where}: " + (f"{key}: " if key else "") + message)


def _line_of(text: str, table: str | None, key: str) -> int | None:
    """Best-effort line number of ``key = `` inside ``[table]`` (or anywhere) of a TOML text."""
    current: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        header = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?$", line)
        if header:
            current = header.group(1)
            if table is None and current == key:
                return number
            continue
        if (table is None or current == table) and re.match(rf"^{re.escape(key)}\s*=", line):
            return number
    return None


def _parse_table(
    values: Mapping[str, Any],
    schema: Mapping[str, tuple[Parser, Any]],
    *,
    path: Path,
    text: str,
    table: str,
    problems: _Problems,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in values:
        if key not in schema:
            problems.add(
                path,
                f"unknown key (known: {', '.join(sorted(schema))})",
                _line_of(text, table, key),
                f"{table}.{key}",
            )
    for key, (parse, default) in schema.items():
        if key not in values:
            if default is REQUIRED:
                problems.add(
                    path, "required key is missing", _line_of(text, None, table), f"{table}.{key}"
                )
            out[key] = None if default is REQUIRED else default
            if isinstance(default, str) and parse is _clock_time:
                out[key] = _clock_time(default)
            continue
        try:
            out[key] = parse(values[key])
        except ValueError as exc:
            problems.add(path, str(exc), _line_of(text, table, key), f"{table}.{key}")
            out[key] = None
    return out


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Load and validate the config at ``path`` (default: ``$POSGATE_CONFIG``, else the shipped)."""
    env = os.environ if environ is None else environ
    cfg_path = Path(path or env.get("POSGATE_CONFIG") or DEFAULT_CONFIG).absolute()
    problems = _Problems()
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
                _line_of(text, None, name),
                name,
            )
    for name, schema in SCHEMA.items():
        raw = data.get(name, {})
        if not isinstance(raw, dict):
            problems.add(cfg_path, "expected a table", _line_of(text, None, name), name)
            raw = {}
        tables[name] = _parse_table(
            raw, schema, path=cfg_path, text=text, table=name, problems=problems
        )

    def resolve(value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (base / p).resolve()

    spool_root = resolve(tables["spool"]["root"] or "../spool")
    accounts_dir = resolve(tables["paths"]["accounts_dir"] or "accounts")
    reference_dir = resolve(tables["paths"]["reference_dir"] or "reference")

    accounts: list[Account] = []
    inline = data.get("account", [])
    if not isinstance(inline, list):
        problems.add(
            cfg_path, "expected [[account]] entries", _line_of(text, None, "account"), "account"
        )
        inline = []
    for entry in inline:
        account = _parse_account(entry, cfg_path, text, problems)
        if account is not None:
            accounts.append(account)
    if accounts_dir.is_dir():
        for file in sorted(accounts_dir.glob("*.toml")):
            accounts.extend(_load_account_file(file, problems))
    _check_accounts(accounts, problems)

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


def _parse_account(entry: Any, path: Path, text: str, problems: _Problems) -> Account | None:
    if not isinstance(entry, dict):
        problems.add(path, "an account must be a table", None, "account")
        return None
    before = len(problems.items)
    values = _parse_table(
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
            _line_of(text, None, "submits_for"),
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
    )


KEY_LINE_RE = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+)\s+[A-Za-z0-9+/=]+(\s.*)?$")


def _read_public_key(
    item: str, base: Path, path: Path, text: str, problems: _Problems
) -> str | None:
    """A key given inline, or a path (relative to the account file) to an OpenSSH .pub file."""
    line = _line_of(text, None, "public_keys")
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
    return candidate


def _load_account_file(file: Path, problems: _Problems) -> list[Account]:
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


def _check_accounts(accounts: Iterable[Account], problems: _Problems) -> None:
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


def _yes_no(value: str) -> bool:
    if value.strip().upper() in ("Y", "YES"):
        return True
    if value.strip().upper() in ("N", "NO"):
        return False
    raise ValueError(f"expected Y or N, got {value!r}")


def _date(value: str) -> dt.date:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        raise ValueError(f"expected YYYY-MM-DD, got {value!r}")
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a date: {exc}") from exc


def _id(value: str) -> str:
    if not value.strip():
        raise ValueError("empty")
    return value.strip()


def _delivery(value: str) -> str:
    value = value.strip()
    if value == "spool" or re.fullmatch(r"sftp://[^@/\s]+@[^:/\s]+(:\d+)?(/\S*)?", value):
        return value
    raise ValueError(f"expected 'spool' or sftp://user@host:port/path, got {value!r}")


def _action(value: str) -> str:
    if value.strip() in ("close", "open"):
        return value.strip()
    raise ValueError(f"expected close or open, got {value!r}")


REFERENCE_FILES: dict[str, tuple[str, dict[str, Callable[[str], Any]]]] = {
    "clearing_members": (
        "clearing_members.csv",
        {
            "cm_number": _id,
            "name": str.strip,
            "crd": str.strip,
            "active": _yes_no,
            "technical_contact": str.strip,
            "contact_email": str.strip,
            "contact_phone": str.strip,
            "notify": _yes_no,
        },
    ),
    "ncos": (
        "ncos.csv",
        {
            "nco_id": _id,
            "name": str.strip,
            "crd": str.strip,
            "dpl_eligible": _yes_no,
            "technical_contact": str.strip,
            "contact_email": str.strip,
            "contact_phone": str.strip,
            "notify": _yes_no,
        },
    ),
    "exchanges": (
        "exchanges.csv",
        {"exchange_id": _id, "name": str.strip, "receives_dpl": _yes_no, "delivery": _delivery},
    ),
    "occ_holidays": (
        "occ_holidays.csv",
        {"date": _date, "action": _action, "description": str.strip},
    ),
}
REFERENCE_TYPES: dict[str, type] = {
    "clearing_members": ClearingMember,
    "ncos": Nco,
    "exchanges": Exchange,
    "occ_holidays": OccHoliday,
}


def load_reference(folder: Path, problems: _Problems | None = None) -> ReferenceData:
    """Read the four reference CSVs of ``folder``; problems name file, line and column."""
    own = problems is None
    problems = problems or _Problems()
    loaded: dict[str, tuple[Any, ...]] = {}
    for key, (filename, columns) in REFERENCE_FILES.items():
        loaded[key] = tuple(
            _read_reference_csv(folder / filename, columns, REFERENCE_TYPES[key], problems)
        )
    _check_unique(folder, loaded, problems)
    _check_holidays(folder, loaded["occ_holidays"], problems)
    if own and problems.items:
        raise ConfigError(problems.items)
    return ReferenceData(**loaded)


def _read_reference_csv(
    path: Path, columns: Mapping[str, Callable[[str], Any]], kind: type, problems: _Problems
) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        problems.add(path, "reference file is missing")
        return []
    except (OSError, UnicodeDecodeError) as exc:
        problems.add(path, f"cannot read reference file as UTF-8: {exc}")
        return []
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = [c for c in columns if c not in header]
    if missing:
        problems.add(path, f"missing column(s) {', '.join(missing)} in header {header}", 1)
        return []
    rows = []
    for row in reader:
        line = reader.line_num
        values: dict[str, Any] = {}
        ok = True
        for column, parse in columns.items():
            raw = row.get(column)
            if raw is None:
                problems.add(path, "row is too short", line, column)
                ok = False
                continue
            try:
                values[column] = parse(raw)
            except ValueError as exc:
                problems.add(path, str(exc), line, column)
                ok = False
        if ok:
            rows.append(kind(**values))
    return rows


def _check_holidays(folder: Path, holidays: Iterable[OccHoliday], problems: _Problems) -> None:
    path = folder / REFERENCE_FILES["occ_holidays"][0]
    for h in holidays:
        if h.action == "open" and h.date.weekday() >= 5:
            problems.add(
                path, f"{h.date} is a weekend: a weekend is never a business day", None, "action"
            )


def _check_unique(folder: Path, loaded: Mapping[str, tuple[Any, ...]], problems: _Problems) -> None:
    for key, attr in (
        ("clearing_members", "cm_number"),
        ("ncos", "nco_id"),
        ("exchanges", "exchange_id"),
        ("occ_holidays", "date"),
    ):
        seen: set[Any] = set()
        for item in loaded[key]:
            value = getattr(item, attr)
            norm = _numeric_key(value) if isinstance(value, str) else value
            if norm in seen:
                problems.add(
                    folder / REFERENCE_FILES[key][0], f"duplicate {attr} {value!s}", None, attr
                )
            seen.add(norm)
