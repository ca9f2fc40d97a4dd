"""The deliverability story of ``audience demo``: six months of weekly
newsletters and promotions to a realistic mix of mailbox providers, where
libero.it starts filtering the sender halfway (blocks, and the messages it
still takes land in spam: fewer opens); the trend for recipient domains
points at it.  The generator is also the benchmark's (bench_report.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from rich.console import Console
from rich.markup import escape
from rich.rule import Rule

from audience.schema import Schema

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
# share of the list per domain (Italian shop: Gmail first, then the Italian
# providers and Microsoft); the rest spread over small company domains
DOMAINS: dict[str, float] = {
    "gmail.com": 0.34,
    "libero.it": 0.12,
    "outlook.com": 0.09,
    "hotmail.it": 0.08,
    "yahoo.com": 0.06,
    "icloud.com": 0.06,
    "virgilio.it": 0.05,
    "alice.it": 0.04,
    "tiscali.it": 0.03,
    "gmx.de": 0.02,
    "fastwebnet.it": 0.02,
}
SMALL_DOMAINS = 60  # "studio-1.it" ... sharing what the big ones leave
FILTERING = "libero.it"


@dataclass(frozen=True)
class Mix:
    """How recipients at a domain behave: rates of a send (bounces) or of a
    delivered message (the rest); ``machine``: share of opens made by a
    program (Apple's Mail Privacy Protection fetches every image)."""

    hard: float = 0.004
    soft: float = 0.008
    block: float = 0.002
    open: float = 0.32
    machine: float = 0.05
    click: float = 0.045
    unsub: float = 0.003
    complaint: float = 0.0004


@dataclass(frozen=True)
class History:
    """The sends: ``weeks`` weeks to ``now``, a newsletter every Tuesday and a
    promotion every Friday to a share of the list; from week ``filter_from``
    the ``filtering`` domain behaves as ``filtered``."""

    now: dt.datetime
    n_contacts: int = 40_000
    weeks: int = 27
    share: float = 0.55
    domains: dict[str, float] = field(default_factory=lambda: dict(DOMAINS))
    small: int = SMALL_DOMAINS
    filtering: str | None = FILTERING
    filter_from: int = 13
    filtered: Mix = Mix(block=0.22, open=0.11, click=0.012, complaint=0.002)
    seed: int = 11


def mixes(names: list[str]) -> list[Mix]:
    out = []
    for d in names:
        if d == "icloud.com":
            out.append(Mix(open=0.62, machine=0.75))  # every pixel fetched
        elif d == "gmail.com":
            out.append(Mix(complaint=0.0))  # Gmail sends no per-message reports
        elif d.startswith("studio-"):
            out.append(Mix(hard=0.012, open=0.24))
        else:
            out.append(Mix())
    return out


def domain_list(h: History) -> tuple[list[str], np.ndarray]:
    names = list(h.domains)
    weights = list(h.domains.values())
    rest = max(0.0, 1.0 - sum(weights))
    if h.small and rest > 0:
        small = np.random.default_rng(h.seed).pareto(1.5, h.small) + 1
        names += [f"studio-{i + 1}.it" for i in range(h.small)]
        weights += list(rest * small / small.sum())
    w = np.array(weights)
    return names, w / w.sum()


def profiles(h: History) -> tuple[pa.Table, np.ndarray]:
    """The contacts (an email at their domain) and each one's domain index."""
    names, weights = domain_list(h)
    rng = np.random.default_rng(h.seed)
    dom = rng.choice(len(names), h.n_contacts, p=weights)
    ids = np.char.add("m", np.arange(h.n_contacts).astype(str))
    local = np.char.add("reader", np.arange(h.n_contacts).astype(str))
    emails = np.char.add(np.char.add(local, "@"), np.array(names)[dom])
    return pa.table({"contact_id": pa.array(ids), "email": pa.array(emails)}), dom


def events(h: History, dom: np.ndarray, chunk_weeks: int = 4) -> Iterator[pa.Table]:
    """The email events, a few weeks at a time, as Arrow tables."""
    names, _ = domain_list(h)
    base = mixes(names)
    rng = np.random.default_rng(h.seed + 1)
    now_ms = int(h.now.timestamp() * 1000)
    first_week = now_ms - h.weeks * WEEK_MS
    next_delivery = 1
    pending: list[pa.Table] = []
    for w in range(h.weeks):
        for day, group in ((1, "newsletter"), (4, "promotions")):
            t0 = first_week + w * WEEK_MS + day * DAY_MS + 9 * 3_600_000
            if t0 > now_ms:
                continue
            who = np.flatnonzero(rng.random(h.n_contacts) < h.share)
            mix = [
                h.filtered if (names[i] == h.filtering and w >= h.filter_from) else m
                for i, m in enumerate(base)
            ]
            table = _campaign(rng, who, dom, mix, t0, now_ms, next_delivery, group)
            next_delivery += len(who)
            pending.append(table)
        if (w + 1) % chunk_weeks == 0 or w == h.weeks - 1:
            if pending:
                yield pa.concat_tables(pending)
            pending = []


def _campaign(
    rng: np.random.Generator,
    who: np.ndarray,
    dom: np.ndarray,
    mix: list[Mix],
    t0: int,
    now_ms: int,
    first_delivery: int,
    group: str,
) -> pa.Table:
    n = len(who)
    d = dom[who]

    def rate(attr: str) -> np.ndarray:
        return np.array([getattr(m, attr) for m in mix])[d]

    did = np.arange(first_delivery, first_delivery + n, dtype=np.int64)
    sent_ts = t0 + rng.integers(0, 3_600_000, n)
    u = rng.random(n)
    hard, soft, block = rate("hard"), rate("soft"), rate("block")
    bclass = np.where(
        u < hard, 0, np.where(u < hard + soft, 1, np.where(u < hard + soft + block, 2, -1))
    )
    delivered = bclass < 0
    opened = delivered & (rng.random(n) < rate("open"))
    machine = opened & (rng.random(n) < rate("machine"))
    clicked = opened & ~machine & (rng.random(n) < rate("click") / np.maximum(rate("open"), 1e-9))
    unsub = delivered & (rng.random(n) < rate("unsub"))
    complained = delivered & (rng.random(n) < rate("complaint"))
    later = sent_ts + rng.exponential(8 * 3_600_000, n).astype(np.int64)
    parts = [
        (np.ones(n, bool), "email_sent", sent_ts),
        (bclass >= 0, "email_bounced", sent_ts + 60_000),
        (opened, "email_opened", np.where(machine, sent_ts + 5_000, later)),
        (clicked, "email_clicked", later + 30_000),
        (unsub, "unsubscribed", later + 60_000),
        (complained, "email_complained", later + 3_600_000),
    ]
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("who", "type", "ts", "did", "bc", "bot")}
    for mask, etype, ts in parts:
        keep = mask & (ts <= now_ms)
        k = int(keep.sum())
        cols["who"].append(who[keep])
        cols["type"].append(np.full(k, etype, dtype=object))
        cols["ts"].append(ts[keep])
        cols["did"].append(did[keep])
        cols["bc"].append(bclass[keep] if etype == "email_bounced" else np.full(k, -1))
        cols["bot"].append(machine[keep] if etype == "email_opened" else np.zeros(k, bool))
    who_all = np.concatenate(cols["who"])
    did_all = np.concatenate(cols["did"])
    types = np.concatenate(cols["type"])
    bc = np.concatenate(cols["bc"])
    classes = np.array(["hard", "soft", "block"], dtype=object)
    ids = np.char.add(np.char.add("mail", did_all.astype(str)), "-")
    is_hit = (types == "email_opened") | (types == "email_clicked")
    return pa.table(
        {
            "id": pa.array(np.char.add(ids, np.char.add("-", types.astype(str)))),
            "contact_id": pa.array(np.char.add("m", who_all.astype(str))),
            "type": pa.array(types, pa.string()),
            "ts": pa.array(np.concatenate(cols["ts"]), pa.timestamp("ms", tz="UTC")),
            "context": pa.array(np.full(len(types), "DIGITAL_CAMPAIGN", dtype=object)),
            "delivery_id": pa.array(did_all),
            "mail_group": pa.array(np.full(len(types), group, dtype=object), pa.string()),
            "bounce_class": pa.array(
                np.where(bc >= 0, classes[np.maximum(bc, 0)], None), pa.string()
            ),
            "bot": pa.array(np.concatenate(cols["bot"]), pa.bool_(), mask=~is_hit),
        }
    )


SCHEMA = Schema(profile={"email": "string"}, events={})


def build(path: Path, h: History) -> tuple[int, int]:
    """A store at ``path`` holding the history; (contacts, events)."""
    from audience.runtime.store import Store

    store = Store.init(path, SCHEMA)
    table, dom = profiles(h)
    store.ingest_profiles(table)
    n = 0
    for chunk in events(h, dom):
        n += store.ingest_events(chunk).accepted
    return h.n_contacts, n


def deliverability_story(
    path: Path, console: Console, now: dt.datetime, n_contacts: int = 40_000
) -> Path:
    """Build the mail store at ``path``, print the report and write the
    dashboard; the dashboard's path."""
    from audience.cli.report_cmds import print_pivot
    from audience.runtime.node import open_store
    from audience.runtime.report import ReportParams, build_report
    from audience.runtime.report.html import dashboard
    from audience.runtime.report.text import summary

    console.print(Rule("[bold]Deliverability[/] (the trend for recipient domains)"))
    h = History(now=now, n_contacts=n_contacts)
    contacts, n = build(path, h)
    console.print(
        f"Six months of a newsletter (Tuesdays) and a promotion (Fridays) to {contacts:,} "
        f"readers at gmail.com, libero.it, outlook.com, hotmail.it, yahoo.com, icloud.com and "
        f"{len(h.domains) - 6 + h.small} smaller domains: {n:,} email events in "
        f"[cyan]{escape(str(path))}[/]. Halfway through, libero.it starts filtering the shop."
    )
    as_of = int(now.timestamp() * 1000)
    params = ReportParams(
        as_of_ms=as_of,
        top=10,
        by="week",
        months=6,
        metrics=("sent", "block_rate", "human_open_rate", "click_rate", "complaint_rate"),
    )
    snap = open_store(path).snapshot()
    report = build_report(snap, params)
    # the month view fits a terminal; the anomalies come from the weeks
    # (as of the day before: the month that starts today has no sends yet)
    monthly = build_report(
        snap, ReportParams(as_of_ms=as_of - DAY_MS, top=10, by="month", months=6)
    )
    console.print("Block rate and unique open rate (without machine opens), by month:")
    print_pivot(monthly, "block_rate", console)
    print_pivot(monthly, "human_open_rate", console)
    console.print("By week, the anomalies:")
    for line in summary(report):
        console.print(f"  {escape(line)}", highlight=False)
    html = path / "trend.html"
    html.write_text(dashboard(report), encoding="utf-8")
    hit = [a for a in report.anomalies if a.domain == FILTERING]
    others = sorted({a.domain for a in report.anomalies} - {FILTERING})
    console.print()
    if hit:
        first = min(a.period for a in hit)
        console.print(
            f"[bold]What it says:[/] from the week of {first}, [bold]{FILTERING}[/] refuses "
            f"a fifth of the shop's messages as blocks and the readers there open far fewer "
            f"of the rest (they land in spam), while gmail.com, outlook.com and the others "
            f"carry on as before. So it is not the content or the list: {FILTERING} is "
            f"filtering this sender. Check its blocking messages (the status codes of the "
            f"bounces), slow the sends to it and ask its postmaster to review."
        )
    if others:
        console.print(f"[dim]also flagged: {escape(', '.join(others))}[/]")
    console.print(
        f"The dashboard, one chart per metric with the anomalies circled, is "
        f"[cyan]{escape(str(html))}[/] (it opens offline). The same report:"
    )
    stamp = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    console.print(f"  [bold]audience report domains {escape(str(path))} --as-of {stamp}[/]")
    return html
