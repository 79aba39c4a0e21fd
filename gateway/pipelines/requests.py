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
import time
from collections.abc import Callable, Mapping
from typing import Any

from engine.ebe.instructions import instructions_from_objects, read_instruction_csv
from engine.ebe.query import Filters, render_csv
from engine.errors import InputRejected, UnreadableInput
from engine.pmc.contracts import ContractFilter, list_contracts, sort_contracts
from engine.pmc.positions.model import PositionBatch
from engine.pmc.positions.read import parse_position_file
from engine.pmc.positions.rows import positions_from_rows
from engine.pmc.theo.model import TheoSet
from engine.pmc.whatif import whatif_document
from gateway.amqp.dispatch import Reply, Request
from gateway.errors import TransientError
from gateway.ledger import Ledger
from gateway.outputs.reports import CycleNotPublished, dpl_report_rows, render_json
from gateway.pipelines.dpl import DplArrival
from gateway.pipelines.ebe import EbeFlow
from gateway.pipelines.pmc import PmcArrival, PmcOutcome
from gateway.spool.claims import ClaimedFile
from gateway.spool.fsio import write_atomic
from gateway.spool.intake import SpoolIntake
from gateway.theo_store import TheoStore

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _file_name(request: Request, default_suffix: str) -> str:
    headers = request.headers or {}
    given = headers.get("posgate-file-name") or headers.get("file_name")  # older name still read
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

        receipt, _ = intake.submit_bytes(
            firm=request.firm,
            flow="dpl",
            name=name,
            data=request.body,
            source=f"amqp:{request.message_id or ''}",
            process=process,
        )
        assert isinstance(receipt, dict)  # bytes sent before are a new submission (receipt says)
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
            raise InputRejected(
                "LAYOUT", f"cycle={body.get('cycle')!r} is not a date YYYY-MM-DD"
            ) from None
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


def pmc_positions_handler(intake: SpoolIntake, arrival: PmcArrival) -> Callable[[Request], Reply]:
    """``pmc.positions``: the body is a 346 file (CSV or ASCII); the reply carries the counts and
    requirements, and the usual result files land in the firm's ``outbound/pmc/``."""

    def handle(request: Request) -> Reply:
        if not request.body:
            raise InputRejected("EMPTY", "the position file body is empty")
        try:
            outcome, _ = intake.submit_bytes(
                firm=request.firm,
                flow="pmc",
                name=_file_name(request, ".csv"),
                data=request.body,
                source=f"amqp:{request.message_id or ''}",
                process=arrival.process,
            )
        except TransientError as exc:
            raise InputRejected("NO_THEO_SET", str(exc)) from None
        assert isinstance(outcome, PmcOutcome)
        return Reply({"status": "processed", "result": outcome.as_dict()})

    return handle


class _FreshTheo:
    """The newest theo set, re-scanned at most every ``interval_s`` (for handlers)."""

    def __init__(self, store: TheoStore, interval_s: float = 30.0) -> None:
        self.store = store
        self.interval_s = interval_s
        self._next = 0.0

    def get(self, day: str | None) -> TheoSet:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.interval_s
            self.store.refresh()
        theo = self.store.get(day) if day else self.store.latest()
        if theo is None:  # another thread may be loading it right now: wait for that load
            self.store.refresh()
            theo = self.store.get(day) if day else self.store.latest()
        if theo is None:
            raise InputRejected(
                "NO_THEO_SET",
                f"no theoretical P&L set for {day}" if day else "no theoretical P&L set is loaded",
            )
        return theo


def _whatif_batch(rows: Any, firm: str, what: str) -> PositionBatch:
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
        raise InputRejected("LAYOUT", f"{what} must be a list of position objects")
    if len(rows) > 100_000:
        raise InputRejected("LAYOUT", f"{what} has {len(rows)} positions; at most 100000")
    # A firm's what-if is always about itself: the firm of every row is the caller's identity.
    batch, problems = positions_from_rows([{**r, "firm": firm} for r in rows])
    rejected = [p for p in problems if p.kind != "warning"]
    if rejected:
        first = rejected[0]
        message = first.message
        for field_346, key in JSON_KEYS.items():  # speak the caller's JSON, not the 346 layout
            message = message.replace(field_346, key)
        raise InputRejected(first.reason, f"{what}[{first.line - 1}]: {message}")
    return batch


JSON_KEYS = {
    "SECURITY TYPE CODE": "security_type",
    "SERIES/CONTRACT DATE": "series_date",
    "PUT/CALL INDICATOR": "put_call",
    "STRIKE PRICE": "strike",
    "EXERCISE STYLE": "exercise_style",
    "SETTLEMENT STYLE": "settlement_style",
    "EXPIRATION DATE": "expiration_date",
    "CLEARING FIRM NUMBER": "firm",
    "ACCOUNT ID": "account",
    "BASKET ID": "basket_id",
    "MARKET VALUE": "market_value",
    "NET POSITION": "quantity",
    "SYMBOL": "symbol",
    "FUNCTION": "quantity",
}
"""346 field names in engine messages -> the JSON keys of a what-if position."""


def margin_whatif_handler(theo: _FreshTheo) -> Callable[[Request], Reply]:
    """``margin.whatif``: ``{"positions": [...], "base": [...]?, "theo_date": "..."?}`` or a 346
    file body -> requirement, NAV, minimum, group breakdown, each position's contribution."""

    def handle(request: Request) -> Reply:
        content_type = (request.content_type or "application/json").split(";")[0].strip()
        day: str | None = None
        base = None
        if content_type in ("text/csv", "text/plain", "application/octet-stream"):
            parsed = parse_position_file(request.body, default_firm=request.firm)
            positions = parsed.positions
        else:
            body = request.json()
            if not isinstance(body, Mapping):
                raise InputRejected("MALFORMED", "the body must be a JSON object")
            unknown = set(body) - {"positions", "base", "theo_date", "schema_version"}
            if unknown:
                raise InputRejected("LAYOUT", f"unknown keys: {', '.join(sorted(unknown))}")
            positions = _whatif_batch(body.get("positions"), request.firm, "positions")
            if body.get("base") is not None:
                base = _whatif_batch(body["base"], request.firm, "base")
            day = str(body["theo_date"]) if body.get("theo_date") else None
        if len(positions) == 0:
            raise InputRejected("NO_VALID_POSITION", "the what-if has no positions")
        document = whatif_document(positions, theo.get(day), base)
        priced = document.get("positions")
        if not priced:
            problems = document.get("problems") or []
            first = problems[0] if isinstance(problems, list) and problems else None
            detail = f"; first: {first.get('message', first)}" if isinstance(first, dict) else ""
            raise InputRejected(
                "NO_VALID_POSITION",
                f"none of the {len(positions)} position(s) could be priced{detail}",
            )
        # A what-if is always about the caller: name it by its firm id, as every reply does.
        for account in document.get("accounts") or []:
            if isinstance(account, dict):
                account["firm"] = request.firm
        return Reply(document)

    return handle


CONTRACT_FILTER_KEYS = (
    "account_type",
    "product_group",
    "class_group",
    "underlying",
    "symbol",
    "security_type",
    "series_date",
    "expiration_date",
    "put_call",
    "strike",
)
CONTRACT_LIMIT = 10_000  # contracts in one reply; ``truncated`` says when there were more


def pmc_contracts_handler(theo: _FreshTheo) -> Callable[[Request], Reply]:
    """``pmc.contracts``: ``{"account_type": "C", "class_group": "SPX", ..., "theo_date"?,
    "sort"?, "descending"?}`` -> the available contracts of the set, with the filters, rules and
    default sort of ``posgate theo contracts`` (a broken rule is ``MISSING_FILTER`` or
    ``BAD_FILTER``)."""

    def handle(request: Request) -> Reply:
        body = request.json()
        if not isinstance(body, Mapping):
            raise InputRejected("MALFORMED", "the body must be a JSON object")
        allowed = {*CONTRACT_FILTER_KEYS, "theo_date", "sort", "descending", "schema_version"}
        unknown = set(body) - allowed
        if unknown:
            raise InputRejected("LAYOUT", f"unknown keys: {', '.join(sorted(unknown))}")
        texts: dict[str, str] = {}
        for key in CONTRACT_FILTER_KEYS[:-1]:
            value = body.get(key)
            if value is not None and not isinstance(value, str):
                raise InputRejected("BAD_FILTER", f"{key} must be a string")
            texts[key] = value or ""
        strike = body.get("strike")
        if strike is not None and (isinstance(strike, bool) or not isinstance(strike, int | float)):
            raise InputRejected("BAD_FILTER", "strike must be a number")
        day = str(body["theo_date"]) if body.get("theo_date") else None
        current = theo.get(day)
        found = list_contracts(
            current,
            ContractFilter(**texts, strike=float(strike) if strike is not None else None),
        )
        if body.get("sort"):
            found = sort_contracts(
                found, str(body["sort"]), descending=bool(body.get("descending"))
            )
        return Reply(
            {
                "theo_date": current.activity_date,
                "account_type": texts["account_type"].strip().upper(),
                "count": len(found),
                "truncated": len(found) > CONTRACT_LIMIT,
                "contracts": [c.as_dict() for c in found[:CONTRACT_LIMIT]],
            }
        )

    return handle


def compute_handlers(theo_store: TheoStore) -> dict[str, Callable[[Request], Reply]]:
    """Handlers that need no spool writes or ledger (margin what-if): ``posgate worker`` serves
    them too, as a competing consumer on as many machines as the load needs."""
    return {"margin.whatif": margin_whatif_handler(_FreshTheo(theo_store))}


def ebe_query_handler(flow: EbeFlow) -> Callable[[Request], Reply]:
    """``ebe.query``: query filters -> the JSON form inline up to ``[ebe] inline_rows``
    rows; above that the rows go to a CSV in the firm's ``outbound/ebe/`` and the reply names it
    (with ``rows`` empty and ``row_count``)."""

    def handle(request: Request) -> Reply:
        filters = Filters.parse(request.json_object(), allow=("format",))
        doc = flow.query(request.firm, filters)
        limit = flow.config().ebe.inline_rows
        if len(doc["rows"]) <= limit:
            return Reply(doc)
        stem = SAFE_NAME.sub("_", request.message_id or "query").strip("._") or "query"
        name = f"amqp-{stem}.query.csv"
        target = flow.root / "firms" / request.firm / "outbound" / "ebe" / name
        write_atomic(target, render_csv(doc["rows"]))
        doc = {**doc, "row_count": len(doc["rows"]), "rows": [], "file": f"outbound/ebe/{name}"}
        return Reply(doc)

    return handle


def ebe_instruction_handler(flow: EbeFlow) -> Callable[[Request], Reply]:
    """``ebe.instruction``: the instruction CSV (``text/csv``) or JSON ``{"instructions":
    [{...}, ...]}`` -> the per-line receipt, received at the server's clock."""

    def handle(request: Request) -> Reply:
        received_at = flow.clock()
        content_type = (request.content_type or "").split(";")[0].strip().lower()
        origin = f"amqp:{request.message_id or 'request'}"
        if content_type in ("text/csv", "text/plain"):
            try:
                lines = read_instruction_csv(request.body, "body")
            except UnreadableInput as exc:
                raise InputRejected(exc.reason, exc.message) from None
        else:
            body = request.json()
            items = body.get("instructions") if isinstance(body, Mapping) else body
            if not isinstance(items, list):
                raise InputRejected(
                    "LAYOUT", 'the body must be {"instructions": [...]} or a CSV (text/csv)'
                )
            if len(items) > 100_000:
                raise InputRejected("LAYOUT", f"{len(items)} instructions; at most 100000")
            lines = instructions_from_objects(items)
        return Reply(flow.submit(lines, firm=request.firm, received_at=received_at, origin=origin))

    return handle


def worker_ebe_handlers(config: Any) -> dict[str, Callable[[Request], Reply]]:
    """``ebe.query`` for ``posgate worker``: answers come from the expiring sets in the spool and
    the instructions in the daemon's ledger, so a worker serves it only where it can read the
    spool (the daemon's host or a shared mount); elsewhere it leaves the type to ``serve``."""
    from gateway.config import Config
    from gateway.ebe_store import ExpiringStore
    from gateway.ledger import Ledger
    from gateway.pipelines.ebe import EbeFlow

    assert isinstance(config, Config)
    if not config.spool.ledger_path.exists():
        return {}
    store = ExpiringStore(config.spool.root / "internal" / "ebe")
    flow = EbeFlow(
        spool_root=config.spool.root,
        ledger=Ledger(config.spool.ledger_path),
        store=store,
        config=lambda: config,
        clock=lambda: dt.datetime.now(dt.UTC),
        emit=lambda key, body: None,
    )
    handler = ebe_query_handler(flow)

    def handle(request: Request) -> Reply:
        store.refresh()  # cheap when nothing changed: one stat per file
        return handler(request)

    return {"ebe.query": handle}


def theo_handlers(theo_store: TheoStore) -> dict[str, Callable[[Request], Reply]]:
    """Read-only handlers over the theo sets that ``posgate serve`` answers (``pmc.contracts``)."""
    return {"pmc.contracts": pmc_contracts_handler(_FreshTheo(theo_store))}
