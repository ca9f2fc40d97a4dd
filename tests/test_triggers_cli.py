"""``audience triggers|dnd|templates``, through click's runner."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from audience.cli import trigger_cmds
from audience.runtime.node import Node, open_node

EXAMPLES = Path(__file__).resolve().parents[1] / "audience" / "examples"


@pytest.fixture
def cli() -> click.Group:
    @click.group()
    def group() -> None:
        pass

    trigger_cmds.register(group)
    return group


@pytest.fixture
def store(tmp_path: Path) -> str:
    Node.init(tmp_path / "s", EXAMPLES / "maison.toml")
    return str(tmp_path / "s")


def run(cli: click.Group, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(cli, list(args))
    return res.exit_code, res.output


def test_templates_dnd_and_triggers_round_trip(
    cli: click.Group, store: str, tmp_path: Path
) -> None:
    (tmp_path / "t.html").write_text("<p>Hi {{ first_name }} ({{ form }})</p>")
    (tmp_path / "t.txt").write_text("Hi {{ first_name }}")
    code, out = run(
        cli, "templates", "add", store, "C-1234", "--subject", "Hello",
        "--html", str(tmp_path / "t.html"), "--text", str(tmp_path / "t.txt"),
    )  # fmt: skip
    assert code == 0 and "version 1" in out
    code, out = run(cli, "triggers", "add", store, "-f", str(EXAMPLES / "maison.rules"))
    assert code == 0, out
    assert "saved dnd policy 'Maison shoes, clothes and accessories'" in out
    assert (
        "saved trigger 'Thank newsletter subscribers' (version 1, enabled, "
        "fires for events from 2026-01-01T00:00:00.000Z)"
    ) in out
    code, out = run(cli, "triggers", "add", store, "-f", str(EXAMPLES / "maison.rules"))
    assert "version 2" in out
    code, out = run(cli, "triggers", "list", store)
    assert out.startswith("Thank newsletter subscribers\tversion 2\tenabled")
    code, out = run(cli, "triggers", "show", store, "Thank newsletter subscribers")
    assert 'on form_compiled where (form_name = "addUser"' in out
    code, out = run(cli, "triggers", "show", store, "Thank newsletter subscribers", "--history")
    assert "# version 1" in out and "# version 2" in out
    code, out = run(cli, "triggers", "disable", store, "Thank newsletter subscribers")
    assert code == 0
    assert "disabled" in run(cli, "triggers", "list", store)[1]
    run(cli, "triggers", "enable", store, "Thank newsletter subscribers")
    code, out = run(cli, "dnd", "list", store)
    assert out.startswith("Maison shoes, clothes and accessories\tversion 2")
    code, out = run(cli, "dnd", "show", store, "Maison shoes, clothes and accessories")
    assert "max 1 per day" in out
    code, out = run(cli, "templates", "show", store, "C-1234")
    assert "subject: Hello" in out
    code, out = run(cli, "templates", "list", store)
    assert out.startswith("C-1234\tversion 1")

    st = open_node(store)
    st.ingest_profiles([{"contact_id": "c1", "email": "a@example.com"}])
    st.ingest_events(
        [
            {"contact_id": "c1", "type": "form_compiled", "ts": "2026-11-20T10:00:00Z",
             "context": "WEB", "form_name": "addUser"},
        ]
    )  # fmt: skip
    assert [d.status for d in st.triggers.log.list()] == ["reserved"]
    code, out = run(cli, "triggers", "dry-run", store, "--since", "2026-11-01T00:00:00Z")
    assert code == 0 and out.startswith("1 event, 1 matched, 1 would fire")
    assert "would: would send 1" in out
    assert out.endswith("already in the delivery log for these events: reserved 1\n")
    code, out = run(cli, "triggers", "dry-run", store, "--format", "json")
    doc = json.loads(out)
    assert (doc["matched"], doc["would"], doc["in_log"]["by_status"]) == (
        1,
        {"would send": 1},
        {"reserved": 1},
    )

    assert run(cli, "triggers", "delete", store, "Thank newsletter subscribers")[0] == 0
    assert run(cli, "triggers", "list", store)[1] == ""
    assert run(cli, "triggers", "delete", store, "Thank newsletter subscribers")[0] == 1
    assert run(cli, "dnd", "delete", store, "Maison shoes, clothes and accessories")[0] == 0
    assert run(cli, "templates", "delete", store, "C-1234")[0] == 0
    assert run(cli, "templates", "show", store, "C-1234")[0] == 1


def test_errors_are_rendered_as_in_spec_7(cli: click.Group, store: str) -> None:
    text = 'trigger "T" {\n  on purchase\n  do add_tag("x")\n}\n'
    code, out = run(cli, "triggers", "add", store, "-e", text)
    assert code == 1
    assert "error: unknown event type 'purchase'" in out
    assert "help: did you mean 'purchased'?" in out
    assert " --> <-e>:2:6" in out
    code, out = run(
        cli,
        "triggers",
        "add",
        store,
        "-e",
        'trigger "T" {\n on purchased\n do add_tag("x")\n dnd "Nope"\n}',
    )
    assert code == 1 and "Nope" in out
    code, out = run(cli, "dnd", "add", store, "-e", 'dnd "D" {\n  global\n}')
    assert code == 1 and "error:" in out
    assert run(cli, "triggers", "list", store)[1] == ""
    assert run(cli, "triggers", "add", store)[0] == 2  # neither -f nor -e
