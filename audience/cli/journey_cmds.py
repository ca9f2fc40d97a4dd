"""``audience journeys ...``: saved journeys (docs/language/journeys.md), their
states, where each contact stands, and the dry run over past events.

Every rule (what may be edited when, what a state allows) is the journey
service's, the same the HTTP API applies; this module only words it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from audience.cli.output import echo_json, format_option, instant_ms, plural
from audience.cli.plan_cmds import _clock, _open, _read
from audience.dsl.errors import DslError
from audience.runtime.journeys.service import JourneyError, JourneyService, SavedJourney
from audience.runtime.shards.errors import NotOnShards

T = TypeVar("T")

_store_arg = click.argument("store", type=click.Path())
_name_arg = click.argument("name")
_contact_arg = click.argument("contact")
_node_opt = click.option("--node", default="main", show_default=True)
_fmt_opt = format_option("text", "json")
_at_opt = click.option("--at", "at", help="act as if the clock read T (ISO 8601 or epoch ms)")


def _service(store: str, node: str, at: str | None = None) -> JourneyService:
    return JourneyService(_open(store, node), _clock(at))


def _refuse(err: JourneyError | DslError) -> NoReturn:
    if isinstance(err, DslError):
        click.echo(err.render(), err=True)
    else:
        click.echo(f"error[{err.code}]: {err.message}", err=True)
        for problem in err.problems:
            click.echo(f"  - {problem}", err=True)
    sys.exit(1)


def _do(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``; a refusal is printed plainly and exits 1 (nothing changed)."""
    try:
        return fn(*args)
    except (JourneyError, DslError) as err:
        _refuse(err)
    except NotOnShards as exc:
        raise click.ClickException(str(exc)) from None


# ---------------------------------------------------------------------------- wording
def added_line(saved: SavedJourney, before: SavedJourney | None) -> str:
    """What ``add`` did to one journey, in words."""
    if before is None:
        return f"saved journey {saved.name!r} (version {saved.version}, {saved.state})"
    if before.state == "draft":
        return f"replaced the draft journey {saved.name!r} (version {saved.version}, draft)"
    return (
        f"saved journey {saved.name!r} as version {saved.version} ({saved.state}): new "
        f"entries take it; contacts already inside stay on version {before.version}"
    )


_STATE_WORDS = {
    "live": "is live: contacts enter and move on",
    "paused": "is paused: no one enters or moves on until it is live again",
    "ended": "has ended: no one enters or moves on any more",
    "draft": "is a draft",
}


def state_line(saved: SavedJourney) -> str:
    words = _STATE_WORDS.get(saved.state, f"is {saved.state}")
    return f"journey {saved.name!r} {words} (version {saved.version})"


def step_table(steps: list[dict[str, Any]]) -> list[str]:
    """The per-step counts as aligned columns: step id, kind, label, counts."""
    header = ("step", "kind", "label", "entered", "waiting", "ended")
    rows = [header] + [
        (
            str(s["step"]),
            str(s["kind"]),
            str(s.get("label") or ""),
            f"{s['entered']:,}",
            f"{s['waiting']:,}",
            f"{s['done']:,}",
        )
        for s in steps
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    out = []
    for r in rows:
        cells = [
            c.ljust(w) if i < 3 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        out.append("  ".join(cells).rstrip())
    return out


def runs_words(runs: dict[str, int]) -> str:
    """``3 runs: 1 done, 2 waiting`` (a run: one contact's way through, per entry)."""
    states = ", ".join(f"{n:,} {state}" for state, n in sorted(runs.items()))
    return plural(sum(runs.values()), "run") + (f": {states}" if states else "")


_WAITS = {"time": "", "signal": " for a click or open", "cond": " for its condition"}


def run_line(run: dict[str, Any]) -> str:
    """A contact's run of a journey: its entry, version, state and step."""
    head = f"entry {run['entry']} (version {run['version']}, entered {run['entered']}): "
    if run["state"] == "waiting":
        why = _WAITS.get(str(run.get("waits_for")), "")
        until = f" until {run['wake_at']}" if run.get("wake_at") else ""
        return f"{head}waiting at step {run['step']}{why}{until}"
    when = f" at {run['finished']}" if run.get("finished") else ""
    return f"{head}{run['state']} at step {run['step']}{when}"


def cause_words(cause: str) -> str:
    """What entered a run, in words (the cause is ``kind:detail``)."""
    kind, _, rest = cause.partition(":")
    if kind == "event":
        return f"on event {rest}"
    if kind == "segment":
        return f"joined segment {rest.rsplit(':', 2)[0]!r}"
    if kind == "trigger":
        return "by a trigger's enter_journey"
    if kind == "api":
        return "by hand (journeys enter, or the HTTP API)"
    return cause


def _action_words(out: dict[str, Any], sent: bool) -> str:
    """An action's outcome: the message's status, the tag added, ..."""
    status = str(out["status"])
    if out.get("action") == "add_tag" and status == "done":
        words = f"tag {out.get('tag')!r} added"
    elif out.get("action") == "set" and status == "done":
        words = "profile set"
    else:
        words = f"message {status}" if sent else status
    return f"{words} ({out['reason']})" if out.get("reason") else words


def history_line(row: dict[str, Any]) -> str:
    """One step of a run's history: when, which entry, the step, what happened."""
    out = row.get("outcome") or {}
    if "cause" in out:
        detail = cause_words(str(out["cause"]))
    elif "why" in out:
        detail = str(out["why"])
    elif "until" in out:
        detail = f"until {out['until']}"
    elif "deadline" in out:
        detail = f"deadline {out['deadline']}"
    elif "status" in out:
        detail = _action_words(out, row.get("delivery_key") is not None)
    else:
        detail = ", ".join(f"{k} {v}" for k, v in out.items())
    tail = f": {detail}" if detail else ""
    return f"{row['at']}  entry {row['entry']}  step {row['step']}  {row['kind']}{tail}"


# ---------------------------------------------------------------------------- commands
@click.group("journeys")
def journeys() -> None:
    """Journeys: each contact who enters goes through sends, waits and checks."""


@journeys.command("add")
@_store_arg
@click.argument("file", type=click.Path())
@_node_opt
@_at_opt
def journeys_add(store: str, file: str, node: str, at: str | None) -> None:
    """Check and save the journey blocks of FILE ('-': stdin). A new journey is a
    draft; editing a live or paused one makes a new version (contacts already
    inside stay on theirs)."""
    svc = _service(store, node, at)
    before = {j.name: j for j in svc.list()}
    saved = _do(svc.add, _read(file), "<stdin>" if file == "-" else file)
    for j in saved:
        click.echo(added_line(j, before.get(j.name)))


@journeys.command("list")
@_store_arg
@_node_opt
@_fmt_opt
def journeys_list(store: str, node: str, fmt: str) -> None:
    """The saved journeys: state, version, and their runs by state."""
    svc = _service(store, node)
    rows = [svc.describe(j) for j in svc.list()]
    if fmt == "json":
        echo_json({"journeys": rows})
        return
    for r in rows:
        click.echo(f"{r['name']}\t{r['state']}\tversion {r['version']}\t{runs_words(r['runs'])}")
    click.echo(plural(len(rows), "journey"))


@journeys.command("show")
@_store_arg
@_name_arg
@_node_opt
@_fmt_opt
def journeys_show(store: str, name: str, node: str, fmt: str) -> None:
    """A journey's state, text and counts per step."""
    svc = _service(store, node)
    info = svc.describe(_do(svc.get, name))
    if fmt == "json":
        echo_json(info)
        return
    versions = ", ".join(str(v) for v in info.get("versions") or [info["version"]])
    click.echo(f"# {info['state']}, version {info['version']} (versions {versions})")
    click.echo(info["text"].rstrip("\n"))
    click.echo("")
    for line in step_table(info["steps"]):
        click.echo(line)
    click.echo(runs_words(info["runs"]))


def _state_command(verb: str, method: str, doc: str) -> click.Command:
    @journeys.command(verb, help=doc)
    @_store_arg
    @_name_arg
    @_node_opt
    @_at_opt
    def cmd(store: str, name: str, node: str, at: str | None) -> None:
        svc = _service(store, node, at)
        click.echo(state_line(_do(getattr(svc, method), name)))

    return cmd


_state_command("live", "go_live", "Make a journey live: contacts enter from now on.")
_state_command(
    "pause", "pause", "Pause a live journey. No one enters or moves on until it is live."
)
_state_command("end", "end", "End a journey for good: no one enters; those inside are stopped.")


@journeys.command("delete")
@_store_arg
@_name_arg
@_node_opt
def journeys_delete(store: str, name: str, node: str) -> None:
    """Delete a draft or ended journey."""
    _do(_service(store, node).delete, name)
    click.echo(f"deleted journey {name!r}")


@journeys.command("dry-run")
@_store_arg
@_name_arg
@click.option("--since", required=True, help="the span's start (ISO 8601 or epoch ms)")
@click.option("--until", required=True, help="the span's end (ISO 8601 or epoch ms)")
@click.option("--contact", help="also say which branch this contact took and why")
@_node_opt
@_fmt_opt
def journeys_dry_run(
    store: str, name: str, since: str, until: str, contact: str | None, node: str, fmt: str
) -> None:
    """Replay a journey over a past span; writes nothing. It replays the stored
    events and clicks of the span: counts per step, sends per day, DND holds,
    and the branch each contact took and why."""
    lo, hi = instant_ms(since, "--since"), instant_ms(until, "--until")
    assert lo is not None and hi is not None
    if hi < lo:
        raise click.BadParameter("--until is before --since", param_hint="--until")
    report = _do(_service(store, node).dry_run, name, lo, hi, contact)
    if fmt == "json":
        echo_json(report.to_dict())
        return
    for line in report.lines():
        click.echo(line)


@journeys.command("position")
@_store_arg
@_name_arg
@_contact_arg
@_node_opt
@_fmt_opt
def journeys_position(store: str, name: str, contact: str, node: str, fmt: str) -> None:
    """Where a contact stands in a journey. Each of their entries, its step and
    until when it waits."""
    runs = _do(_service(store, node).position, name, contact)
    if fmt == "json":
        echo_json({"journey": name, "contact_id": contact, "runs": runs})
        return
    if not runs:
        click.echo(f"{contact} has not entered journey {name!r}")
        return
    for run in runs:
        click.echo(run_line(run))


@journeys.command("history")
@_store_arg
@_name_arg
@_contact_arg
@_node_opt
@_fmt_opt
def journeys_history(store: str, name: str, contact: str, node: str, fmt: str) -> None:
    """Every step a contact went through in a journey, oldest first."""
    rows = _do(_service(store, node).history, name, contact)
    if fmt == "json":
        echo_json({"journey": name, "contact_id": contact, "history": rows})
        return
    for row in rows:
        click.echo(history_line(row))
    click.echo(plural(len(rows), "step"))


@journeys.command("enter")
@_store_arg
@_name_arg
@_contact_arg
@_node_opt
@_fmt_opt
@_at_opt
def journeys_enter(
    store: str, name: str, contact: str, node: str, fmt: str, at: str | None
) -> None:
    """Put a contact into a live journey now. As a trigger's enter_journey does:
    the journey's re-entry rule applies."""
    svc = _service(store, node, at)
    _do(svc.get, name)
    if contact not in set(svc.store.snapshot().contact_ids):
        _refuse(JourneyError("not_found", f"no contact {contact!r} in node {node!r}"))
    out = _do(svc.enter, name, contact)
    if fmt == "json":
        echo_json(out)
        return
    click.echo(enter_line(name, contact, out))


def enter_line(name: str, contact: str, out: dict[str, Any]) -> str:
    if out.get("entered"):
        run = out["run"]
        return (
            f"{contact} entered journey {name!r} (version {run['version']}, entry {run['entry']})"
        )
    return f"{contact} did not enter journey {name!r}: {out.get('why_not') or 'refused'}"


def register(group: click.Group) -> None:
    group.add_command(journeys)
