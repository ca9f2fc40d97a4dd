"""Line charts as inline SVG, drawn here (no script, font or image is
fetched: the page opens offline).  One chart per metric, one line per
domain, anomalies as circles with a <title> (the browser's tooltip)."""

from __future__ import annotations

import math
from html import escape

import numpy as np

from audience.runtime.report.anomalies import Anomaly

WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 36
# distinguishable colours, cycled
PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip


def chart(
    title: str,
    labels: tuple[str, ...],
    domains: tuple[str, ...],
    values: np.ndarray,
    is_rate: bool,
    anomalies: dict[tuple[str, str], Anomaly],
) -> str:
    """An SVG chart of ``values`` (domains, periods); NaN is a gap.
    ``anomalies``: (domain, period) -> the anomaly to mark there."""
    P = len(labels)
    finite = values[np.isfinite(values)]
    top = float(finite.max()) if finite.size else 1.0
    top = _nice(top if top > 0 else (0.01 if is_rate else 1.0))
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(t: int) -> float:
        return LEFT + (w * t / (P - 1) if P > 1 else w / 2)

    def y(v: float) -> float:
        return TOP + h - h * v / top

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" '
        f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}">'
    ]
    steps = _steps(top)
    for i in range(steps + 1):  # the value axis: round values with their labels
        v = top * i / steps
        yy = y(v)
        out.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{yy:.1f}" y2="{yy:.1f}" class="grid"/>'
        )
        text = _pct(v) if is_rate else f"{v:,.0f}"
        out.append(f'<text x="{LEFT - 6}" y="{yy + 4:.1f}" class="ylab">{text}</text>')
    step = max(1, math.ceil(P / 8))
    for t in range(0, P, step):
        out.append(f'<text x="{x(t):.1f}" y="{HEIGHT - 14}" class="xlab">{labels[t][5:]}</text>')
    for i, dom in enumerate(domains):
        colour = PALETTE[i % len(PALETTE)]
        for run in _runs(values[i]):
            pts = " ".join(f"{x(t):.1f},{y(float(values[i, t])):.1f}" for t in run)
            out.append(
                f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2" '
                f'data-domain="{escape(dom)}"><title>{escape(dom)}</title></polyline>'
            )
        for t, label in enumerate(labels):
            a = anomalies.get((dom, label))
            if a is None or not np.isfinite(values[i, t]):
                continue
            out.append(
                f'<circle cx="{x(t):.1f}" cy="{y(float(values[i, t])):.1f}" r="7" '
                f'class="anomaly {a.level}" data-domain="{escape(dom)}" '
                f'data-period="{label}"><title>{escape(dom)}, {label}: '
                f"{escape(a.reason)}</title></circle>"
            )
    out.append("</svg>")
    return "".join(out)


def _runs(row: np.ndarray) -> list[list[int]]:
    """The stretches of consecutive finite values (a line breaks at a gap)."""
    runs: list[list[int]] = []
    for t, v in enumerate(row):
        if np.isfinite(v):
            if runs and runs[-1][-1] == t - 1:
                runs[-1].append(t)
            else:
                runs.append([t])
    return runs


def _steps(top: float) -> int:
    """How many intervals split ``top`` (a ``_nice`` value) at round values:
    25 in 5s, 20 in 5s, 10 in 2.5s..."""
    mantissa = round(top / 10 ** math.floor(math.log10(top)), 1)
    return 4 if mantissa in (1.0, 2.0) else 5


def _nice(v: float) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above ``v``."""
    p = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if m * p >= v:
            return m * p
    return 10 * p


def _pct(v: float) -> str:
    return f"{v * 100:.3g}%"
