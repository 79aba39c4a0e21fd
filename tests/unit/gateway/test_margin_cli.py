"""``posgate margin`` and ``posgate theo generate`` through the real command line."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from pypdf import PdfReader

from engine.pmc.positions.read import parse_position_file
from gateway.cli import main
from gateway.theo_store import load_theo_set
from tests.benchmarks.bench_margin import reference_margin

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "config" / "samples" / "pmc"
THEO = SAMPLES / "theo" / "2026-11-20"
CSV_FILE = SAMPLES / "positions.csv"
ASCII_FILE = SAMPLES / "positions.txt"


def run(capsysbinary: pytest.CaptureFixture[bytes], *args: str) -> tuple[int, bytes, str]:
    code = main(list(args))
    out = capsysbinary.readouterr()
    return code, out.out, out.err.decode()


def test_json_is_the_stable_document(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    code, out, _ = run(
        capsysbinary,
        "margin",
        "--theo",
        str(THEO),
        "--positions",
        str(CSV_FILE),
        "--format",
        "json",
    )
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"theo_date", "counts", "accounts", "firms", "problems"}
    assert doc["theo_date"] == "2026-11-20"
    assert doc["counts"] == {
        "accepted": 15,
        "rejected": 1,
        "invalid_series": 1,
        "warnings": 1,
        "total": 17,
    }
    for acct in doc["accounts"]:
        assert set(acct) == {
            "firm",
            "account",
            "account_type",
            "nav",
            "risk",
            "minimum",
            "requirement",
            "groups",
        }
        assert acct["requirement"] >= 0 and acct["minimum"] >= 0 and acct["risk"] >= 0
        assert acct["requirement"] == pytest.approx(sum(g["requirement"] for g in acct["groups"]))
    assert [f["firm"] for f in doc["firms"]] == ["00005"]  # the file wrote 5
    assert doc["firms"][0]["requirement"] == pytest.approx(
        sum(a["requirement"] for a in doc["accounts"]), abs=0.02
    )
    assert [(p["line"], p["kind"]) for p in doc["problems"]] == [
        (13, "invalid_series"),
        (14, "rejected"),
        (15, "warning"),
    ]
    # the requirement is the one the independent per-position loop finds
    theo = load_theo_set(THEO)
    ref = reference_margin(parse_position_file(CSV_FILE.read_bytes()).positions, theo)
    for acct in doc["accounts"]:
        key = (acct["firm"], acct["account"], acct["account_type"])
        assert acct["requirement"] == pytest.approx(ref[key], abs=0.01)


def test_csv_has_positive_requirements_in_a_requirement_column(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    code, out, _ = run(
        capsysbinary,
        "margin",
        "--theo",
        str(THEO),
        "--positions",
        str(ASCII_FILE),
        "--format",
        "csv",
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out.decode())))
    assert "requirement" in rows[0]
    levels = {r["level"] for r in rows}
    assert {
        "account",
        "portfolio_group",
        "product_group",
        "class_group",
        "contract",
        "firm",
    } <= levels
    accounts = [r for r in rows if r["level"] == "account"]
    assert accounts and all(float(r["requirement"]) > 0 for r in accounts)
    firm = [r for r in rows if r["level"] == "firm"]
    assert float(firm[0]["requirement"]) == pytest.approx(
        sum(float(r["requirement"]) for r in accounts), abs=0.02
    )
    gains = [r for r in rows if r["row"] == "Gains"]
    assert gains and all(float(v) >= 0 for r in gains for v in list(r.values())[-10:])


def test_table_reads_at_80_columns(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    code, out, _ = run(capsysbinary, "margin", "--theo", str(THEO), "--positions", str(CSV_FILE))
    text = out.decode()
    assert code == 0
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "Account summary" in text and "CUST01" in text and "firm total" in text
    assert "-510,612" in text  # the firm's requirement, whole dollars, shown negative
    assert "INVALID_SERIES" in text and "…" not in text  # wrapped, never cut
    assert "Gains" not in text


def test_wide_table_has_every_point(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    code, out, _ = run(
        capsysbinary, "margin", "--theo", str(THEO), "--positions", str(CSV_FILE), "--wide"
    )
    text = out.decode()
    assert code == 0
    assert "Gains" in text and "Losses" in text and "Total" in text and "Reqt" in text
    assert all(label in text for label in ("-5", "-1", "+1", "+5"))


def test_margin_as_each_account_type_side_by_side(
    capsysbinary: pytest.CaptureFixture[bytes],
) -> None:
    base = ["margin", "--theo", str(THEO), "--positions", str(CSV_FILE), "--as", "C,F,M"]
    code, out, _ = run(capsysbinary, *base, "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out.decode())))
    assert [(r["level"], r["account"]) for r in rows] == [
        ("account", "BD1"),
        ("account", "CUST01"),
        ("firm", ""),
    ]
    # each column equals a run of the file with every record retyped
    parsed = parse_position_file(CSV_FILE.read_bytes())
    theo = load_theo_set(THEO)
    from engine.pmc.compare import margin_as

    reports = margin_as(parsed, theo, ["C", "F"])
    firm = rows[2]
    assert float(firm["requirement_C"]) == pytest.approx(reports["C"].result.requirement, abs=0.01)
    assert float(firm["requirement_F"]) == pytest.approx(reports["F"].result.requirement, abs=0.01)
    assert firm["requirement_M"] == ""  # the sample set has no M instruments
    code, out, _ = run(capsysbinary, *base)
    text = out.decode()
    assert code == 0 and max(len(line) for line in text.splitlines()) <= 80
    assert "CPM (C)" in text and "RBH-BD (F)" in text and "RBH-MM (M)" in text
    code, out, _ = run(capsysbinary, *base, "--format", "json")
    doc = json.loads(out)
    assert doc["account_types"] == ["C", "F", "M"]
    assert set(doc["reports"]["C"]) == {"theo_date", "counts", "accounts", "firms", "problems"}
    code, _, err = run(capsysbinary, *base[:-1], "C,Q")
    assert code == 2 and "'Q' is not C, F or M" in err


def test_theo_contracts(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    base = ["theo", "contracts", "--theo", str(THEO), "--account-type", "C"]
    code, out, _ = run(capsysbinary, *base, "--class-group", "SPX", "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["theo_date"] == "2026-11-20" and doc["count"] == len(doc["contracts"]) > 0
    assert {c["class_group"] for c in doc["contracts"]} == {"SPX"}
    code, out, _ = run(capsysbinary, *base, "--symbol", "SPX", "--put-call", "P", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out.decode())))
    assert rows and {r["put_call"] for r in rows} == {"P"} and "exchange" in rows[0]
    code, out, _ = run(capsysbinary, *base, "--class-group", "SPX")
    text = out.decode()
    assert code == 0 and max(len(line) for line in text.splitlines()) <= 80
    assert "6000.0000" in text and "Ser/Ctr" in text
    code, _, err = run(capsysbinary, *base, "--product-group", "9")
    assert code == 2 and "MISSING_FILTER" in err and "--class-group" in err


def test_positions_convert_round_trips(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    target = tmp_path / "positions.csv"
    code, _, _ = run(
        capsysbinary, "positions", "convert", str(ASCII_FILE), "--to", "csv", "--out", str(target)
    )
    assert code == 0
    first = parse_position_file(ASCII_FILE.read_bytes())
    again = parse_position_file(target.read_bytes())
    assert again.format == "csv" and len(again.positions) == len(first.positions)
    for name in ("firm", "account", "symbol", "put_call", "series_date", "strike", "quantity"):
        assert getattr(again.positions, name).tolist() == getattr(first.positions, name).tolist()
    code, out, _ = run(capsysbinary, "positions", "convert", str(target), "--to", "ascii")
    assert code == 0 and out.splitlines()[0] == b"346H000520261120"


def test_positions_convert_refuses_to_lose_rejected_records(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code, out, err = run(capsysbinary, "positions", "convert", str(CSV_FILE), "--to", "ascii")
    assert code == 65 and out == b""
    assert "line 14: rejected BAD_VALUE" in err and "nothing written" in err
    code, out, _ = run(
        capsysbinary, "positions", "convert", str(CSV_FILE), "--to", "ascii", "--drop-rejected"
    )
    assert code == 0 and out.count(b"\n") == 16 + 2  # header, 16 readable records, trailer


def test_pdf_opens_and_shows_the_requirement(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    out_pdf = tmp_path / "margin.pdf"
    code, _, _ = run(
        capsysbinary,
        "margin",
        "--theo",
        str(THEO),
        "--positions",
        str(CSV_FILE),
        "--format",
        "pdf",
        "--out",
        str(out_pdf),
    )
    assert code == 0
    text = "".join(page.extract_text() for page in PdfReader(out_pdf).pages)
    assert "Portfolio margin results" in text
    code, out, _ = run(
        capsysbinary,
        "margin",
        "--theo",
        str(THEO),
        "--positions",
        str(CSV_FILE),
        "--format",
        "json",
    )
    firm_req = json.loads(out)["firms"][0]["requirement"]
    assert f"-{firm_req:,.0f}" in text
    assert "Requirement" in text


def test_out_writes_a_file(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    target = tmp_path / "table.txt"
    code, out, _ = run(
        capsysbinary,
        "margin",
        "--theo",
        str(THEO),
        "--positions",
        str(CSV_FILE),
        "--out",
        str(target),
    )
    assert code == 0 and out == b""
    assert "Account summary" in target.read_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x01\x02\x03", "binary"),
        (b"", "empty"),
        (b"not a position file\n", "no 346 record"),
    ],
)
def test_unreadable_positions_exit_65(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], content: bytes, message: str
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    code, out, err = run(capsysbinary, "margin", "--theo", str(THEO), "--positions", str(bad))
    assert code == 65 and out == b""
    assert message in err and "bad.csv" in err


def test_missing_positions_file_exits_66(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code, _, err = run(
        capsysbinary, "margin", "--theo", str(THEO), "--positions", str(tmp_path / "nope.csv")
    )
    assert code == 66 and "cannot be read" in err


def test_bad_theo_set_exits_65_with_location(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    broken = tmp_path / "2026-11-20"
    shutil.copytree(THEO, broken)
    text = (broken / "pnl.csv").read_text().splitlines()
    cells = text[3].split(",")
    cells[11] = "strike!"
    text[3] = ",".join(cells)
    (broken / "pnl.csv").write_text("\n".join(text) + "\n")
    code, _, err = run(capsysbinary, "margin", "--theo", str(broken), "--positions", str(CSV_FILE))
    assert code == 65
    assert "pnl.csv line 4 column strike: strike='strike!'" in err
    (broken / "meta.csv").unlink()
    code, _, err = run(capsysbinary, "margin", "--theo", str(broken), "--positions", str(CSV_FILE))
    assert code == 65 and "meta.csv is missing" in err


def test_theo_generate_writes_a_loadable_set(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    out_dir = tmp_path / "theo" / "2026-11-20"
    args = ["theo", "generate", "--market", str(SAMPLES / "market.csv"), "--date", "2026-11-20"]
    code, _, err = run(capsysbinary, *args, "--out", str(out_dir))
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "class_groups.csv",
        "meta.csv",
        "pnl.csv",
        "portfolio_groups.csv",
        "product_groups.csv",
    ]
    generated = load_theo_set(out_dir)
    shipped = load_theo_set(THEO)
    assert generated.size == shipped.size
    assert abs(generated.pnl - shipped.pnl).max() < 1e-6  # the shipped sample is reproducible
    code, _, err = run(capsysbinary, *args, "--out", str(out_dir))
    assert code == 1 and "--force" in err
    code, _, _ = run(capsysbinary, *args, "--out", str(out_dir), "--force")
    assert code == 0


def test_theo_generate_bad_inputs(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    market = tmp_path / "market.csv"
    market.write_text(
        (SAMPLES / "market.csv")
        .read_text()
        .replace("SPX,,,,,,,,,,6000,0.16", "SPX,,,,,,,,,,lots,0.16")
    )
    base = ["theo", "generate", "--out", str(tmp_path / "out")]
    code, _, err = run(capsysbinary, *base, "--market", str(market), "--date", "2026-11-20")
    assert code == 65 and "market.csv line" in err and "price='lots'" in err
    assert not (tmp_path / "out").exists()
    code, _, err = run(capsysbinary, *base, "--market", str(market), "--date", "2026-13-40")
    assert code == 2 and "YYYY-MM-DD" in err
    code, _, err = run(
        capsysbinary, *base, "--market", str(tmp_path / "no.csv"), "--date", "2026-11-20"
    )
    assert code == 66  # sysexits EX_NOINPUT


def test_progress_is_plain_log_lines_off_a_terminal(caplog: pytest.LogCaptureFixture) -> None:
    from gateway.progress import progress_bar as _progress

    caplog.set_level("INFO", logger="gateway.progress")
    with _progress("reading positions", True) as update:
        assert update is not None
        for done in range(0, 101, 5):
            update(done, 100)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [f"reading positions progress={d}/100" for d in (0, 25, 50, 75, 100)]
    with _progress("small file", False) as none:
        assert none is None


def test_progress_bars_on_a_terminal_for_every_long_step(tmp_path: Path) -> None:
    """A real pseudo-terminal as stderr: reading, computing and writing each show a bar; the
    same run with stderr on a file shows none (and stdout carries only the output)."""
    import os
    import pty
    import subprocess
    import sys

    from engine.pmc.positions.write import render_position_file
    from engine.pmc.theo.read import parse_theo_set
    from tests.benchmarks.bench_margin import synthetic_positions, synthetic_set_files

    files = synthetic_set_files(200, per_group=10)
    (tmp_path / "theo").mkdir()
    for name, payload in files.items():
        (tmp_path / "theo" / name).write_bytes(payload)
    theo = parse_theo_set(files)
    batch = synthetic_positions(theo, 40_000, n_accounts=80)
    positions = tmp_path / "positions.csv"
    positions.write_bytes(render_position_file(batch, fmt="csv", firm="5", date="2026-11-20"))
    assert positions.stat().st_size >= 2_000_000
    cmd = [sys.executable, "-m", "gateway.cli", "margin", "--theo", str(tmp_path / "theo")]
    cmd += ["--positions", str(positions), "--format", "csv", "--out", str(tmp_path / "r.csv")]
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=follower, stdout=subprocess.DEVNULL, env=env)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(timeout=120) == 0
    os.close(leader)
    for label in (b"reading positions", b"computing margin", b"writing csv"):
        assert label in seen, (label, seen[-400:])
    quiet = subprocess.run(cmd, cwd=ROOT, capture_output=True, env=env, timeout=120)
    assert quiet.returncode == 0 and b"\x1b[" not in quiet.stderr
    assert (tmp_path / "r.csv").stat().st_size > 1_000_000
