"""AMQP request handlers of ``posgate serve``: each turns a firm's request into the same pipeline
an SFTP upload goes through, and the outcome into a reply.

The identity (``request.firm``) was checked by the broker and mapped by the dispatcher; a handler
only ever reads or writes that firm's data. Bad requests raise ``InputRejected`` with a reason code
(the dispatcher answers them with an error reply and acks).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import InputRejected
from gateway.amqp_dispatch import Reply, Request
from gateway.pipelines.dpl import DplArrival
from gateway.reports import CycleNotPublished, dpl_report_rows, render_json
from gateway.spool import ClaimedFile, SpoolIntake
from gateway.store import Ledger

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _file_name(request: Request, default_suffix: str) -> str:
    given = request.headers.get("file_name") if request.headers else None
    if isinstance(given, bytes):
        given = given.decode("utf-8", "replace")
    name = SAFE_NAME.sub("_", str(given or "")).strip("._")
    if not name:
        name = f"amqp-{SAFE_NAME.sub('_', request.message_id or 'request')}{default_suffix}"
    return name[:200]


def dpl_submission_handler(intake: SpoolIntake, arrival: DplArrival) -> Callable[[Request], Reply]:
    """``dpl.submission``: the body is a DPL file; the reply is its receipt."""

    def handle(request: Request) -> Reply:
        if not request.body:
            raise InputRejected("EMPTY", "the submission body is empty")
        name = _file_name(request, ".fixml")

        def process(claimed: ClaimedFile) -> dict[str, Any]:
            return arrival.process(claimed).as_json()

        receipt, duplicate_of = intake.submit_bytes(
            firm=request.firm, flow="dpl", name=name, data=request.body,
            source=f"amqp:{request.message_id or ''}", process=process,
        )
        if receipt is None:
            return Reply({"status": "duplicate", "duplicate_of_file": duplicate_of,
                          "message": "the same content was already processed for this firm"})
        assert isinstance(receipt, dict)
        return Reply({"status": "processed", "receipt": receipt})

    return handle


def dpl_report_handler(ledger: Ledger) -> Callable[[Request], Reply]:
    """``dpl.report``: ``{"cycle": "YYYY-MM-DD", "status": "valid|rejected|all"}`` -> the firm's
    own records of a published cycle with their reasons."""

    def handle(request: Request) -> Reply:
        body = request.json()
        if not isinstance(body, Mapping):
            raise InputRejected("MALFORMED", "the body must be a JSON object")
        try:
            cycle = dt.date.fromisoformat(str(body.get("cycle", "")))
        except ValueError:
            raise InputRejected("LAYOUT", f"cycle={body.get('cycle')!r} is not a date "
                                "YYYY-MM-DD") from None
        status = str(body.get("status", "all"))
        try:
            rows = dpl_report_rows(ledger, cycle, firm=request.firm, status=status)
        except CycleNotPublished as exc:
            raise InputRejected("NOT_PUBLISHED", str(exc)) from None
        except ValueError as exc:
            raise InputRejected("LAYOUT", str(exc)) from None
        out = io.StringIO()
        render_json(rows, out, cycle=cycle, firm=request.firm, status=status)
        return Reply(json.loads(out.getvalue()))

    return handle


def compute_handlers() -> dict[str, Callable[[Request], Reply]]:
    """Handlers that need no spool or ledger (margin what-if): ``posgate worker`` serves them
    too, as a competing consumer on as many machines as the load needs."""
    return {}
