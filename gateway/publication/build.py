"""Building a cycle's aggregated DPL file in ``spool/state/publications/``.

Owns the file's names (``DPL_<YYYYMMDD>.fixml``, the ``sha256sum`` line of its sidecar, the
``RptID`` of each record), the streaming build from the ledger (a batch of stored records at a
time, as one text) through ``engine.dpl.canonical.canonical_lines_of_joined`` into an atomically
renamed file hashed while written, the progress shown during a long build, the check that a
built file still matches the ledger, and the pruning of older built files. Nothing here delivers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from engine.dpl.canonical import canonical_lines_of_joined
from engine.errors import EngineBug
from gateway.config import Config
from gateway.ledger import ABSENT, FIELD_SEP, Ledger
from gateway.publication.errors import PublicationCancelled, PublicationError
from gateway.spool.fsio import atomic_writer

log = logging.getLogger(__name__)

PUBLICATIONS_DIR = "publications"
KEEP_BUILT = 3
"""Built files kept in ``state/publications`` (older ones are rebuilt identically if needed)."""
WRITE_BATCH = 5000
LOG_EVERY_RECORDS = 250_000


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


def build_file(
    ledger: Ledger,
    cycle: dt.date,
    delivery_date: dt.date,
    target: Path,
    *,
    progress: bool = False,
    cancel: threading.Event | None = None,
    files: Sequence[int] | None = None,
) -> tuple[str, int]:
    """Stream the cycle's publishable records (of ``files``, default the current ones) into
    ``target`` atomically; (sha256, records)."""
    key = cycle.isoformat()
    prefix = f"{cycle:%Y%m%d}"
    dlv_dt = delivery_date.isoformat()
    digest = hashlib.sha256()
    count = 0
    total = ledger.count_publishable_dpl(key, files) if progress else None
    batches = ledger.iter_publishable_dpl_packed(key, batch=WRITE_BATCH, files=files)
    with _progress(total, f"DPL {key}", enabled=progress) as advance, atomic_writer(target) as fh:
        for records, text in batches:
            try:
                data = canonical_lines_of_joined(
                    text,
                    records=records,
                    sep=FIELD_SEP.encode(),
                    absent=ABSENT.encode(),
                    rpt_id_prefix=prefix,
                    first_sequence=count + 1,
                    dlv_dt=dlv_dt,
                )
            except EngineBug as exc:
                raise PublicationError(
                    f"cycle {key}: a stored record among #{count + 1}-#{count + records}"
                    f" cannot be published: {exc}"
                ) from exc
            count += records
            digest.update(data)
            fh.write(data)
            advance(records)
            if cancel is not None and cancel.is_set():
                raise PublicationCancelled(f"cycle {key}: stopped while building")
    return digest.hexdigest(), count


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


def file_has_sha256(path: Path, sha256: str) -> bool:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1024 * 1024):
                digest.update(chunk)
    except FileNotFoundError:
        return False
    return digest.hexdigest() == sha256


def prune_built(folder: Path, keep: int, pattern: str = "DPL_*.fixml") -> None:
    """Keep the ``keep`` most recent built files of ``pattern`` (names sort by date)."""
    built = sorted(p for p in folder.glob(pattern) if p.is_file())
    for old in built[:-keep] if keep > 0 else built:
        with contextlib.suppress(FileNotFoundError):
            old.unlink()
