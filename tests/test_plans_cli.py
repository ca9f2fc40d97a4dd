"""``audience plans``, ``audience messages`` and ``audience scheduler``, through
the click commands, on a real store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.cli import run
from tests.plans_support import (
    DAILY_DUE,
    DAY,
    HOUR,
    ONCE_DUE,
    RULES,
    build,
    delivery_rows,
    iso,
    milan_buyers_at_once,
    milan_with_email,
    runs,
)

N = 30


@pytest.fixture
def root(tmp_path: Path) -> Path:
    st = build(tmp_path / "shop", N)
    assert st.path is not None
    (tmp_path / "plans.rules").write_text(RULES)
    return st.path


def test_add_list_show_ready_draft(root: Path) -> None:
    rules = str(root.parent / "plans.rules")
    before = iso(ONCE_DUE - DAY)
    out = run("plans", "add", str(root), rules, "--at", before).output
    assert "saved delivery 'Spring event reminder' (version 1)" in out
    assert "saved plan 'Spring reminder' (version 1, draft)" in out
    listed = json.loads(run("plans", "list", str(root), "--format", "json").output)
    assert [(p["name"], p["state"]) for p in listed["plans"]] == [
        ("Daily picks", "draft"),
        ("Spring reminder", "draft"),
    ]
    assert (
        "plan 'Spring reminder' is ready"
        in run("plans", "ready", str(root), "Spring reminder", "--at", before).output
    )
    shown = json.loads(
        run(
            "plans", "show", str(root), "Spring reminder", "--format", "json", "--at", before
        ).output
    )
    assert shown["state"] == "ready"
    assert shown["next_occurrence"] == "2027-03-11T09:00:00Z"
    # due: no more changes
    late = run("plans", "draft", str(root), "Spring reminder", "--at", iso(ONCE_DUE), ok=False)
    assert late.exit_code == 1
    assert "error[plan_due]" in late.output
    assert "draft" in run("plans", "draft", str(root), "Spring reminder", "--at", before).output
    missing = run("plans", "show", str(root), "Nope", ok=False)
    assert missing.exit_code == 1 and "error[not_found]" in missing.output


def test_ready_refuses_a_past_one_shot(root: Path) -> None:
    rules = str(root.parent / "plans.rules")
    run("plans", "add", str(root), rules)
    out = run("plans", "ready", str(root), "Spring reminder", "--at", iso(ONCE_DUE + 1), ok=False)
    assert out.exit_code == 1
    assert "error[not_ready]" in out.output and "has passed" in out.output


def test_a_bad_rules_file_is_refused_with_its_position(root: Path) -> None:
    bad = root.parent / "bad.rules"
    bad.write_text(RULES.replace('send "Spring event reminder"', 'send "No such delivery"', 1))
    out = run("plans", "add", str(root), str(bad), ok=False)
    assert out.exit_code == 1
    assert "No such delivery" in out.output and "bad.rules:" in out.output
    assert json.loads(run("plans", "list", str(root), "--format", "json").output) == {"plans": []}


def test_preview_then_the_scheduler_then_runs(root: Path) -> None:
    rules = str(root.parent / "plans.rules")
    run("plans", "add", str(root), rules)
    run("plans", "ready", str(root), "Spring reminder", "--at", iso(ONCE_DUE - DAY))
    preview = json.loads(
        run(
            "plans", "preview", str(root), "Spring reminder", "--format", "json",
            "--at", iso(ONCE_DUE - DAY),
        ).output
    )  # fmt: skip
    expected = milan_buyers_at_once(N)
    assert preview["at_ms"] == ONCE_DUE  # its next occurrence
    assert preview["at"] == "2027-03-11T09:00:00Z"
    assert preview["to_send"] == len(expected)
    assert preview["audience"] - preview["without_email"] == len(expected)
    assert delivery_rows(root) == [] and runs(root) == []  # a preview writes nothing
    text = run("plans", "preview", str(root), "Spring reminder", "--when", iso(ONCE_DUE)).output
    assert f"to send {len(expected)}" in text
    out = run("scheduler", str(root), "--once", "--at", iso(ONCE_DUE)).output
    assert f"reserved {len(expected)}" in out
    again = run("scheduler", str(root), "--once", "--at", iso(ONCE_DUE)).output
    assert again == "nothing was due at 2027-03-11T09:00:00Z\n"  # that occurrence ran once
    listed = json.loads(run("plans", "runs", str(root), "--format", "json").output)
    assert [(r["plan"], r["state"]) for r in listed["runs"]] == [("Spring reminder", "done")]
    assert listed["runs"][0]["counts"]["reserved"] == len(expected)
    assert "Spring reminder" in run("plans", "runs", str(root), "Spring reminder").output


def test_test_sends_are_marked_and_never_counted(root: Path) -> None:
    rules = str(root.parent / "plans.rules")
    run("plans", "add", str(root), rules)
    sent = json.loads(
        run(
            "messages", "test", str(root), "Spring event reminder", "--contact", "c00002",
            "--format", "json",
        ).output
    )["sent"]  # fmt: skip
    assert [s["to"] for s in sent] == ["qa@maison.example", "marketing@maison.example"]
    rows = delivery_rows(root)
    assert len(rows) == 2
    from audience.runtime.delivery import DeliveryLog

    with DeliveryLog.open(root) as log:
        test = log.list()
    assert all(d.test for d in test)
    assert test[0].payload["subject"] == "Our spring collection, Name2"
    assert test[0].payload["text"] == "Dear Name2 of Milan"
    # the daily plan's "max 1 per day" would hold c00002 back if they counted
    run("plans", "ready", str(root), "Daily picks", "--at", iso(DAILY_DUE - HOUR))
    preview = json.loads(
        run(
            "plans", "preview", str(root), "Daily picks", "--format", "json",
            "--when", str(test[0].due_ms + 1000),
        ).output
    )  # fmt: skip
    assert preview["held"] == 0 and preview["to_send"] == len(milan_with_email(N))
    unknown = run(
        "messages", "test", str(root), "Spring event reminder", "--contact", "zz", ok=False
    )
    assert "error[unknown_contact]" in unknown.output


def test_messages_list_show_delete(root: Path) -> None:
    rules = str(root.parent / "plans.rules")
    run("messages", "add", str(root), rules)
    listed = json.loads(run("messages", "list", str(root), "--format", "json").output)
    assert [d["name"] for d in listed["deliveries"]] == ["Spring event reminder"]
    assert json.loads(run("plans", "list", str(root), "--format", "json").output) == {"plans": []}
    assert "template" in run("messages", "show", str(root), "Spring event reminder").output
    run("plans", "add", str(root), rules)
    used = run("messages", "delete", str(root), "Spring event reminder", ok=False)
    assert "error[delivery_in_use]" in used.output
    run("plans", "delete", str(root), "Spring reminder")
    run("plans", "delete", str(root), "Daily picks")
    run("messages", "delete", str(root), "Spring event reminder")
    assert "0 deliveries" in run("messages", "list", str(root)).output


def test_the_old_deliveries_listing_still_works(root: Path) -> None:
    assert "0 deliveries shown" in run("deliveries", str(root)).output
