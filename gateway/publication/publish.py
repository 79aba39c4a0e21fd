"""Publication of a cycle's aggregated DPL file (SPEC §6.6): build it once, deliver the same bytes.

Theory of operation
-------------------
``publish_cycle`` holds an exclusive ``flock`` on ``spool/state/publication.lock`` for its whole
run, so the daemon's scheduler and ``posgate dpl publish`` never publish at the same time: the
second one waits, then finds the cycle done.

1. **Decide.** The ledger's publication row (sha256, delivery date) and delivery rows say what each
   exchange already holds. Without ``force``, a cycle whose every receiving exchange
   (``receives_dpl=Y`` in ``reference/exchanges.csv``) holds the recorded sha256 is left alone.
2. **Build** (when there is no publication yet, with ``force``, or when the built file is gone or
   no longer matches the ledger). Not while DPL files received before the cycle's cutoff are
   still in the intake (``IntakePending``, unless ``force``): their records belong in the file.
   Valid, current records stream from
   ``Ledger.iter_publishable_dpl_values`` (SPEC order: firm, aggregation unit, symbol, SubTyp)
   through ``engine.dpl.validate.canonical_line`` into a hidden temporary file in
   ``spool/state/publications/``,
   hashed while written, fsynced and renamed to ``DPL_<YYYYMMDD>.fixml``; memory does not grow
   with the number of records. ``RptID`` is ``<YYYYMMDD><9-digit sequence>`` in publication order;
   ``DlvDt`` is the Chicago date of the cycle's *first* publication, kept in the ledger and reused,
   so rebuilding an unchanged cycle gives identical bytes. Then the publication is recorded.
3. **Deliver** the built file to every receiving exchange that lacks this sha256 (to all of them
   with ``force``). ``spool``: into ``spool/exchanges/<id>/outbound/dpl/``. ``sftp://user@host:port
   /path``: pushed with paramiko using the daemon's own key (``spool/state/push_key``). Either way
   the old ``.sha256`` sidecar is removed first, the file goes to a temporary name and is renamed
   into place, and the new sidecar (``<hex>  DPL_<YYYYMMDD>.fixml``) is written last, so a present
   sidecar always describes the complete file beside it. A redelivery first drops the exchange's
   delivery row, so the ledger never claims a delivery a crash left half-done. Each delivery is
   recorded in the ledger, sets the exchange's last-publication metric and emits
   ``exchange.<id>.dpl.published``.

A crash (``kill -9``) at any point leaves under the visible names either the previous complete file
or nothing new: temporaries are hidden (``.DPL_*.tmp``) locally and ``DPL_*.part`` remotely (the
conventional in-progress suffix; the embedded SFTP server refuses names starting with a dot). The
next run removes them and redoes whatever the ledger does not show as done.

Remote host keys are trusted on first use and remembered in ``spool/state/push_known_hosts``
(an admin may pre-seed it with ``ssh-keyscan``); a changed host key refuses the delivery.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import hashlib
import io
import logging
import os
import posixpath
import re
import secrets
import shutil
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from zoneinfo import ZoneInfo

import paramiko

from engine.calendar import BusinessCalendar
from engine.dpl.validate import DplFields, canonical_line
from engine.errors import EngineBug
from gateway import metrics
from gateway.config import Config, Exchange
from gateway.errors import TransientError
from gateway.sftp.keys import create_key_file
from gateway.spool.fsio import atomic_writer, fsync_dir, temp_name, write_atomic
from gateway.store import Ledger

log = logging.getLogger(__name__)

CHICAGO = ZoneInfo("America/Chicago")
PUBLICATIONS_DIR = "publications"
LOCK_NAME = "publication.lock"
PUSH_KEY_NAME = "push_key"
KNOWN_HOSTS_NAME = "push_known_hosts"
KEEP_BUILT = 3
"""Built files kept in ``state/publications`` (older ones are rebuilt identically if needed)."""
WRITE_BATCH = 5000
LOG_EVERY_RECORDS = 250_000
SFTP_TIMEOUT_S = 20.0
EVENT_SCHEMA_VERSION = 1
_CALENDAR = BusinessCalendar()  # only for cutoff(), which no holiday affects

_LOCAL_TEMP_RE = re.compile(r"^\.DPL_\d{8}\.fixml(\.sha256)?\.[0-9a-f]{8}\.tmp$")
_REMOTE_TEMP_RE = re.compile(r"^DPL_\d{8}\.fixml(\.sha256)?\.[0-9a-f]{8}\.part$")

Emit = Callable[[str, dict[str, Any]], None]


class PublicationRuntime(Protocol):
    """What a publication needs of the daemon's ``Runtime`` (the CLI builds its own)."""

    @property
    def config(self) -> Config: ...

    @property
    def ledger(self) -> Ledger: ...

    @property
    def clock(self) -> Callable[[], dt.datetime]: ...


class PublicationError(Exception):
    """The publication could not be built (not a delivery problem)."""


class PublicationBusy(TransientError):
    """Another process held the publication lock for longer than we were willing to wait."""


class PublicationCancelled(Exception):
    """The daemon is stopping; the run was abandoned cleanly and will be redone."""


class IntakePending(TransientError):
    """Files received before the cycle's cutoff are still being processed: publish a bit later."""

    def __init__(self, cycle: dt.date, count: int) -> None:
        super().__init__(
            f"{count} DPL file(s) received before the cutoff of cycle {cycle.isoformat()} are "
            "still being processed"
        )
        self.count = count


class ExchangeUnreachable(TransientError):
    """The exchange's SFTP server could not be reached (network, refused, timeout)."""


class DeliveryRefused(Exception):
    """The exchange's server answered but refused: login, host key, permission, missing folder."""


@dataclass(frozen=True)
class Delivery:
    exchange: str
    target: str
    sha256: str


@dataclass(frozen=True)
class DeliveryFailure:
    exchange: str
    target: str
    error: str
    unreachable: bool


@dataclass(frozen=True)
class PublicationResult:
    """What one ``publish_cycle`` run did."""

    cycle: dt.date
    name: str
    path: Path
    sha256: str
    records: int
    delivery_date: dt.date
    built: bool
    delivered: tuple[Delivery, ...]
    already: tuple[str, ...]
    failures: tuple[DeliveryFailure, ...]
    seconds: float

    @property
    def complete(self) -> bool:
        """Every receiving exchange now holds this publication."""
        return not self.failures

    @property
    def skipped(self) -> bool:
        """Nothing was done: the cycle was already published everywhere."""
        return not self.built and not self.delivered and not self.failures

    @property
    def unreachable(self) -> bool:
        return any(f.unreachable for f in self.failures)

    def as_json(self) -> dict[str, Any]:
        return {
            "cycle": self.cycle.isoformat(),
            "file": self.name,
            "sha256": self.sha256,
            "records": self.records,
            "delivery_date": self.delivery_date.isoformat(),
            "built": self.built,
            "delivered": [dataclasses.asdict(d) for d in self.delivered],
            "already": list(self.already),
            "failures": [dataclasses.asdict(f) for f in self.failures],
            "seconds": round(self.seconds, 3),
        }


# ---------------------------------------------------------------------------------------------
# names and ledger facts


def publication_name(cycle: dt.date) -> str:
    return f"DPL_{cycle:%Y%m%d}.fixml"


def sidecar_text(sha256: str, name: str) -> bytes:
    """The ``sha256sum`` line of a file: ``<hex>  <name>\\n``."""
    return f"{sha256}  {name}\n".encode("ascii")


def rpt_id(cycle: dt.date, sequence: int) -> str:
    """The unique ``RptID`` of the ``sequence``-th record (from 1) of a cycle's file."""
    return f"{cycle:%Y%m%d}{sequence:09d}"


def publications_dir(config: Config) -> Path:
    return config.spool.state_dir / PUBLICATIONS_DIR


def receiving_exchanges(config: Config) -> list[Exchange]:
    return [e for e in config.reference.exchanges if e.receives_dpl]


def exchange_folder(config: Config, exchange_id: str) -> Path:
    return config.spool.root / "exchanges" / exchange_id / "outbound" / "dpl"


def missing_exchanges(ledger: Ledger, config: Config, cycle: dt.date) -> list[str]:
    """Receiving exchanges that do not hold the recorded publication of ``cycle`` (all, if none)."""
    receivers = [e.exchange_id for e in receiving_exchanges(config)]
    publication = ledger.publication(cycle.isoformat())
    if publication is None:
        return receivers
    delivered = ledger.deliveries(cycle.isoformat())
    return [e for e in receivers if delivered.get(e) != publication["sha256"]]


def cycle_complete(ledger: Ledger, config: Config, cycle: dt.date) -> bool:
    """The cycle is published and every receiving exchange holds that publication."""
    if ledger.publication(cycle.isoformat()) is None:
        return False
    return not missing_exchanges(ledger, config, cycle)


# ---------------------------------------------------------------------------------------------
# the run


def publish_cycle(
    runtime: PublicationRuntime,
    cycle: dt.date,
    *,
    force: bool = False,
    progress: bool = False,
    emit: Emit | None = None,
    cancel: threading.Event | None = None,
    sftp_attempts: int = 3,
    sftp_backoff_s: float = 1.0,
    lock_timeout_s: float = 3600.0,
) -> PublicationResult:
    """Build and deliver the aggregated file of ``cycle``; see the module docstring.

    Delivery problems are reported in the result (``failures``), never raised. Raises
    ``IntakePending`` (files of the cycle still being processed), other ``TransientError`` (disk
    full, lock busy), ``PublicationError`` (a stored record that cannot be serialised) and
    ``PublicationCancelled`` when ``cancel`` is set.
    """
    started = time.monotonic()
    config = runtime.config
    ledger = runtime.ledger
    key = cycle.isoformat()
    name = publication_name(cycle)
    receivers = receiving_exchanges(config)
    built_path = publications_dir(config) / name
    with publication_lock(config.spool.state_dir, lock_timeout_s, cancel):
        publication = ledger.publication(key)
        delivered = ledger.deliveries(key)
        if (
            publication is not None
            and not force
            and all(delivered.get(e.exchange_id) == publication["sha256"] for e in receivers)
        ):
            log.info("dpl cycle %s already published to every receiving exchange", key)
            return PublicationResult(
                cycle=cycle,
                name=name,
                path=built_path,
                sha256=publication["sha256"],
                records=int(publication["records"]),
                delivery_date=dt.date.fromisoformat(publication["delivery_date"]),
                built=False,
                delivered=(),
                already=tuple(e.exchange_id for e in receivers),
                failures=(),
                seconds=time.monotonic() - started,
            )
        built_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        remove_local_temporaries(built_path.parent)
        if publication is not None:
            delivery_date = dt.date.fromisoformat(publication["delivery_date"])
        else:
            delivery_date = runtime.clock().astimezone(CHICAGO).date()
        built = (
            force or publication is None or not _file_has_sha256(built_path, publication["sha256"])
        )
        if built and not force:
            pending = ledger.count_unfinished_dpl_files(_CALENDAR.cutoff(cycle))
            if pending:
                raise IntakePending(cycle, pending)
        if built:
            sha256, records = build_file(
                ledger, cycle, delivery_date, built_path, progress=progress, cancel=cancel
            )
            ledger.record_publication(
                cycle=key,
                delivery_date=delivery_date.isoformat(),
                sha256=sha256,
                records=records,
                path=str(built_path),
            )
            metrics.DPL_PUBLISHED_RECORDS.inc(records)
            log.info(
                "dpl cycle %s built %s records=%d sha256=%s dlvdt=%s",
                key,
                built_path,
                records,
                sha256,
                delivery_date,
            )
        else:
            assert publication is not None
            sha256, records = publication["sha256"], int(publication["records"])

        todo = (
            receivers if force else [e for e in receivers if delivered.get(e.exchange_id) != sha256]
        )
        already = tuple(e.exchange_id for e in receivers if e not in todo)
        done: list[Delivery] = []
        failures: list[DeliveryFailure] = []
        for exchange in todo:
            if cancel is not None and cancel.is_set():
                raise PublicationCancelled(f"cycle {key}: stopped before delivering to all")
            outcome = _deliver_one(
                runtime,
                exchange,
                cycle,
                built_path,
                sha256,
                records=records,
                delivery_date=delivery_date,
                known=exchange.exchange_id in delivered,
                emit=emit,
                attempts=sftp_attempts,
                backoff_s=sftp_backoff_s,
            )
            if isinstance(outcome, Delivery):
                done.append(outcome)
            else:
                failures.append(outcome)
        if not failures:
            metrics.DPL_LAST_PUBLISHED_CYCLE.set(
                dt.datetime.combine(cycle, dt.time(0), tzinfo=dt.UTC).timestamp()
            )
            prune_built(built_path.parent, keep=KEEP_BUILT)
    seconds = time.monotonic() - started
    metrics.DPL_PUBLICATION_SECONDS.observe(seconds)
    return PublicationResult(
        cycle=cycle,
        name=name,
        path=built_path,
        sha256=sha256,
        records=records,
        delivery_date=delivery_date,
        built=built,
        delivered=tuple(done),
        already=already,
        failures=tuple(failures),
        seconds=seconds,
    )


def _deliver_one(
    runtime: PublicationRuntime,
    exchange: Exchange,
    cycle: dt.date,
    built: Path,
    sha256: str,
    *,
    records: int,
    delivery_date: dt.date,
    known: bool,
    emit: Emit | None,
    attempts: int,
    backoff_s: float,
) -> Delivery | DeliveryFailure:
    """Deliver to one exchange and record it; a failure is returned, never raised."""
    ledger = runtime.ledger
    key = cycle.isoformat()
    name = publication_name(cycle)
    if known:  # the target is about to change: the old delivery row must not outlive it
        ledger.forget_delivery(key, exchange.exchange_id)
    try:
        target = deliver(
            runtime.config, exchange, built, name, sha256, attempts=attempts, backoff_s=backoff_s
        )
    except (ExchangeUnreachable, DeliveryRefused, TransientError, OSError) as exc:
        log.error(
            "dpl cycle %s delivery to %s (%s) failed: %s",
            key,
            exchange.exchange_id,
            _shown_target(exchange),
            exc,
        )
        unreachable = isinstance(exc, ExchangeUnreachable)
        return DeliveryFailure(exchange.exchange_id, _shown_target(exchange), str(exc), unreachable)
    ledger.record_delivery(cycle=key, exchange=exchange.exchange_id, sha256=sha256, target=target)
    metrics.DPL_LAST_PUBLICATION.labels(exchange=exchange.exchange_id).set(time.time())
    log.info("dpl cycle %s delivered to %s at %s", key, exchange.exchange_id, target)
    _emit(
        emit,
        exchange.exchange_id,
        {
            "schema_version": EVENT_SCHEMA_VERSION,
            "exchange": exchange.exchange_id,
            "cycle": key,
            "file": name,
            "sha256": sha256,
            "records": records,
            "delivery_date": delivery_date.isoformat(),
            "target": target,
        },
    )
    return Delivery(exchange.exchange_id, target, sha256)


def _emit(emit: Emit | None, exchange_id: str, body: dict[str, Any]) -> None:
    if emit is None:
        return
    try:
        emit(f"exchange.{exchange_id}.dpl.published", body)
    except Exception:
        # The event is a courtesy; the delivery itself is done and recorded.
        log.exception("emitting the publication event for %s failed", exchange_id)


@contextlib.contextmanager
def publication_lock(
    state_dir: Path, timeout_s: float, cancel: threading.Event | None = None
) -> Iterator[None]:
    """Exclusive ``flock`` on ``state/publication.lock`` (held across processes and threads)."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        deadline = time.monotonic() + timeout_s
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not announced:
                    log.info("another publication is running; waiting for it")
                    announced = True
                if time.monotonic() >= deadline:
                    raise PublicationBusy(
                        f"another publication held {state_dir / LOCK_NAME} for {timeout_s:.0f}s"
                    ) from None
                if cancel is not None and cancel.wait(0.2):
                    raise PublicationCancelled("stopped while waiting for the lock") from None
                if cancel is None:
                    time.sleep(0.2)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


# ---------------------------------------------------------------------------------------------
# building


def build_file(
    ledger: Ledger,
    cycle: dt.date,
    delivery_date: dt.date,
    target: Path,
    *,
    progress: bool = False,
    cancel: threading.Event | None = None,
) -> tuple[str, int]:
    """Stream the cycle's publishable records into ``target`` atomically; (sha256, records)."""
    key = cycle.isoformat()
    prefix = f"{cycle:%Y%m%d}"
    dlv_dt = delivery_date.isoformat()
    digest = hashlib.sha256()
    count = 0
    total = ledger.count_publishable_dpl(key) if progress else None
    make = DplFields._make
    values = ledger.iter_publishable_dpl_values(key, DplFields._fields, batch=WRITE_BATCH)
    with _progress(total, f"DPL {key}", enabled=progress) as advance, atomic_writer(target) as fh:
        batch: list[bytes] = []
        append = batch.append
        for row in values:
            count += 1
            try:
                append(canonical_line(make(row), rpt_id=f"{prefix}{count:09d}", dlv_dt=dlv_dt))
            except EngineBug as exc:
                raise PublicationError(
                    f"cycle {key}: stored record #{count} cannot be published: {exc}"
                ) from exc
            if len(batch) >= WRITE_BATCH:
                _write_lines(fh, digest, batch)
                advance(len(batch))
                batch.clear()
                if cancel is not None and cancel.is_set():
                    raise PublicationCancelled(f"cycle {key}: stopped while building")
        if batch:
            _write_lines(fh, digest, batch)
            advance(len(batch))
    return digest.hexdigest(), count


def _write_lines(fh: BinaryIO, digest: Any, lines: list[bytes]) -> None:
    lines.append(b"")
    data = b"\n".join(lines)  # every line LF-terminated
    digest.update(data)
    fh.write(data)
    lines.pop()


@contextlib.contextmanager
def _progress(total: int | None, label: str, *, enabled: bool) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on a terminal, else a log line every ``LOG_EVERY_RECORDS`` records."""
    if enabled and sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        ) as bar:
            task = bar.add_task(label, total=total)
            yield lambda n: bar.advance(task, n)
        return
    done = 0
    next_log = LOG_EVERY_RECORDS

    def advance(n: int) -> None:
        nonlocal done, next_log
        done += n
        if done >= next_log:
            log.info("%s: %d%s records written", label, done, f"/{total}" if total else "")
            next_log += LOG_EVERY_RECORDS

    yield advance


def _file_has_sha256(path: Path, sha256: str) -> bool:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1024 * 1024):
                digest.update(chunk)
    except FileNotFoundError:
        return False
    return digest.hexdigest() == sha256


def remove_local_temporaries(folder: Path) -> int:
    """Remove hidden publication temporaries a killed run left in ``folder``; count them."""
    removed = 0
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if _LOCAL_TEMP_RE.match(entry.name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
    if removed:
        log.info("removed %d unfinished publication file(s) in %s", removed, folder)
    return removed


def prune_built(folder: Path, keep: int) -> None:
    """Keep the ``keep`` most recent built files (names sort by cycle date)."""
    built = sorted(p for p in folder.glob("DPL_*.fixml") if p.is_file())
    for old in built[:-keep] if keep > 0 else built:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()


# ---------------------------------------------------------------------------------------------
# delivering


def deliver(
    config: Config,
    exchange: Exchange,
    built: Path,
    name: str,
    sha256: str,
    *,
    attempts: int = 3,
    backoff_s: float = 1.0,
) -> str:
    """Deliver ``built`` (and its sidecar) to one exchange; returns where it went."""
    if exchange.delivery == "spool":
        return deliver_to_spool(exchange_folder(config, exchange.exchange_id), built, name, sha256)
    target = SftpTarget.parse(exchange.delivery)
    key = load_or_create_push_key(config.spool.state_dir / PUSH_KEY_NAME)
    known_hosts = config.spool.state_dir / KNOWN_HOSTS_NAME
    for attempt in range(1, max(1, attempts) + 1):
        try:
            push_over_sftp(target, key, known_hosts, built, name, sha256)
            return target.display
        except ExchangeUnreachable as exc:
            if attempt >= attempts:
                raise
            delay = backoff_s * attempt
            log.warning(
                "dpl push to %s failed (attempt %d/%d), retrying in %.0fs: %s",
                target.display,
                attempt,
                attempts,
                delay,
                exc,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def deliver_to_spool(folder: Path, built: Path, name: str, sha256: str) -> str:
    """Copy ``built`` into an exchange's spool folder: sidecar off, temp, rename, sidecar last."""
    folder.mkdir(parents=True, exist_ok=True)
    remove_local_temporaries(folder)
    final = folder / name
    sidecar = folder / f"{name}.sha256"
    with contextlib.suppress(FileNotFoundError):
        sidecar.unlink()
    tmp = temp_name(final)
    try:
        shutil.copyfile(built, tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        if tmp.stat().st_size != built.stat().st_size:
            raise OSError(f"copy of {built.name} is incomplete")
        os.replace(tmp, final)
        fsync_dir(folder)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise TransientError(f"cannot write {final}: {exc.strerror or exc}") from exc
    write_atomic(sidecar, sidecar_text(sha256, name))
    return str(final)


@dataclass(frozen=True)
class SftpTarget:
    """``sftp://user@host:port/path``: where and as whom to push; ``folder`` '' is the login dir."""

    user: str
    host: str
    port: int
    folder: str

    @classmethod
    def parse(cls, url: str) -> SftpTarget:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "sftp" or not parts.username or not parts.hostname:
            raise DeliveryRefused(f"not an sftp://user@host:port/path delivery: {url!r}")
        try:
            port = parts.port or 22
        except ValueError as exc:
            raise DeliveryRefused(f"bad port in {url!r}") from exc
        return cls(
            urllib.parse.unquote(parts.username),
            parts.hostname,
            port,
            urllib.parse.unquote(parts.path),
        )

    @property
    def display(self) -> str:
        return f"sftp://{self.user}@{self.host}:{self.port}{self.folder}"

    def path(self, name: str) -> str:
        return posixpath.join(self.folder, name) if self.folder else name


def _shown_target(exchange: Exchange) -> str:
    if exchange.delivery == "spool":
        return f"spool:exchanges/{exchange.exchange_id}/outbound/dpl"
    return exchange.delivery


class _TrustOnFirstUse(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """Remember an unknown host's key (logged with its fingerprint); changed keys stay refused."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        client.get_host_keys().add(hostname, key.get_name(), key)
        client.save_host_keys(str(self.path))
        log.warning(
            "dpl push: trusting the host key of %s on first use (%s %s); recorded in %s",
            hostname,
            key.get_name(),
            key.fingerprint,
            self.path,
        )


def push_over_sftp(
    target: SftpTarget, key: paramiko.PKey, known_hosts: Path, built: Path, name: str, sha256: str
) -> None:
    """One push attempt; raises ExchangeUnreachable (retry) or DeliveryRefused (do not)."""
    if not known_hosts.exists():
        fd = os.open(known_hosts, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.close(fd)
    client = paramiko.SSHClient()
    try:
        client.load_host_keys(str(known_hosts))
        client.set_missing_host_key_policy(_TrustOnFirstUse(known_hosts))
        try:
            client.connect(
                target.host,
                target.port,
                username=target.user,
                pkey=key,
                timeout=SFTP_TIMEOUT_S,
                banner_timeout=SFTP_TIMEOUT_S,
                auth_timeout=SFTP_TIMEOUT_S,
                channel_timeout=SFTP_TIMEOUT_S,
                allow_agent=False,
                look_for_keys=False,
            )
        except paramiko.BadHostKeyException as exc:
            raise DeliveryRefused(
                f"host key of {target.host}:{target.port} changed ({exc.key.fingerprint}); "
                f"refusing to push (fix {known_hosts} if the change is expected)"
            ) from exc
        except paramiko.AuthenticationException as exc:
            raise DeliveryRefused(
                f"{target.display} refused our push key ({key.fingerprint}); the exchange must "
                f"authorize the public key in {PUSH_KEY_NAME}.pub"
            ) from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise ExchangeUnreachable(f"cannot connect to {target.display}: {exc}") from exc
        try:
            sftp = client.open_sftp()
            sftp.get_channel().settimeout(SFTP_TIMEOUT_S)
            _upload(sftp, target, built, name, sha256)
        except (PermissionError, FileNotFoundError) as exc:
            raise DeliveryRefused(f"{target.display}: {exc}") from exc
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise ExchangeUnreachable(f"transfer to {target.display} failed: {exc}") from exc
    finally:
        client.close()


def _upload(
    sftp: paramiko.SFTPClient, target: SftpTarget, built: Path, name: str, sha256: str
) -> None:
    _remove_remote_temporaries(sftp, target.folder)
    final = target.path(name)
    sidecar = f"{final}.sha256"
    with contextlib.suppress(FileNotFoundError):
        sftp.remove(sidecar)
    token = secrets.token_hex(4)
    tmp = f"{final}.{token}.part"
    try:
        with open(built, "rb") as fh:
            sftp.putfo(fh, tmp, file_size=built.stat().st_size, confirm=True)
        _remote_replace(sftp, tmp, final)
        side_tmp = f"{sidecar}.{token}.part"
        sftp.putfo(io.BytesIO(sidecar_text(sha256, name)), side_tmp, confirm=True)
        _remote_replace(sftp, side_tmp, sidecar)
    except BaseException:
        with contextlib.suppress(Exception):
            sftp.remove(tmp)
        raise


def _remote_replace(sftp: paramiko.SFTPClient, source: str, target: str) -> None:
    """Atomic replace with posix-rename@openssh.com; plain rename after a remove otherwise."""
    try:
        sftp.posix_rename(source, target)
        return
    except (PermissionError, FileNotFoundError):
        raise
    except OSError as exc:
        log.debug("posix_rename unsupported (%s); falling back to remove + rename", exc)
    with contextlib.suppress(FileNotFoundError):
        sftp.remove(target)
    sftp.rename(source, target)


def _remove_remote_temporaries(sftp: paramiko.SFTPClient, folder: str) -> None:
    try:
        names = sftp.listdir(folder or ".")
    except OSError:
        return
    for entry in names:
        if _REMOTE_TEMP_RE.match(entry):
            with contextlib.suppress(OSError):
                sftp.remove(posixpath.join(folder, entry) if folder else entry)


# ---------------------------------------------------------------------------------------------
# the push key


def load_or_create_push_key(path: Path) -> paramiko.PKey:
    """The daemon's own SSH client key for pushing to exchanges; created (Ed25519) on first use.

    ``<path>.pub`` holds the public line the exchange must authorize.
    """
    if not path.exists():
        _create_push_key(path)
    try:
        return paramiko.PKey.from_path(path)
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise DeliveryRefused(f"cannot load the push key {path}: {exc}") from exc


def push_public_key(config: Config) -> tuple[Path, str]:
    """(path of the public key file, its line), creating the key pair when missing."""
    path = config.spool.state_dir / PUSH_KEY_NAME
    load_or_create_push_key(path)
    pub = path.with_name(path.name + ".pub")
    return pub, pub.read_text(encoding="ascii").strip()


def _create_push_key(path: Path) -> None:
    if create_key_file(path, "posgate-push"):
        log.info(
            "created the DPL push key %s; exchanges receiving by sftp:// must authorize %s.pub",
            path,
            path.name,
        )


__all__: Sequence[str] = (
    "Delivery",
    "DeliveryFailure",
    "DeliveryRefused",
    "ExchangeUnreachable",
    "IntakePending",
    "PublicationBusy",
    "PublicationCancelled",
    "PublicationError",
    "PublicationResult",
    "SftpTarget",
    "cycle_complete",
    "missing_exchanges",
    "publication_name",
    "publish_cycle",
    "push_public_key",
    "receiving_exchanges",
    "rpt_id",
)
