"""Backfill: the leads of a form created after its watermark, read from
``GET /{form_id}/leads`` (filtered on ``time_created``, cursor paging), put in
the inbox (the same dedup as the webhook's) and stored by the worker.

The watermark moves only over leads that are stored: to the newest creation
time before which every fetched lead is done, so a lead that failed to store
is fetched again next time.  The filter starts one second before the
watermark (the platform compares whole seconds; a second lead created in the
watermark's second would otherwise be skipped): the overlap is deduplicated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from audience.integrations.meta.leads.inbox import DONE, FAILED
from audience.integrations.meta.leads.worker import FETCH_FIELDS, LeadWorker, created_ms

PAGE_LIMIT = 100


@dataclass(frozen=True)
class Backfill:
    form: str
    fetched: int
    new: int  # not in the inbox before (the others came by webhook or an earlier backfill)
    stored: int  # leads the worker stored during this backfill (any form's)
    watermark: int  # unix seconds, after

    def to_json(self) -> dict[str, Any]:
        return {
            "form": self.form,
            "fetched": self.fetched,
            "new": self.new,
            "duplicates": self.fetched - self.new,
            "stored": self.stored,
            "watermark": self.watermark,
        }


def backfill(worker: LeadWorker, name: str, node: str | None = None) -> Backfill:
    form = worker.forms.get(name, node)
    since = form.watermark_s
    params = {
        "fields": FETCH_FIELDS,
        "limit": PAGE_LIMIT,
        "filtering": [
            {"field": "time_created", "operator": "GREATER_THAN", "value": max(since - 1, 0)}
        ],
    }
    leads = worker.integrations.call(
        form.integration, lambda c: list(c.pages(f"{form.form_id}/leads", params))
    )
    rows = [(str(lead["id"]), form.form_id, form.page_id, None, lead) for lead in leads]
    new = worker.inbox.add(rows, "backfill", worker.clock())
    stored = worker.drain()
    watermark = since
    times = sorted(
        ((created_ms(lead.get("created_time")) or 0) // 1000, str(lead["id"])) for lead in leads
    )
    states = worker.inbox.states(lid for _, lid in times)
    for t, lid in times:
        if states[lid] not in (DONE, FAILED):
            break
        watermark = max(watermark, t)
    worker.forms.advance(form.name, watermark)
    return Backfill(form.name, len(leads), new, stored, watermark)
