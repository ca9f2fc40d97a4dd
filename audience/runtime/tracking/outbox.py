"""The tracking outbox: the events of hits, committed with the hit itself
(hits.py) and ingested into their contact's node by ``drain``.

The visitor's redirect or pixel never waits for an ingest (a small ingest
syncs the node's write-ahead log, several milliseconds).  ``audience serve``
runs ``run_ingester`` in a process of its own (an ingest holds the
interpreter for milliseconds, which the click answers must not wait for);
an in-process server (tests, ``ServerThread``) runs the ``Ingester`` thread,
woken as soon as a hit lands.  Either drains a batch per node per round.
Rows are deleted after their ingest: a crash between the two ingests them
again, and the store drops the copies (every event has its own id); two
drainers at once likewise.  What a stopped server left is drained when one
starts again (the worker drains too).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audience.runtime.store.errors import StoreError

if TYPE_CHECKING:
    from audience.runtime.delivery.log import DeliveryLog
    from audience.runtime.node import Node
    from audience.schema import Schema

log = logging.getLogger("audience.tracking")
BATCH = 1000


def to_outbox(conn: sqlite3.Connection, node: str, event: dict[str, Any]) -> None:
    """Queue ``event`` for ``node`` (in the caller's transaction)."""
    conn.execute(
        "insert into tracking_outbox (node, event) values (?, ?)", [node, json.dumps(event)]
    )


def drain(dlog: DeliveryLog, store_for: Callable[[str], Node], limit: int = BATCH) -> int:
    """Ingest up to ``limit`` outbox events into their nodes; returns how many."""
    # a plain read: polling must not take the write lock the hits need
    rows = dlog.read("select id, node, event from tracking_outbox order by id limit ?", [limit])
    by_node: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for row_id, node, event in rows:
        by_node.setdefault(node, []).append((row_id, json.loads(event)))
    done: list[tuple[int]] = []
    failed: Exception | None = None
    for node, items in by_node.items():
        try:
            store = store_for(node)
        except StoreError as exc:  # a node removed since the send: nowhere to put them
            log.error("%d tracking events dropped: %s", len(items), exc)
        else:
            try:
                store.ingest_events([_fit(e, store.schema) for _, e in items])
            except Exception as exc:  # kept for the next round; the other nodes go on
                failed = exc
                continue
        done += [(row_id,) for row_id, _ in items]
    if done:  # not synced: a delete lost to a power cut only re-ingests copies
        with dlog.transaction(synced=False) as conn:
            conn.executemany("delete from tracking_outbox where id = ?", done)
    if failed is not None:
        raise failed
    return len(rows)


def _fit(event: dict[str, Any], schema: Schema) -> dict[str, Any]:
    """``event`` without the properties its type lacks in ``schema`` (a schema
    whose own events use one of the tracking names with another type)."""
    etype = str(event["type"])
    return {k: v for k, v in event.items() if schema.event_property_type(etype, k) is not None}


def pending(dlog: DeliveryLog) -> int:
    return int(dlog.read("select count(*) from tracking_outbox")[0][0])


class Ingester:
    """A daemon thread that drains the outbox when ``notify`` is called (and
    every ``poll_s`` seconds, for what another process left)."""

    def __init__(
        self,
        dlog: DeliveryLog,
        store_for: Callable[[str], Node],
        poll_s: float = 1.0,
        linger_s: float = 0.02,
    ) -> None:
        self.dlog = dlog
        self.store_for = store_for
        self.poll_s = poll_s
        # after a wake-up, wait this long for more hits: one ingest for many
        # (an ingest costs about the same for 1 event as for 100)
        self.linger_s = linger_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="tracking-ingest")
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._wake.wait(self.poll_s):
                self._stop.wait(self.linger_s)
            self._wake.clear()
            try:
                while drain(self.dlog, self.store_for) and not self._stop.is_set():
                    pass
            except Exception:  # logged; the rows stay for the next round
                log.exception("tracking events not ingested yet")
                self._stop.wait(self.poll_s)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)


def node_stores(store_root: Path | str) -> Callable[[str], Node]:
    """``store_for`` for ``drain``: each node of ``store_root`` opened once, when first needed."""
    from audience.runtime.node import open_node

    stores: dict[str, Node] = {}

    def store_for(node: str) -> Node:
        if node not in stores:
            stores[node] = open_node(store_root, node)
        return stores[node]

    return store_for


def drain_all(dlog: DeliveryLog, store_for: Callable[[str], Node]) -> None:
    """Ingest everything the outbox holds now."""
    while drain(dlog, store_for):
        pass


def run_ingester(store_root: Path, parent: int | None = None, poll_s: float = 0.2) -> None:
    """Drain the outbox of ``store_root`` until the process ``parent`` is gone
    (checked every round: a server killed with -9 takes this one with it)."""
    from audience.runtime.delivery.log import DeliveryLog

    store_for = node_stores(store_root)
    with DeliveryLog.open(store_root) as dlog:
        while parent is None or os.getppid() == parent:
            try:
                # short of a full batch, wait a round for more: one ingest for
                # many hits, and the CPU left to the answers (at 200 clicks/s a
                # drain per hit took the server's second core)
                if drain(dlog, store_for) < BATCH:
                    time.sleep(poll_s)
            except Exception:  # logged; the rows stay for the next round
                log.exception("tracking events not ingested yet")
                time.sleep(1.0)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Ingest the tracking outbox of a store.")
    ap.add_argument("store", type=Path)
    ap.add_argument("--parent", type=int, help="stop when this process is gone")
    args = ap.parse_args(argv)
    # background work: the server's answers get the CPU first
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)
    with contextlib.suppress(KeyboardInterrupt):
        run_ingester(args.store, args.parent)


if __name__ == "__main__":
    main()
