"""Meta custom-audience syncs and lead forms on a sharded node: the eligible
set is every shard's, the same as one store's; a lead finds its contact in
whichever shard holds it, and its profile and event land in that shard."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from audience.integrations.meta.leads.webhook import leads_of
from audience.integrations.meta.sync.definitions import SUCCEEDED
from audience.runtime.node import ShardedNode
from audience.runtime.shards import shard_of
from audience.runtime.tracking.suppression import add as suppress
from tests import meta_leads_support as leads
from tests import meta_sync_support as sync


def test_a_sync_uploads_every_shards_eligible_contacts(tmp_path: Path) -> None:
    n = 60
    with (
        sync.world(tmp_path / "plain", n) as plain,
        sync.world(tmp_path / "sharded", n, shards=3) as sharded,
    ):
        homes = shard_of(pa.array([sync.contact(i) for i in range(n)]), 3)
        assert set(homes.tolist()) == {0, 1, 2}
        for w in (plain, sharded):
            w.create(phone_field="phone")
            suppress(w.root, sync.email_of(8), "unsubscribed")
        want, got = plain.run(), sharded.run()
        assert got.state == want.state == SUCCEEDED
        assert got.counts == want.counts and got.counts["eligible"] > 0
        assert sharded.members() == plain.members()
        # a diff run: a change in one shard only
        for w in (plain, sharded):
            w.store.ingest_profiles([{"contact_id": sync.contact(2), "consent": False}])
        want, got = plain.run(), sharded.run()
        assert got.counts == want.counts and got.counts["to_remove"] == 1
        assert sharded.members() == plain.members()


def test_leads_find_their_contacts_in_every_shard(tmp_path: Path) -> None:
    with leads.world(tmp_path, shards=3) as w:
        store = w.store()
        assert isinstance(store, ShardedNode)
        known = [f"c-known-{i}" for i in range(12)]
        store.ingest_profiles(
            [{"contact_id": c, "email": f"{c.upper()}@Example.com"} for c in known]
        )
        homes = shard_of(pa.array(known), 3)
        assert set(homes.tolist()) == {0, 1, 2}
        sent = [
            w.lead({"email": f" {c}@example.com", "first_name": f"F{i}"}, i)
            for i, c in enumerate(known)
        ]
        new = w.lead({"email": "fresh@example.com", "city": "Milan"}, 50)
        inbox = w.worker().inbox
        assert inbox.add(leads_of(w.leads.notification([*sent, new])), "webhook", w.clock()) == 13
        assert w.worker().drain() == 13
        store = w.store()
        assert isinstance(store, ShardedNode)
        owners = dict(zip(known, homes.tolist(), strict=True))
        owners[f"lead:{new['id']}"] = int(shard_of(pa.array([f"lead:{new['id']}"]), 3)[0])
        seen = {}
        for k in range(3):
            for ev in leads.lead_events(store.shard(k)):
                assert owners[ev["contact_id"]] == k  # each event in its contact's shard
                seen[ev["leadgen_id"]] = ev["contact_id"]
        assert seen == {
            **{lead["id"]: c for lead, c in zip(sent, known, strict=True)},
            new["id"]: f"lead:{new['id']}",
        }
        for i, c in enumerate(known):
            assert leads.profile(store, c)["first_name"] == f"F{i}"
        assert leads.profile(store, f"lead:{new['id']}")["city"] == "Milan"
