"""The deliverability part of ``audience demo``: six months of sends where
libero.it starts filtering halfway; the report points at libero.it alone."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from audience.demo.deliverability import FILTERING, History, deliverability_story, events, profiles
from audience.runtime.report import ReportParams, build_report
from audience.runtime.store import Store
from tests.report_support import NOW


def test_the_story_points_at_the_filtering_provider(tmp_path: Path) -> None:
    out = io.StringIO()
    html = deliverability_story(
        tmp_path / "mail", Console(file=out, width=100, soft_wrap=True), NOW, n_contacts=3_000
    )
    text = out.getvalue()
    assert f"{FILTERING} is filtering this sender" in text
    assert "audience report domains" in text and "--as-of 2026-11-01T12:00:00Z" in text
    page = html.read_text(encoding="utf-8")
    assert page.count("<svg") == 5 and 'data-domain="libero.it" data-period=' in page
    # by week, the block alarms are libero.it's, from the week its filtering starts
    report = build_report(
        Store.open(tmp_path / "mail").snapshot(),
        ReportParams(as_of_ms=int(NOW.timestamp() * 1000), top=100),
    )
    blocks = [a for a in report.anomalies if a.metric == "block_rate" and a.level == "alarm"]
    assert {a.domain for a in blocks} == {FILTERING}
    start = History(now=NOW).filter_from
    assert min(a.period for a in blocks) == report.periods.labels[start]


def test_the_generated_history_is_what_it_says() -> None:
    h = History(now=NOW, n_contacts=2_000, weeks=4, small=5)
    table, dom = profiles(h)
    assert table.num_rows == 2_000 and len(set(dom.tolist())) > 5
    chunks = list(events(h, dom))
    sent = sum(
        int((c.column("type").to_numpy(zero_copy_only=False) == "email_sent").sum()) for c in chunks
    )
    assert 0.45 * 2_000 * 8 < sent < 0.65 * 2_000 * 8  # two campaigns a week to 55% of the list
    last = max(int(c.column("ts").cast("int64").to_numpy().max()) for c in chunks)
    assert last <= int(NOW.timestamp() * 1000)  # nothing after the demo's now
