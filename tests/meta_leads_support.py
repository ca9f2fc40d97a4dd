"""What the lead form tests share: a Maison store with one known contact, the
fake Graph server (with leads) on loopback, a connected integration and form,
and readers for the profiles and the lead_received events the store holds."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audience.integrations.meta.fake import APP_ID, APP_SECRET, VERSION, FakeGraph, running
from audience.integrations.meta.fake.leads import FakeLeads, install
from audience.integrations.meta.graph import GraphConfig
from audience.integrations.meta.leads.forms import LeadForm, LeadForms
from audience.integrations.meta.leads.mapping import FieldMap
from audience.integrations.meta.leads.worker import LeadWorker
from audience.integrations.meta.tokens import Integrations
from audience.runtime.node import Node, open_node
from audience.runtime.plans.clock import ManualClock
from audience.server.nodes import NodeRuntime
from audience.server.profiles import _profile
from audience.snapshot import dictionary_key

EXAMPLES = Path(__file__).resolve().parents[1] / "audience" / "examples"
T0 = 1_780_000_000_000  # epoch ms (2026-05-28)
T0_S = T0 // 1000
PAGE, FORM = "5000000001", "4000000001"
TOKEN = "EAAB-leads-token-0001"
INTEGRATION = "shop-ads"
MAPPING = (
    FieldMap("email", "email", required=True),
    FieldMap("first_name", "first_name"),
    FieldMap("city", "city"),
    FieldMap("interests", "tags"),
    FieldMap("points", "loyalty_points"),
)
ANGELA = "c-angela"


@dataclass
class World:
    root: Path
    fake: FakeGraph
    leads: FakeLeads
    url: str
    clock: ManualClock
    sleeps: list[float] = field(default_factory=list)

    def config(self, **kw: Any) -> GraphConfig:
        base = {"backoff_s": 0.01, "max_retries": 2}
        return GraphConfig(
            base_url=self.url, version=VERSION, app_id=APP_ID, app_secret=APP_SECRET,
            **(base | kw),
        )  # fmt: skip

    def worker(self, **kw: Any) -> LeadWorker:
        return LeadWorker.of(
            self.root, self.clock, config=self.config(**kw), sleep=self.sleeps.append
        )

    def env(self) -> dict[str, str]:
        """The settings of a server or worker process pointed at the fake."""
        return {
            "AUDIENCE_META_GRAPH_URL": self.url,
            "AUDIENCE_META_GRAPH_VERSION": VERSION,
            "AUDIENCE_META_APP_ID": APP_ID,
            "AUDIENCE_META_APP_SECRET": APP_SECRET,
            "AUDIENCE_META_VERIFY_TOKEN": "verify-me",
            "AUDIENCE_META_BACKOFF_S": "0.01",
        }

    def store(self) -> Node:
        return open_node(self.root)  # a sharded node opens as a ShardedNode

    def connect(self, name: str = "spring", **kw: Any) -> LeadForm:
        w = self.worker()
        args: dict[str, Any] = {
            "node": "main",
            "schema": self.store().schema,
            "integration": INTEGRATION,
            "page_id": PAGE,
            "form_id": FORM,
            "fields": MAPPING,
            "source": "fb-spring-2026",
        }
        return w.forms.connect(name, **(args | kw))

    def lead(self, answers: dict[str, str | list[str]], dt_s: int = 0, **kw: Any) -> dict[str, Any]:
        return self.leads.add_lead(kw.pop("form_id", FORM), answers, T0_S + dt_s, **kw)


@contextlib.contextmanager
def world(tmp_path: Path, connect: bool = True, shards: int | None = None) -> Iterator[World]:
    """``shards``: the node a sharded node of that many shards."""
    root = tmp_path / "shop"
    if shards is None:
        store = Node.init(root, EXAMPLES / "maison.toml")
    else:
        from audience.runtime.node import ShardedNode

        store = ShardedNode.init(root, EXAMPLES / "maison.toml", shards=shards)  # type: ignore[assignment]
    store.ingest_profiles(
        [{"contact_id": ANGELA, "email": "Angela@Example.com", "first_name": "Angela"}]
    )
    clock = ManualClock(T0)
    fake = FakeGraph(now=lambda: clock() // 1000)
    fake.add_token(TOKEN)
    leads = install(fake)
    leads.add_form(FORM, PAGE)
    with running(fake) as url:
        w = World(root, fake, leads, url, clock)
        Integrations(root, w.config(), clock).connect(INTEGRATION, "act_123", TOKEN)
        if connect:
            w.connect()
        yield w


def profile(store: Node, contact_id: str) -> dict[str, Any]:
    return dict(_profile(NodeRuntime(store, 4), contact_id)["profile"])


def lead_events(store: Node) -> list[dict[str, Any]]:
    """Every lead_received event of ``store``, decoded, in time order."""
    snap = store.snapshot()
    code = snap.event_types.code("lead_received")
    props = snap.schema.events["lead_received"]
    out = []
    for part in snap.partitions:
        for i in (i for i in range(len(part)) if int(part.type[i]) == code):
            ev: dict[str, Any] = {
                "contact_id": snap.contact_ids[int(part.contact[i])],
                "ts": int(part.ts[i]),
            }
            for name, ftype in props.items():
                col = part.columns.get(name)
                if col is None or (col.valid is not None and not col.valid[i]):
                    ev[name] = None
                elif col.kind == "code":
                    ev[name] = snap.dictionaries[dictionary_key("event", name)].values[
                        int(col.values[i])
                    ]
                elif ftype == "bool":
                    ev[name] = bool(col.values[i])
                else:
                    ev[name] = int(col.values[i])
            out.append(ev)
    return sorted(out, key=lambda e: (e["ts"], e["leadgen_id"]))


# ---------------------------------------------------------------- the shared scope matrix
# (tests/test_server_auth.py): per node, a form the matrix reads and backfills and
# two it deletes; each connected form and each one the matrix connects has its own id
MATRIX_FORMS = ("Spring", "Doomed write", "Doomed other")
_WHO = ("none", "read", "write", "other")


def add_leadforms(root: Path, fake: FakeGraph, integration: str) -> None:
    leads = install(fake)
    for n, node in enumerate(("main", "other")):
        schema = Node.open(root, node).schema
        for i, name in enumerate(MATRIX_FORMS):
            form_id = f"41000000{n}{i}"
            leads.add_form(form_id, PAGE)
            LeadForms(root, ManualClock(T0)).connect(
                f"{name} {node}", node=node, schema=schema, integration=integration,
                page_id=PAGE, form_id=form_id, fields=MAPPING, source=f"fb-{node}-{i}",
            )  # fmt: skip
    for i, _ in enumerate(_WHO):
        leads.add_form(f"42000000{i}", PAGE)


def leadform_endpoints(
    who: str, node: str, integration: str
) -> list[tuple[str, str, str, Any, str]]:
    f = "/v1/leadforms/{name}"
    mine = f"/v1/leadforms/Spring {node}"
    new = {
        "name": f"New {who}",
        "integration": integration,
        "page_id": PAGE,
        "form_id": f"42000000{_WHO.index(who) if who in _WHO else 9}",
        "mapping": {"email": "email"},
        "source": f"fb-new-{who}",
    }
    return [
        ("GET", "/v1/leadforms", "/v1/leadforms", None, "read"),
        ("POST", "/v1/leadforms", "/v1/leadforms", new, "write"),
        ("GET", f, mine, None, "read"),
        ("DELETE", f, f"/v1/leadforms/Doomed {who} {node}", None, "write"),
        ("GET", f + "/leads", mine + "/leads", None, "read"),
        ("POST", f + "/backfill", mine + "/backfill", None, "write"),
    ]
