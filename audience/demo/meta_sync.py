"""The custom audience part of the ads demo (audience.demo.meta): the seed's
"Female contacts for the ad audience", with newsletter consent, matched by
email, sent to a new custom audience of the fake Graph API; then, a day later,
the scheduled run uploads only the difference."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from audience.dsl.formatter import format_text
from audience.integrations.meta.graph import GraphConfig
from audience.integrations.meta.sync.definitions import Job, describe
from audience.integrations.meta.sync.service import SyncService, SyncSpec
from audience.integrations.meta.sync.worker import SyncWorker
from audience.integrations.meta.tokens import DAY_MS, Integrations
from audience.runtime.node import Node
from audience.runtime.plans.clock import ManualClock

SEGMENT = "Female contacts for the ad audience"
CONDITION = 'gender = "female" and email is set'  # the seed segment's
SYNC = "Women by email"
AUDIENCE = "Maison women (email)"
# the day's changes: three new subscribers, two typing their address wrong (and
# one subscriber in the audience leaving the newsletter)
NEW_WOMEN = [
    {"contact_id": f"ads-new-{i}", "gender": "female", "newsletter": True, "email": email}
    for i, email in enumerate(
        (
            "marta.conti@example.com",
            " Chiara.Verdi@Example.com ",
            "irene.galli@example.com",
            "paola.neri@",
            "anna.rosa at example.com",
        )
    )
]


def sync_story(
    root: Path,
    store: Node,
    ints: Integrations,
    config: GraphConfig,
    clock: ManualClock,
    console: Console,
    integration: str,
) -> list[Job]:
    """Create the sync, run it, change the day's profiles, run the scheduled diff."""
    from audience.demo.run import seed_segments

    seg = next(s for s in seed_segments() if s.name == SEGMENT)
    store.save_segment(seg.name, format_text(seg))
    service = SyncService(root, clock)
    sync = service.create(
        SyncSpec(
            name=SYNC,
            node=store.node,
            segment=SEGMENT,
            integration=integration,
            email_field="email",
            consent_field="newsletter",
            audience_name=AUDIENCE,
            schedule="every 1 day",
        )
    )
    console.print(
        f"  a sync [bold]{escape(sync.name)}[/]: the segment {escape(repr(SEGMENT))}, those "
        f"with newsletter consent, matched by email (SHA-256), to a new custom audience "
        f"{escape(repr(AUDIENCE))}, every day",
        soft_wrap=True,
    )
    service.run(SYNC)
    worker = SyncWorker(root, config, clock, holder="demo")
    jobs = worker.work_once()  # what `audience syncs work` and the scheduler do
    c = jobs[0].counts
    audience_id = service.defs.get(SYNC).audience_id or ""
    status = ints.call(
        integration,
        lambda g: g.get(audience_id, {"fields": "approximate_count_lower_bound,operation_status"}),
    )
    console.print(f"  run now: {escape(describe(jobs[0]))}", soft_wrap=True)
    console.print(
        f"    of {c['segment']:,} in the segment, {c.get('no_consent', 0):,} without consent; "
        f"the platform's audience {audience_id} now counts about "
        f"{status['approximate_count_lower_bound']:,} "
        f"({escape(status['operation_status']['description'])})",
        soft_wrap=True,
    )
    # one of those the first run sent (the segment's condition, with consent)
    sent = store.compile(f"({CONDITION}) and newsletter = true").evaluate().ids()
    store.ingest_profiles([*NEW_WOMEN, {"contact_id": sent[0], "newsletter": False}])
    clock.advance(DAY_MS)
    jobs += worker.work_once()
    d = jobs[-1]
    console.print(
        "  a day later, with 5 new subscribers (2 with a mistyped address) and one who left "
        f"the newsletter, the scheduled run ({d.origin}): {escape(describe(d))}",
        soft_wrap=True,
    )
    invalid = ", ".join(f"{k} {n}" for k, n in sorted(d.counts.get("invalid", {}).items()))
    console.print(f"    invalid entries, not sent: {escape(invalid or 'none')}")
    return jobs
