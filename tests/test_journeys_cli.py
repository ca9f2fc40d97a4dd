"""``audience journeys ...`` through the click commands, on a real store: saving,
states and versions, a contact's position and history, entering by hand, the
dry run, and the refusals (plain errors, exit 1, nothing changed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from audience.cli import cli
from audience.runtime.delivery import DeliveryLog
from audience.runtime.node import Node
from tests.helpers.cli import run
from tests.journeys_api_support import DAY, HOUR, JOURNEY, NAME, T0, build, contact, iso
from tests.journeys_api_support import subscription as form


@pytest.fixture
def root(tmp_path: Path) -> Path:
    st = build(tmp_path / "shop")
    assert st.path is not None
    (tmp_path / "welcome.rules").write_text(JOURNEY)
    return st.path


def rules(root: Path) -> str:
    return str(root.parent / "welcome.rules")


def journey_deliveries(root: Path) -> list[tuple[str, str]]:
    with DeliveryLog.open(root) as log:
        return [(d.contact_id, d.status) for d in log.list() if d.source.startswith("journey:")]


def test_add_list_show_and_states(root: Path) -> None:
    out = run("journeys", "add", str(root), rules(root), "--at", iso(T0 - DAY)).output
    assert out == f"saved journey {NAME!r} (version 1, draft)\n"
    listed = json.loads(run("journeys", "list", str(root), "--format", "json").output)
    assert [(j["name"], j["state"], j["version"]) for j in listed["journeys"]] == [
        (NAME, "draft", 1)
    ]
    assert (
        run("journeys", "list", str(root)).output
        == f"{NAME}\tdraft\tversion 1\t0 runs\n1 journey\n"
    )
    # journeys belong to a node
    Node.init(root, root / "nodes" / "main" / "schema.toml", node="other")
    assert run("journeys", "list", str(root), "--node", "other").output == "0 journeys\n"
    # a draft is replaced (its version number is not reused)
    out = run("journeys", "add", str(root), rules(root)).output
    assert out == f"replaced the draft journey {NAME!r} (version 2, draft)\n"
    live = run("journeys", "live", str(root), NAME, "--at", iso(T0 - HOUR)).output
    assert live.startswith(f"journey {NAME!r} is live")
    shown = run("journeys", "show", str(root), NAME).output
    assert shown.startswith("# live, version 2 (versions 2)\n")
    assert 'check "Clicked?" clicked "Welcome" within 3 days' in shown
    table = shown.split("\n\n")[-1].splitlines()
    assert table[0].split() == ["step", "kind", "label", "entered", "waiting", "ended"]
    assert table[-1] == "0 runs"
    assert [r.split()[:2] for r in table[1:-1]] == [
        ["0", "action"],
        ["1", "check"],
        ["1.yes.0", "action"],
        ["1.yes.1", "end"],
        ["1.no.0", "end"],
    ]
    # editing a live journey makes a new version
    edited = root.parent / "edited.rules"
    edited.write_text(JOURNEY.replace("within 3 days", "within 5 days"))
    out = run("journeys", "add", str(root), str(edited)).output
    assert "as version 3 (live)" in out and "stay on version 2" in out
    info = json.loads(run("journeys", "show", str(root), NAME, "--format", "json").output)
    assert info["version"] == 3 and info["versions"] == [2, 3] and "5 days" in info["text"]
    assert "is paused" in run("journeys", "pause", str(root), NAME).output
    refused = run("journeys", "delete", str(root), NAME, ok=False)
    assert refused.exit_code == 1 and refused.output.startswith("error[")
    assert "has ended" in run("journeys", "end", str(root), NAME).output
    assert run("journeys", "delete", str(root), NAME).output == f"deleted journey {NAME!r}\n"
    assert run("journeys", "list", str(root)).output == "0 journeys\n"


def test_add_from_stdin(root: Path) -> None:
    result = CliRunner().invoke(cli, ["journeys", "add", str(root), "-"], input=JOURNEY)
    assert result.exit_code == 0, result.output
    assert result.output == f"saved journey {NAME!r} (version 1, draft)\n"
    bad = CliRunner().invoke(cli, ["journeys", "add", str(root), "-"], input="journey {")
    assert bad.exit_code == 1 and "<stdin>:1:" in bad.output


def test_refusals_are_plain_and_change_nothing(root: Path) -> None:
    missing = run("journeys", "show", str(root), "Nope", ok=False)
    assert missing.exit_code == 1 and "error[not_found]" in missing.output
    assert "Traceback" not in missing.output
    syntax = root.parent / "syntax.rules"
    syntax.write_text(JOURNEY.replace("within 3 days", "within 3"))
    out = run("journeys", "add", str(root), str(syntax), ok=False)
    assert out.exit_code == 1 and "syntax.rules:8:5" in out.output
    bad = root.parent / "bad.rules"
    bad.write_text(JOURNEY.replace('clicked "Welcome"', 'clicked "Nothing"'))
    out = run("journeys", "add", str(root), str(bad), ok=False)
    assert out.exit_code == 1
    assert "bad.rules:" in out.output and "Nothing" in out.output
    unknown = root.parent / "unknown.rules"
    unknown.write_text(JOURNEY.replace('send "Complete your profile"', 'send "No such"'))
    out = run("journeys", "add", str(root), str(unknown), ok=False)
    assert out.exit_code == 1 and "No such" in out.output
    assert json.loads(run("journeys", "list", str(root), "--format", "json").output) == {
        "journeys": []
    }
    # a journey whose delivery is only in its file cannot go live until it is saved
    alone = root.parent / "alone.rules"
    alone.write_text(
        'delivery "Later" { template "profile" fields { first_name: "you" } }\n'
        + JOURNEY.replace('send "Your promotional code"', 'send "Later"')
    )
    run("journeys", "add", str(root), str(alone))
    refused = run("journeys", "live", str(root), NAME, ok=False)
    assert refused.exit_code == 1
    assert refused.output == (
        f"error[not_ready]: journey {NAME!r} cannot go live\n"
        "  - step 1.yes.0: delivery 'Later' is not saved\n"
    )
    assert (
        json.loads(run("journeys", "show", str(root), NAME, "--format", "json").output)["state"]
        == "draft"
    )
    run("journeys", "delete", str(root), NAME)
    nostore = run("journeys", "list", str(root.parent / "nowhere"), ok=False)
    assert nostore.exit_code == 1 and "Traceback" not in nostore.output
    badtime = run(
        "journeys", "dry-run", str(root), NAME, "--since", "soon", "--until", "1", ok=False
    )
    assert badtime.exit_code == 2 and "--since" in badtime.output


def test_position_history_and_enter(root: Path) -> None:
    run("journeys", "add", str(root), rules(root), "--at", iso(T0 - DAY))
    run("journeys", "live", str(root), NAME, "--at", iso(T0 - HOUR))
    st = Node.open(root)
    st.ingest_events([form(0, T0)])
    runs = json.loads(
        run("journeys", "position", str(root), NAME, contact(0), "--format", "json").output
    )
    assert runs["contact_id"] == contact(0)
    [entry] = runs["runs"]
    assert entry["version"] == 1 and entry["entry"] == 1 and entry["step"] == "1"
    text = run("journeys", "position", str(root), NAME, contact(0)).output
    assert text == (
        f"entry 1 (version 1, entered {iso(T0)}): waiting at step 1 for a click or open "
        f"until {iso(T0 + 3 * DAY)}\n"
    )
    assert journey_deliveries(root) == [(contact(0), "reserved")]
    history = json.loads(
        run("journeys", "history", str(root), NAME, contact(0), "--format", "json").output
    )["history"]
    assert [(h["step"], h["kind"]) for h in history] == [
        ("0", "entered"),
        ("0", "action"),
        ("1", "check"),
    ]
    assert history[1]["outcome"]["status"] == "reserved"
    text = run("journeys", "history", str(root), NAME, contact(0)).output
    assert text.splitlines() == [
        f"{iso(T0)}  entry 1  step 0  entered: on event form-0",
        f"{iso(T0)}  entry 1  step 0  action: message reserved",
        f"{iso(T0)}  entry 1  step 1  check: deadline {iso(T0 + 3 * DAY)}",
        "3 steps",
    ]
    none = run("journeys", "position", str(root), NAME, contact(1)).output
    assert none == f"{contact(1)} has not entered journey {NAME!r}\n"
    # by hand, as a trigger's enter_journey does; once per contact
    out = run("journeys", "enter", str(root), NAME, contact(1), "--at", iso(T0 + HOUR)).output
    assert out.startswith(f"{contact(1)} entered journey {NAME!r} (version 1")
    nobody = run("journeys", "enter", str(root), NAME, "nobody", ok=False)
    assert nobody.exit_code == 1
    assert nobody.output == "error[not_found]: no contact 'nobody' in node 'main'\n"
    again = run("journeys", "enter", str(root), NAME, contact(1), "--at", iso(T0 + 2 * HOUR))
    assert f"{contact(1)} did not enter journey" in again.output
    listed = run("journeys", "list", str(root)).output
    assert listed == f"{NAME}\tlive\tversion 1\t2 runs: 2 waiting\n1 journey\n"
    assert sorted(journey_deliveries(root)) == [
        (contact(0), "reserved"),
        (contact(1), "reserved"),
    ]


def test_dry_run_writes_nothing(root: Path) -> None:
    run("journeys", "add", str(root), rules(root), "--at", iso(T0 - DAY))
    st = Node.open(root)
    st.ingest_events([form(i, T0 + i * HOUR) for i in range(5)])  # a draft: no one enters
    before = journey_deliveries(root)
    assert before == []
    args = ("--since", iso(T0 - HOUR), "--until", iso(T0 + 5 * DAY))
    report = json.loads(
        run("journeys", "dry-run", str(root), NAME, *args, "--format", "json").output
    )
    # five subscribers entered; the fifth has no email: four welcomes; nobody clicked
    assert report["entered"] == 5
    assert report["sends_per_day"] == {iso(T0)[:10]: {"reserved": 4}}
    by_step = {s["step"]: s for s in report["steps"]}
    assert by_step["1.no.0"]["done"] == 5 and by_step["1.yes.0"]["entered"] == 0
    assert {b["branch"] for b in report["branches"]} == {"no"}
    text = run("journeys", "dry-run", str(root), NAME, *args, "--contact", contact(0)).output
    assert f"contact {contact(0)}:" in text
    assert f"{iso(T0 + 3 * DAY)} 'Clicked?': no (no click on 'Welcome' by the deadline)" in text
    assert journey_deliveries(root) == []
    assert (
        json.loads(
            run("journeys", "position", str(root), NAME, contact(0), "--format", "json").output
        )["runs"]
        == []
    )
