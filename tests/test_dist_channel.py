"""The channel (dist/channel.py) on a real Dask cluster of worker processes:
its answers are the task path's and the one store's, from several threads at
once; a connection without the worker's token is closed with nothing
unpickled; a worker without a channel is called over Dask's comms."""

from __future__ import annotations

import concurrent.futures
import pickle
import socket
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("distributed")

from audience.dist import ClusterStore
from audience.dist.channel import TOKEN_BYTES, send_frames
from audience.dist.worker import WarmKernels
from audience.runtime.evaluate import parse_as_of
from audience.runtime.node import Node, ShardedNode
from tests.helpers.dist import local_cluster
from tests.reference.data import random_store

TEXTS = (
    "did purchased",
    'did viewed_product where category = "shoes" at least 2 times',
    "sum(amount) of purchased in last 90 days > 20",
    'city = "Rome" or email ends with "example.com"',
)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    data = random_store(29, n_contacts=250, n_events=3000)
    events, profiles = data.to_arrow()
    root = tmp_path_factory.mktemp("channel") / "store"
    sharded = ShardedNode.init(root, data.schema, shards=4)
    sharded.ingest_profiles(profiles)
    sharded.ingest_events(events)
    one = Node.from_arrow(events, profiles, data.schema)
    want = {t: set(one.compile(t).evaluate(data.now).ids()) for t in TEXTS}
    # a cluster of its own: a test here takes the workers' channels away
    with local_cluster() as client:
        yield ClusterStore(ShardedNode.open(root), client), data, want


def _calls(store: ClusterStore) -> dict[str, dict[str, int]]:
    return {w: s["direct_calls"] for w, s in store.worker_stats().items()}


def _delta(after: dict[str, dict[str, int]], before: dict[str, dict[str, int]], key: str) -> dict:
    return {w: after[w][key] - before[w][key] for w in after}


def test_answers_through_the_channel_are_the_task_path_s(shop: Any) -> None:
    store, data, want = shop
    tasks = ClusterStore(store.sharded, store.client, direct=False)
    owners = set(store.owners().values())
    for text in TEXTS:
        before = _calls(store)
        seg = store.compile(text)
        got = set(seg.evaluate(data.now).ids())
        assert seg.last_times is not None and seg.last_times.failures == ()
        after = _calls(store)
        # one call to each owner, through its channel
        assert _delta(after, before, "channel") == dict.fromkeys(owners, 1)
        assert _delta(after, before, "served") == dict.fromkeys(owners, 1)
        assert got == want[text] == set(tasks.compile(text).evaluate(data.now).ids()), text
    # dense answers: int64 indexes, their buffers sent as they are
    program, now_ms = store.compile(TEXTS[0]).program, parse_as_of(data.now)
    dense = store.dense_members(program, now_ms)
    by_tasks = tasks.dense_members(program, now_ms)
    assert [v for v, _ in dense] == [v for v, _ in by_tasks]
    assert all((a == b).all() for (_, a), (_, b) in zip(dense, by_tasks, strict=True))
    assert sum(len(a) for _, a in dense) == len(want[TEXTS[0]])


def test_a_connection_without_the_token_is_closed_with_nothing_unpickled(shop: Any) -> None:
    store, _, _ = shop
    owner = next(iter(store.owners().values()))
    (endpoint,) = store.channels.endpoints([owner], store.timeouts).values()
    assert endpoint is not None
    before = _calls(store)[owner]
    program = pickle.dumps(store.compile(TEXTS[2]).program)
    wrong = bytes(b ^ 1 for b in endpoint.token)
    for hello in (wrong, b"x" * TOKEN_BYTES):
        with socket.create_connection((endpoint.host, endpoint.port), timeout=30) as sock:
            sock.sendall(hello)
            send_frames(sock, [b"\x80", program])
            # closed without a reply (reset: what it sent was left unread)
            assert _closed_without_a_reply(sock)
    after = _calls(store)[owner]
    assert after["refused"] - before["refused"] == 2
    assert after["unpickled"] == before["unpickled"]
    assert after["served"] == before["served"]


def _closed_without_a_reply(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_a_store_queried_from_several_threads_at_once(shop: Any) -> None:
    store, data, want = shop
    before = _calls(store)
    segments = [store.compile(t) for t in TEXTS]

    def query(i: int) -> tuple[str, set[str], tuple[str, ...]]:
        seg = segments[i % len(segments)]
        audience, times = store.run(seg.program, parse_as_of(data.now))
        return seg.text, set(audience.ids()), times.failures

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(query, range(24)))
    for text, got, failures in answers:
        assert got == want[text], text
        assert failures == ()
    after = _calls(store)
    owners = set(store.owners().values())
    assert _delta(after, before, "channel") == dict.fromkeys(owners, 24)


def test_a_worker_without_a_channel_is_called_over_dask_comms(shop: Any) -> None:
    store, data, want = shop
    client = store.client
    threads = 1  # as connect gave each of the two workers on two cores
    client.register_plugin(WarmKernels(threads, channel=False), name=WarmKernels.name)
    try:
        store.members.invalidate()  # as a worker restarting without one would
        owners = set(store.owners().values())
        assert set(store.channels.endpoints(sorted(owners), store.timeouts).values()) == {None}
        before = _calls(store)
        seg = store.compile(TEXTS[1])
        assert set(seg.evaluate(data.now).ids()) == want[TEXTS[1]]
        assert seg.last_times is not None and seg.last_times.failures == ()
        after = _calls(store)
        assert _delta(after, before, "served") == dict.fromkeys(owners, 1)
        assert _delta(after, before, "channel") == dict.fromkeys(owners, 0)
        assert store.round_trip_ms() > 0
    finally:
        client.register_plugin(WarmKernels(threads), name=WarmKernels.name)
    # the channels back, on new ports with new tokens: the old connections
    # fail once, their shards answered by tasks, then the new ones serve
    store.members.invalidate()
    assert set(store.compile(TEXTS[0]).evaluate(data.now).ids()) == want[TEXTS[0]]
    before = _calls(store)
    seg = store.compile(TEXTS[0])
    assert set(seg.evaluate(data.now).ids()) == want[TEXTS[0]]
    assert seg.last_times is not None and seg.last_times.failures == ()
    assert set(_delta(_calls(store), before, "channel").values()) == {1}
