"""Custom audience syncs end to end: definitions in the store's private SQLite file, jobs
run by the worker against the fake Graph server over real HTTP, diffs, consent,
unsubscribes, replace, faults and schedules."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from audience.integrations.meta.fake import Fail
from audience.integrations.meta.graph import GraphError
from audience.integrations.meta.sync.definitions import FAILED, PARTIAL, SUCCEEDED, SyncError
from audience.integrations.meta.sync.service import DAY_MS, HOUR_MS, parse_every
from audience.integrations.meta.tokens import INACTIVE
from audience.runtime.tracking.suppression import add as suppress
from tests.meta_sync_support import TOKEN, email_of, expected_hashes, sha, world


def women_with_consent(rec: dict[str, object]) -> bool:
    return rec["gender"] == "f" and rec["consent"] is True


def test_first_run_uploads_every_eligible_contact_then_nothing(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.create()
        job = w.run()
        assert job.state == SUCCEEDED and job.progress == 1.0
        want = expected_hashes(w.store, women_with_consent)
        assert w.members() == want and want
        c = job.counts
        assert c["sent"] == len(want) == c["eligible"] == c["to_add"]
        assert c["segment"] == 30 and c["no_consent"] == 10
        assert c["to_remove"] == 0 and c["platform_invalid"] == 0
        aud = next(iter(w.audiences.audiences.values()))
        assert aud.name == "Women (audience)" and aud.customer_file_source == "USER_PROVIDED_ONLY"
        # a second run with nothing changed uploads nothing and keeps the members
        again = w.run()
        assert again.state == SUCCEEDED and again.counts["sent"] == 0
        assert again.batches_total == 0 and w.members() == want


def test_a_diff_run_removes_withdrawn_consent_unsubscribed_and_leavers(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.create()
        w.run()
        before = w.members()
        w.store.ingest_profiles(
            [
                {"contact_id": "c00002", "consent": False},  # withdrew consent
                {"contact_id": "c00004", "gender": "m"},  # left the segment
                {"contact_id": "c00007", "gender": "f"},  # joined it
            ]
        )
        suppress(w.root, email_of(8), "unsubscribed")
        job = w.run()
        assert job.state == SUCCEEDED
        gone = {sha(email_of(i)) for i in (2, 4, 8)}
        assert gone <= before and not (gone & w.members())
        assert sha(email_of(7)) not in before
        assert w.members() == (before - gone) | {sha(email_of(7))}
        assert (job.counts["to_remove"], job.counts["to_add"], job.counts["sent"]) == (3, 1, 4)
        assert job.counts["suppressed"] == 1
        removes = [c for c in w.fake.calls if c.method == "DELETE" and c.path.endswith("/users")]
        assert removes and all("payload" not in c.path and "payload" in c.params for c in removes)
        assert all(b"payload" in c.body for c in removes)  # in the body, never the URL


def test_batches_of_one_session_with_seq_and_last_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDIENCE_META_SYNC_BATCH", "4")
    with world(tmp_path) as w:
        w.create()
        job = w.run()
        posts = [c for c in w.fake.calls if c.path.endswith("/users")]
        sessions = [c.json_field("session") for c in posts]
        n = len(expected_hashes(w.store, women_with_consent))
        assert len(posts) == job.batches_total == -(-n // 4)
        assert len({s["session_id"] for s in sessions}) == 1
        assert 0 < sessions[0]["session_id"] < 2**63
        assert [s["batch_seq"] for s in sessions] == list(range(1, len(posts) + 1))
        assert [s["last_batch_flag"] for s in sessions] == [False] * (len(posts) - 1) + [True]
        assert {s["estimated_num_total"] for s in sessions} == {n}
        assert all(len(c.json_field("payload")["data"]) <= 4 for c in posts)
        # one JSON document each (the platform takes it as it takes form fields)
        assert {c.headers.get("Content-Type") for c in posts} == {"application/json"}


def test_email_and_phone_rows_follow_the_schema_order(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.create(phone_field="phone", consent_field=None, segment="age >= 0")
        job = w.run()
        assert job.state == SUCCEEDED
        post = next(c for c in w.fake.calls if c.path.endswith("/users"))
        assert post.json_field("payload")["schema"] == ["EMAIL_SHA256", "PHONE_SHA256"]
        members = w.members()
        # c00000: phone only; c00004: both; c00001: email only
        assert ("", sha("15550100000")) in members
        assert (sha(email_of(4)), sha("15550100004")) in members
        assert (sha(email_of(1)), "") in members
        assert len(members) == 60 - 6  # every fifth lacks an email; half of those have a phone


def test_replace_sets_the_audience_to_exactly_the_eligible(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.create()
        w.run()
        sync = w.service().defs.get("women")
        assert sync.audience_id is not None
        stranger = sha("stranger@example.com")
        w.audiences.audiences[sync.audience_id].members.add(stranger)
        job = w.run(replace=True)
        assert job.state == SUCCEEDED and job.mode == "replace"
        assert w.members() == expected_hashes(w.store, women_with_consent)
        assert any(c.path.endswith("/usersreplace") for c in w.fake.calls)


def test_a_timed_out_replace_session_restarts_once(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.create(audience_name=None, audience_id=w.audiences.create("42", "old").id)
        w.fake.fail_next(r"\d+/usersreplace", _fail(2650, 1870158))
        job = w.run(replace=True)
        assert job.state == SUCCEEDED and job.recovery == "restarted"
        assert w.members() == expected_hashes(w.store, women_with_consent)


def test_a_replace_refused_while_another_runs_fails_with_the_reason(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.create(audience_name=None, audience_id=w.audiences.create("42", "old").id)
        w.fake.fail_next(r"\d+/usersreplace", _fail(2650, 1870145))
        job = w.run(replace=True)
        assert job.state == FAILED and "still being updated" in (job.error or "")


def test_rate_limit_then_success_and_dropped_connections_are_retried(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.create()
        w.fake.fail_next(r"\d+/users", w.fake.rate_limit(80003), "drop")
        job = w.run()
        assert job.state == SUCCEEDED
        assert w.members() == expected_hashes(w.store, women_with_consent)


def test_error_190_marks_the_integration_inactive_and_fails_the_job(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.create()
        w.fake.fail_next(r"\d+/users", _fail(190, 463))
        job = w.run()
        assert job.state == FAILED and "refused the token" in (job.error or "")
        ints = w.worker().runner.integrations
        assert ints.get("ads").status(w.clock()) == INACTIVE
        # the next run fails at once, saying to re-authorize
        again = w.run()
        assert again.state == FAILED and "re-authorize" in (again.error or "")


def test_a_job_failing_part_way_leaves_no_contact_without_consent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDIENCE_META_SYNC_BATCH", "3")
    with world(tmp_path) as w:
        w.create()
        # a batch goes through, then a refusal for good (permissions: not retried)
        w.audiences.upload_faults[2] = _fail(200, None)
        partial = w.run()
        assert partial.state == PARTIAL and partial.cursor == 1
        assert w.members() and not w.service().defs.get("women").state_exact
        # everyone withdraws consent: the next run empties the audience
        w.store.ingest_profiles([{"contact_id": f"c{i:05d}", "consent": False} for i in range(60)])
        done = w.run()
        assert done.state == SUCCEEDED and w.members() == set()


def test_creation_checks_refuse_bad_input_and_write_nothing(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        cases: dict[str, dict[str, Any]] = {
            "no_segment": {"segment": "NoSuchSegment"},
            "bad_segment": {"segment": "gender = = 1"},
            "no_field": {"email_field": "mail"},
            "field_not_string": {"email_field": "age"},
            "consent_not_bool": {"consent_field": "gender"},
            "no_integration": {"integration": "nope"},
            "no_node": {"node": "other"},
            "no_match_key": {"email_field": None},
            "bad_destination": {"audience_id": "123"},
            "bad_source": {"customer_file_source": "SOMEONE"},
            "bad_schedule": {"schedule": "every week"},
            "bad_name": {"name": " "},
        }
        for code, kw in cases.items():
            with pytest.raises(SyncError) as err:
                w.create(**kw)
            assert err.value.code == code, (code, str(err.value))
        assert w.service().defs.all() == []
        w.create()
        with pytest.raises(SyncError) as err:
            w.create()
        assert err.value.code == "sync_exists"


def test_a_saved_segment_by_name(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.store.save_segment("Women", 'gender = "f"')
        w.create(segment="Women")
        assert w.run().state == SUCCEEDED
        assert w.members() == expected_hashes(w.store, women_with_consent)


def test_schedules_queue_due_runs_once_per_period(tmp_path: Path) -> None:
    assert parse_every("every 6 hours") == 6 * HOUR_MS
    assert parse_every("every 1 day") == DAY_MS
    with world(tmp_path) as w:
        w.create(schedule="every 2 hours")
        worker = w.worker()
        assert worker.work_once() == []
        w.clock.advance(2 * HOUR_MS)
        first = worker.work_once()
        assert [j.origin for j in first] == ["schedule"] and first[0].state == SUCCEEDED
        assert worker.work_once() == []
        w.clock.advance(7 * HOUR_MS)  # three periods missed: one run
        assert len(worker.work_once()) == 1
        sync = w.service().defs.get("women")
        assert sync.next_due_ms == w.clock() + HOUR_MS
        w.service().schedule("women", None)
        w.clock.advance(10 * DAY_MS)
        assert worker.work_once() == []
        assert [j.origin for j in w.service().defs.jobs("women")] == ["schedule", "schedule"]


def test_a_run_queued_twice_is_one_job(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.create()
        a, fresh_a = w.service().run("women")
        b, fresh_b = w.service().run("women")
        assert (a.id, fresh_a, fresh_b) == (b.id, True, False)


def test_the_fake_counts_invalid_hashes(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        aud = w.audiences.create("42", "raw")
        client = w.worker().runner.integrations.client("ads")
        body = {
            "payload": {"schema": "EMAIL_SHA256", "data": [sha("a@b.co"), "not-a-hash", "A" * 64]},
            "session": {"session_id": 7, "batch_seq": 1, "last_batch_flag": True},
        }
        answer = client.post(f"{aud.id}/users", body)
        assert answer["num_received"] == 3 and answer["num_invalid_entries"] == 2
        assert len(answer["invalid_entry_samples"]) == 2
        read = client.get(aud.id, {"fields": "approximate_count_lower_bound,operation_status"})
        assert read["approximate_count_lower_bound"] == 1
        assert read["operation_status"]["code"] == 200
        with pytest.raises(GraphError) as err:
            client.post(f"{aud.id}/users", body)  # the session finished
        assert err.value.code == 2650


def _fail(code: int, subcode: int | None) -> Fail:
    return Fail(code, f"injected {code}", subcode=subcode)


def test_the_fake_takes_json_bodies_too(tmp_path: Path) -> None:
    import requests

    with world(tmp_path) as w:
        aud = w.audiences.create("42", "json")
        body: dict[str, Any] = {
            "payload": {"schema": ["EMAIL_SHA256", "PHONE_SHA256"], "data": [[sha("x@y.co"), ""]]},
            "session": {"session_id": 9, "batch_seq": 1, "last_batch_flag": True},
        }
        r = requests.post(
            f"{w.url}/v21.0/{aud.id}/users", json=body, params={"access_token": TOKEN}, timeout=30
        )
        assert r.status_code == 200 and r.json()["num_received"] == 1
        assert aud.members == {(sha("x@y.co"), "")}


def test_a_timeout_mid_upload_is_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIENCE_META_SYNC_BATCH", "5")
    with world(tmp_path) as w:
        w.create()
        # the first batch's first attempt gets no answer (the client times out and sends it
        # again); the second batch's first attempt fails with a transient error
        w.audiences.upload_faults[2] = Fail(2, "Service temporarily unavailable", transient=True)
        worker = w.worker()
        worker.runner.integrations.config = replace(w.config, timeout_s=1.0)
        w.service().run("women")
        w.fake.fail_next(r"\d+/users", "hang")
        [done] = worker.work_once()
        assert done.state == SUCCEEDED
        assert w.members() == expected_hashes(w.store, women_with_consent)


def test_the_scheduler_loop_uploads_beside_the_plans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the long-running loop a tick does not wait for an upload (a plan due meanwhile
    starts on time); the job's line joins a later tick's report."""
    from audience.runtime.plans.scheduler import Scheduler

    with world(tmp_path) as w:
        monkeypatch.setenv("AUDIENCE_META_GRAPH_URL", w.url)
        monkeypatch.setenv("AUDIENCE_META_GRAPH_VERSION", w.config.version)
        w.create()
        job, _ = w.service().run("women")
        w.audiences.gate = threading.Event()
        sched = Scheduler(w.root, clock=w.clock, background_syncs=True)
        try:
            held = sched.tick()  # returns while the upload is held at the fake
            assert held.sync_jobs == []
            assert w.service().defs.job(job.id).state != SUCCEEDED
            w.audiences.gate.set()
            assert sched._sync_thread is not None
            sched._sync_thread.join()
            later = sched.tick()
            [line] = later.sync_jobs
            assert line.startswith(f"sync women: job {job.id} (diff) succeeded")
            assert w.members() == expected_hashes(w.store, women_with_consent)
        finally:
            w.audiences.gate.set()
            if sched._sync_thread is not None:
                sched._sync_thread.join()
            sched.close()
