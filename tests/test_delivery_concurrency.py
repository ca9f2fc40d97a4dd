"""Several real processes record deliveries to the same contacts at once: no cap
is ever exceeded, and every attempt is in the log."""

from __future__ import annotations

import multiprocessing as mp
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from audience.runtime.delivery import DeliveryLog, DeliveryRequest
from tests.helpers.delivery import DAY, HOUR, T0, policy

TEXT = 'dnd "P" {\n max 1 per day\n max 3 per week\n global\n}'
CONTACTS = [f"c{i}" for i in range(8)]
EMAIL = {c: f"person{i % 5}@example.com" for i, c in enumerate(CONTACTS)}  # some share one
PER_PROCESS = 30


def _child(store: str, worker: int, barrier: Any) -> None:
    pol = policy(TEXT)
    log = DeliveryLog.open(Path(store))
    rng = random.Random(worker)
    grouped: list[DeliveryRequest] = []  # odd workers record theirs in groups of 5
    barrier.wait()
    for i in range(PER_PROCESS):
        if worker == 0 and i == PER_PROCESS // 2:
            log.reserve_batch(
                "main",
                CONTACTS,
                [EMAIL[c] for c in CONTACTS],
                pol,
                T0 + 2 * DAY,
                {"subject": "plan"},
                "plan",
                f"plan:{worker}:",
                now_ms=T0 + 2 * DAY,
            )
        contact = rng.choice(CONTACTS)
        at = T0 + rng.randrange(0, 7 * 24) * HOUR
        r = DeliveryRequest(
            f"w{worker}:{i}",
            "main",
            contact,
            EMAIL[contact],
            "email",
            "send_email",
            {"i": i},
            at,
            pol,
            now_ms=at,
        )
        if worker % 2 == 0:
            log.request(r)
            continue
        grouped.append(r)
        if len(grouped) == 5:
            log.request_many(grouped)
            grouped = []
    log.request_many(grouped)
    log.close()


def test_concurrent_processes_never_exceed_a_cap(tmp_path: Path) -> None:
    DeliveryLog.open(tmp_path).close()
    procs_n = 4
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(procs_n)
    procs = [ctx.Process(target=_child, args=(str(tmp_path), w, barrier)) for w in range(procs_n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    log = DeliveryLog.open(tmp_path)
    log.materialize_all()
    rows = log.list()
    assert len(rows) == procs_n * PER_PROCESS + len(CONTACTS)  # every attempt is recorded
    assert {d.status for d in rows} <= {"reserved", "suppressed"}
    assert all(d.cap in ("max 1 per day", "max 3 per week") for d in rows if d.cap)
    kept: dict[str, list[int]] = defaultdict(list)
    for d in rows:
        if d.status == "reserved":
            kept[EMAIL[d.contact_id]].append(d.due_ms)
    assert sum(map(len, kept.values())) > 5
    for times in kept.values():
        times.sort()
        for s in times:  # the fullest windows end at a delivery
            assert sum(s - DAY < u <= s for u in times) <= 1
            assert sum(s - 7 * DAY < u <= s for u in times) <= 3
