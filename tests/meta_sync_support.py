"""What the sync tests share: a store of contacts (email, phone, gender, consent), the
fake Graph server with custom audiences over real HTTP, a connected integration and a
manual clock."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audience.integrations.meta.fake import VERSION, FakeGraph, running
from audience.integrations.meta.fake.audiences import FakeAudiences, install
from audience.integrations.meta.graph import GraphConfig
from audience.integrations.meta.sync.definitions import Job
from audience.integrations.meta.sync.service import SyncService, SyncSpec
from audience.integrations.meta.sync.worker import SyncWorker
from audience.integrations.meta.tokens import Integrations
from audience.runtime.node import Node
from audience.runtime.plans.clock import ManualClock

T0 = 1_780_000_000_000  # epoch ms (2026-05-28)
TOKEN = "EAAB-sync-token-0001"
ACCOUNT = "act_42"
SCHEMA = """
[profile]
email = "string"
phone = "string"
gender = "string"
consent = "bool"
age = "int"
"""


def contact(i: int) -> str:
    return f"c{i:05d}"


def email_of(i: int) -> str:
    return f"{contact(i)}@example.com"


def sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


def profile(i: int) -> dict[str, Any]:
    """Even contacts are female; every third has not consented; every fifth has no email
    (every tenth a phone instead); every fourth has a phone too."""
    rec: dict[str, Any] = {
        "contact_id": contact(i),
        "gender": "f" if i % 2 == 0 else "m",
        "consent": i % 3 != 0,
        "age": 20 + i % 50,
    }
    if i % 5 != 0:
        rec["email"] = f"  {contact(i).upper()}@Example.com "
    if i % 10 == 0 or i % 4 == 0:
        rec["phone"] = f"+1 (555) 01{i:05d}"
    return rec


@dataclass
class World:
    root: Path
    store: Node
    fake: FakeGraph
    audiences: FakeAudiences
    clock: ManualClock
    url: str

    @property
    def config(self) -> GraphConfig:
        return GraphConfig(base_url=self.url, version=VERSION, backoff_s=0.0)

    def service(self) -> SyncService:
        return SyncService(self.root, self.clock)

    def worker(self, **kw: Any) -> SyncWorker:
        return SyncWorker(self.root, self.config, self.clock, sleep=lambda s: None, **kw)

    def create(self, **kw: Any) -> None:
        spec: dict[str, Any] = {
            "name": "women",
            "node": "main",
            "segment": 'gender = "f"',
            "integration": "ads",
            "email_field": "email",
            "consent_field": "consent",
            "audience_name": "Women (audience)",
        }
        spec.update(kw)
        self.service().create(SyncSpec(**spec))

    def run(self, name: str = "women", *, replace: bool = False) -> Job:
        job, _ = self.service().run(name, replace=replace)
        done = [j for j in self.worker().work_once() if j.id == job.id]
        assert done, "the worker did not run the job"
        return done[0]

    def members(self, name: str = "women") -> set[Any]:
        sync = self.service().defs.get(name)
        assert sync.audience_id is not None
        return set(self.audiences.audiences[sync.audience_id].members)


def expected_hashes(store: Node, pred: Any) -> set[str]:
    """The hashed emails of the contacts ``pred(profile)`` keeps (the reference)."""
    out = set()
    for rec in store_profiles(store):
        email = rec.get("email")
        if email and pred(rec):
            out.add(sha(email.strip().lower()))
    return out


def store_profiles(store: Node) -> list[dict[str, Any]]:
    snap = store.snapshot()
    from audience.runtime.triggers.batch import column_value
    from audience.snapshot import dictionary_key

    out = []
    for i, cid in enumerate(snap.contact_ids):
        rec: dict[str, Any] = {"contact_id": cid}
        for name in ("email", "phone", "gender", "consent"):
            col = snap.profile.get(name)
            d = snap.dictionaries.get(dictionary_key("profile", name))
            rec[name] = column_value(col, i, d)
        out.append(rec)
    return out


@contextmanager
def world(tmp_path: Path, n: int = 60, shards: int | None = None) -> Iterator[World]:
    """``shards``: the node a sharded node of that many shards."""
    clock = ManualClock(T0)
    fake = FakeGraph(now=lambda: clock.ms // 1000)
    auds = install(fake)
    fake.add_token(TOKEN, expires_at=T0 // 1000 + 60 * 86400)
    if shards is None:
        store = Node.init(tmp_path / "shop", SCHEMA)
    else:
        from audience.runtime.node import ShardedNode

        store = ShardedNode.init(tmp_path / "shop", SCHEMA, shards=shards)  # type: ignore[assignment]
    store.ingest_profiles([profile(i) for i in range(n)])
    assert store.path is not None
    with running(fake) as url:
        w = World(store.path, store, fake, auds, clock, url)
        Integrations(w.root, w.config, clock).connect("ads", ACCOUNT, TOKEN)
        yield w


# ---- for the API's token x endpoint matrix (tests/test_server_auth.py) -------------
def sync_body(name: str) -> dict[str, str]:
    return {
        "name": name,
        "segment": "newsletter",
        "integration": "ads",
        "email_field": "email",
        "consent_field": "newsletter",
        "audience_name": name,
    }


def add_syncs(root: Path) -> None:
    """An integration, and per node the syncs the matrix reads, runs and deletes."""
    fake = FakeGraph()
    fake.add_token(TOKEN, expires_at=2**31 - 1)
    with running(fake) as url:
        Integrations(root, GraphConfig(base_url=url, version=VERSION), ManualClock(T0)).connect(
            "ads", ACCOUNT, TOKEN
        )
    for node in ("main", "other"):
        svc = SyncService(root, ManualClock(T0))
        for name in ("Newsletter", "Doomed write", "Doomed other"):
            svc.create(SyncSpec(**{**sync_body(f"{name} {node}"), "node": node}))
        svc.run(f"Newsletter {node}")  # job 1 in main, 2 in other


def sync_endpoints(who: str, node: str) -> list[tuple[str, str, str, Any, str]]:
    s = "/v1/syncs/{name}"
    mine = f"/v1/syncs/Newsletter {node}"
    return [
        ("GET", "/v1/syncs", "/v1/syncs", None, "read"),
        ("POST", "/v1/syncs", "/v1/syncs", sync_body(f"New {who}"), "write"),
        ("GET", s, mine, None, "read"),
        ("DELETE", s, f"/v1/syncs/Doomed {who} {node}", None, "write"),
        ("POST", s + "/runs", mine + "/runs", None, "write"),
        ("GET", s + "/runs", mine + "/runs", None, "read"),
        ("GET", s + "/runs/{job_id}", mine + f"/runs/{1 if node == 'main' else 2}", None, "read"),
        ("PUT", s + "/schedule", mine + "/schedule", {"every": "every 1 day"}, "write"),
    ]
