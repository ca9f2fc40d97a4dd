"""Sync jobs with real processes: ``audience syncs work`` killed with ``kill -9`` mid-upload,
then another worker resuming the job in its session (or restarting it in a new one once
the session is over); and the CLI's commands, against the fake Graph server on loopback."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from audience.integrations.meta.fake import VERSION
from audience.integrations.meta.sync.definitions import RUNNING, SUCCEEDED, SyncDefinitions
from audience.integrations.meta.sync.service import SyncService
from audience.timecalc import iso_utc
from tests.helpers.processes import audience, finish, wait_for
from tests.meta_sync_support import T0, World, expected_hashes, world


def _iso(ms: int) -> str:
    return iso_utc(ms, "milliseconds")


def _env(w: World, **extra: str) -> dict[str, str]:
    return {"AUDIENCE_META_GRAPH_URL": w.url, "AUDIENCE_META_GRAPH_VERSION": VERSION, **extra}


def _sessions(w: World) -> list[tuple[int, int]]:
    return [
        (c.json_field("session")["session_id"], c.json_field("session")["batch_seq"])
        for c in w.fake.calls
        if c.path.endswith("/users") and c.method == "POST"
    ]


@pytest.mark.parametrize(("later_ms", "recovery"), [(31_000, "resumed"), (7_200_000, "restarted")])
def test_kill_9_mid_upload_then_another_worker_recovers(
    tmp_path: Path, later_ms: int, recovery: str
) -> None:
    with world(tmp_path) as w:
        w.create()
        job, _ = SyncService(w.root, w.clock).run("women")
        env = _env(w, AUDIENCE_META_SYNC_BATCH="3", AUDIENCE_META_SYNC_TEST_HALT_AFTER="2")
        p = audience(
            "syncs", "work", str(w.root), "--once", "--at", _iso(T0), "--lease", "30", env=env
        )
        wait_for(w.root / "meta_syncs" / f"halted-{job.id}", p)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        defs = SyncDefinitions(w.root)
        assert (defs.job(job.id).state, defs.job(job.id).cursor) == (RUNNING, 2)
        env = _env(w, AUDIENCE_META_SYNC_BATCH="3")
        # while the dead worker's lease holds, nobody touches the job
        finish(audience("syncs", "work", str(w.root), "--once", "--at", _iso(T0 + 10_000), env=env))
        assert defs.job(job.id).state == RUNNING
        out = finish(
            audience("syncs", "work", str(w.root), "--once", "--at", _iso(T0 + later_ms), env=env)
        )
        done = defs.job(job.id)
        assert (done.state, done.recovery) == (SUCCEEDED, recovery), out
        assert recovery in out
        assert w.members() == expected_hashes(
            w.store, lambda r: r["gender"] == "f" and r["consent"]
        )
        sessions = _sessions(w)
        total = done.batches_total or 0
        ids = [s for s, _ in sessions]
        if recovery == "resumed":  # one session: batches 1, 2, then 3... in it
            assert len(set(ids)) == 1
            assert [q for _, q in sessions] == list(range(1, total + 1))
        else:  # the first session was abandoned; the second went from batch 1 to the end
            assert len(set(ids)) == 2
            second = [q for s, q in sessions if s == ids[-1]]
            assert second == list(range(1, total + 1))


def test_the_cli_creates_runs_and_shows_a_sync(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        env = _env(w)
        root = str(w.root)
        at = ["--at", _iso(T0)]
        bad = audience(
            "syncs",
            "create",
            root,
            "women",
            "--segment",
            'gender = "f"',
            "--email",
            "age",
            "--integration",
            "ads",
            "--new-audience",
            "Women",
            *at,
            env=env,
        )
        _, err = bad.communicate(timeout=120)
        assert bad.returncode == 1 and "field_not_string" in err
        finish(
            audience(
                "syncs",
                "create",
                root,
                "women",
                "--segment",
                'gender = "f"',
                "--email",
                "email",
                "--consent",
                "consent",
                "--integration",
                "ads",
                "--new-audience",
                "Women",
                "--schedule",
                "every 6 hours",
                *at,
                env=env,
            )
        )
        listed = json.loads(finish(audience("syncs", "list", root, "--format", "json", env=env)))
        assert [(s["name"], s["schedule"]) for s in listed] == [("women", "every 6 hours")]
        queued = json.loads(
            finish(audience("syncs", "run", root, "women", "--format", "json", *at, env=env))
        )
        assert queued["state"] == "queued"
        ran = json.loads(
            finish(
                audience("syncs", "run", root, "women", "--wait", "--format", "json", *at, env=env)
            )
        )
        assert (ran["id"], ran["state"], ran["progress"]) == (queued["id"], "succeeded", 1.0)
        want = expected_hashes(w.store, lambda r: r["gender"] == "f" and r["consent"])
        assert ran["counts"]["sent"] == len(want) and w.members() == want
        shown = json.loads(
            finish(audience("syncs", "show", root, "women", "--format", "json", env=env))
        )
        assert shown["last_job"]["id"] == ran["id"] and shown["audience_id"]
        history = finish(audience("syncs", "history", root, "women", env=env))
        assert "succeeded" in history
        finish(audience("syncs", "schedule", root, "women", "--off", *at, env=env))
        finish(audience("syncs", "delete", root, "women", env=env))
        assert (
            json.loads(finish(audience("syncs", "list", root, "--format", "json", env=env))) == []
        )


def test_the_scheduler_runs_a_due_sync(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.create(schedule="every 1 hour")
        env = _env(w)
        out = finish(
            audience("scheduler", str(w.root), "--once", "--at", _iso(T0 + 3_600_000), env=env)
        )
        assert "sync women: job 1 (diff) succeeded" in out
        assert w.members() == expected_hashes(
            w.store, lambda r: r["gender"] == "f" and r["consent"]
        )
