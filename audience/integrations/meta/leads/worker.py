"""The lead worker: takes inbox rows with a lease and stores each lead.

For a lead: fetch it (``GET /{leadgen_id}``) unless the backfill already did,
map its answers (mapping.py), choose its contact (the one whose match field,
email by default, holds the lead's value, else ``lead:{leadgen_id}``), upsert
the profile, ingest a ``lead_received`` event whose id is
``lead_received:{leadgen_id}``, and mark the row done.  The fetched lead and
the chosen contact are written to the row before the ingests, so a worker
killed anywhere is replaced by one making the same decisions: the profile
upsert writes the same values again and the store drops the event's second
copy (event ids are unique), so a lead is stored once, or retried.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from audience.integrations.meta.graph import GraphError, TokenInvalid
from audience.integrations.meta.leads.config import graph_config
from audience.integrations.meta.leads.db import leads_path
from audience.integrations.meta.leads.forms import NOT_FOUND_CODE, LeadForm, LeadForms
from audience.integrations.meta.leads.inbox import (
    DONE,
    FAILED,
    UNROUTED,
    Finished,
    Inbox,
    InboxLead,
)
from audience.integrations.meta.leads.mapping import LEAD_EVENT, field_values, map_lead
from audience.integrations.meta.tokens import IntegrationError, Integrations
from audience.runtime.plans.clock import Clock, wall_clock
from audience.snapshot import dictionary_key

if TYPE_CHECKING:
    from audience.runtime.node import Node
    from audience.snapshot import Snapshot

log = logging.getLogger("audience.leads")

FETCH_FIELDS = "id,created_time,ad_id,adset_id,campaign_id,form_id,field_data,is_organic,platform"
# leads fetched at once (a round trip each); more gains little and overflows small
# listen backlogs (the stdlib servers queue 5 connections)
FETCHERS = 4
RETRY_MS = (10_000, 60_000, 300_000, 1_800_000, 3_600_000)  # by attempt, then hourly
# test-only: "STEP:N" halts (to be killed) when the Nth lead of this process has
# passed STEP (fetched, profile or event): the crash tests kill the worker there
HALT_ENV = "AUDIENCE_LEADS_TEST_HALT_AT"
HALTED_FILE = "leads-halted"


@dataclass
class LeadWorker:
    integrations: Integrations
    forms: LeadForms
    inbox: Inbox
    store_for: Callable[[str], Node]
    clock: Clock = wall_clock
    lease_ms: int = 60_000
    holder: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    )
    _counts: dict[str, int] = field(default_factory=dict)  # leads past each step

    @classmethod
    def of(cls, store_root: Path | str, clock: Clock = wall_clock, **kw: Any) -> LeadWorker:
        from audience.runtime.tracking.outbox import node_stores

        return cls(
            Integrations(
                store_root, kw.pop("config", None) or graph_config(), clock, kw.pop("sleep", None)
            ),
            LeadForms(store_root, clock),
            Inbox(store_root),
            kw.pop("store_for", None) or node_stores(store_root),
            clock,
            **kw,
        )

    def run_once(self, limit: int = 50) -> int:
        """Store up to ``limit`` due leads (one profile and one event ingest per
        node for all of them); returns how many were taken."""
        rows = self.inbox.claim(self.holder, self.clock(), self.lease_ms, limit)
        ready: dict[str, list[tuple[InboxLead, LeadForm, dict[str, Any]]]] = {}
        finished: list[Finished] = []
        routed: list[tuple[InboxLead, LeadForm]] = []
        for row in rows:
            form = self.forms.by_form_id(row.form_id) if row.form_id else None
            if form is None:
                finished.append(Finished(row.leadgen_id, UNROUTED, "no connected form"))
            else:
                routed.append((row, form))
        # the platform answers each lead in a round trip: several at once
        wanted = [(row, form) for row, form in routed if row.lead is None]
        answers: dict[str, dict[str, Any] | Exception] = {}
        if wanted:
            with ThreadPoolExecutor(min(FETCHERS, len(wanted))) as pool:
                for (row, _), got in zip(wanted, pool.map(self._fetch, wanted), strict=True):
                    answers[row.leadgen_id] = got
        fetched: list[tuple[str, dict[str, Any]]] = []
        for row, form in routed:
            got = row.lead if row.lead is not None else answers[row.leadgen_id]
            if isinstance(got, Exception):
                self._failed(row, got)
                continue
            if row.lead is None:
                fetched.append((row.leadgen_id, {"lead": got}))
            ready.setdefault(form.node, []).append((row, form, got))
        self.inbox.note(fetched)
        self.inbox.finish(finished, self.clock())
        self._maybe_halt("fetched", len(rows))
        for node, items in ready.items():
            self._store(node, items)
        return len(rows)

    def drain(self) -> int:
        total = 0
        while n := self.run_once():
            total += n
        return total

    def _fetch(self, job: tuple[InboxLead, LeadForm]) -> dict[str, Any] | Exception:
        row, form = job
        try:
            # through call(): a refused token marks the integration inactive
            lead: dict[str, Any] = self.integrations.call(
                form.integration, lambda c: c.get(row.leadgen_id, {"fields": FETCH_FIELDS})
            )
            return lead
        except (GraphError, IntegrationError) as err:
            return err

    def _store(self, node: str, items: list[tuple[InboxLead, LeadForm, dict[str, Any]]]) -> None:
        store = self.store_for(node)
        contacts = Contacts(store)
        mapped = [
            map_lead(store.schema, form.fields, field_values(lead.get("field_data")))
            for _, form, lead in items
        ]
        chosen: list[str] = []
        for (row, form, _), m in zip(items, mapped, strict=True):
            value = m.profile.get(form.match_field) if form.match_field else None
            chosen.append(
                row.contact_id or contacts.choose(form.match_field, value, f"lead:{row.leadgen_id}")
            )
        self.inbox.note(
            (row.leadgen_id, {"contact_id": c, "form": form.name, "node": node})
            for (row, form, _), c in zip(items, chosen, strict=True)
        )
        profiles = []
        for (_, form, _), m, contact in zip(items, mapped, chosen, strict=True):
            profile = {"contact_id": contact, **m.profile}
            if form.source_field:
                profile[form.source_field] = form.source
            profiles.append(profile)
        unmapped = [dict(m.unmapped) for m in mapped]
        report = store.ingest_profiles(profiles)
        if report.rejected:  # the mapping's conversions should prevent it: kept visible
            for r in report.rejects:
                i = r.line - 1  # 1-based position in the list
                unmapped[i]["(profile)"] = r.reason
            store.ingest_profiles(
                [{"contact_id": profiles[r.line - 1]["contact_id"]} for r in report.rejects]
            )
        self._maybe_halt("profile", len(items))
        store.ingest_events(
            [
                lead_event(form, row, lead, contact, u, m.missing, store)
                for (row, form, lead), m, contact, u in zip(
                    items, mapped, chosen, unmapped, strict=True
                )
            ]
        )
        self._maybe_halt("event", len(items))
        self.inbox.finish(
            (
                Finished(row.leadgen_id, DONE, None, u, m.missing)
                for (row, _, _), m, u in zip(items, mapped, unmapped, strict=True)
            ),
            self.clock(),
        )

    def _maybe_halt(self, step: str, n: int) -> None:
        self._counts[step] = before = self._counts.get(step, 0)
        self._counts[step] += n
        want = os.environ.get(HALT_ENV)
        if want and n:
            at_step, _, at = want.partition(":")
            if at_step == step and before < int(at) <= before + n:
                (self.inbox.path.parent / HALTED_FILE).write_text(f"{step}\n")
                while True:  # until killed
                    time.sleep(1)

    def _failed(self, row: InboxLead, err: Exception) -> None:
        now = self.clock()
        if isinstance(err, GraphError) and err.code == NOT_FOUND_CODE:
            self.inbox.finish([Finished(row.leadgen_id, FAILED, str(err))], now)
            return
        wait = RETRY_MS[min(row.attempts, len(RETRY_MS) - 1)]
        if isinstance(err, TokenInvalid):  # re-authorizing takes a person: wait longer
            wait = RETRY_MS[-1]
        self.inbox.retry(row.leadgen_id, str(err), now + wait)
        log.warning("lead %s not stored yet: %s", row.leadgen_id, err)


class Contacts:
    """Existing contacts by a match field's value (case and surrounding spaces
    ignored: addresses are), read from one snapshot (of every shard, on a
    sharded node); the contacts chosen for this batch's leads are remembered,
    so two leads of one new person share one."""

    def __init__(self, store: Node) -> None:
        self.store = store
        self._snaps: list[Snapshot] | None = None
        # (field, snapshot's position) -> value -> codes
        self._index: dict[tuple[str, int], dict[str, list[int]]] = {}
        self._chosen: dict[tuple[str, str], str] = {}

    def choose(self, match_field: str | None, value: Any, new_id: str) -> str:
        if not match_field or not isinstance(value, str) or not value.strip():
            return new_id
        key = (match_field, value.strip().lower())
        if key not in self._chosen:
            self._chosen[key] = self._find(*key) or new_id
        return self._chosen[key]

    def _find(self, match_field: str, value: str) -> str | None:
        if self._snaps is None:
            self._snaps = self.store.snapshots()
        found: list[str] = []
        for k, snap in enumerate(self._snaps):
            col = snap.profile.get(match_field)
            if col is None or col.kind != "code":
                continue
            if (match_field, k) not in self._index:
                words = snap.dictionaries[dictionary_key("profile", match_field)].values
                index: dict[str, list[int]] = {}
                for code, word in enumerate(words):
                    index.setdefault(word.strip().lower(), []).append(code)
                self._index[match_field, k] = index
            codes = self._index[match_field, k].get(value)
            if not codes:
                continue
            hit = np.isin(col.values, codes)
            if col.valid is not None:
                hit &= col.valid
            found += [snap.contact_ids[int(i)] for i in np.flatnonzero(hit)]
        return min(found) if found else None  # the smallest id when several match


def lead_event(
    form: LeadForm,
    row: InboxLead,
    lead: dict[str, Any],
    contact: str,
    unmapped: dict[str, Any],
    missing: tuple[str, ...],
    store: Node,
) -> dict[str, Any]:
    import json

    notice = row.notice or {}
    created = created_ms(lead.get("created_time")) or created_ms(notice.get("created_time"))
    when = created if created is not None else row.received_ms
    meta: dict[str, Any] = {
        "ad_id": lead.get("ad_id") or notice.get("ad_id"),
        # "adgroup" is the Graph API's older name for an ad
        "adgroup_id": notice.get("adgroup_id") or lead.get("ad_id"),
        "form_id": row.form_id or lead.get("form_id"),
        "page_id": row.page_id or notice.get("page_id"),
        "leadgen_id": row.leadgen_id,
        "created_time": when,
    }
    props: dict[str, Any] = {
        k: _text(v) if k != "created_time" else v for k, v in meta.items() if k in form.metadata
    }
    props |= {
        "leadgen_id": row.leadgen_id,
        "source": form.source,
        "form": form.name,
        "organic": bool(lead.get("is_organic")) if "is_organic" in lead else None,
        "platform": _text(lead.get("platform")),
        "campaign_id": _text(lead.get("campaign_id")),
        "adset_id": _text(lead.get("adset_id")),
        "unmapped": json.dumps(unmapped, ensure_ascii=False, sort_keys=True) if unmapped else None,
        "missing": ", ".join(missing) or None,
    }
    declared = store.schema.events.get(LEAD_EVENT, {})
    return {
        "id": f"{LEAD_EVENT}:{row.leadgen_id}",
        "contact_id": contact,
        "type": LEAD_EVENT,
        "ts": when,
        "context": "SOCIAL",
        **{k: v for k, v in props.items() if k in declared},
    }


def created_ms(value: Any) -> int | None:
    """A lead's creation time: unix seconds in notifications, ISO text
    (``2026-12-03T09:00:00+0000``) on the lead."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value) * 1000
    if isinstance(value, str) and value:
        for fmt in ("%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z"):
            with contextlib.suppress(ValueError):
                return int(dt.datetime.strptime(value, fmt).timestamp() * 1000)
    return None


def _text(v: Any) -> str | None:
    return None if v is None else str(v)


class LeadThread:
    """A daemon thread running the worker, woken by ``notify`` (a webhook just
    stored leads) and every ``poll_s`` seconds (retries, what others left)."""

    def __init__(self, worker: LeadWorker, poll_s: float = 1.0) -> None:
        self.worker = worker
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="lead-worker")
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            try:
                while self.worker.run_once() and not self._stop.is_set():
                    pass
            except Exception:  # logged; the rows stay pending for the next round
                log.exception("leads not stored yet")
                self._stop.wait(self.poll_s)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)


def run_worker(
    store_root: Path,
    parent: int | None = None,
    poll_s: float = 0.5,
    lease_s: float = 60.0,
    once: bool = False,
) -> int:
    """Store pending leads until the process ``parent`` is gone (or, with
    ``once``, until none is due); returns how many were taken."""

    def alive() -> bool:
        return parent is None or os.getppid() == parent

    # a store that never had a lead form gets no leads database from the server
    while not once and alive() and not leads_path(store_root).exists():
        time.sleep(poll_s)
    worker = LeadWorker.of(store_root, lease_ms=int(lease_s * 1000))
    total = 0
    while alive():
        try:
            n = worker.run_once()
        except Exception:  # logged; the rows stay pending for the next round
            if once:
                raise
            log.exception("leads not stored yet")
            n = 0
        total += n
        if once and n == 0:
            break
        if n == 0:
            time.sleep(poll_s)
    return total


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Store the pending leads of a store.")
    ap.add_argument("store", type=Path)
    ap.add_argument("--parent", type=int, help="stop when this process is gone")
    ap.add_argument("--lease-s", type=float, default=60.0)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)  # background work: the server's answers get the CPU first
    with contextlib.suppress(KeyboardInterrupt):
        run_worker(args.store, args.parent, lease_s=args.lease_s)


if __name__ == "__main__":
    main()
