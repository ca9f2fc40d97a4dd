"""``audience eval --cluster`` with every format, ``--fields`` and
``--explain``; the HTTP API's explain and plan previews on a server with a
cluster; ``plans preview --cluster``: a real Dask cluster of worker
processes answers, and the answers are those of one store holding the same
contacts."""

from __future__ import annotations

import concurrent.futures
import csv
import io
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed")

from audience.dist.worker import stats
from audience.runtime.evaluate import parse_as_of
from audience.runtime.node import Node, ShardedNode
from audience.runtime.plans.clock import ManualClock
from audience.runtime.plans.service import PlanService
from audience.server.app import create_app
from audience.server.auth import Sources
from audience.server.context import ServerConfig
from audience.server.serve import ServerThread
from tests.helpers.cli import run
from tests.helpers.dist import block, blocked, deadline_wait, local_cluster, waiting_calls
from tests.helpers.server_api import Client
from tests.plans_support import DAILY_DUE, DAY, RULES, build
from tests.reference.data import StoreData, random_store

TEXTS = (
    "did purchased",
    'did viewed_product where category = "shoes" at least 2 times or city = "Rome"',
    "not did purchased in last 7 days and count_distinct(category) of viewed_product >= 2",
)
# what an explain report holds that does not depend on how the contacts are split
# (the event blocks and milliseconds do)
EXPLAIN_KEYS = ("count", "universe", "rules", "operands", "plan")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with local_cluster() as client:
        yield client


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, StoreData]:
    """A store and a 3-shard store holding the same contacts and events."""
    data = random_store(23, n_contacts=250, n_events=3000)
    events, profiles = data.to_arrow()
    root = tmp_path_factory.mktemp("dist-cli")
    plain = Node.init(root / "plain", data.schema)
    sharded = ShardedNode.init(root / "sharded", data.schema, shards=3)
    for st in (plain, sharded):
        st.ingest_profiles(profiles)
        st.ingest_events(events)
    return root / "plain", root / "sharded", data


def _opened(client: Any, path: Path) -> list[str]:
    """The shards of ``path`` the cluster's workers opened."""
    return sorted(
        key
        for worker in client.run(stats).values()
        for key in worker["opens"]
        if key.startswith(str(path))
    )


def _eval(path: Path, *args: str, cluster: str | None = None) -> Any:
    more = ("--cluster", cluster) if cluster else ()
    return run("eval", str(path), *args, *more)


def _steps(report: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(s["what"], s.get("count")) for s in report["steps"]]


@pytest.mark.parametrize("text", TEXTS)
def test_every_format_with_fields_and_explain(
    cluster: Any, stores: tuple[Path, Path, StoreData], text: str
) -> None:
    plain, sharded, data = stores
    address = cluster.scheduler.address
    now = data.now.isoformat()
    fields = ",".join(data.schema.profile)
    base = ("-e", text, "--as-of", now)
    for fmt in ("count", "ids", "jsonl", "csv"):
        want = _eval(plain, *base, "--format", fmt).stdout
        got = _eval(sharded, *base, "--format", fmt, cluster=address).stdout
        assert sorted(got.splitlines()) == sorted(want.splitlines()), fmt
    # the members' profile fields, read from the shards the workers decided on
    want_rows = _eval(plain, *base, "--format", "jsonl", "--fields", fields).stdout
    got_rows = _eval(sharded, *base, "--format", "jsonl", "--fields", fields, cluster=address)
    assert sorted(got_rows.stdout.splitlines()) == sorted(want_rows.splitlines())
    assert len(want_rows.splitlines()) == int(_eval(plain, *base).stdout)
    want_csv = list(
        csv.reader(io.StringIO(_eval(plain, *base, "--format", "csv", "--fields", fields).stdout))
    )
    got_csv = list(
        csv.reader(
            io.StringIO(
                _eval(sharded, *base, "--format", "csv", "--fields", fields, cluster=address).stdout
            )
        )
    )
    assert got_csv[0] == want_csv[0] == ["contact_id", *data.schema.profile]
    assert sorted(got_csv[1:]) == sorted(want_csv[1:])
    # explain: the shards' counts summed are one store's counts
    want_doc = json.loads(_eval(plain, *base, "--format", "json", "--explain").stdout)
    for extra in ((), ("--fields", fields)):
        form = ("--format", "json") if not extra else ("--format", "jsonl")
        out = _eval(sharded, *base, *form, "--explain", *extra, cluster=address)
        if not extra:
            doc = json.loads(out.stdout)
            assert doc["count"] == want_doc["count"] and doc["as_of"] == want_doc["as_of"]
            report = doc["explain"]
            for key in EXPLAIN_KEYS:
                assert report[key] == want_doc["explain"][key], key
            assert _steps(report) == _steps(want_doc["explain"])
            assert report["shards"] == 3
        else:  # the report on stderr, the rows on stdout
            assert sorted(out.stdout.splitlines()) == sorted(want_rows.splitlines())
            assert "over 3 shards (counts and ms summed)" in out.stderr
            assert f"audience: {want_doc['count']:,} of" in out.stderr
    assert _opened(cluster, sharded) == [f"{sharded}#main#{k}" for k in range(3)]


def test_the_in_process_and_cluster_reports_agree(
    cluster: Any, stores: tuple[Path, Path, StoreData]
) -> None:
    """Blocks read and skipped too: the same shards read the same blocks."""
    _, sharded, data = stores
    base = ("-e", TEXTS[2], "--as-of", data.now.isoformat(), "--format", "json", "--explain")
    here = json.loads(_eval(sharded, *base).stdout)["explain"]
    there = json.loads(_eval(sharded, *base, cluster=cluster.scheduler.address).stdout)["explain"]
    for key in (*EXPLAIN_KEYS, "partitions", "columns", "shards"):
        assert there[key] == here[key], key
    assert _steps(there) == _steps(here)


def test_fields_on_a_cluster_are_checked_first(stores: tuple[Path, Path, StoreData]) -> None:
    _, sharded, _ = stores
    bad = run(
        "eval", str(sharded), "-e", "did purchased", "--format", "jsonl", "--fields", "nope",
        "--cluster", "tcp://127.0.0.1:9", ok=False,
    )  # fmt: skip
    assert bad.exit_code == 2 and "no profile field 'nope'" in bad.stderr


# ------------------------------------------------------------------------ server
@pytest.fixture
def served(cluster: Any, tmp_path: Path) -> Iterator[tuple[Client, Path, Path]]:
    """A server with the cluster over a 3-shard store of the plans' shop, and
    a plain store of the same contacts; plans and deliveries added to both."""
    sharded, plain = tmp_path / "sharded", tmp_path / "plain"
    for st in (build(sharded, 40, shards=3), build(plain, 40)):
        PlanService(st, ManualClock(DAILY_DUE - DAY)).add(RULES, "plans.rules")
    app = create_app(ServerConfig(sharded, cluster=cluster))
    server = ServerThread(app, threads=2).start()
    token = Sources(sharded).create("main", "test", "write")[1]
    try:
        yield Client(server.url, token), sharded, plain
    finally:
        server.stop()


def test_the_server_explains_through_the_cluster(
    cluster: Any, served: tuple[Client, Path, Path]
) -> None:
    c, sharded, plain = served
    text = 'city = "Milan" and did purchased in last 30 days or first_name = "Name3"'
    at = "2027-03-10T00:00:00Z"
    want = Node.open(plain).compile(text).evaluate(at, explain=True)
    report = want.explain
    assert report is not None
    r = c.post("/v1/evaluate", {"segment": text, "as_of": at, "explain": True, "limit": 1000})
    body = r.json()
    assert r.status == 200 and sorted(body["ids"]) == sorted(want.ids())
    for key in EXPLAIN_KEYS:
        assert body["explain"][key] == report[key], key
    assert body["explain"]["shards"] == 3
    # the workers answered: they opened the shards (nothing else asked them)
    assert _opened(cluster, sharded) == [f"{sharded}#main#{k}" for k in range(3)]
    # a page of it: the cursor's next page from the same audience
    r = c.post("/v1/evaluate", {"segment": text, "as_of": at, "explain": True, "limit": 2})
    page = r.json()
    nxt = c.post(
        "/v1/evaluate", {"segment": text, "as_of": at, "explain": True, "cursor": page["next"]}
    ).json()
    assert sorted(page["ids"] + nxt["ids"]) == sorted(want.ids())
    assert nxt["explain"]["count"] == report["count"]


def test_a_plan_preview_on_the_server_goes_through_the_cluster(
    cluster: Any, served: tuple[Client, Path, Path]
) -> None:
    from audience.runtime.plans.preview import preview

    c, sharded, plain = served
    want = preview(Node.open(plain), "Daily picks", DAILY_DUE)
    r = c.get(f"/v1/plans/{'Daily%20picks'}/preview?at={DAILY_DUE}")
    got = r.json()
    assert r.status == 200, got
    for key in ("audience", "without_email", "held", "held_by_cap", "to_send"):
        assert got[key] == want[key], key
    assert set(got["samples"]["to_send"]) == set(want["samples"]["to_send"])
    assert _opened(cluster, sharded) == [f"{sharded}#main#{k}" for k in range(3)]


def test_plans_preview_with_cluster(cluster: Any, tmp_path: Path) -> None:
    sharded, plain = tmp_path / "sharded", tmp_path / "plain"
    for st in (build(sharded, 40, shards=3), build(plain, 40)):
        PlanService(st, ManualClock(DAILY_DUE - DAY)).add(RULES, "plans.rules")
    args = ("Daily picks", "--when", str(DAILY_DUE), "--format", "json")
    want = json.loads(run("plans", "preview", str(plain), *args).stdout)
    address = cluster.scheduler.address
    got = json.loads(run("plans", "preview", str(sharded), *args, "--cluster", address).stdout)
    for key in ("audience", "without_email", "held", "held_by_cap", "to_send", "at"):
        assert got[key] == want[key], key
    assert _opened(cluster, sharded) == [f"{sharded}#main#{k}" for k in range(3)]
    bad = run("plans", "preview", str(plain), *args, "--cluster", address, ok=False)
    assert bad.exit_code == 1 and "is not sharded; --cluster needs one" in bad.stderr
    workers = run("plans", "preview", str(sharded), *args, "--workers", "2", ok=False)
    assert workers.exit_code == 2 and "--workers goes with --cluster local" in workers.stderr


def test_a_worker_killed_mid_explain_changes_nothing(
    cluster: Any, stores: tuple[Path, Path, StoreData]
) -> None:
    """Last in this file: it kills one of the module's workers (its nanny
    starts another)."""
    from distributed import Event

    from audience.dist import ClusterStore
    from audience.dist.details import explained

    plain, sharded, data = stores
    text = TEXTS[1]
    want = Node.open(plain).compile(text).evaluate(data.now, explain=True)
    store = ClusterStore(ShardedNode.open(sharded), cluster)
    program = store.compile(text).program
    now_ms = parse_as_of(data.now)
    explained(store, program, now_ms)  # the shards open
    victim = next(iter(store.owners().values()))
    pid = cluster.run(os.getpid, workers=[victim])[victim]
    # the victim's thread and shards held: the query's direct call waits for them
    gate = f"audience-test-gate-{time.monotonic_ns()}"
    blocker = cluster.submit(block, gate, workers=[victim], allow_other_workers=False, pure=False)
    deadline_wait(lambda: blocked(cluster, victim), "the blocker")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        query = pool.submit(explained, store, program, now_ms)
        deadline_wait(lambda: waiting_calls(cluster, victim) > 0, "the query's call")
        os.kill(pid, signal.SIGKILL)
        got, _ = query.result(timeout=120)
    blocker.cancel()
    Event(gate, client=cluster).set()
    assert sorted(got.ids()) == sorted(want.ids())
    assert got.explain is not None and want.explain is not None
    for key in EXPLAIN_KEYS:
        assert got.explain[key] == want.explain[key], key
    deadline_wait(lambda: len(cluster.scheduler_info()["workers"]) == 2, "the nanny's restart")
