"""The diff, property-tested: random changes of segment membership, consent and
unsubscribes over several runs (some failing part-way, some full replaces): after
every successful run the fake audience's members are exactly the eligible contacts'
hashes, and no run leaves a contact without consent in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience.integrations.meta.fake import Fail
from audience.integrations.meta.sync.definitions import SUCCEEDED
from audience.integrations.meta.sync.diff import diff
from audience.integrations.meta.sync.eligible import rows_table
from audience.runtime.tracking.suppression import add as suppress
from tests.meta_sync_support import email_of, expected_hashes, sha, store_profiles, world

N = 16
SESSION_MS = 91 * 60 * 1000

change = st.tuples(st.integers(0, N - 1), st.sampled_from(["gender", "consent", "unsubscribe"]))
step = st.fixed_dictionaries(
    {
        "changes": st.lists(change, max_size=6),
        "replace": st.booleans(),
        "fail_at": st.one_of(st.none(), st.integers(1, 3)),
    }
)


def test_members_equal_the_eligible_after_every_successful_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDIENCE_META_SYNC_BATCH", "2")
    with world(tmp_path, n=N) as w:
        unsubscribed: set[str] = set()
        count = [0]

        @given(steps=st.lists(step, min_size=1, max_size=3))
        @settings(
            max_examples=10,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(steps: list[dict[str, Any]]) -> None:
            count[0] += 1
            name = f"s{count[0]}"
            w.create(name=name, audience_name=name)
            for s in steps:
                updates = []
                profiles = store_profiles(w.store)
                for i, what in s["changes"]:
                    rec: dict[str, Any] = {"contact_id": f"c{i:05d}"}
                    cur = profiles[i]
                    if what == "gender":
                        updates.append({**rec, "gender": "m" if cur["gender"] == "f" else "f"})
                    elif what == "consent":
                        updates.append({**rec, "consent": not cur["consent"]})
                    elif cur.get("email"):
                        suppress(w.root, email_of(i), "unsubscribed")
                        unsubscribed.add(sha(email_of(i)))
                if updates:
                    w.store.ingest_profiles(updates)
                if s["fail_at"] is not None:
                    w.audiences.uploads = 0
                    w.audiences.upload_faults = {s["fail_at"]: Fail(200, "no permission")}
                job = w.run(name, replace=s["replace"])
                w.audiences.upload_faults = {}
                want = (
                    expected_hashes(w.store, lambda r: r["gender"] == "f" and r["consent"] is True)
                    - unsubscribed
                )
                members = w.members(name)
                if job.state == SUCCEEDED:
                    assert members == want
                # nobody is ever in it without being eligible at some run: at least no
                # one who never consented or who unsubscribed before the run began
                assert not (members & unsubscribed)
            # a replace that failed part-way keeps its session open (the platform
            # refuses other uploads, 2650/1870145) until it times out
            w.clock.advance(SESSION_MS)
            final = w.run(name)
            assert final.state == SUCCEEDED, final.error
            assert (
                w.members(name)
                == expected_hashes(w.store, lambda r: r["gender"] == "f" and r["consent"] is True)
                - unsubscribed
            )

        run()


keys = st.lists(st.sampled_from([sha(str(i)) for i in range(30)]), max_size=30, unique=True)


@given(before=keys, after=keys, exact=st.booleans())
@settings(max_examples=200, deadline=None)
def test_the_diff_is_the_set_difference(before: list[str], after: list[str], exact: bool) -> None:
    prev = rows_table({"email": pa.array(before, pa.string())})
    target = rows_table({"email": pa.array(after, pa.string())})
    ch = diff(prev, target, exact)
    assert set(ch.removes["email"].to_pylist()) == set(before) - set(after)
    adds = set(ch.adds["email"].to_pylist())
    assert adds == (set(after) - set(before) if exact else set(after))
    # applying the changes to the previous members gives the target
    assert (set(before) - set(ch.removes["email"].to_pylist())) | adds == set(after)
