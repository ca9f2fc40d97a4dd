"""The direct path's faults on a real Dask cluster of worker processes: a
worker that left, a worker killed between queries, a hung worker.  The
answer is the one store's every time; the failed calls' shards are answered
by the task path elsewhere; the owners follow the workers joining again."""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("distributed")

from audience.dist import ClusterStore
from audience.dist.direct import Timeouts
from audience.runtime.evaluate import parse_as_of
from audience.runtime.node import Node, ShardedNode
from tests.helpers.dist import deadline_wait, local_cluster
from tests.reference.data import random_store

TEXT = 'did viewed_product where category = "shoes" at least 2 times'
SHARDS = 4


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    data = random_store(23, n_contacts=200, n_events=3000)
    events, profiles = data.to_arrow()
    root = tmp_path_factory.mktemp("direct") / "store"
    sharded = ShardedNode.init(root, data.schema, shards=SHARDS)
    sharded.ingest_profiles(profiles)
    sharded.ingest_events(events)
    one = Node.from_arrow(events, profiles, data.schema)
    # a cluster of its own: these tests take workers away
    with local_cluster() as client:
        yield client, root, data, set(one.compile(TEXT).evaluate(data.now).ids())


def _store(shop: Any, timeouts: Timeouts | None = None) -> ClusterStore:
    client, root, _, _ = shop
    return ClusterStore(ShardedNode.open(root), client, timeouts=timeouts)


def _two_workers(client: Any) -> None:
    """Back to two workers (a nanny restarts a killed one)."""
    deadline_wait(lambda: len(client.scheduler_info()["workers"]) == 2, "two workers")


def test_a_worker_that_left_and_one_that_joined(shop: Any) -> None:
    client, _, data, want = shop
    store = _store(shop)
    seg = store.compile(TEXT)
    assert set(seg.evaluate(data.now).ids()) == want
    pids = client.run(os.getpid)
    client.cluster.scale(1)  # one worker closes, gracefully
    deadline_wait(lambda: len(client.scheduler_info()["workers"]) == 1, "the departure")
    (staying,) = client.scheduler_info()["workers"]
    # the store heard of it from the scheduler, or hears from its call to the
    # worker failing: the same answer either way, from the one left
    assert set(seg.evaluate(data.now).ids()) == want
    assert seg.last_times is not None and set(seg.last_times.worker_pids) == {pids[staying]}
    deadline_wait(lambda: store.members.workers() == (staying,), "the store to hear of it")
    assert set(seg.evaluate(data.now).ids()) == want
    assert seg.last_times.failures == ()
    # a worker joining: the scheduler's news refreshes the owners, and the
    # shards are dealt over both workers again, each called directly
    client.cluster.scale(2)
    deadline_wait(lambda: len(store.members.workers()) == 2, "the joining worker")
    assert set(seg.evaluate(data.now).ids()) == want
    assert seg.last_times.failures == ()
    assert len(set(seg.last_times.worker_pids)) == 2


def test_a_worker_killed_between_queries(shop: Any) -> None:
    client, _, data, want = shop
    _two_workers(client)
    store = _store(shop)
    seg = store.compile(TEXT)
    assert set(seg.evaluate(data.now).ids()) == want
    victim = store.owners()[store.refs()[0]]
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    deadline_wait(lambda: _dead(pid), "the worker to die")  # not in a moment's time
    # the connection to it closed, or refused, or the scheduler already
    # told: its shards are answered elsewhere
    assert set(seg.evaluate(data.now).ids()) == want
    assert seg.last_times is not None and pid not in seg.last_times.worker_pids
    _two_workers(client)


def test_a_hung_worker_is_given_up_after_the_timeout(shop: Any) -> None:
    client, _, data, want = shop
    _two_workers(client)
    store = _store(shop, Timeouts(connect_s=5.0, call_s=1.0))
    seg = store.compile(TEXT)
    assert set(seg.evaluate(data.now).ids()) == want
    victim = store.owners()[store.refs()[0]]
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGSTOP)  # alive for the scheduler, answering nobody
    try:
        # each of its threads stops when it next runs: the channel's could
        # otherwise still answer a query of a millisecond or two
        deadline_wait(lambda: _stopped(pid), "the worker to stop")
        got = seg.evaluate(data.now)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert set(got.ids()) == want
    times = seg.last_times
    assert times is not None and pid not in times.worker_pids
    assert [f.split(": ")[:2] for f in times.failures] == [[victim, "TimeoutError"]]
    # woken up, it answers directly again
    assert set(seg.evaluate(data.now).ids()) == want
    assert seg.last_times.failures == ()


def _dead(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _stopped(pid: int) -> bool:
    import psutil

    threads = [t.id for t in psutil.Process(pid).threads()] or [pid]
    return all(psutil.Process(t).status() == psutil.STATUS_STOPPED for t in threads)


def test_an_error_in_the_evaluation_is_raised_as_such(shop: Any) -> None:
    client, _, data, _ = shop
    _two_workers(client)
    store = _store(shop)
    program = store.compile(TEXT).program
    stale = dataclasses.replace(program, schema_version="not-this-schema")
    # the direct calls fail with it, then the tasks, which raise it
    with pytest.raises(ValueError, match="compiled for schema not-this-schema"):
        store.run(stale, parse_as_of(data.now))
    assert set(store.compile(TEXT).evaluate(data.now).ids()) == shop[3]
