"""``audience serve --cluster`` and ``audience scheduler --cluster``: a real
server on loopback whose sharded node is evaluated by a real Dask cluster of
worker processes (evaluate, pages and cursors, Arrow, saved segments'
audiences), and plans whose audience the cluster decides; the answers those
of one store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

pytest.importorskip("distributed")

from audience.demo import shop
from audience.demo.run import EXAMPLES
from audience.dist.worker import stats
from audience.runtime.node import Node, ShardedNode
from audience.runtime.plans.clock import ManualClock
from audience.runtime.plans.scheduler import Scheduler
from audience.runtime.plans.service import PlanService
from audience.server.app import create_app
from audience.server.auth import Sources
from audience.server.context import ServerConfig
from audience.server.serve import ServerThread
from tests.helpers.cli import run
from tests.helpers.dist import local_cluster
from tests.helpers.server_api import NOW, NOW_ISO, RED_SHOES, Client
from tests.plans_support import DAY, ONCE_DUE, RULES, build, check_spring_run

N_CONTACTS = 300
PLAN_CONTACTS = 40
TEXTS = (RED_SHOES, 'city = "Milan"', "did purchased in last 30 days")


def _fill(st: Node | ShardedNode) -> None:
    st.ingest_profiles(shop.profiles(N_CONTACTS, now=NOW))
    for chunk in shop.events(4_000, N_CONTACTS, now=NOW):
        st.ingest_events(chunk)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with local_cluster() as client:
        yield client


@pytest.fixture(scope="module")
def served(
    cluster: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Client, Node, Any, Any]]:
    client = cluster
    root = tmp_path_factory.mktemp("dist-server")
    sharded = ShardedNode.init(root / "sharded", EXAMPLES / "maison.toml", shards=3)
    plain = Node.init(root / "plain", EXAMPLES / "maison.toml")
    for st in (sharded, plain):
        _fill(st)
    # one audience kept per node: a cursor's second page is often not in it
    config = ServerConfig(root / "sharded", default_limit=50, audience_cache=1, cluster=client)
    app = create_app(config)
    server = ServerThread(app, threads=2).start()
    token = Sources(root / "sharded").create("main", "test", "write")[1]
    try:
        yield Client(server.url, token), plain, client, app
    finally:
        server.stop()
    assert client.status == "running"  # the caller's client, left open by the server


def _opened(client: Any, path: Path) -> list[str]:
    """The shards of ``path`` opened on the cluster's workers."""
    return [
        key
        for worker in client.run(stats).values()
        for key in worker["opens"]
        if key.startswith(str(path))
    ]


def test_evaluate_goes_through_the_cluster(served: Any) -> None:
    c, plain, client, app = served
    node = app.extensions["audience"].nodes.get("main")
    assert node.cluster is not None
    for text in TEXTS:
        want = plain.compile(text).evaluate(as_of=NOW_ISO).ids()
        body = c.post("/v1/evaluate", {"segment": text, "as_of": NOW_ISO, "limit": 100_000}).json()
        assert body["count"] == len(want) and sorted(body["ids"]) == sorted(want)
    assert sorted(_opened(client, node.store.path)) == [
        f"{node.store.path}#main#{k}" for k in range(3)
    ]


def test_cursor_pages_agree_with_the_in_process_path(served: Any) -> None:
    """Pages of 7: the first from the workers, the next ones from the cache
    or (another query having pushed it out) again in process over the same
    shard versions: every id once, in one order."""
    c, plain, _, _ = served
    want = plain.compile(RED_SHOES).evaluate(as_of=NOW_ISO).ids()
    body = {"segment": RED_SHOES, "as_of": NOW_ISO, "limit": 7}
    r = c.post("/v1/evaluate", body).json()
    ids, versions = list(r["ids"]), {r["version"]}
    while r["next"] is not None:
        c.post("/v1/evaluate", {"segment": TEXTS[1], "limit": 1})  # evicts the audience
        r = c.post("/v1/evaluate", {**body, "cursor": r["next"]}).json()
        ids += r["ids"]
        versions.add(r["version"])
    assert sorted(ids) == sorted(want) and len(ids) == len(want) and len(versions) == 1


def test_arrow_and_saved_segments_through_the_cluster(served: Any) -> None:
    c, plain, _, _ = served
    want = plain.compile(TEXTS[2]).evaluate(as_of=NOW_ISO).ids()
    r = c.post("/v1/evaluate", {"segment": TEXTS[2], "as_of": NOW_ISO, "format": "arrow"})
    assert r.status == 200
    table = pa.ipc.open_stream(r.body).read_all()
    assert sorted(table.column("contact_id").to_pylist()) == sorted(want)
    assert r.headers["x-audience-count"] == str(len(want))
    assert c.post("/v1/segments", {"text": 'segment "milan" { city = "Milan" }'}).status == 201
    got = c.get(f"/v1/segments/milan/audience?as_of={NOW_ISO}&limit=100000").json()
    milan = plain.compile(TEXTS[1]).evaluate(as_of=NOW_ISO).ids()
    assert sorted(got["ids"]) == sorted(milan)


def test_explain_is_answered_by_the_cluster(served: Any) -> None:
    c, _, _, _ = served
    r = c.post("/v1/evaluate", {"segment": RED_SHOES, "as_of": NOW_ISO, "explain": True})
    assert r.status == 200 and r.json()["explain"]["shards"] == 3


def test_a_cluster_audience_counts_every_contact(served: Any) -> None:
    _, plain, _, app = served
    node = app.extensions["audience"].nodes.get("main")
    aud = node.cluster.compile(TEXTS[1]).evaluate(NOW_ISO)
    total = len(plain.snapshot().contact_ids)
    assert f"{len(aud):,} of {total:,} contacts" in repr(aud)


def test_serve_cluster_options_say_what_is_wrong(tmp_path: Path) -> None:
    Node.init(tmp_path / "s", EXAMPLES / "maison.toml")
    workers = run("serve", str(tmp_path / "s"), "--workers", "2", ok=False)
    assert workers.exit_code == 2 and "--workers goes with --cluster local" in workers.stderr
    bad = run("serve", str(tmp_path / "s"), "--cluster", "nowhere", "--port", "0", ok=False)
    assert bad.exit_code == 1 and "scheduler address (tcp://host:port)" in bad.stderr


def test_a_plan_audience_decided_by_the_cluster(cluster: Any, tmp_path: Path) -> None:
    store = build(tmp_path / "shop", PLAN_CONTACTS, shards=3)
    clock = ManualClock(ONCE_DUE - DAY)
    svc = PlanService(store, clock)
    svc.add(RULES, "plans.rules")
    svc.make_ready("Spring reminder")
    sched = Scheduler(store.path, clock=clock, cluster=cluster)
    try:
        clock.ms = ONCE_DUE + 500
        [run] = sched.tick().ran
    finally:
        sched.close()
    check_spring_run(store.path, run, PLAN_CONTACTS)
    assert len(_opened(cluster, store.path)) == 3  # the workers decided it
    assert cluster.status == "running"


def test_scheduler_cluster_options_say_what_is_wrong(tmp_path: Path) -> None:
    Node.init(tmp_path / "s", EXAMPLES / "maison.toml")
    workers = run("scheduler", str(tmp_path / "s"), "--once", "--workers", "2", ok=False)
    assert workers.exit_code == 2 and "--workers goes with --cluster local" in workers.stderr
    bad = run("scheduler", str(tmp_path / "s"), "--once", "--cluster", "nowhere", ok=False)
    assert bad.exit_code == 1 and "scheduler address (tcp://host:port)" in bad.stderr
