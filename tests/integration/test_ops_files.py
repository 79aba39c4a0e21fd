"""The operations files against the real tools: systemd units, installer, Prometheus rules, Grafana.

* ``systemd-analyze verify`` must accept every unit without a single warning, and
  ``systemd-analyze security --offline`` must rate the long-running units at most "OK".
* ``promtool`` checks and unit-tests the alerting rules and the example scrape config.
* Every metric name in an alert expression or a dashboard query must be one the daemon exposes:
  the names come from the prometheus_client default registry after importing every gateway module
  that defines metrics, never from a list kept here.
* ``scripts/install`` is run for real into a temporary prefix; ``scripts/prune-spool`` over a
  temporary spool.

Without ``systemd-analyze`` or ``promtool`` (Debian package ``prometheus``) the tests that need
them skip, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "systemd"
PROMETHEUS = REPO / "config" / "prometheus"
DASHBOARD = REPO / "config" / "grafana" / "posgate.json"
INSTALL = REPO / "scripts" / "install"
PRUNE = REPO / "scripts" / "prune-spool"

UNITS = (
    "posgate.service",
    "posgate-worker@.service",
    "posgate-prune.service",
    "posgate-prune.timer",
)
ALERT_TEST_FILES = ("alerts.test.yml", "alerts.daily.test.yml")

# Installed locations the units and the installer must agree on.
VENV_POSGATE = "/opt/posgate/venv/bin/posgate"
PRUNE_SCRIPT = "/opt/posgate/bin/posgate-prune-spool"
CONFIG = "/etc/posgate/posgate.toml"
CREDENTIAL = "/etc/posgate/credentials/amqp_password"
SPOOL = "/var/lib/posgate/spool"


def _require(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if path:
        return path
    reason = f"{tool} is not installed ({hint})"
    if os.environ.get("CI") == "true":
        pytest.fail(reason + " -- required when CI=true")
    pytest.skip(reason)


def _yaml() -> Any:
    try:
        import yaml
    except ImportError:
        reason = "PyYAML is not installed (scripts/test installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " -- required when CI=true")
        pytest.skip(reason)
    return yaml


def _run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, **kwargs)


# ---------------------------------------------------------------------------------------------
# unit files


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A unit file as section -> key -> values (keys may repeat); comments dropped."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}: {line!r} outside a section"
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = unit[section][key]
    assert len(values) == 1, f"{key} given {len(values)} times"
    return values[0]


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min|m)?", value)
    assert match, f"not a simple time span: {value!r}"
    return int(match.group(1)) * (60 if match.group(2) in ("min", "m") else 1)


def copy_units_for_verify(folder: Path) -> list[Path]:
    """The units with their installed executables replaced by ones that exist on this machine.

    Everything else (User=, paths, sandboxing) stays as shipped.
    """
    posgate = Path(sys.executable).with_name("posgate")
    assert posgate.is_file(), f"the test venv has no posgate script at {posgate}"
    out = []
    for name in UNITS:
        text = (SYSTEMD / name).read_text()
        text = text.replace(VENV_POSGATE, str(posgate)).replace(PRUNE_SCRIPT, str(PRUNE))
        target = folder / name
        target.write_text(text)
        out.append(target)
    return out


def test_units_pass_systemd_analyze_verify_without_warnings(tmp_path: Path) -> None:
    tool = _require("systemd-analyze", "apt install systemd")
    units = copy_units_for_verify(tmp_path)
    result = _run([tool, "verify", "--man=no", *map(str, units)], cwd=tmp_path)
    # No filtering: any line on stderr is a finding about these units (or one they pull in).
    assert result.returncode == 0 and result.stderr == "", result.stderr + result.stdout


def test_verify_is_strict_enough_to_catch_a_mistake(tmp_path: Path) -> None:
    """Guards the test above: the same call reports an unknown key and a missing binary."""
    tool = _require("systemd-analyze", "apt install systemd")
    broken = tmp_path / "broken.service"
    text = (SYSTEMD / "posgate.service").read_text().replace("UMask=0027", "UMask=0027\nUMsk=1")
    broken.write_text(text)
    result = _run([tool, "verify", "--man=no", str(broken)], cwd=tmp_path)
    assert "Unknown key 'UMsk'" in result.stderr
    assert "/opt/posgate/venv/bin/posgate" in result.stderr and result.returncode != 0


def test_long_running_units_are_sandboxed(tmp_path: Path) -> None:
    tool = _require("systemd-analyze", "apt install systemd")
    units = copy_units_for_verify(tmp_path)
    for unit in units:
        if unit.suffix != ".service":
            continue
        # Exposure 0.0 (safe) .. 10.0 (unsafe); --threshold is in tenths: fail above 2.0.
        result = _run(
            [tool, "security", "--offline=yes", "--threshold=20", str(unit)], cwd=tmp_path
        )
        assert result.returncode == 0, f"{unit.name}:\n{result.stdout}{result.stderr}"


def test_daemon_unit_matches_the_daemon() -> None:
    from gateway.config.settings import SCHEMA
    from gateway.daemon import EXIT_CONFIG

    unit = parse_unit(SYSTEMD / "posgate.service")
    service = unit["Service"]
    assert one(unit, "Service", "Type") == "notify"
    assert one(unit, "Service", "NotifyAccess") == "main"
    assert one(unit, "Service", "ExecStart") == f"{VENV_POSGATE} --config {CONFIG} serve"
    assert one(unit, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(unit, "Service", "Restart") == "on-failure"
    assert one(unit, "Service", "RestartPreventExitStatus") == str(EXIT_CONFIG)
    assert one(unit, "Service", "KillSignal") == "SIGTERM"
    # systemd must wait longer than the daemon's own graceful-stop deadline.
    grace = SCHEMA["daemon"]["shutdown_grace_s"][1]
    assert seconds(one(unit, "Service", "TimeoutStopSec")) > grace
    shipped = tomllib.loads((REPO / "config" / "posgate.toml").read_text())
    assert seconds(one(unit, "Service", "TimeoutStopSec")) > shipped["daemon"]["shutdown_grace_s"]
    # the daemon pings every WatchdogSec/2 from a loop that ticks every second
    assert seconds(one(unit, "Service", "WatchdogSec")) >= 10
    assert service["User"] == ["posgate"] and service["Group"] == ["posgate"]
    assert service["ReadWritePaths"] == ["/var/lib/posgate"]
    assert one(unit, "Service", "LoadCredential") == f"amqp_password:{CREDENTIAL}"
    for key, value in {
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectControlGroups": "yes",
        "LockPersonality": "yes",
        "UMask": "0027",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    }.items():
        assert one(unit, "Service", key) == value, key
    assert "MemoryDenyWriteExecute" not in service  # libffi closures need W+X pages


def test_worker_unit_has_no_spool_access() -> None:
    unit = parse_unit(SYSTEMD / "posgate-worker@.service")
    service = unit["Service"]
    assert one(unit, "Service", "ExecStart").startswith(f"{VENV_POSGATE} --config {CONFIG} worker")
    assert "%i" in " ".join(service["Environment"] + service["EnvironmentFile"])
    assert "ReadWritePaths" not in service and one(unit, "Service", "ProtectSystem") == "strict"
    assert one(unit, "Service", "RestartPreventExitStatus") == "78"
    daemon = parse_unit(SYSTEMD / "posgate.service")["Service"]
    hardening = {
        k: v
        for k, v in daemon.items()
        if k.startswith(("Protect", "Restrict", "Private", "SystemCall"))
        or k in ("NoNewPrivileges", "LockPersonality", "CapabilityBoundingSet", "UMask")
    }
    for key, values in hardening.items():
        assert service.get(key) == values, f"worker differs from the daemon in {key}"


# ---------------------------------------------------------------------------------------------
# sysusers / tmpfiles snippets


def test_sysusers_and_tmpfiles_snippets_create_the_layout(tmp_path: Path) -> None:
    sysusers = _require("systemd-sysusers", "apt install systemd")
    tmpfiles = _require("systemd-tmpfiles", "apt install systemd")
    if os.geteuid() != 0:
        pytest.skip("systemd-tmpfiles --root sets owners: needs root")
    root = tmp_path / "root"
    (root / "etc" / "sysusers.d").mkdir(parents=True)
    (root / "etc" / "tmpfiles.d").mkdir(parents=True)
    shutil.copy(SYSTEMD / "posgate.sysusers", root / "etc" / "sysusers.d" / "posgate.conf")
    shutil.copy(SYSTEMD / "posgate.tmpfiles", root / "etc" / "tmpfiles.d" / "posgate.conf")
    result = _run([sysusers, f"--root={root}", "posgate.conf"])
    assert result.returncode == 0, result.stderr
    passwd = {
        line.split(":")[0]: line.split(":")
        for line in (root / "etc" / "passwd").read_text().splitlines()
    }
    assert passwd["posgate"][5] == "/var/lib/posgate"
    uid = int(passwd["posgate"][2])
    result = _run([tmpfiles, f"--root={root}", "--create", "posgate.conf"])
    assert result.returncode == 0, result.stderr
    spool = root / SPOOL.lstrip("/")
    assert spool.stat().st_uid == uid and stat.S_IMODE(spool.stat().st_mode) == 0o750
    creds = root / "etc" / "posgate" / "credentials"
    assert creds.stat().st_uid == 0 and stat.S_IMODE(creds.stat().st_mode) == 0o700


# ---------------------------------------------------------------------------------------------
# metric names


def exposed_metric_names() -> set[str]:
    """Every series name the daemon can expose, from the default registry.

    Labelled metrics without children have no samples yet, so names follow from the type.
    """
    from prometheus_client import REGISTRY

    import gateway

    package = Path(gateway.__file__).parent
    for source in sorted(package.rglob("*.py")):
        if "prometheus_client" in source.read_text(encoding="utf-8"):
            module = ".".join(source.relative_to(package.parent).with_suffix("").parts)
            importlib.import_module(module.removesuffix(".__init__"))
    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
        "stateset": ("",),
        "unknown": ("",),
    }
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in suffixes[family.type])
        names.update(sample.name for sample in family.samples)
    return names


# Series Prometheus itself adds to every target; no exporter defines them.
PROMETHEUS_SERIES = {"up", "ALERTS"}
"""Series Prometheus makes itself: target health and the alerts it evaluates."""

PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (good enough for the expressions we write)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w:.$])[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        if word.lower() in PROMQL_WORDS or re.match(r"\s*\(", text[match.end() :]):
            continue  # a keyword, or a function / aggregation
        names.add(word)
    return names


def test_promql_metric_name_extraction() -> None:
    expr = (
        'sum by (job, flow) (rate(a_total{x="y", z=~"$v"}[$__rate_interval])) / on() '
        "group_left() b:rec offset 10m > bool 0.5 unless histogram_quantile(0.9, c_bucket) "
        'and hour() < 11 or absent(d{e="f"})'
    )
    assert promql_metric_names(expr) == {"a_total", "b:rec", "c_bucket", "d"}


def alert_rules() -> list[dict[str, Any]]:
    yaml = _yaml()
    data = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_every_alert_expression_names_exposed_metrics() -> None:
    rules = alert_rules()
    exposed = exposed_metric_names()
    recorded = {rule["record"] for rule in rules if "record" in rule}
    unknown = {}
    for rule in rules:
        names = promql_metric_names(rule["expr"])
        if "alert" in rule:
            assert names, f"{rule['alert']}: no metric in {rule['expr']!r}"
        missing = names - exposed - PROMETHEUS_SERIES - recorded
        if missing:
            unknown[rule.get("alert") or rule["record"]] = sorted(missing)
    assert not unknown, f"not exposed by the daemon: {unknown}"


def test_required_alerts_exist_with_severity_and_summary() -> None:
    rules = {rule["alert"]: rule for rule in alert_rules() if "alert" in rule}
    required = {
        "PosgateDown",
        "PosgateUnhealthy",
        "PosgatePublicationLate",
        "PosgateQuarantineSpike",
        "PosgateRejectRateHigh",
        "PosgateAmqpDown",
        "PosgateBacklogGrowing",
        "PosgateOutboxStuck",
        "PosgateMissingSubmitters",
        "PosgateDeliveryFailed",
        "PosgateDiskSpaceLow",
        "PosgateAmqpErrors",
        "PosgateAmqpUnauthorized",
        "PosgateDeadLetters",
        "PosgateTheoSetStale",
        "PosgateEbePositionsNotLoaded",
        "PosgateSftpLoginFailures",
        "PosgateConfigReloadRejected",
    }
    assert required <= set(rules)
    for name, rule in rules.items():
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name


def test_every_alert_has_a_runbook_entry_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    start = readme.index("\n### Runbook\n")
    end = readme.find("\n## ", start)
    runbook = readme[start : end if end != -1 else None]
    anchors = {
        re.sub(r"[^a-z0-9 _-]", "", line[5:].strip().lower()).replace(" ", "-")
        for line in runbook.splitlines()
        if line.startswith("#### ")
    }
    for rule in alert_rules():
        if "alert" not in rule:
            continue
        url = rule["annotations"].get("runbook_url", "")
        assert url == f"README.md#{rule['alert'].lower()}", rule["alert"]
        assert url.split("#", 1)[1] in anchors, f"no runbook entry for {rule['alert']}"


def test_the_dashboard_speaks_chicago_time_and_shows_alerts_and_disk() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["timezone"] == "America/Chicago"
    exprs = {
        panel["title"]: " ".join(t["expr"] for t in panel.get("targets", []))
        for panel in dashboard_panels(dashboard)
    }
    assert any('ALERTS{alertstate="firing"' in e for e in exprs.values()), exprs
    assert any("posgate_spool_free_bytes" in e for e in exprs.values()), exprs


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    yaml = _yaml()
    fired: set[str] = set()
    quiet: set[str] = set()
    expr_tests: list[str] = []
    for name in ALERT_TEST_FILES:
        data = yaml.safe_load((PROMETHEUS / name).read_text())
        assert "alerts.yml" in data["rule_files"]
        for group in data["tests"]:
            for case in group.get("alert_rule_test", []):
                (fired if case.get("exp_alerts") else quiet).add(case["alertname"])
            expr_tests += [case["expr"] for case in group.get("promql_expr_test", [])]
    rules = alert_rules()
    alerts = {rule["alert"] for rule in rules if "alert" in rule}
    assert alerts - fired == set(), "never seen firing"
    assert alerts - quiet == set(), "never seen quiet"
    assert fired | quiet <= alerts, "tests of alerts that do not exist"
    for record in (rule["record"] for rule in rules if "record" in rule):
        assert any(record in expr for expr in expr_tests), f"recording rule {record} untested"


def test_promtool_checks_and_unit_tests_the_rules() -> None:
    promtool = _require("promtool", "apt install prometheus")
    result = _run([promtool, "check", "rules", "alerts.yml"], cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    result = _run([promtool, "test", "rules", *ALERT_TEST_FILES], cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(ALERT_TEST_FILES), result.stdout


def test_promtool_unit_tests_catch_a_broken_rule(tmp_path: Path) -> None:
    """Guards the test above: a rule with a wrong threshold fails its unit tests."""
    promtool = _require("promtool", "apt install prometheus")
    for name in ("alerts.yml", *ALERT_TEST_FILES):
        shutil.copy(PROMETHEUS / name, tmp_path / name)
    rules = (tmp_path / "alerts.yml").read_text()
    assert "expr: posgate_amqp_up == 0" in rules
    (tmp_path / "alerts.yml").write_text(
        rules.replace("expr: posgate_amqp_up == 0", "expr: posgate_amqp_up == 1")
    )
    result = _run([promtool, "test", "rules", "alerts.test.yml"], cwd=tmp_path)
    assert result.returncode != 0 and "PosgateAmqpDown" in result.stdout + result.stderr


def test_promtool_accepts_the_example_scrape_config() -> None:
    promtool = _require("promtool", "apt install prometheus")
    result = _run([promtool, "check", "config", "prometheus.yml"], cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    yaml = _yaml()
    jobs = {
        job["job_name"]
        for job in yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]
    }
    assert {"posgate", "posgate-worker"} <= jobs  # the job names the rules select on
    shipped = tomllib.loads((REPO / "config" / "posgate.toml").read_text())["metrics"]
    text = (PROMETHEUS / "prometheus.yml").read_text()
    assert f'"{shipped["host"]}:{shipped["port"]}"' in text


# ---------------------------------------------------------------------------------------------
# Grafana


def dashboard_panels(dashboard: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def test_dashboard_is_a_grafana_dashboard() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    datasource = [v for v in variables.values() if v["type"] == "datasource"]
    assert len(datasource) == 1 and datasource[0]["query"] == "prometheus"
    uid = "${" + datasource[0]["name"] + "}"
    ids = set()
    cells: dict[tuple[int, int], int] = {}
    for panel in dashboard_panels(dashboard):
        assert panel["id"] not in ids, f"duplicate panel id {panel['id']}"
        ids.add(panel["id"])
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["w"] > 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps panel {cells[(x, y)]}"
                cells[(x, y)] = panel["id"]
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["targets"], panel
        assert panel["datasource"]["uid"] == uid, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, panel["title"]


def test_every_dashboard_query_names_exposed_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exposed = exposed_metric_names()
    used: set[str] = set()
    unknown = {}
    for panel in dashboard_panels(dashboard):
        for target in panel.get("targets", []):
            names = promql_metric_names(target["expr"])
            assert names, f"{panel['title']}: no metric in {target['expr']!r}"
            used |= names
            if names - exposed - PROMETHEUS_SERIES:
                unknown[f"{panel['title']} {target['refId']}"] = sorted(
                    names - exposed - PROMETHEUS_SERIES
                )
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(
                r"label_values\((\w+)(?:\{[^}]*\})?,\s*\w+\)", variable["query"]["query"]
            )
            assert match, variable["query"]
            if match.group(1) not in exposed:
                unknown[f"variable {variable['name']}"] = [match.group(1)]
    assert not unknown, f"not exposed by the daemon: {unknown}"
    # Intake, DPL, AMQP, scheduler, process and build info are all on the dashboard.
    topics = {
        "posgate_files_received_total",
        "posgate_processing_seconds_bucket",
        "posgate_spool_backlog_files",
        "posgate_files_quarantined_total",
        "posgate_records_valid_total",
        "posgate_records_rejected_total",
        "posgate_dpl_rejected_records_total",
        "posgate_dpl_last_publication_timestamp_seconds",
        "posgate_dpl_published_records_total",
        "posgate_dpl_missing_submitters",
        "posgate_amqp_up",
        "posgate_amqp_requests_total",
        "posgate_amqp_request_seconds_bucket",
        "posgate_outbox_depth",
        "posgate_scheduler_runs_total",
        "posgate_scheduler_misses_total",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "posgate_build_info",
    }
    assert topics - used == set()


# ---------------------------------------------------------------------------------------------
# scripts/install


def install(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "POSGATE_AMQP_PASSWORD"}
    environ.update(env or {})
    return _run([str(INSTALL), *args], env=environ)


def tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*")}


def test_install_lays_out_a_staged_tree(tmp_path: Path) -> None:
    root = tmp_path / "root"
    result = install(
        "--prefix",
        str(root),
        "--no-systemctl",
        "--skip-venv",
        env={"POSGATE_AMQP_PASSWORD": "s3cret-from-env"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "s3cret-from-env" not in result.stdout + result.stderr

    def at(path: str) -> Path:
        return root / path.lstrip("/")

    for unit in UNITS:
        assert at(f"/etc/systemd/system/{unit}").read_text() == (SYSTEMD / unit).read_text()
    assert (
        at("/etc/tmpfiles.d/posgate.conf").read_text() == (SYSTEMD / "posgate.tmpfiles").read_text()
    )
    assert (
        at("/etc/sysusers.d/posgate.conf").read_text() == (SYSTEMD / "posgate.sysusers").read_text()
    )
    assert os.access(at(PRUNE_SCRIPT), os.X_OK)
    assert at("/opt/posgate/doc/README.md").is_file()
    assert not at("/opt/posgate/venv").exists()  # --skip-venv
    assert at(SPOOL).is_dir() and stat.S_IMODE(at(SPOOL).stat().st_mode) == 0o750

    # config: the shipped one with only the spool moved; reference data; no demo accounts
    config = tomllib.loads(at(CONFIG).read_text())
    shipped = tomllib.loads((REPO / "config" / "posgate.toml").read_text())
    assert config["spool"] == {"root": SPOOL}
    assert {k: v for k, v in config.items() if k != "spool"} == {
        k: v for k, v in shipped.items() if k != "spool"
    }
    assert stat.S_IMODE(at(CONFIG).stat().st_mode) == 0o640
    for csv in (REPO / "config" / "reference").glob("*.csv"):
        assert at(f"/etc/posgate/reference/{csv.name}").read_bytes() == csv.read_bytes()
    assert list(at("/etc/posgate/accounts").iterdir()) == []

    credential = at(CREDENTIAL)
    assert credential.read_text().strip() == "s3cret-from-env"
    assert stat.S_IMODE(credential.stat().st_mode) == 0o600
    assert stat.S_IMODE(credential.parent.stat().st_mode) == 0o700

    # the installed config loads (as `posgate check-config` would at service start)
    result = _run(
        [sys.executable, "-m", "gateway.cli", "--config", str(at(CONFIG)), "check-config"],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"spool: {SPOOL}" in result.stdout

    # every path the units name is laid out by the installer
    for unit in UNITS:
        text = (SYSTEMD / unit).read_text()
        for path in (VENV_POSGATE, PRUNE_SCRIPT, CONFIG, CREDENTIAL):
            if path in text and path != VENV_POSGATE:
                assert at(path).exists(), f"{unit} names {path}, not installed"
        for match in re.finditer(r"^ReadWritePaths=(.*)$", text, re.M):
            for path in match.group(1).split():
                assert at(path.lstrip("-")).is_dir(), f"{unit}: {path} not created"


def test_install_is_idempotent_and_keeps_admin_edits(tmp_path: Path) -> None:
    root = tmp_path / "root"
    args = ("--prefix", str(root), "--no-systemctl", "--skip-venv")
    assert install(*args).returncode == 0
    first = tree(root)
    config = root / CONFIG.lstrip("/")
    config.write_text(config.read_text() + "\n# edited by the admin\n")
    credential = root / CREDENTIAL.lstrip("/")
    credential.write_text("the-real-password\n")
    reference = root / "etc/posgate/reference/exchanges.csv"
    reference.write_text(reference.read_text() + "XTST,Test exchange,N,spool\n")
    unit = root / "etc/systemd/system/posgate.service"
    unit.write_text("stale\n")

    result = install(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert tree(root) == first
    assert config.read_text().endswith("# edited by the admin\n")
    assert credential.read_text() == "the-real-password\n"
    assert "XTST" in reference.read_text()
    assert unit.read_text() == (SYSTEMD / "posgate.service").read_text()  # ours: replaced
    assert "keeping" in result.stdout


@pytest.mark.slow
def test_a_staged_install_is_relocatable(tmp_path: Path) -> None:
    """--prefix stages wheels instead of a virtualenv (whose scripts would name the staging
    path); the tree is moved, and setup-venv builds the virtualenv where it now is, offline."""
    staged = tmp_path / "staged"
    result = install("--prefix", str(staged), "--no-systemctl")
    assert result.returncode == 0, result.stdout + result.stderr
    opt = staged / "opt" / "posgate"
    assert not (opt / "venv").exists()
    assert list((opt / "wheels").glob("posgate-*.whl"))
    assert (opt / "requirements.lock").read_bytes() == (REPO / "requirements.lock").read_bytes()
    named = [
        str(p)
        for p in staged.rglob("*")
        if p.is_file() and p.suffix != ".whl" and str(staged).encode() in p.read_bytes()
    ]
    assert named == [], "files that name the staging folder"

    moved = tmp_path / "moved"
    staged.rename(moved)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["DPKG_ROOT"] = str(moved)
    built = subprocess.run(
        [str(moved / "opt/posgate/lib/setup-venv")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    posgate = moved / VENV_POSGATE.lstrip("/")
    check = _run([str(posgate), "--config", str(moved / CONFIG.lstrip("/")), "check-config"])
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"spool: {SPOOL}" in check.stdout


def test_install_dry_run_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    result = install("--prefix", str(root), "--dry-run", "--skip-venv")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not root.exists()
    assert f"+ install -m 0644 {SYSTEMD / 'posgate.service'} " in result.stdout
    assert f"{root}{CREDENTIAL}" in result.stdout


def test_install_rejects_unknown_arguments(tmp_path: Path) -> None:
    result = install("--prefix", str(tmp_path / "r"), "--bogus")
    assert result.returncode == 2 and "unknown argument --bogus" in result.stderr
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------------------------------------
# scripts/prune-spool


def make_spool(root: Path) -> None:
    for day in ("2026-01-02", "2026-03-01", "2026-03-09", "2026-03-10", "not-a-date"):
        folder = root / "archive" / day / "00005" / "dpl"
        folder.mkdir(parents=True)
        (folder / "1__file.fixml").write_text("x")
    quarantine = root / "quarantine"
    quarantine.mkdir()
    old, new = quarantine / "7__old.fixml", quarantine / "9__new.fixml"
    for path in (old, old.with_name(old.name + ".reason.json"), new):
        path.write_text("x")
    stale = os.stat(old).st_mtime - 40 * 86400
    os.utime(old, (stale, stale))
    os.utime(old.with_name(old.name + ".reason.json"), (stale, stale))
    (root / "state").mkdir()
    (root / "state" / "ledger.sqlite3").write_text("x")


def test_prune_removes_only_what_is_past_retention(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    make_spool(spool)
    before = tree(spool)
    dry = _run(
        [
            str(PRUNE),
            "--spool",
            str(spool),
            "--archive-days",
            "1",
            "--quarantine-days",
            "30",
            "--today",
            "2026-03-10",
            "--dry-run",
        ]
    )
    assert dry.returncode == 0, dry.stderr
    assert tree(spool) == before and "4 item(s) to remove" in dry.stdout

    result = _run(
        [str(PRUNE), "--spool", str(spool), "--today", "2026-03-10"],
        env={**os.environ, "POSGATE_ARCHIVE_KEEP_DAYS": "1", "POSGATE_QUARANTINE_KEEP_DAYS": "30"},
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (spool / "archive").iterdir()) == [
        "2026-03-09",
        "2026-03-10",
        "not-a-date",
    ]
    assert sorted(p.name for p in (spool / "quarantine").iterdir()) == ["9__new.fixml"]
    assert (spool / "state" / "ledger.sqlite3").is_file()


def test_prune_keeps_everything_without_a_retention(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    make_spool(spool)
    before = tree(spool)
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSGATE_")}
    result = _run([str(PRUNE), "--spool", str(spool)], env=env)
    assert result.returncode == 0 and tree(spool) == before
    bad = _run([str(PRUNE), "--spool", str(spool), "--archive-days", "0"], env=env)
    assert bad.returncode == 2 and tree(spool) == before
