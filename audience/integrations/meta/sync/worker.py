"""The sync worker: queues the scheduled syncs that are due, then runs every queued job
and every running one whose worker died (its lease expired), one lease at a time.
``audience syncs work`` and each tick of ``audience scheduler`` call ``work_once``."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from audience.integrations.meta.graph import DEFAULT_BASE_URL, DEFAULT_VERSION, GraphConfig
from audience.integrations.meta.sync.definitions import QUEUED, Job, describe
from audience.integrations.meta.sync.runner import SyncRunner
from audience.integrations.meta.sync.service import SyncService
from audience.integrations.meta.tokens import INTEGRATIONS_FILE, Integrations
from audience.runtime.plans.clock import Clock, wall_clock
from audience.runtime.plans.scheduler import new_holder


def config_from_env() -> GraphConfig:
    """The Graph API's address and app credentials, as ``audience integrations`` reads them."""
    env = os.environ.get
    return GraphConfig(
        base_url=env("AUDIENCE_META_GRAPH_URL") or DEFAULT_BASE_URL,
        version=env("AUDIENCE_META_GRAPH_VERSION") or DEFAULT_VERSION,
        app_id=env("AUDIENCE_META_APP_ID") or None,
        app_secret=env("AUDIENCE_META_APP_SECRET") or None,
    )


@dataclass
class SyncWorker:
    root: Path
    config: GraphConfig
    clock: Clock = wall_clock
    lease_ms: int = 60_000
    holder: str = ""
    sleep: Callable[[float], None] | None = None  # the Graph client's (tests)
    on_batch: Callable[[Job], None] | None = None

    def __post_init__(self) -> None:
        self.holder = self.holder or new_holder()
        self.service = SyncService(self.root, self.clock)
        self.runner = SyncRunner(
            self.service.defs,
            Integrations(self.root, self.config, self.clock, sleep=self.sleep),
            self.clock,
            self.holder,
            self.lease_ms,
            self.on_batch,
        )

    def work_once(self, only: int | None = None) -> list[Job]:
        """Queue what is due, then run what can be run now (``only``: that job alone)."""
        self.service.queue_due()
        defs = self.service.defs
        done = []
        for job_id in defs.claimable(self.clock()):
            if only is not None and job_id != only:
                continue
            before = defs.job(job_id)
            job = defs.take(job_id, self.holder, self.clock(), self.lease_ms)
            if job is None:
                continue  # another worker took it meanwhile
            done.append(self.runner.run(job, recovered=before.state != QUEUED))
        return done


def work_store(
    root: Path | str,
    *,
    clock: Clock = wall_clock,
    once: bool = False,
    poll_s: float = 1.0,
    stop: threading.Event | None = None,
    lease_s: float = 60.0,
    on_job: Callable[[Job], None] | None = None,
) -> None:
    """Work until ``stop`` is set (``once``: one pass)."""
    stop = stop or threading.Event()
    worker = SyncWorker(Path(root), config_from_env(), clock, int(lease_s * 1000))
    while not stop.is_set():
        for job in worker.work_once():
            if on_job is not None:
                on_job(job)
        if once:
            return
        stop.wait(poll_s)


def run_jobs(root: Path, clock: Clock, holder: str) -> list[str]:
    """One pass for the scheduler: a line per job run."""
    worker = SyncWorker(root, config_from_env(), clock, holder=holder)
    return [f"sync {j.sync}: {describe(j)}" for j in worker.work_once()]


def has_syncs(root: Path) -> bool:
    """Cheap: the scheduler skips the sync step on stores that never connected an account."""
    return (root / INTEGRATIONS_FILE).exists()
