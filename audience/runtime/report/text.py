"""The report as words and numbers: cells for a table, and the anomalies
told for a marketer."""

from __future__ import annotations

import math

from audience.runtime.report.anomalies import Anomaly
from audience.runtime.report.compute import Report
from audience.runtime.report.params import METRICS

HEADERS: dict[str, str] = {
    "sent": "sent",
    "delivered": "delivered",
    "hard_bounce_rate": "hard",
    "soft_bounce_rate": "soft",
    "block_rate": "block",
    "open_rate": "open",
    "human_open_rate": "open (people)",
    "click_rate": "click",
    "unsubscribe_rate": "unsub",
    "complaint_rate": "complaint",
}
ARROW = {"up": "▲", "down": "▼"}


def cell(report: Report, metric: str, d: int, t: int) -> str:
    v = float(report.values(metric)[d, t])
    if METRICS[metric][1] == "count":
        return f"{int(v):,}"
    return "" if math.isnan(v) else percent(v)


def percent(v: float) -> str:
    return f"{v * 100:.2f}%" if v < 0.1 else f"{v * 100:.1f}%"


def marks(report: Report) -> dict[tuple[str, str, str], Anomaly]:
    """(domain, period, metric) -> its gravest anomaly."""
    out: dict[tuple[str, str, str], Anomaly] = {}
    for a in report.anomalies:
        k = (a.domain, a.period, a.metric)
        if k not in out or a.level == "alarm":
            out[k] = a
    return out


def summary(report: Report) -> list[str]:
    """The anomalies in words, latest first, one line each."""
    if not report.anomalies:
        return [
            f"No anomaly: no domain departed from its own history and from the other "
            f"domains by more than chance explains, over {len(report.periods)} {report.params.by}s."
        ]
    by_domain: dict[str, list[Anomaly]] = {}
    for a in report.anomalies:
        by_domain.setdefault(a.domain, []).append(a)
    lines = []
    for dom, found in sorted(by_domain.items(), key=lambda kv: -len(kv[1])):
        first = min(a.period for a in found)
        what = sorted({METRICS[a.metric][0] for a in found})
        lines.append(
            f"{dom}: {len(found)} anomal{'y' if len(found) == 1 else 'ies'} since the "
            f"{report.params.by} of {first} ({', '.join(what)})."
        )
        # the latest alarm of a departure says most; a limit or a warning else
        latest = max(found, key=lambda a: (a.kind == "departure", a.level == "alarm", a.period))
        lines.append(f"  latest, {latest.period} ({latest.level}): {latest.reason}.")
    return lines
