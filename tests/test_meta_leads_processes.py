"""Lead workers as real processes: one killed with -9 at each step of storing a
batch, then another started: no lead lost, none stored twice.  And ``audience
serve`` end to end: a signed webhook answered by the server, its lead stored by
the server's worker process, which dies with the server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from audience.integrations.meta.leads.inbox import Inbox
from audience.integrations.meta.leads.worker import HALT_ENV, HALTED_FILE
from tests.helpers.mail_servers import free_port
from tests.helpers.processes import REPO, alive, children, cmdline, server_up, until
from tests.meta_leads_support import World, lead_events, profile, world

N = 7


def _audience(w: World, *args: str, **env: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "audience", *args]
    full = {**os.environ, **w.env(), "PYTHONPATH": str(REPO), **env}
    return subprocess.Popen(cmd, cwd=REPO, env=full, stderr=subprocess.PIPE)


def _all_done(w: World, ids: list[str]) -> bool:
    inbox = Inbox(w.root)
    return all(inbox.get(i).state == "done" for i in ids)


@pytest.mark.parametrize("step", ["fetched:3", "profile:3", "event:3"])
def test_a_worker_killed_mid_batch_is_replaced_without_loss_or_copies(
    tmp_path: Path, step: str
) -> None:
    with world(tmp_path) as w:
        leads = [w.lead({"email": f"k{i}@example.com", "first_name": f"K{i}"}, i) for i in range(N)]
        ids = [lead["id"] for lead in leads]
        Inbox(w.root).add(
            [(i, lead["form_id"], None, None, None) for i, lead in zip(ids, leads, strict=True)],
            "webhook",
            0,
        )
        halted = w.root / HALTED_FILE
        first = _audience(w, "leadforms", "work", str(w.root), "--lease-s", "1", **{HALT_ENV: step})
        try:
            until("the worker halts", lambda: halted.exists() or first.poll() is not None)
            assert first.poll() is None, first.communicate()
            os.kill(first.pid, signal.SIGKILL)
            first.wait(30)
        finally:
            if first.poll() is None:
                first.kill()
        assert not _all_done(w, ids)  # killed before it finished
        second = _audience(w, "leadforms", "work", str(w.root), "--lease-s", "1")
        try:
            until("the leads are stored", lambda: _all_done(w, ids))
        finally:
            second.terminate()
            second.wait(30)
        st = w.store()
        events = lead_events(st)
        assert Counter(e["leadgen_id"] for e in events) == dict.fromkeys(ids, 1)
        for i, lid in enumerate(ids):
            assert profile(st, f"lead:{lid}")["first_name"] == f"K{i}"


def test_serve_stores_webhook_leads_in_its_worker_process(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        port = free_port()
        proc = _audience(w, "serve", str(w.root), "--port", str(port))
        try:
            until("the server answers", lambda: server_up(port, proc))
            lead = w.lead({"email": "served@example.com", "first_name": "Serena"})
            w.fake.fail_next(lead["id"], "drop", "drop")  # the platform drops two fetches
            hook = f"http://127.0.0.1:{port}/hooks/meta"
            status, _ = w.leads.deliver_leadgen(hook, [lead])
            assert status == 200
            assert w.leads.deliver_leadgen(hook, [lead], secret="wrong")[0] == 403
            until("the lead is stored", lambda: _all_done(w, [lead["id"]]))
            assert sum(c.path == lead["id"] for c in w.fake.calls) == 3  # two dropped
            (ev,) = lead_events(w.store())
            assert ev["leadgen_id"] == lead["id"] and ev["source"] == "fb-spring-2026"
            workers = [c for c in children(proc.pid) if b"leads.worker" in cmdline(c)]
            assert len(workers) == 1
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(30)
            until("the worker exits with its server", lambda: not alive(workers[0]))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
