"""The columnar report against the plain-Python reference
(tests/reference/report.py) on random events: no sends, events without a
send, events after as-of, period bounds, DST in a zone, month ends."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience.runtime.report import ReportParams, build_report
from audience.runtime.report.compute import COUNTS
from tests.reference import report as ref
from tests.report_support import ms, store_of

# as-of instants next to the edges that matter: a month end, a DST change
# in Europe/Rome and America/New_York, a leap day, a Monday midnight
AS_OF = [
    ms("2026-03-31T23:59:59Z"),
    ms("2026-03-29T01:30:00Z"),
    ms("2026-11-01T06:30:00Z"),
    ms("2024-02-29T12:00:00Z"),
    ms("2026-10-26T00:00:00Z"),
    ms("2026-08-31T22:00:00Z"),
]
ZONES = ["UTC", "Europe/Rome", "America/New_York", "Asia/Kolkata"]
EMAILS = {
    "c0": "a@gmail.com",
    "c1": " B@Gmail.COM ",
    "c2": "c@libero.it",
    "c3": "d@bücher.de",
    "c4": "not an address",
    "c5": "e@outlook.com",
}
TYPES = [
    "email_sent",
    "email_sent",
    "email_opened",
    "email_clicked",
    "email_bounced",
    "email_complained",
    "unsubscribed",
]
DAY = 86_400_000


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    as_of = draw(st.sampled_from(AS_OF))
    months = draw(st.sampled_from([3, 6, 12]))
    span = (months + 1) * 31 * DAY
    n = draw(st.integers(0, 60))
    events = []
    for _ in range(n):
        t = draw(st.sampled_from(TYPES))
        # near the as-of instant and the span's start too, and after as-of
        offset = draw(
            st.one_of(
                st.integers(-span, DAY),
                st.integers(-3 * 3_600_000, 3 * 3_600_000),
                st.integers(-span - 2 * DAY, -span + 40 * DAY),
            )
        )
        e: dict[str, Any] = {
            "contact_id": draw(st.sampled_from([*EMAILS, "c_noprofile"])),
            "type": t,
            "ts": as_of + offset,
            "delivery_id": draw(st.one_of(st.none(), st.integers(1, 12))),
            "mail_group": draw(st.sampled_from([None, "news", "promo"])),
        }
        if t == "email_bounced":
            e["bounce_class"] = draw(
                st.sampled_from([None, "hard", "soft", "block", "undetermined", "other"])
            )
        if t in ("email_opened", "email_clicked"):
            e["bot"] = draw(st.sampled_from([None, True, False]))
        events.append(e)
    return {
        "events": events,
        "as_of": as_of,
        "months": months,
        "by": draw(st.sampled_from(["day", "week", "month"])),
        "tz": draw(st.sampled_from(ZONES)),
        "group": draw(st.sampled_from([None, "news", "nobody"])),
    }


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_the_columnar_report_is_the_reference(case: dict[str, Any]) -> None:
    store = store_of(case["events"], EMAILS)
    params = ReportParams(
        as_of_ms=case["as_of"],
        top=100,
        by=case["by"],
        months=case["months"],
        tz=case["tz"],
        mail_group=case["group"],
    )
    report = build_report(store.snapshot(), params)
    want = ref.counts(
        case["events"],
        EMAILS,
        as_of_ms=case["as_of"],
        by=case["by"],
        months=case["months"],
        tz=case["tz"],
        mail_group=case["group"],
    )
    got = {}
    for i, dom in enumerate(report.domains):
        for t, label in enumerate(report.periods.labels):
            c = {k: int(report.counts[k][i, t]) for k in COUNTS}
            if c["sent"]:
                got[(dom, label)] = c
    assert got == want
    assert (
        report.periods.labels[0]
        == ref.first_period(case["as_of"], case["by"], case["months"], case["tz"]).isoformat()
    )
    assert (
        report.periods.labels[-1]
        == ref.period_of(case["as_of"], case["by"], case["tz"]).isoformat()
    )
    for m in params.metrics:
        v = report.values(m)
        assert np.all(np.isnan(v) | ((v >= 0) & (v <= 1))) or m in ("sent", "delivered")
