"""Anomalies: a domain's rate in a period that departs both from the
domain's own history and from the other domains in the same period, by more
than chance at its volume explains.

For a rate x/n of domain d in period t (counts of the send's period):
- own history: the previous ``HISTORY`` periods (at least ``MIN_HISTORY``
  with sends) give p̄ = Σx/Σn; Laney's p' chart widens the binomial spread
  by sigma_z, the average moving range of the history's z-scores / 1.128
  (never narrower than the binomial: sigma_z >= 1), so a domain whose rate
  wanders more than binomially needs a bigger departure; p̄ is itself an
  estimate from N_h sends, so its variance adds to the period's:
  Z_own = (p_t - p̄) / (sigma_z sqrt(p̄(1-p̄)(1/n_t + 1/N_h)));
- the other domains: f = Σx / Σ n p̄ over the *other* domains this period
  (how much the period moved everywhere else), E = n_t p̄ f the count
  expected, R = x/E, and Z_cross how unlikely x is where E was expected
  (the note's (x - E) / sqrt(E(1 - p̄ f)), but with the Poisson tail in
  Wilson-Hilferty form in place of x - E over sqrt(E), which overstates
  small counts), over sigma_z.  A drop at every domain (content, the list)
  moves f, not one domain's R.

A period is flagged when n_t >= ``MIN_SENT``, max(x, E) >= ``MIN_EVENTS``,
both z-scores pass 3 (an alarm) or 2 (a warning) in the harmful direction
(down for opens and clicks, up for the others), R is 0.8 or less (1.25 or
more for rises), and the rate moved by at least ``MIN_EFFECT`` from what was expected (a domain
that never blocked blocking 3 messages of 100,000 is real, and not news).
Complaints are also held to the mailbox providers' limit (from
``MIN_SENT`` delivered): the lower 95% Wilson bound of the rate above 0.1%
warns, above 0.3% alarms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from audience.runtime.report.params import METRICS, RATIO, ReportParams
from audience.runtime.report.periods import Periods

HISTORY = 8
MIN_HISTORY = 4
MIN_SENT = 200
# a count needs some size before a z-score means much: 4 complaints of 2,000
# where 0.6 were expected is the kind of luck hundreds of cells produce, while
# 95 blocks where 0.2 were expected is not (the larger of the count seen and
# the count expected: a rise is seen, a drop was expected)
MIN_EVENTS = 10.0
ALARM, WARN = 3.0, 2.0
DROP_RATIO, RISE_RATIO = 0.8, 1.25
# the smallest change of a rate worth a flag, in absolute terms
MIN_EFFECT: dict[str, float] = {
    "hard_bounce_rate": 0.005,
    "soft_bounce_rate": 0.01,
    "block_rate": 0.005,
    "open_rate": 0.02,
    "human_open_rate": 0.02,
    "click_rate": 0.005,
    "unsubscribe_rate": 0.002,
    "complaint_rate": 0.001,
}
DOWN_IS_BAD = ("open_rate", "human_open_rate", "click_rate")
COMPLAINT_WARN, COMPLAINT_ALARM = 0.001, 0.003


@dataclass(frozen=True)
class Anomaly:
    domain: str
    period: str
    metric: str
    kind: str  # "departure" (from history and peers) | "limit" (complaints)
    level: str  # "warn" | "alarm"
    direction: str  # "up" | "down"
    value: float
    n: int  # the messages the rate is of (sent or delivered)
    baseline: float | None  # the domain's own rate over its history
    expected: float | None  # baseline moved as the other domains moved
    z_own: float | None
    z_cross: float | None
    ratio: float | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for k in ("value", "baseline", "expected", "z_own", "z_cross", "ratio"):
            if out[k] is not None:
                out[k] = round(float(out[k]), 6)
        return out


def find_anomalies(
    counts: Mapping[str, np.ndarray],
    names: Sequence[str],
    per: Periods,
    params: ReportParams,
) -> list[Anomaly]:
    out: list[Anomaly] = []
    for metric, (num, den) in RATIO.items():
        x = counts[num].astype(np.float64)
        n = counts[den].astype(np.float64)
        stats = _stats(x, n)
        out += _flags(metric, x, n, stats, names, per)
        if metric == "complaint_rate":
            out += _complaints(x, n, stats, names, per)
    return _gravest(out)


@dataclass(frozen=True)
class _Stats:
    p_bar: np.ndarray  # (D, P); NaN: not enough history
    z_own: np.ndarray
    z_cross: np.ndarray
    expected: np.ndarray  # expected rate
    ratio: np.ndarray


def _stats(x: np.ndarray, n: np.ndarray) -> _Stats:
    P = x.shape[1]
    pad = ((0, 0), (HISTORY, 0))
    # (D, P, HISTORY): the HISTORY periods before each period
    hx = sliding_window_view(np.pad(x, pad), HISTORY, axis=1)[:, :P]
    hn = sliding_window_view(np.pad(n, pad), HISTORY, axis=1)[:, :P]
    has = hn > 0
    enough = has.sum(axis=2) >= MIN_HISTORY
    # half a success of continuity: a history of zeros still has a spread
    p_bar = (hx.sum(axis=2) + 0.5) / (hn.sum(axis=2) + 1.0)
    p_bar = np.where(enough, np.clip(p_bar, 1e-9, 1 - 1e-9), np.nan)
    pb = p_bar[:, :, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        z_s = (hx / np.where(has, hn, 1) - pb) / np.sqrt(pb * (1 - pb) / np.where(has, hn, 1))
        pair = has[:, :, 1:] & has[:, :, :-1]
        mr = np.where(pair, np.abs(np.diff(z_s, axis=2)), 0.0)
        pairs = pair.sum(axis=2)
        sigma = np.where(pairs >= 2, mr.sum(axis=2) / np.maximum(pairs, 1) / 1.128, 1.0)
        sigma = np.maximum(sigma, 1.0)
        p_t = x / np.where(n > 0, n, 1)
        # the history's own rate is an estimate too: its variance counts
        spread = 1 / np.where(n > 0, n, 1) + 1 / np.maximum(hn.sum(axis=2), 1)
        z_own = (p_t - p_bar) / (sigma * np.sqrt(p_bar * (1 - p_bar) * spread))
        # the other domains' movement this period (leave this domain out)
        use = enough & (n > 0)
        ex = np.where(use, n * np.nan_to_num(p_bar), 0.0)
        xx = np.where(use, x, 0.0)
        others_e = ex.sum(axis=0)[None, :] - ex
        others_x = xx.sum(axis=0)[None, :] - xx
        f = np.where(others_e > 0, others_x / np.where(others_e > 0, others_e, 1), np.nan)
        q = np.clip(p_bar * f, 0, 1)
        e = n * q
        z_cross = _count_z(x, e) / (sigma * np.sqrt(1 - q))
        ratio = x / e
    bad = ~use
    for a in (z_own, z_cross, ratio, q):
        a[bad] = np.nan
    return _Stats(p_bar, z_own, z_cross, q, ratio)


def _count_z(x: np.ndarray, e: np.ndarray) -> np.ndarray:
    """How unlikely ``x`` events are where ``e`` were expected, as a normal
    score: the Wilson-Hilferty cube-root form of the Poisson tail (P(X >= x)
    for a rise, P(X <= x) for a fall), right to a few hundredths even at a
    handful of events, where (x - E)/sqrt(E) makes 12 where 4.5 were expected
    look like 1 in 5,000 instead of 1 in 360."""
    with np.errstate(invalid="ignore", divide="ignore"):
        k = np.where(x >= e, x, x + 1)
        return 3 * np.sqrt(k) * (1 - 1 / (9 * k) - np.cbrt(e / k))


def _flags(
    metric: str,
    x: np.ndarray,
    n: np.ndarray,
    s: _Stats,
    names: Sequence[str],
    per: Periods,
) -> list[Anomaly]:
    sign = -1.0 if metric in DOWN_IS_BAD else 1.0
    with np.errstate(invalid="ignore"):
        p = x / np.where(n > 0, n, 1)
        base = (n >= MIN_SENT) & (np.maximum(x, n * s.expected) >= MIN_EVENTS)
        base &= np.abs(p - s.expected) >= MIN_EFFECT[metric]
        base &= (s.ratio <= DROP_RATIO) if sign < 0 else (s.ratio >= RISE_RATIO)
        zo, zc = sign * s.z_own, sign * s.z_cross
        warn = base & (zo >= WARN) & (zc >= WARN)
        alarm = warn & (zo >= ALARM) & (zc >= ALARM)
    out = []
    for d, t in zip(*np.nonzero(warn), strict=True):
        level = "alarm" if alarm[d, t] else "warn"
        a = _anomaly(metric, level, "down" if sign < 0 else "up", x, n, s, names, per, d, t)
        out.append(a)
    return out


def _anomaly(
    metric: str,
    level: str,
    direction: str,
    x: np.ndarray,
    n: np.ndarray,
    s: _Stats,
    names: Sequence[str],
    per: Periods,
    d: int,
    t: int,
    reason: str | None = None,
) -> Anomaly:
    value = float(x[d, t] / n[d, t])
    label, den = METRICS[metric][0], METRICS[metric][1]

    def opt(a: np.ndarray) -> float | None:
        v = float(a[d, t])
        return None if np.isnan(v) else v

    baseline, expected = opt(s.p_bar), opt(s.expected)
    kind = "departure" if reason is None else "limit"
    if reason is None:
        assert baseline is not None and expected is not None
        times = value / expected if expected > 0 else float("inf")
        reason = (
            f"{label} {_pct(value)} ({int(x[d, t]):,} of {int(n[d, t]):,} {den}), against "
            f"{_pct(baseline)} over its previous {per.by}s and {_pct(expected)} expected "
            f"from how the other domains moved this {per.by}: "
            f"{'down' if direction == 'down' else 'up'} to {times:.1f}x what was expected, "
            f"more than chance explains at this volume"
        )
    return Anomaly(
        names[d],
        per.labels[t],
        metric,
        kind,
        level,
        direction,
        value,
        int(n[d, t]),
        baseline,
        expected,
        opt(s.z_own),
        opt(s.z_cross),
        opt(s.ratio),
        reason,
    )


def _complaints(
    x: np.ndarray, n: np.ndarray, s: _Stats, names: Sequence[str], per: Periods
) -> list[Anomaly]:
    low = wilson_lower(x, n)
    out = []
    # below MIN_SENT one complaint is already "above the limit": not news
    for d, t in zip(*np.nonzero((low > COMPLAINT_WARN) & (n >= MIN_SENT)), strict=True):
        alarm = low[d, t] > COMPLAINT_ALARM
        limit = COMPLAINT_ALARM if alarm else COMPLAINT_WARN
        reason = (
            f"complaint rate {_pct(x[d, t] / n[d, t])} ({int(x[d, t]):,} of "
            f"{int(n[d, t]):,} delivered): even at its lowest likely value "
            f"({_pct(low[d, t])}) above the {_pct(limit)} that mailbox providers "
            f"tolerate from bulk senders"
        )
        level = "alarm" if alarm else "warn"
        out.append(_anomaly("complaint_rate", level, "up", x, n, s, names, per, d, t, reason))
    return out


def wilson_lower(x: np.ndarray, n: np.ndarray, z: float = 1.96) -> np.ndarray:
    """The lower bound of the Wilson score interval of x/n (0 where n is 0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        nn = np.where(n > 0, n, 1)
        p = x / nn
        centre = p + z * z / (2 * nn)
        spread = z * np.sqrt(p * (1 - p) / nn + z * z / (4 * nn * nn))
        low = (centre - spread) / (1 + z * z / nn)
    return np.where(n > 0, np.maximum(low, 0.0), 0.0)


def _gravest(found: list[Anomaly]) -> list[Anomaly]:
    """One anomaly per (domain, period, metric, kind), the gravest; in
    period, domain, metric order."""
    best: dict[tuple[str, str, str, str], Anomaly] = {}
    for a in found:
        k = (a.domain, a.period, a.metric, a.kind)
        if k not in best or (a.level == "alarm" and best[k].level == "warn"):
            best[k] = a
    return sorted(best.values(), key=lambda a: (a.period, a.domain, list(METRICS).index(a.metric)))


def _pct(v: float) -> str:
    v = float(v) * 100
    return f"{v:.2f}%" if v < 1 else f"{v:.1f}%"
