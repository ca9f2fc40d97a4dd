"""The dashboard: one self-contained HTML page (inline CSS and SVG, no
script, no external font or image), so it opens offline and can be mailed.
The server sends it with a Content-Security-Policy that forbids any fetch."""

from __future__ import annotations

from html import escape

import numpy as np

from audience.runtime.report.anomalies import Anomaly
from audience.runtime.report.compute import Report
from audience.runtime.report.params import METRICS
from audience.runtime.report.svg import PALETTE, chart
from audience.runtime.report.text import summary
from audience.timecalc import iso_utc

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:820px}
h1{font-size:22px}h2{font-size:17px;margin:28px 0 6px}
.meta,.note{color:#555;font-size:13px}
.legend span{display:inline-block;margin:0 14px 4px 0;font-size:13px}
.legend i{display:inline-block;width:14px;height:4px;margin-right:5px;vertical-align:middle}
.grid{stroke:#e4e4e4}.ylab{font-size:11px;text-anchor:end;fill:#666}
.xlab{font-size:11px;text-anchor:middle;fill:#666}
.anomaly{fill:none;stroke-width:2.5}.anomaly.alarm{stroke:#d00}.anomaly.warn{stroke:#e90}
ul.anomalies li{margin-bottom:6px;font-size:14px}
"""


def dashboard(report: Report) -> str:
    p = report.params
    picked = f"the top {p.top} by volume" if p.top else "chosen"
    group = f", mail group {escape(p.mail_group)}" if p.mail_group else ""
    legend = "".join(
        f'<span><i style="background:{PALETTE[i % len(PALETTE)]}"></i>{escape(d)}</span>'
        for i, d in enumerate(report.domains)
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        "<title>Trend for recipient domains</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>Trend for recipient domains</h1>",
        f'<p class="meta">{len(report.domains)} domains ({picked}), by {p.by} '
        f"over {p.months} months to {escape(iso_utc(p.as_of_ms, 'minutes'))} "
        f"({escape(p.tz)}){group}. Rates belong to the {p.by} of the send; the "
        f"last {p.by} is still filling.</p>",
        '<h2 id="anomalies">Anomalies</h2><ul class="anomalies">',
        *(f"<li>{escape(line.strip())}</li>" for line in summary(report)),
        "</ul>",
        f'<div class="legend">{legend}</div>',
    ]
    by_metric: dict[str, dict[tuple[str, str], Anomaly]] = {}
    for a in report.anomalies:
        by_metric.setdefault(a.metric, {})[(a.domain, a.period)] = a
    for m in p.metrics:
        label, kind = METRICS[m]
        values = report.values(m).astype(np.float64)
        parts.append(f'<h2 id="{m}">{escape(label[0].upper() + label[1:])}</h2>')
        if kind != "count":
            parts.append(f'<p class="note">of {kind} messages</p>')
        parts.append(
            chart(
                label,
                report.periods.labels,
                report.domains,
                values,
                kind != "count",
                by_metric.get(m, {}),
            )
        )
    parts.append("</body></html>")
    return "\n".join(parts)
