"""The life of an input file on disk and in the ledger: claimed into ``work/``, archived or
quarantined, and reconciled after a crash.

Claiming writes the intent into the ledger first (state ``received`` with the planned work path),
then renames the file into the spool's ``work`` folder (same filesystem, atomic), hashes it and
records ``claimed``; bytes sent before are a new submission like any other (only noted). A
processed file moves to ``archive/<receipt date>/`` (``archived``); an unreadable one to
``quarantine/`` with a ``.reason.json`` beside it, and the firm finds ``<name>.unreadable.json``
(reason, receipt time, sha256, what to do) in its ``outbound/<flow>/``. ``reconcile`` brings every
non-terminal ledger row in line with the disk, so ``kill -9`` at any instant loses nothing and
processes nothing twice.

A name that cannot be claimed is quarantined at once with the reason ``NAME_TOO_LONG``, never left
waiting (it would be seen again at every sweep): a name longer than ``MAX_NAME_BYTES`` in UTF-8
(its outputs, named after it, would pass the filesystem's 255-byte limit), or any name the rename
into ``work/`` fails for (``ENAMETOOLONG``, ``EILSEQ``). Such a file is kept under a short name in
``quarantine/`` (the full name is in its ``.reason.json``) and the firm finds
``NAME_TOO_LONG.<file id>.unreadable.json`` in its ``outbound/<flow>/``.
"""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import logging
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

from engine.errors import UnreadableInput
from gateway import metrics
from gateway.ledger import FileRow, Ledger
from gateway.spool.fsio import fsync_dir, write_atomic
from gateway.spool.naming import upload_output_base

log = logging.getLogger(__name__)

CHICAGO = ZoneInfo("America/Chicago")

Alert = Callable[[str, str, Mapping[str, object]], None]

MAX_NAME_BYTES = 200
"""Longest input name (UTF-8 bytes) taken: outputs add up to ~30 bytes (``.<name>.unreadable.json
.<hex>.tmp``) and a name must stay under the 255-byte limit of the filesystem."""

NAME_TOO_LONG = "NAME_TOO_LONG"


@dataclass(frozen=True)
class ClaimedFile:
    """An input file owned by the daemon, in the work area, with its ledger id."""

    file_id: int
    flow: str
    firm: str
    name: str
    path: Path
    sha256: str
    size: int
    received_at: dt.datetime
    identical_to: int | None = None
    """An earlier processed file of the same firm and flow with the same bytes, if any."""

    @classmethod
    def from_row(cls, row: FileRow, path: Path) -> ClaimedFile:
        return cls(
            file_id=row.id,
            flow=row.flow,
            firm=row.firm,
            name=row.name,
            path=path,
            sha256=row.sha256,
            size=row.size,
            received_at=row.received_at,
            identical_to=row.duplicate_of,
        )


class SpoolFiles:
    """Moves input files between ``work``, ``archive`` and ``quarantine``, recording each step."""

    def __init__(
        self,
        *,
        root: Path,
        ledger: Ledger,
        clock: Callable[[], dt.datetime],
        alert: Alert,
        technical_contact: Callable[[str], str],
    ) -> None:
        self.root = root
        self.ledger = ledger
        self.clock = clock
        self.alert = alert
        self.technical_contact = technical_contact

    def work_path(self, flow: str, firm: str, name: str) -> Path:
        """A fresh, unique path in ``work/<flow>/<firm>/`` for the input ``name``."""
        work_dir = self.root / "work" / flow / firm
        work_dir.mkdir(parents=True, exist_ok=True)
        return work_dir / f"{secrets.token_hex(8)}__{name}"

    def claim(
        self, path: Path, firm: str, flow: str, received_at: dt.datetime
    ) -> ClaimedFile | None:
        """Take the inbound file ``path`` received at ``received_at`` (daemon clock); None when
        it vanished before it could be claimed."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        if len(os.fsencode(path.name)) > MAX_NAME_BYTES:
            self._quarantine_name(path, firm, flow, received_at, st.st_size, None)
            return None
        work_path = self.work_path(flow, firm, path.name)
        file_id = self.ledger.record_file(
            flow=flow,
            firm=firm,
            account=firm,
            name=path.name,
            sha256="",
            size=st.st_size,
            received_at=received_at,
            cycle=None,
            work_path=str(work_path),
            source=str(path),
        )
        try:
            os.rename(path, work_path)
        except FileNotFoundError:
            self.ledger.set_file_state(file_id, "vanished", "gone before it could be claimed")
            return None
        except OSError as exc:
            if exc.errno not in (errno.ENAMETOOLONG, errno.EILSEQ):
                raise
            self._quarantine_name(path, firm, flow, received_at, st.st_size, file_id)
            return None
        fsync_dir(work_path.parent)
        fsync_dir(path.parent)
        return self.finish_claim(self.ledger.file(file_id), work_path)

    def finish_claim(self, row: FileRow, work_path: Path) -> ClaimedFile:
        """Hash a file now in ``work`` and record it ``claimed``.

        Bytes the firm sent before (same firm, flow and sha256) are still a new submission: the
        earlier file's id is only noted (``identical_to``) so its receipt can say so. Work is
        never done twice for one *upload*: that is the ledger row's state (crash recovery) and
        the AMQP processed-request record (redelivery), not the content.
        """
        digest, size = _sha256(work_path)
        metrics.FILES_RECEIVED.labels(flow=row.flow, firm=row.firm).inc()
        original = self.ledger.find_processed_duplicate(row.firm, row.flow, digest, row.id)
        if original is not None:
            metrics.FILES_DUPLICATE.labels(flow=row.flow).inc()
            log.info(
                "%s from firm %s has the bytes of file %d; processed as a new submission",
                row.name,
                row.firm,
                original,
            )
        self.ledger.set_file_state(
            row.id, "claimed", "hashed", sha256=digest, size=size, duplicate_of=original
        )
        return ClaimedFile(
            file_id=row.id,
            flow=row.flow,
            firm=row.firm,
            name=row.name,
            path=work_path,
            sha256=digest,
            size=size,
            received_at=row.received_at,
            identical_to=original,
        )

    def archive_path(self, row: FileRow) -> Path:
        day = row.received_at.astimezone(CHICAGO).date().isoformat()
        return self.root / "archive" / day / row.firm / row.flow / f"{row.id}__{row.name}"

    def archive(self, file_id: int, work_path: Path) -> None:
        row = self.ledger.file(file_id)
        target = self.archive_path(row)
        self._move(work_path, target)
        self.ledger.set_file_state(file_id, "archived", str(target), archive_path=str(target))

    def _move(self, source: Path, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        fsync_dir(target.parent)

    def _quarantine_name(
        self,
        path: Path,
        firm: str,
        flow: str,
        received_at: dt.datetime,
        size: int,
        file_id: int | None,
    ) -> None:
        """Quarantine an inbound file whose name cannot be claimed (see the module docstring)."""
        short = f"{hashlib.sha256(os.fsencode(path.name)).hexdigest()[:16]}.name-too-long"
        if file_id is None:
            file_id = self.ledger.record_file(
                flow=flow,
                firm=firm,
                account=firm,
                name=path.name,
                sha256="",
                size=size,
                received_at=received_at,
                cycle=None,
                work_path="",
                source=str(path),
            )
        target = self.root / "quarantine" / f"{file_id}__{short}"
        try:
            self._move(path, target)
        except FileNotFoundError:
            self.ledger.set_file_state(file_id, "vanished", "gone before it could be quarantined")
            return
        sha, size = _sha256(target)
        limit = f"{len(os.fsencode(path.name))} bytes; at most {MAX_NAME_BYTES} are taken"
        message = f"the file name is too long to be processed ({limit}); rename it and upload again"
        reason = {
            "file": path.name,
            "firm": firm,
            "flow": flow,
            "file_id": file_id,
            "sha256": sha,
            "size": size,
            "received_at": received_at.isoformat(),
            "reason": NAME_TOO_LONG,
            "message": message,
            "technical_contact": self.technical_contact(firm),
        }
        write_atomic(
            target.with_name(target.name + ".reason.json"),
            (json.dumps(reason, indent=2) + "\n").encode(),
        )
        notice = {**reason, "schema_version": 1, "processed": False}
        notice.pop("technical_contact")
        folder = self.root / "firms" / firm / "outbound" / flow
        try:
            write_atomic(
                folder / f"{NAME_TOO_LONG}.{file_id}.unreadable.json",
                (json.dumps(notice, indent=2) + "\n").encode(),
            )
        except Exception:  # the quarantine and the alert stand even if this cannot be written
            log.exception("cannot write the name notice for file %d", file_id)
        self.ledger.set_file_state(
            file_id, "quarantined", f"{NAME_TOO_LONG}: {message}", reason=NAME_TOO_LONG, sha256=sha
        )
        metrics.FILES_QUARANTINED.labels(flow=flow).inc()
        self.alert(
            "file_quarantined",
            f"{flow} file from firm {firm} quarantined: {message}",
            {"file_id": file_id, "firm": firm, "technical_contact": self.technical_contact(firm)},
        )

    def quarantine(self, claimed: ClaimedFile, exc: UnreadableInput) -> None:
        """Move an unreadable input to ``quarantine/`` with its reason, record it and alert."""
        target = self.root / "quarantine" / f"{claimed.file_id}__{claimed.name}"
        self._move(claimed.path, target)
        contact = self.technical_contact(claimed.firm)
        reason = {
            "file": claimed.name,
            "firm": claimed.firm,
            "flow": claimed.flow,
            "file_id": claimed.file_id,
            "sha256": claimed.sha256,
            "size": claimed.size,
            "received_at": claimed.received_at.isoformat(),
            "reason": exc.reason,
            "message": exc.message,
            "technical_contact": contact,
        }
        write_atomic(
            target.with_name(target.name + ".reason.json"),
            (json.dumps(reason, indent=2) + "\n").encode(),
        )
        self._tell_firm(claimed, exc)
        self.ledger.set_file_state(
            claimed.file_id, "quarantined", f"{exc.reason}: {exc.message}", reason=exc.reason
        )
        metrics.FILES_QUARANTINED.labels(flow=claimed.flow, firm=claimed.firm).inc()
        self.alert(
            "file_quarantined",
            f"{claimed.flow} file {claimed.name!r} from firm {claimed.firm} cannot be read "
            f"({exc.reason}: {exc.message}); contact {contact or 'unknown'}",
            {"file_id": claimed.file_id, "firm": claimed.firm, "technical_contact": contact},
        )

    def _tell_firm(self, claimed: ClaimedFile, exc: UnreadableInput) -> None:
        """``<name>.unreadable.json`` in the firm's ``outbound/<flow>/``: no records can be
        returned for a file that cannot be read, so the firm learns it this way (an operator
        alert alone would leave it waiting for a receipt)."""
        folder = self.root / "firms" / claimed.firm / "outbound" / claimed.flow
        note = {
            "schema_version": 1,
            "file": claimed.name,
            "received_at": claimed.received_at.isoformat(),
            "sha256": claimed.sha256,
            "size": claimed.size,
            "reason": exc.reason,
            "message": exc.message,
            "processed": False,
            "what_to_do": (
                "The file could not be read at all, so none of its records were processed. "
                "Check that it is the intended file (UTF-8 text, one FIXML message per line or "
                "one complete Batch document for DPL), correct it and upload it again; the "
                "latest readable file of the cycle is the one that counts."
                if claimed.flow == "dpl"
                else "The file could not be read at all and was not processed. Correct it and "
                "upload it again."
            ),
        }
        try:
            with upload_output_base(self.ledger, claimed.file_id, claimed.name, folder) as base:
                write_atomic(
                    folder / f"{base}.unreadable.json",
                    (json.dumps(note, indent=2) + "\n").encode(),
                )
        except Exception:  # the quarantine and the alert stand even if this cannot be written
            log.exception("cannot write the unreadable notice for file %d", claimed.file_id)

    def reconcile(self, dispatch: Callable[[ClaimedFile], None]) -> None:
        """Bring every non-terminal ledger row in line with the disk (after a crash); files that
        still need their flow are passed to ``dispatch``."""
        for row in self.ledger.unfinished_files():
            work = Path(row.work_path) if row.work_path else None
            try:
                if row.state == "received":
                    source = Path(row.source or "")
                    if source.exists() and len(os.fsencode(source.name)) > MAX_NAME_BYTES:
                        self._quarantine_name(
                            source, row.firm, row.flow, row.received_at, row.size, row.id
                        )
                        claimed = None
                    elif work is not None and work.exists():
                        claimed = self.finish_claim(row, work)
                    elif source.exists() and work is not None:
                        os.rename(source, work)
                        claimed = self.finish_claim(row, work)
                    else:
                        self.ledger.set_file_state(row.id, "vanished", "not found at restart")
                        claimed = None
                    if claimed is not None:
                        dispatch(claimed)
                elif row.state in ("claimed", "failed"):
                    if work is not None and work.exists():
                        dispatch(ClaimedFile.from_row(row, work))
                    else:
                        self.ledger.set_file_state(row.id, "vanished", "work file missing")
                        if row.flow == "dpl":  # rows an interrupted attempt staged
                            self.ledger.discard_dpl_records(row.id)
                elif row.state == "processed":
                    if work is not None and work.exists():
                        self.archive(row.id, work)
                    else:
                        self.ledger.set_file_state(
                            row.id,
                            "archived",
                            "already moved",
                            archive_path=str(self.archive_path(row)),
                        )
            except Exception:
                log.exception("cannot reconcile file %d (%s)", row.id, row.state)


def _sha256(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size
