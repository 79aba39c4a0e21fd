"""Operator alerts: one line in the log, a count in ``posgate_alerts_total{name}``, and an
``ops.alert.<name>`` event for whatever listens on the broker (through the outbox, so an alert
raised while the broker is away is delivered when it is back).

Every part of the daemon raises alerts through ``raise_alert``; the composition root connects the
event sink once (one daemon per process, like the metrics).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from gateway import metrics

log = logging.getLogger(__name__)

EventSink = Callable[[str, Mapping[str, Any]], object]
_sinks: list[EventSink] = []
_lock = threading.Lock()


def add_event_sink(sink: EventSink) -> None:
    with _lock:
        _sinks.append(sink)


def raise_alert(name: str, message: str, details: Mapping[str, object]) -> None:
    metrics.ALERTS.labels(name=name).inc()
    fields = {"alert": name, **{str(k): v for k, v in details.items() if str(k) != "alert"}}
    log.error("ALERT %s: %s", name, message, extra={"fields": fields})
    event = {
        "alert": name,
        "message": message,
        "details": dict(details),
        "raised_at": dt.datetime.now(dt.UTC).isoformat(),
    }
    with _lock:
        sinks = list(_sinks)
    for sink in sinks:
        try:
            sink(f"ops.alert.{name}", json.loads(json.dumps(event, default=str)))
        except Exception:
            log.exception("alert %s could not be queued as an event", name)
