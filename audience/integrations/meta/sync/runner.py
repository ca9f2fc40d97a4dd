"""One sync job, run by the worker holding its lease (docs/integrations/meta-sync.md).

1. Freeze: the eligible rows are computed, diffed against the rows last uploaded
   (or all of them for a replace) and written to STORE/meta_syncs/jobs/ID.arrow
   (the operations) and ID.target.arrow (the rows the audience will hold) before
   the job says ``frozen``: a resumed job uploads what it meant to upload.
2. Upload, batch by batch (at most 10,000 rows), removes first then adds, each
   phase in one session (``session_id`` a positive int64, ``batch_seq`` from 1,
   ``last_batch_flag`` on its last batch, ``estimated_num_total``); a replace is one
   ``/usersreplace`` session.  After every acknowledged batch the job's cursor,
   counts and lease move on.
3. Commit: the target becomes the rows last uploaded, the job ``succeeded``.

A job taken over from a dead worker is ``resumed`` when its open session is still
within the platform's 90 minutes (the next batch goes on in it), else
``restarted``: the current phase starts again in a new session (adding or
removing a row twice changes nothing).
"""

from __future__ import annotations

import math
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from audience.integrations.meta.graph import GraphClient, GraphError, TokenInvalid
from audience.integrations.meta.sync.definitions import (
    FAILED,
    PARTIAL,
    REPLACE,
    SUCCEEDED,
    Job,
    Sync,
    SyncDefinitions,
)
from audience.integrations.meta.sync.diff import (
    ADD,
    REMOVE,
    diff,
    read_table,
    union,
    write_table,
)
from audience.integrations.meta.sync.eligible import KEY, EligibleError, eligible
from audience.integrations.meta.tokens import INACTIVE, IntegrationError, Integrations
from audience.runtime.plans.clock import Clock

BATCH_ROWS = 10_000
SESSION_MS = 90 * 60 * 1000
SAMPLES = 100
RESUMED = "resumed"
RESTARTED = "restarted"
# test-only: wait to be killed after N acknowledged batches
HALT_ENV = "AUDIENCE_META_SYNC_TEST_HALT_AFTER"
BATCH_ENV = "AUDIENCE_META_SYNC_BATCH"  # test-only: smaller batches
# replace errors (code 2650) after which the replace starts again in a new session
_REPLACE_AGAIN = {
    1870158: "the session timed out",
    1870159: "the session had finished",
    1870147: "the first batch was not received",
}
_REPLACE_FAIL = {
    1870145: "the audience is still being updated (another replace is running)",
    1870144: "the audience is too large to replace",
    1870148: "unknown replace error",
}
_KEY_SCHEMA = {"email": "EMAIL_SHA256", "phone": "PHONE_SHA256"}


class LeaseLost(Exception):
    """Another worker took the job over: this one stops touching it."""


class JobFailed(Exception):
    def __init__(self, message: str, *, partial: bool = False) -> None:
        super().__init__(message)
        self.partial = partial


@dataclass(frozen=True)
class Batch:
    phase: str
    seq: int  # from 1 within its phase
    last: bool
    rows: pa.Table
    phase_rows: int


@dataclass
class SyncRunner:
    defs: SyncDefinitions
    integrations: Integrations
    clock: Clock
    holder: str
    lease_ms: int = 60_000
    on_batch: Callable[[Job], None] | None = None  # progress (the CLI's bar)

    @property
    def root(self) -> Path:
        return self.defs.root

    def run(self, job: Job, *, recovered: bool = False) -> Job:
        """Run (or recover) ``job``, whose lease this runner holds."""
        sync = self.defs.get(job.sync)
        try:
            if recovered:
                job = self._recover(job)
            integration = self.integrations.get(sync.integration)
            if integration.status(self.clock()) == INACTIVE:
                raise JobFailed(
                    f"integration {sync.integration!r} is inactive "
                    f"({integration.refused or 'its token expired'}): re-authorize it"
                )
            self.integrations.call(sync.integration, lambda c: self._run(c, sync, job))
        except LeaseLost:
            return self.defs.job(job.id)
        except TokenInvalid as err:
            self._finish(job, sync, FAILED, f"the platform refused the token: {err}")
        except JobFailed as err:
            self._finish(job, sync, PARTIAL if err.partial else FAILED, str(err))
        except (GraphError, IntegrationError) as err:
            cur = self.defs.job(job.id)
            self._finish(job, sync, PARTIAL if cur.cursor else FAILED, str(err))
        return self.defs.job(job.id)

    # ---- steps --------------------------------------------------------------------
    def _run(self, client: GraphClient, sync: Sync, job: Job) -> None:
        sync = self._audience(client, sync)
        job = self.defs.job(job.id)
        if not job.frozen:
            self._freeze(sync, job)
        self._upload(client, sync, job.id)
        self._commit(sync, self.defs.job(job.id))

    def _recover(self, job: Job) -> Job:
        """A job whose worker died: go on in its open session, or start its phase again."""
        if not job.frozen:
            self._save(job, recovery=RESTARTED)
            return self.defs.job(job.id)
        batches = self._batches(job)
        if job.cursor >= len(batches):
            self._save(job, recovery=RESUMED)
            return self.defs.job(job.id)
        phase = batches[job.cursor].phase
        sess = job.sessions.get(phase)
        if sess is None or self.clock() - int(sess["started_ms"]) < SESSION_MS:
            self._save(job, recovery=RESUMED)
            return self.defs.job(job.id)
        first = next(i for i, b in enumerate(batches) if b.phase == phase)
        sessions = {k: v for k, v in job.sessions.items() if k != phase}
        self._save(job, recovery=RESTARTED, cursor=first, sessions=sessions)
        return self.defs.job(job.id)

    def _audience(self, client: GraphClient, sync: Sync) -> Sync:
        """The destination: a new audience is created on the first run (found by name
        if a run died between creating it and saving its id)."""
        if sync.audience_id is not None:
            return sync
        account = self.integrations.get(sync.integration).account_id
        path = f"act_{account}/customaudiences"
        found = [
            a["id"]
            for a in client.pages(path, {"fields": "id,name", "limit": 100})
            if a.get("name") == sync.audience_name
        ]
        if found:
            audience_id = str(found[0])
        else:
            answer = client.post(
                path,
                {
                    "name": sync.audience_name,
                    "subtype": "CUSTOM",
                    "customer_file_source": sync.customer_file_source,
                    "description": f"audience sync {sync.name}",
                },
            )
            audience_id = str(answer["id"])
        self.defs.update(sync.id, audience_id=audience_id)
        return self.defs.get(sync.name)

    def _freeze(self, sync: Sync, job: Job) -> None:
        try:
            found = eligible(self.root, sync, self.clock())
        except EligibleError as err:
            raise JobFailed(str(err)) from None
        target = found.rows
        if job.mode == REPLACE:
            ops = {REPLACE: target}
        else:
            previous = read_table(self._state_path(sync))
            changes = diff(previous, target, sync.state_exact)
            ops = {REMOVE: changes.removes, ADD: changes.adds}
        parts = [
            t.append_column("op", pa.array([op] * t.num_rows, pa.string())) for op, t in ops.items()
        ]
        table = pa.concat_tables(parts).combine_chunks()
        write_table(self._job_path(job), table)
        write_table(self._job_path(job, "target"), target)
        counts = {
            **found.counts,
            "to_add": ops[ADD].num_rows if ADD in ops else target.num_rows,
            "to_remove": ops[REMOVE].num_rows if REMOVE in ops else 0,
            "sent": 0,
            "platform_invalid": 0,
            "invalid_samples": [],
            "errors": 0,
        }
        self._save(
            job,
            frozen=1,
            cursor=0,
            batches_total=len(self._batches_of(table, job.mode)),
            counts=counts,
        )

    def _upload(self, client: GraphClient, sync: Sync, job_id: int) -> None:
        job = self.defs.job(job_id)
        batches = self._batches(job)
        halt = int(os.environ.get(HALT_ENV) or 0)
        schema = [_KEY_SCHEMA[k.lower()] for k in sync.keys]
        restarted_replace = False
        i = job.cursor
        while i < len(batches):
            job = self.defs.job(job.id)
            b = batches[i]
            sessions = dict(job.sessions)
            sess = sessions.get(b.phase)
            if sess is None:
                sess = {"session_id": _session_id(), "started_ms": self.clock()}
                sessions[b.phase] = sess
            body = {
                "payload": {
                    "schema": schema[0] if len(schema) == 1 else schema,
                    "data": _data(b.rows, sync.keys),
                },
                "session": {
                    "session_id": sess["session_id"],
                    "batch_seq": b.seq,
                    "last_batch_flag": b.last,
                    "estimated_num_total": b.phase_rows,
                },
            }
            try:
                answer = _send(client, sync.audience_id or "", b.phase, body)
            except GraphError as err:
                if b.phase == REPLACE and err.code == 2650 and err.subcode in _REPLACE_AGAIN:
                    if restarted_replace:
                        raise JobFailed(
                            f"the replace failed again: {_REPLACE_AGAIN[err.subcode]}"
                        ) from err
                    restarted_replace = True
                    sessions.pop(REPLACE, None)
                    self._save(job, cursor=0, sessions=sessions, recovery=RESTARTED)
                    i = 0
                    continue
                if err.code == 2650 and err.subcode in _REPLACE_FAIL:
                    raise JobFailed(
                        f"the platform refused the upload: {_REPLACE_FAIL[err.subcode]} ({err})",
                        partial=i > 0,
                    ) from err
                counts = dict(job.counts)
                counts["errors"] = int(counts.get("errors", 0)) + 1
                self._save(job, counts=counts, sessions=sessions)
                raise
            counts = dict(job.counts)
            counts["sent"] = int(counts.get("sent", 0)) + b.rows.num_rows
            per = dict(counts.get("platform_invalid_by_phase") or {})
            per[b.phase] = int(answer.get("num_invalid_entries") or 0)
            counts["platform_invalid_by_phase"] = per
            counts["platform_invalid"] = sum(per.values())
            samples = list(counts.get("invalid_samples") or [])
            got = answer.get("invalid_entry_samples") or []
            got = list(got.values() if isinstance(got, dict) else got)
            counts["invalid_samples"] = (samples + [str(s) for s in got])[:SAMPLES]
            self._save(job, cursor=i + 1, sessions=sessions, counts=counts)
            i += 1
            if self.on_batch is not None:
                self.on_batch(self.defs.job(job.id))
            if halt and i >= halt:
                _halt(self.defs.files, job)

    def _commit(self, sync: Sync, job: Job) -> None:
        target = read_table(self._job_path(job, "target"))
        assert target is not None
        write_table(self._state_path(sync), target)
        self.defs.update(sync.id, state_exact=1)
        self._save(job, state=SUCCEEDED, finished_ms=self.clock(), holder=None)
        self._drop_files(job)

    def _finish(self, job: Job, sync: Sync, state: str, error: str) -> None:
        """A job that stopped: when it may have changed the audience, the rows file
        becomes the inexact superset (see diff.py)."""
        cur = self.defs.job(job.id)
        if cur.frozen and cur.cursor > 0:
            ops = read_table(self._job_path(cur))
            if ops is not None:
                adds = ops.filter(pc.not_equal(ops["op"], REMOVE)).drop_columns(["op"])
                previous = read_table(self._state_path(sync))
                write_table(self._state_path(sync), union(previous, adds))
                self.defs.update(sync.id, state_exact=0)
        self._save(cur, state=state, error=error, finished_ms=self.clock(), holder=None)
        self._drop_files(cur)

    # ---- helpers --------------------------------------------------------------------
    def _save(self, job: Job, **values: Any) -> None:
        if not self.defs.save_job(job.id, self.holder, self.clock(), self.lease_ms, **values):
            raise LeaseLost(job.id)

    def _batches(self, job: Job) -> list[Batch]:
        table = read_table(self._job_path(job))
        if table is None:
            raise JobFailed(f"the rows of job {job.id} are missing")
        return self._batches_of(table, job.mode)

    def _batches_of(self, table: pa.Table, mode: str) -> list[Batch]:
        size = max(1, min(BATCH_ROWS, int(os.environ.get(BATCH_ENV) or BATCH_ROWS)))
        out: list[Batch] = []
        for phase in [REPLACE] if mode == REPLACE else [REMOVE, ADD]:
            rows = table.filter(pc.equal(table["op"], phase)).drop_columns(["op", KEY])
            n = rows.num_rows
            count = math.ceil(n / size) if n else (1 if phase == REPLACE else 0)
            for k in range(count):
                out.append(Batch(phase, k + 1, k == count - 1, rows.slice(k * size, size), n))
        return out

    def _state_path(self, sync: Sync) -> Path:
        return self.defs.files / f"{sync.id}.arrow"

    def _job_path(self, job: Job, part: str = "ops") -> Path:
        return self.defs.files / "jobs" / f"{job.id}.{part}.arrow"

    def _drop_files(self, job: Job) -> None:
        for part in ("ops", "target"):
            self._job_path(job, part).unlink(missing_ok=True)


def _send(client: GraphClient, audience_id: str, phase: str, body: dict[str, Any]) -> Any:
    if phase == REMOVE:  # the rows go in the body: a URL cannot hold thousands of them
        return client.delete(f"{audience_id}/users", body)
    if phase == REPLACE:
        return client.post(f"{audience_id}/usersreplace", body)
    return client.post(f"{audience_id}/users", body)


def _data(rows: pa.Table, keys: tuple[str, ...]) -> list[Any]:
    cols = [rows[k.lower()].to_pylist() for k in keys]
    if len(cols) == 1:
        return cols[0]
    return [list(r) for r in zip(*cols, strict=True)]


def _session_id() -> int:
    return secrets.randbelow(2**63 - 1) + 1


def _halt(files: Path, job: Job) -> None:
    """Test-only: say where the job stopped, then wait to be killed."""
    files.mkdir(parents=True, exist_ok=True)
    (files / f"halted-{job.id}").write_text("halted\n")
    while True:
        time.sleep(3600)
