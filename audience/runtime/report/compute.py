"""The report's numbers: per delivery, its send's (domain, period) key and
what happened to it, then one ``bincount`` per count over every delivery at
once.  Nothing loops over events or deliveries in Python."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from audience.runtime.report.anomalies import Anomaly, find_anomalies
from audience.runtime.report.columns import (
    class_codes,
    contact_domains,
    group_code,
    kinds,
    valid_of,
)
from audience.runtime.report.kernels import mark_after, mark_sends, tally
from audience.runtime.report.params import METRICS, RATIO, ReportParams
from audience.runtime.report.periods import Periods, periods
from audience.snapshot import Partition, Snapshot
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
    counts, unattributed = _count(snapshot, per, doms.of_contact, len(doms.names), params)
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
    snapshot: Snapshot,
    per: Periods,
    of_contact: np.ndarray,
    n_domains: int,
    params: ReportParams,
) -> tuple[dict[str, np.ndarray], int]:
    P = len(per)
    shape = (n_domains, P)
    first, last = int(per.starts[0]), params.as_of_ms
    kind_of = kinds(snapshot)
    parts = [p for p in snapshot.partitions if p.max_ts >= first and p.min_ts <= last]
    lohi = np.array([np.iinfo(np.int64).max, np.iinfo(np.int64).min], dtype=np.int64)
    for p in parts:  # the sends' delivery ids (numpy: one kernel less to load)
        did = p.columns["delivery_id"]
        sends = (kind_of[p.type] == 0) & (p.ts >= first) & (p.ts <= last)
        if did.valid is not None:
            sends &= did.valid
        ids = did.values[sends]
        if ids.size:
            lohi[0], lohi[1] = min(lohi[0], ids.min()), max(lohi[1], ids.max())
    out = np.zeros((len(COUNTS), n_domains * P), dtype=np.int64)
    unattributed = np.zeros(1, dtype=np.int64)
    if lohi[0] <= lohi[1] and n_domains:
        lo = int(lohi[0])
        # dense by delivery id over the sends' range (-1: not sent in the span)
        small = n_domains * P < np.iinfo(np.int32).max  # half the memory to fill and read
        key = np.full(int(lohi[1]) - lo + 1, -1, dtype=np.int32 if small else np.int64)
        want = -2  # any group
        if params.mail_group is not None:
            # a group the store has never seen matches no send (-3), not the ungrouped
            want = group_code(snapshot, params.mail_group)
            want = -3 if want < 0 else want
        for p in parts:
            did, grp = p.columns["delivery_id"], p.columns["mail_group"]
            mark_sends(
                p.type, kind_of, p.ts, did.values, valid_of(did), grp.values, valid_of(grp),
                want, p.contact, of_contact, per.starts, last, lo, key, unattributed,
            )  # fmt: skip
        flags = np.zeros(key.size, dtype=np.uint16)
        classes = class_codes(snapshot)
        for p in parts:
            did, bc, bot = (p.columns[c] for c in ("delivery_id", "bounce_class", "bot"))
            mark_after(
                p.type, kind_of, p.ts, did.values, valid_of(did), bc.values, valid_of(bc),
                classes, bot.values, valid_of(bot), first, last, lo, key, flags,
            )  # fmt: skip
        tally(key, flags, out)
    elif lohi[0] <= lohi[1]:  # sends, but no contact has a usable email
        unattributed[0] = _sends_in_span(parts, kind_of, first, last)
    return {c: out[i].reshape(shape) for i, c in enumerate(COUNTS)}, int(unattributed[0])


def _sends_in_span(parts: list[Partition], kind_of: np.ndarray, first: int, last: int) -> int:
    n = 0
    for p in parts:
        n += int(((kind_of[p.type] == 0) & (p.ts >= first) & (p.ts <= last)).sum())
    return n


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
