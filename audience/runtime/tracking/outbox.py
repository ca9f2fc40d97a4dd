"""The tracking outbox: the events of hits, committed with the hit itself
(hits.py) and ingested into their contact's node by ``drain``.

The visitor's redirect or pixel never waits for an ingest (a small ingest
syncs the node's write-ahead log, several milliseconds); the server's
``Ingester`` thread drains the outbox as soon as a hit lands, a batch per
node per round.  Rows are deleted after their ingest: a crash between the
two ingests them again, and the store drops the copies (every event has its
own id); two servers draining at once likewise.  A server drains what an
earlier one left when it starts.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from audience.runtime.store.errors import StoreError

if TYPE_CHECKING:
    from audience.runtime.delivery.log import DeliveryLog
    from audience.runtime.store import Store

log = logging.getLogger("audience.tracking")
BATCH = 1000


def drain(dlog: DeliveryLog, store_for: Callable[[str], Store], limit: int = BATCH) -> int:
    """Ingest up to ``limit`` outbox events into their nodes; returns how many."""
    with dlog.transaction() as conn:
        rows = conn.execute(
            "select id, node, event from tracking_outbox order by id limit ?", [limit]
        ).fetchall()
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
                store.ingest_events([e for _, e in items])
            except Exception as exc:  # kept for the next round; the other nodes go on
                failed = exc
                continue
        done += [(row_id,) for row_id, _ in items]
    if done:
        with dlog.transaction() as conn:
            conn.executemany("delete from tracking_outbox where id = ?", done)
    if failed is not None:
        raise failed
    return len(rows)


def pending(dlog: DeliveryLog) -> int:
    with dlog.transaction() as conn:
        return int(conn.execute("select count(*) from tracking_outbox").fetchone()[0])


class Ingester:
    """A daemon thread that drains the outbox when ``notify`` is called (and
    every ``poll_s`` seconds, for what another process left)."""

    def __init__(
        self, dlog: DeliveryLog, store_for: Callable[[str], Store], poll_s: float = 1.0
    ) -> None:
        self.dlog = dlog
        self.store_for = store_for
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="tracking-ingest")
        self._thread.start()

    def notify(self) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.poll_s)
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
