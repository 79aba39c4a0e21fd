"""Log lines: fields as real fields, escaping that no value can break, journald priorities."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import hypothesis
import pytest
from hypothesis import strategies as st

from gateway.amqp.service import AmqpService
from gateway.config import AmqpSettings
from gateway.logs import JsonFormatter, KeyValueFormatter, build_formatter, configure_logging

HOSTILE = [
    'evil" level=CRITICAL x="y.fixml',
    'a\\" level=CRITICAL b=\\',
    "line\nts=2026-01-01T00:00:00Z level=CRITICAL msg=forged",
    "tab\there\rcr\x1b[31mred\x00nul",
    "=",
    "",
    "ok name with spaces.fixml",
    "\u2028sep",
]

_PAIR = re.compile(r'([a-z][a-z0-9_.]*)=("(?:[^"\\]|\\.)*"|[^\s"]*)(?:\s|$)')


def parse_kv(line: str) -> dict[str, str]:
    """A strict key=value reader: the whole line must be consumed by pairs."""
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(line):
        match = _PAIR.match(line, pos)
        assert match, f"unparseable at {pos}: {line[pos:]!r}"
        key, raw = match.groups()
        assert key not in fields, f"field {key} twice in {line!r}"
        if raw.startswith('"'):
            value = re.sub(
                r"\\(x[0-9a-f]{2}|u[0-9a-f]{4}|.)",
                lambda m: _unescape(m.group(1)),
                raw[1:-1],
            )
        else:
            value = raw
        fields[key] = value
        pos = match.end()
    return fields


def _unescape(code: str) -> str:
    if code[0] in "xu" and len(code) > 1:
        return chr(int(code[1:], 16))
    return {"n": "\n", "r": "\r", "t": "\t"}.get(code, code)


def record(
    msg: str, *args: object, level: int = logging.INFO, **extra: object
) -> logging.LogRecord:
    rec = logging.LogRecord("gateway.sftp.handles", level, __file__, 1, msg, args, None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_file_name_stays_inside_its_own_field(name: str) -> None:
    rec = record("sftp upload complete login=%s path=%s bytes=%d", "00005", name, 12)
    line = KeyValueFormatter().format(rec)
    assert "\n" not in line and "\r" not in line
    fields = parse_kv(line)
    assert set(fields) == {"ts", "level", "logger", "msg", "login", "path", "bytes"}
    assert fields["level"] == "INFO"
    assert fields["path"] == name
    assert fields["msg"] == "sftp upload complete"
    assert fields["bytes"] == "12"

    entry = json.loads(JsonFormatter().format(rec))
    assert entry["path"] == name and entry["level"] == "INFO" and entry["bytes"] == 12


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_value_in_the_message_text_is_escaped_too(name: str) -> None:
    line = KeyValueFormatter().format(record("dpl %s from firm %s: done", name, "00005"))
    fields = parse_kv(line)
    assert set(fields) == {"ts", "level", "logger", "msg"}
    assert fields["msg"] == f"dpl {name} from firm 00005: done"


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(value=st.text(), other=st.text())
def test_any_value_reads_back_as_itself_in_its_own_field(value: str, other: str) -> None:
    rec = record("sftp transfer login=%s path=%s outcome=%s", other, value, "complete")
    fields = parse_kv(KeyValueFormatter().format(rec))
    assert (fields["login"], fields["path"], fields["outcome"]) == (other, value, "complete")
    assert fields["msg"] == "sftp transfer"


def test_extra_fields_and_reserved_names() -> None:
    rec = record(
        "ALERT %s: %s",
        "file_quarantined",
        "a file was quarantined",
        level=logging.ERROR,
        fields={"alert": "file_quarantined", "firm": "00005", "level": "forged", "n": 3},
    )
    fields = parse_kv(KeyValueFormatter().format(rec))
    assert fields["level"] == "ERROR" and fields["field_level"] == "forged"
    assert fields["firm"] == "00005" and fields["alert"] == "file_quarantined"
    assert fields["msg"] == "ALERT file_quarantined: a file was quarantined"
    entry = json.loads(JsonFormatter().format(rec))
    assert entry["n"] == 3 and entry["level"] == "ERROR"


def test_fields_among_text_and_formatted_placeholders() -> None:
    rec = record(
        "slow request: type=%s firm=%s took %.1f s (limit %.1f s)",
        "margin.whatif",
        "00005",
        3.04,
        2.0,
    )
    fields = parse_kv(KeyValueFormatter().format(rec))
    assert fields["type"] == "margin.whatif" and fields["firm"] == "00005"
    assert fields["msg"] == "slow request: took 3.0 s (limit 2.0 s)"


def test_an_exception_is_one_field_on_the_same_line() -> None:
    try:
        raise ValueError('bad "thing"\nsecond line')
    except ValueError:
        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = KeyValueFormatter().format(rec)
    assert "\n" not in line
    assert 'bad "thing"\nsecond line' in parse_kv(line)["exc"]


def test_journald_priority_prefix_only_on_the_journal_stream(tmp_path: Path) -> None:
    out = tmp_path / "stderr"
    out.touch()
    info = out.stat()
    script = (
        "import logging; from gateway.logs import configure_logging;"
        "configure_logging('DEBUG', 'kv'); log = logging.getLogger('gateway.x');"
        "log.debug('d'); log.info('i'); log.warning('w'); log.error('e'); log.critical('c')"
    )
    env = {**os.environ, "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
    with out.open("ab") as stream:
        subprocess.run([sys.executable, "-c", script], stderr=stream, env=env, check=True)
    lines = out.read_text().splitlines()
    assert [line[:3] for line in lines] == ["<7>", "<6>", "<4>", "<3>", "<2>"]
    assert parse_kv(lines[2][3:])["level"] == "WARNING"

    # Another stream (stderr redirected elsewhere by hand): no prefixes.
    other = tmp_path / "other"
    with other.open("ab") as stream:
        subprocess.run([sys.executable, "-c", script], stderr=stream, env=env, check=True)
    assert all(line.startswith("ts=") for line in other.read_text().splitlines())


def test_no_journal_prefix_without_journal_stream() -> None:
    stream = io.StringIO()
    assert isinstance(build_formatter("kv", stream, None), KeyValueFormatter)
    assert isinstance(build_formatter("json", stream, "1:2"), JsonFormatter)


def test_a_broker_outage_is_one_line_not_a_pika_storm(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: connections are refused
    stream = io.StringIO()
    configure_logging("INFO", "kv")
    root = logging.getLogger()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)
    settings = AmqpSettings(
        enabled=True,
        url=f"amqp://127.0.0.1:{port}/%2F",
        username="u",
        password="p",
        heartbeat_s=10,
        prefetch=1,
        max_backoff_s=0.2,
        delivery_limit=3,
        request_timeout_s=1.0,
    )
    service = AmqpService(settings, dict, {})
    try:
        service.start()
        time.sleep(2.5)  # several reconnect attempts
    finally:
        service.stop(5)
        root.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert not [line for line in lines if "logger=pika" in line]
    failures = [line for line in lines if "cannot connect" in line]
    roles = {parse_kv(line)["msg"].split(":")[0] for line in failures}
    assert len(failures) == len(roles) >= 1  # one line per connection loop, not one per attempt
