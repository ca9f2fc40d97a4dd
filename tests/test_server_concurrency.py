"""Evaluations while ingests land: each evaluation sees one whole store version."""

from __future__ import annotations

import threading
from pathlib import Path

from audience.runtime.node import Node
from tests.helpers.server_api import build_store, event, start

PAIRS = 15
TEXT = 'did email_clicked where campaign = "pair"'


def test_evaluations_see_whole_ingests(tmp_path: Path) -> None:
    path = build_store(tmp_path / "shop", n_events=5000, n_contacts=300)
    live = start(path)
    errors: list[str] = []
    seen_counts: list[int] = []
    done = threading.Event()

    def ingest(worker: int) -> None:
        c = live.client("write")
        for i in range(PAIRS):
            # both halves of a pair land in one ingest, or neither does
            pair = [
                event(f"pa-{worker}-{i}", "email_clicked", campaign="pair"),
                event(f"pb-{worker}-{i}", "email_clicked", campaign="pair"),
            ]
            r = c.post("/v1/events", pair)
            if r.status != 200 or r.json()["accepted"] != 2:
                errors.append(f"ingest: {r}")

    def evaluate() -> None:
        c = live.client("read")
        while not done.is_set():
            r = c.post("/v1/evaluate", {"segment": TEXT, "limit": 100_000})
            if r.status != 200:
                errors.append(f"evaluate: {r}")
                continue
            ids = set(r.json()["ids"])
            halves = {i[3:] for i in ids if i.startswith("pa-")}
            if halves != {i[3:] for i in ids if i.startswith("pb-")}:
                errors.append(f"a half-landed ingest was seen: {sorted(ids)}")
            seen_counts.append(len(ids))

    try:
        writers = [threading.Thread(target=ingest, args=(w,)) for w in range(2)]
        readers = [threading.Thread(target=evaluate) for _ in range(2)]
        for t in writers + readers:
            t.start()
        for t in writers:
            t.join(120)
        done.set()
        for t in readers:
            t.join(120)
    finally:
        live.server.stop()
    assert not errors, errors[:3]
    assert len(seen_counts) > 5 and all(n % 2 == 0 for n in seen_counts)
    final = Node.open(path).compile(TEXT).evaluate()
    assert len(final) == 2 * 2 * PAIRS
