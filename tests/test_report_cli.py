"""``audience report domains`` as a user runs it: a real process over a store
on disk with six months of email events (libero.it filtering from halfway)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from audience.runtime.report import ReportParams, build_report
from audience.runtime.store import Store
from tests.report_support import AS_OF, mail_store, ms


def run(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "audience", "report", "domains", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONIOENCODING": "utf-8", "COLUMNS": "160"},
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(mail_store(tmp_path_factory.mktemp("report") / "mail"))


def test_the_json_is_the_report(store: Path) -> None:
    proc = run(str(store), "--as-of", AS_OF, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    want = build_report(Store.open(store).snapshot(), ReportParams(as_of_ms=ms(AS_OF)))
    assert doc == json.loads(json.dumps(want.to_json()))
    assert doc["domains"][0] == "gmail.com" and len(doc["domains"]) == 10
    assert len(doc["rows"]) == 10 * len(doc["periods"])
    assert doc["periods"][-1]["provisional"] and not doc["periods"][0]["provisional"]
    alarms = {
        (a["domain"], a["metric"])
        for a in doc["anomalies"]
        if a["level"] == "alarm" and a["kind"] == "departure"
    }
    # the blocks are libero.it's alone, and come when its filtering starts
    assert {d for d, m in alarms if m == "block_rate"} == {"libero.it"}
    start = doc["periods"][13]["start"]  # the week its filtering starts (History)
    first = min(a["period"] for a in doc["anomalies"] if a["domain"] == "libero.it")
    assert first == start
    for row in doc["rows"]:
        for m in ("block_rate", "open_rate", "click_rate", "complaint_rate"):
            assert row[m] is None or 0 <= row[m] <= 1


def test_the_table_marks_the_anomalies_and_tells_them(store: Path) -> None:
    proc = run(str(store), "--as-of", AS_OF, "--metric", "sent,block_rate", "--by", "month")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "libero.it" in out and "▲" in out
    assert "block rate" in out and "still filling" in out
    header = next(line for line in out.splitlines() if "domain" in line)
    assert "sent" in header and "block" in header and "open" not in header


def test_listed_domains_by_day_and_the_dashboard(store: Path, tmp_path: Path) -> None:
    page = tmp_path / "trend.html"
    proc = run(
        str(store),
        "--as-of",
        AS_OF,
        "--domain",
        "LIBERO.it",
        "--domain",
        "nobody.example",
        "--by",
        "day",
        "--months",
        "3",
        "--format",
        "json",
        "--html",
        str(page),
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["domains"] == ["libero.it", "nobody.example"]
    assert {r["sent"] for r in doc["rows"] if r["domain"] == "nobody.example"} == {0}
    assert (
        doc["periods"][0]["start"] == "2026-08-01" and doc["periods"][-1]["start"] == "2026-11-01"
    )
    assert "dashboard written to" in proc.stderr
    html = page.read_text(encoding="utf-8")
    assert html.count("<svg") == 10 and "<script" not in html


def test_a_mail_group_narrows_the_sends(store: Path) -> None:
    both = json.loads(run(str(store), "--as-of", AS_OF, "--format", "json").stdout)
    news = json.loads(
        run(str(store), "--as-of", AS_OF, "--format", "json", "--mail-group", "newsletter").stdout
    )
    total = sum(r["sent"] for r in both["rows"])
    part = sum(r["sent"] for r in news["rows"])
    assert 0.4 * total < part < 0.6 * total
    none = json.loads(
        run(str(store), "--as-of", AS_OF, "--format", "json", "--mail-group", "nope").stdout
    )
    assert none["domains"] == [] and none["rows"] == []


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["--top", "10", "--domain", "gmail.com"], 2, "not both"),
        (["--metric", "opens"], 1, "unknown metric 'opens'"),
        (["--tz", "Mars/Base"], 1, "unknown time zone 'Mars/Base'"),
        (["--as-of", "yesterday"], 2, "not an ISO 8601"),
        (["--domain", "a@b"], 1, "is not a domain"),
        (["--months", "5"], 2, "'5' is not one of"),
        (["--as-of", "9999-06-01T00:00:00Z"], 1, "between the years 1901 and 9998"),
        (["--html", "/nonexistent-dir/x.html"], 1, "/nonexistent-dir/x.html: No such file"),
    ],
)
def test_bad_options_say_why(store: Path, args: list[str], code: int, says: str) -> None:
    proc = run(str(store), *args)
    assert proc.returncode == code and says in proc.stderr, proc.stderr


def test_not_a_store(tmp_path: Path) -> None:
    proc = run(str(tmp_path))
    assert proc.returncode == 1 and "not a store" in proc.stderr
