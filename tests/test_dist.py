"""Segments over contact shards on a real Dask cluster (worker processes):
the same answers as one store, a worker killed mid-query, shards kept open
across queries, kernels never compiled after a worker's warm-up."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("distributed")

from distributed import Event

import audience
from audience.dist import ClusterStore, QueryTimes
from audience.dist.direct import ping_all
from audience.runtime.evaluate import compile_condition, parse_as_of
from audience.runtime.node import Node, ShardedNode
from audience.runtime.shards import ShardProgram
from tests.helpers.cli import run
from tests.helpers.dist import block, blocked, deadline_wait, local_cluster, waiting_calls
from tests.reference.data import StoreData, random_store, stores
from tests.reference.programs import GeneratedProgram, programs

# segments that between them run every kind of kernel: scans, counts, sums,
# recency, sequences, distinct counts, strings and profile predicates
KINDS = (
    "did purchased",
    'did viewed_product where category = "shoes" at least 2 times',
    "not did purchased in last 7 days",
    "did viewed_product then purchased within 3 days",
    "sum(amount) of purchased in last 90 days > 20",
    "last viewed_product in last 10 days",
    "count_distinct(category) of viewed_product >= 2",
    'city = "Rome" or email ends with "example.com"',
)


def _one_store(data: StoreData) -> tuple[Node, pa.Table, pa.Table]:
    events, profiles = data.to_arrow()
    return Node.from_arrow(events, profiles, data.schema), events, profiles


def _sharded(
    root: Path, data: StoreData, shards: int, events: pa.Table, profiles: pa.Table
) -> ShardedNode:
    store = ShardedNode.init(root, data.schema, shards=shards)
    store.ingest_profiles(profiles)
    store.ingest_events(events)
    return store


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with local_cluster() as client:
        yield client


@pytest.fixture(scope="module")
def shop(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    data = random_store(17, n_contacts=300, n_events=4000)
    one, events, profiles = _one_store(data)
    root = tmp_path_factory.mktemp("shop") / "store"
    _sharded(root, data, 4, events, profiles)
    store = ClusterStore(ShardedNode.open(root), cluster)
    yield store, one, data


def _answer(store: ClusterStore, text: str, now: Any) -> set[str]:
    return set(store.compile(text).evaluate(now).ids())


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    data=stores(max_contacts=10, max_events=60),
    prog=programs(),
    shards=st.sampled_from((1, 2, 4)),
)
def test_sharded_answer_equals_the_one_store_answer(
    cluster: Any, data: StoreData, prog: GeneratedProgram, shards: int
) -> None:
    one, events, profiles = _one_store(data)
    compiled = compile_condition(
        prog.segment.cond,
        data.schema,
        timezone=prog.segment.tz_name,
        segment_resolver=prog.saved.get,
    )
    want = set(compiled.evaluate(one.snapshot(), data.now).ids())
    with tempfile.TemporaryDirectory() as tmp:
        sharded = _sharded(Path(tmp) / "s", data, shards, events, profiles)
        store = ClusterStore(sharded, cluster)
        program = ShardProgram(
            compiled.program, compiled.timezone, compiled.schema_version, compiled.plan_text
        )
        before = _channel_calls(store)
        got, times = store.run(program, parse_as_of(data.now))
        # each owner answered through its channel
        assert times.failures == ()
        assert _channel_calls(store) - before == len(set(store.owners().values()))
        store.client.run(_forget)  # the next example's shards are other directories
    assert set(got.ids()) == want, compiled.plan_text
    assert len(times.shards_ms) == shards


def _channel_calls(store: ClusterStore) -> int:
    return sum(s["direct_calls"]["channel"] for s in store.worker_stats().values())


def _forget() -> int:
    from audience.dist.worker import forget_shards

    return forget_shards()


def test_the_known_segments_agree(shop: Any) -> None:
    store, one, data = shop
    for text in KINDS:
        want = set(one.compile(text).evaluate(data.now).ids())
        assert _answer(store, text, data.now) == want, text


def test_the_task_path_agrees(shop: Any) -> None:
    store, one, data = shop
    tasks = ClusterStore(store.sharded, store.client, direct=False)
    served = {w: s["direct_calls"]["served"] for w, s in store.worker_stats().items()}
    for text in KINDS[:4]:
        want = set(one.compile(text).evaluate(data.now).ids())
        assert _answer(tasks, text, data.now) == want, text
    assert {w: s["direct_calls"]["served"] for w, s in store.worker_stats().items()} == served


def test_shards_stay_open_across_queries(shop: Any) -> None:
    store, _, data = shop
    _answer(store, "did purchased", data.now)  # every shard open somewhere
    before = {w: s["opens"] for w, s in store.worker_stats().items()}
    for text in KINDS[:3]:
        _answer(store, text, data.now)
    after = {w: s["opens"] for w, s in store.worker_stats().items()}
    assert after == before
    opened = [
        key for opens in after.values() for key in opens if key.startswith(str(store.sharded.path))
    ]
    assert sorted(opened) == sorted(set(opened)) and len(opened) == 4
    seg = store.compile("did purchased")
    seg.evaluate(data.now)
    assert seg.last_times is not None and set(seg.last_times.opens_ms) == {0.0}


def test_queries_go_straight_to_the_workers(shop: Any) -> None:
    store, one, data = shop
    before = {w: s["direct_calls"] for w, s in store.worker_stats().items()}
    seg = store.compile(KINDS[0])
    got = seg.evaluate(data.now)
    assert set(got.ids()) == set(one.compile(KINDS[0]).evaluate(data.now).ids())
    assert seg.last_times is not None and seg.last_times.failures == ()
    after = {w: s["direct_calls"] for w, s in store.worker_stats().items()}
    # one call to each worker that owns shards (no failure: no task), through its channel
    for key in ("served", "channel"):
        assert {w: after[w][key] - before[w][key] for w in after} == dict.fromkeys(
            set(store.owners().values()), 1
        )
    pids = store.client.run(os.getpid)
    assert ping_all(store.client, sorted(pids), store.timeouts) == pids
    assert store.channels.ping_all(sorted(pids), store.timeouts) == pids


def test_a_program_is_unpickled_once_per_worker(shop: Any) -> None:
    store, one, data = shop
    before = {w: s["direct_calls"]["unpickled"] for w, s in store.worker_stats().items()}
    # a text of its own: no earlier test sent this program
    text = "sum(amount) of purchased in last 45 days > 3"
    seg = store.compile(text)
    want = set(one.compile(text).evaluate(data.now).ids())
    for _ in range(3):
        assert set(seg.evaluate(data.now).ids()) == want
    after = {w: s["direct_calls"]["unpickled"] for w, s in store.worker_stats().items()}
    assert {w: after[w] - before[w] for w in after} == dict.fromkeys(
        set(store.owners().values()), 1
    )
    # the same text compiled again is another program object, the same pickle
    again = store.compile(text)
    assert set(again.evaluate(data.now).ids()) == want
    assert {w: s["direct_calls"]["unpickled"] for w, s in store.worker_stats().items()} == after


def test_a_query_cost_leaves_out_each_worker_s_shards_one_after_the_other() -> None:
    # worker 7 evaluated shards 0 and 2 in turn (1 + 4 and 3 ms), worker 9 shard 1 (6 ms)
    times = QueryTimes(
        shards_ms=(4.0, 6.0, 3.0),
        opens_ms=(1.0, 0.0, 0.0),
        merge_ms=0.5,
        total_ms=10.0,
        worker_pids=(7, 9, 7),
    )
    assert times.busiest_worker_ms == 8.0
    assert times.overhead_ms == 1.5


def test_a_worker_s_start_up_objects_are_left_out_of_garbage_collection(shop: Any) -> None:
    import gc

    store, _, _ = shop
    frozen = store.client.run(gc.get_freeze_count)
    assert frozen and all(n > 10_000 for n in frozen.values())


def _timers() -> tuple[str, str, bool, str]:
    import dask

    return (
        dask.config.get("distributed.admin.tick.interval"),
        dask.config.get("distributed.admin.system-monitor.interval"),
        dask.config.get("distributed.admin.system-monitor.gil.enabled"),
        dask.config.get("distributed.worker.memory.monitor-interval"),
    )


def test_a_local_cluster_s_workers_get_the_slow_timers(shop: Any) -> None:
    store, _, _ = shop
    timers = store.client.run(_timers)
    assert set(timers.values()) == {("500ms", "2s", False, "500ms")}


def _faults_of_a_fresh_array() -> int:
    """The page faults of filling an 8 MiB array, the second time one is
    made (the first may grow the heap), in 4 KiB pages: transparent huge
    pages are off meanwhile (where the kernel has free ones, an array mapped
    anew faults in 2 MiB at a time, and a handful of faults would hide that
    it was mapped anew)."""
    import ctypes
    import resource

    prctl = ctypes.CDLL(None, use_errno=True).prctl
    was = prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0)
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0)
    try:
        for _ in range(2):
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            np.ones(2**20, dtype=np.int64)
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    finally:
        prctl(PR_SET_THP_DISABLE, max(was, 0), 0, 0, 0)
    return faults


# prctl(2)'s options for a process's transparent huge pages
PR_SET_THP_DISABLE = 41
PR_GET_THP_DISABLE = 42


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_worker_keeps_freed_memory_for_the_next_query(shop: Any) -> None:
    store, _, _ = shop
    # Dask's nanny sets MALLOC_TRIM_THRESHOLD_ (65536 in its default
    # config), which alone would map (and fault in) every array anew: 516
    # faults for this one here
    faults = store.client.run(_faults_of_a_fresh_array)
    assert faults and all(n < 100 for n in faults.values()), faults


_CLIENT_FAULTS = """
import sys
from pathlib import Path

from distributed import Client, LocalCluster
from audience.dist import ClusterStore
from audience.runtime.node import ShardedNode
from tests.test_dist import _faults_of_a_fresh_array

before = _faults_of_a_fresh_array()
with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
    with Client(cluster) as client:
        examples = Path(__import__("audience").__file__).parent / "examples"
        store = ShardedNode.init(Path(sys.argv[1]), examples / "maison.toml", shards=2)
        ClusterStore(store, client)
        print(before, _faults_of_a_fresh_array())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_a_cluster_store_s_client_keeps_freed_memory_for_the_next_answer(tmp_path: Path) -> None:
    import subprocess

    # a process started as Dask starts its workers (MALLOC_TRIM_THRESHOLD_
    # set), which maps every large buffer anew: a dense answer's ids come
    # back in such buffers
    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")]
    )
    out = subprocess.run(
        [sys.executable, "-c", _CLIENT_FAULTS, str(tmp_path / "shop")],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    before, after = map(int, out.stdout.split())
    assert before > 400, out.stdout  # the array's pages faulted in anew
    assert after < 100, out.stdout  # kept once the client has opened a store


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.text(max_size=6), max_size=80),
    st.floats(0.0, 1.0),
    st.randoms(use_true_random=False),
    st.booleans(),
)
def test_a_shard_s_member_ids_by_filter_or_take_are_the_same(
    ids: list[str], share: float, rnd: Any, arrow: bool
) -> None:
    from audience.dist.worker import ids_of
    from audience.runtime.ids import member_ids
    from audience.snapshot import LazyStrings

    # every share of members, on both sides of the one where a filter takes over
    mask = np.array([rnd.random() < share for _ in ids], dtype=np.bool_)
    arr = pa.array(ids, pa.string())
    contact_ids = LazyStrings(len(ids), arr.to_pylist, arrow=arr) if arrow else ids
    got = ids_of(contact_ids, mask)
    assert got.equals(member_ids(contact_ids, np.flatnonzero(mask)))
    assert got.to_pylist() == [i for i, m in zip(ids, mask, strict=True) if m]


def test_no_compilation_after_warm_up(shop: Any) -> None:
    store, _, data = shop
    before = {w: s["kernels"] for w, s in store.worker_stats().items()}
    assert all(k["signatures"] > 0 for k in before.values())
    for text in KINDS:
        for shift_days in (0, 40):
            _answer(store, text, parse_as_of(data.now) - shift_days * 86_400_000)
    after = {w: s["kernels"] for w, s in store.worker_stats().items()}
    assert after == before


def test_a_worker_killed_mid_query_changes_nothing(shop: Any) -> None:
    store, one, data = shop
    text = KINDS[1]
    want = set(one.compile(text).evaluate(data.now).ids())
    assert _answer(store, text, data.now) == want  # the shards are open
    client = store.client
    owners = store.owners()
    victim = next(iter(owners.values()))
    pid = client.run(os.getpid, workers=[victim])[victim]
    # the call goes through its channel
    assert store.channels.endpoints([victim], store.timeouts)[victim] is not None
    # the victim's thread and shards held: the query's direct call waits for them
    gate = f"audience-test-gate-{time.monotonic_ns()}"
    blocker = client.submit(block, gate, workers=[victim], allow_other_workers=False, pure=False)
    deadline_wait(lambda: blocked(client, victim), "the blocker")
    seg = store.compile(text)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        query = pool.submit(seg.evaluate, data.now)
        deadline_wait(lambda: waiting_calls(client, victim) > 0, "the query's call")
        os.kill(pid, signal.SIGKILL)
        got = query.result(timeout=120)
    blocker.cancel()
    Event(gate, client=client).set()
    assert set(got.ids()) == want
    times = seg.last_times
    assert times is not None
    # the victim's call failed and its shards were answered by tasks elsewhere
    assert [f.split(": ")[0] for f in times.failures] == [victim]
    assert pid not in times.worker_pids
    deadline_wait(lambda: len(client.scheduler_info()["workers"]) == 2, "the nanny's restart")


def test_eval_on_a_scheduler_address(shop: Any) -> None:
    store, one, data = shop
    text = KINDS[4]
    want = sorted(one.compile(text).evaluate(data.now).ids())
    address = store.client.scheduler.address
    now = data.now.isoformat()
    path = str(store.sharded.path)
    ids = run("eval", path, "-e", text, "--as-of", now, "--cluster", address, "--format", "ids")
    assert sorted(ids.stdout.split()) == want
    count = run("eval", path, "-e", text, "--as-of", now, "--cluster", address)
    assert count.stdout == f"{len(want)}\n"
    assert store.client.status == "running"  # the command's own client closed, not ours


def test_eval_cluster_errors_say_what_is_wrong(shop: Any, tmp_path: Path) -> None:
    store, _, data = shop
    path = str(store.sharded.path)
    bad = run("eval", path, "-e", "did purchased", "--cluster", "nowhere", ok=False)
    assert bad.exit_code == 2 and "scheduler address (tcp://host:port)" in bad.stderr
    Node.init(tmp_path / "plain", data.schema)
    plain = run("eval", str(tmp_path / "plain"), "-e", "did", "--cluster", "local", ok=False)
    assert plain.exit_code == 1 and "error" in plain.stderr  # the text is checked first
    plain = run(
        "eval", str(tmp_path / "plain"), "-e", "did purchased", "--cluster", "local", ok=False
    )
    assert plain.exit_code == 2 and "is not sharded" in plain.stderr
    workers = run("eval", path, "-e", "did purchased", "--workers", "2", ok=False)
    assert workers.exit_code == 2 and "--workers goes with --cluster local" in workers.stderr


def test_audience_open_with_a_cluster(shop: Any) -> None:
    store, one, data = shop
    with audience.open(str(store.sharded.path), cluster=store.client) as opened:
        got = opened.compile(KINDS[2]).evaluate(data.now)
    assert set(got.ids()) == set(one.compile(KINDS[2]).evaluate(data.now).ids())
    assert store.client.status != "closed"  # a client given by the caller stays open


def test_an_ingest_is_seen_by_the_open_shards(cluster: Any, tmp_path: Path) -> None:
    data = random_store(5, n_contacts=40, n_events=300)
    one, events, profiles = _one_store(data)
    half = len(events) // 2
    sharded = _sharded(tmp_path / "s", data, 2, events.slice(0, half), profiles)
    store = ClusterStore(sharded, cluster)
    text = "did viewed_product"
    before = _answer(store, text, data.now)  # the shards open on their workers
    opens = {w: s["opens"] for w, s in store.worker_stats().items()}
    sharded.ingest_events(events.slice(half))
    want = set(one.compile(text).evaluate(data.now).ids())
    assert want != before
    assert _answer(store, text, data.now) == want
    assert {w: s["opens"] for w, s in store.worker_stats().items()} == opens
