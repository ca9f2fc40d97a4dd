"""The report's numbers: per delivery, its send's (domain, period) key and
what happened to it, then one ``bincount`` per count over every delivery at
once.  Nothing loops over events or deliveries in Python."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from audience.runtime.report.anomalies import Anomaly, find_anomalies
from audience.runtime.report.columns import (
    AFTER,
    Events,
    contact_domains,
    group_code,
    read_events,
)
from audience.runtime.report.params import METRICS, RATIO, ReportParams
from audience.runtime.report.periods import Periods, periods
from audience.snapshot import Snapshot
from audience.timecalc import iso_utc

# the counts kept per (domain, period); rates are their ratios (see RATIO)
COUNTS: tuple[str, ...] = (
    "sent",
    "delivered",
    "hard",
    "soft",
    "block",
    "undetermined",
    "opened",
    "human_opened",
    "human_clicked",
    "unsubscribed",
    "complained",
)
_OPEN, _CLICK, _BOUNCE, _COMPLAINT, _UNSUB = (1 + AFTER.index(t) for t in AFTER)


@dataclass(frozen=True)
class Report:
    params: ReportParams
    periods: Periods
    domains: tuple[str, ...]  # the chosen ones, by sent volume over the span
    counts: dict[str, np.ndarray]  # name -> int64 (domains, periods)
    anomalies: tuple[Anomaly, ...]
    unattributed: int  # sends in the span whose contact has no usable email

    def values(self, metric: str) -> np.ndarray:
        """A metric per (domain, period): a count, or a rate (NaN: nothing to
        divide by)."""
        if metric in self.counts:
            return self.counts[metric]
        num, den = RATIO[metric]
        d = self.counts[den]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(d > 0, self.counts[num] / np.maximum(d, 1), np.nan)

    def to_json(self) -> dict[str, Any]:
        p = self.params
        rows = []
        for i, dom in enumerate(self.domains):
            for t, label in enumerate(self.periods.labels):
                row: dict[str, Any] = {"domain": dom, "period": label}
                row.update({c: int(self.counts[c][i, t]) for c in COUNTS})
                for m in p.metrics:
                    if METRICS[m][1] != "count":
                        v = float(self.values(m)[i, t])
                        row[m] = None if np.isnan(v) else round(v, 6)
                rows.append(row)
        return {
            "as_of": iso_utc(p.as_of_ms),
            "by": p.by,
            "months": p.months,
            "tz": p.tz,
            "mail_group": p.mail_group,
            "metrics": list(p.metrics),
            "periods": [
                {
                    "start": label,
                    "start_utc": iso_utc(int(s)),
                    "provisional": i == len(self.periods) - 1,
                }
                for i, (label, s) in enumerate(
                    zip(self.periods.labels, self.periods.starts, strict=False)
                )
            ],
            "domains": list(self.domains),
            "unattributed_sent": self.unattributed,
            "rows": rows,
            "anomalies": [a.to_json() for a in self.anomalies],
        }


def build_report(snapshot: Snapshot, params: ReportParams) -> Report:
    per = periods(params.by, params.months, params.as_of_ms, params.tz)
    doms = contact_domains(snapshot)
    ev = read_events(snapshot, int(per.starts[0]), params.as_of_ms)
    counts, unattributed = _count(ev, per, doms.of_contact, len(doms.names), snapshot, params)
    chosen = _choose(counts["sent"], doms.names, params)
    # every domain with sends is a peer in the comparison, shown or not
    peers = {k: v[chosen.all] for k, v in counts.items()}
    anomalies = find_anomalies(peers, [doms.names[i] for i in chosen.all.tolist()], per, params)
    counts = {k: v[chosen.shown] for k, v in counts.items()}
    if params.domains:  # listed domains the store has never sent to: rows of zeros
        counts = _with_listed(counts, chosen.shown_names, params.domains, len(per))
    names = params.domains or chosen.shown_names
    shown = set(names)
    kept = tuple(a for a in anomalies if a.domain in shown and a.metric in params.metrics)
    return Report(params, per, tuple(names), counts, kept, unattributed)


def _count(
    ev: Events,
    per: Periods,
    of_contact: np.ndarray,
    n_domains: int,
    snapshot: Snapshot,
    params: ReportParams,
) -> tuple[dict[str, np.ndarray], int]:
    P = len(per)
    shape = (n_domains, P)
    size = n_domains * P
    sends = ev.kind == 0
    if params.mail_group is not None:
        sends &= ev.group == group_code(snapshot, params.mail_group)
    s_did = ev.delivery[sends]
    s_period = per.index(ev.ts[sends])
    s_dom = of_contact[ev.contact[sends]] if len(of_contact) else np.zeros(0, np.int32)
    in_span = (s_period >= 0) & (s_period < P)
    unattributed = int((in_span & (s_dom < 0)).sum())
    ok = in_span & (s_dom >= 0)
    if not ok.any():
        return {c: np.zeros(shape, np.int64) for c in COUNTS}, unattributed
    s_did, s_key = s_did[ok], s_dom[ok].astype(np.int64) * P + s_period[ok]
    lo, hi = int(s_did.min()), int(s_did.max())
    # dense by delivery id over the sends' range: each delivery's key (-1:
    # not sent in the span); a delivery sent twice keeps its last send's
    key = np.full(hi - lo + 1, -1, np.int64)
    key[s_did - lo] = s_key
    sent_slots = np.flatnonzero(key >= 0)
    k_sent = key[sent_slots]

    after = (ev.kind > 0) & (ev.delivery >= lo) & (ev.delivery <= hi)
    slot = ev.delivery[after] - lo
    kind, bounce, bot = ev.kind[after], ev.bounce[after], ev.bot[after]

    def flag(mask: np.ndarray) -> np.ndarray:
        f = np.zeros(hi - lo + 1, bool)
        f[slot[mask]] = True
        return f[sent_slots]

    bounced = kind == _BOUNCE
    # a delivery bounced more than once counts once, in its gravest class
    hard = flag(bounced & (bounce == 0))
    block = flag(bounced & (bounce == 2)) & ~hard
    soft = flag(bounced & (bounce == 1)) & ~hard & ~block
    undetermined = flag(bounced) & ~hard & ~block & ~soft
    delivered = ~(hard | block | soft | undetermined)
    # engagement is counted among delivered messages only, so no rate of
    # the delivered passes 1
    masks = {
        "sent": np.ones(len(sent_slots), bool),
        "delivered": delivered,
        "hard": hard,
        "soft": soft,
        "block": block,
        "undetermined": undetermined,
        "opened": flag(kind == _OPEN) & delivered,
        "human_opened": flag((kind == _OPEN) & ~bot) & delivered,
        "human_clicked": flag((kind == _CLICK) & ~bot) & delivered,
        "unsubscribed": flag(kind == _UNSUB) & delivered,
        "complained": flag(kind == _COMPLAINT) & delivered,
    }
    out = {
        c: np.bincount(k_sent[m], minlength=size).astype(np.int64).reshape(shape)
        for c, m in masks.items()
    }
    return out, unattributed


@dataclass(frozen=True)
class _Chosen:
    all: np.ndarray  # domain codes with a send in the span, busiest first
    shown: np.ndarray  # the ones the report shows
    shown_names: tuple[str, ...]


def _choose(sent: np.ndarray, names: tuple[str, ...], params: ReportParams) -> _Chosen:
    total = sent.sum(axis=1)
    order = sorted(np.flatnonzero(total > 0).tolist(), key=lambda d: (-int(total[d]), names[d]))
    ranked = np.array(order, dtype=np.int64)
    if params.domains:
        listed = set(params.domains)
        shown = np.array([d for d in order if names[d] in listed], dtype=np.int64)
    else:
        shown = ranked[: params.top]
    return _Chosen(ranked, shown, tuple(names[d] for d in shown.tolist()))


def _with_listed(
    counts: dict[str, np.ndarray], have: tuple[str, ...], listed: tuple[str, ...], P: int
) -> dict[str, np.ndarray]:
    pos = {d: i for i, d in enumerate(have)}
    out = {}
    for c, v in counts.items():
        rows = [v[pos[d]] if d in pos else np.zeros(P, np.int64) for d in listed]
        out[c] = np.array(rows, dtype=np.int64).reshape(len(listed), P)
    return out
