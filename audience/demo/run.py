"""``audience demo``: build the Maison shop into a store and tell the Red Shoes story.

Everything goes through the public paths a user has: ``Node.init``, ingest of
Parquet files, saved segments, ``store.compile`` and ``evaluate``.
"""

from __future__ import annotations

import datetime as dt
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.rule import Rule
from rich.table import Table

from audience.cli.output import plural
from audience.demo import shop
from audience.dsl.ast import Segment
from audience.dsl.formatter import format_text
from audience.dsl.parser import parse
from audience.runtime.node import Node
from audience.runtime.store import StoreError
from audience.schema import Schema

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STORY = "angela"


def seed_segments() -> list[Segment]:
    program = parse(
        (EXAMPLES / "maison.rules").read_text(encoding="utf-8"), filename="maison.rules"
    )
    return [d for d in program.definitions if isinstance(d, Segment)]


def build_store(
    path: Path, data: Path, n_events: int, n_contacts: int, console: Console, now: dt.datetime
) -> tuple[Node, float]:
    """Generate the shop as Parquet files in ``data``, then init the store and ingest them."""
    schema = Schema.load(EXAMPLES / "maison.toml")
    files: list[Path] = []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,}/{task.total:,}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # piped: no bars, not even blank lines
    ) as bar:
        gen = bar.add_task("generating events", total=n_events)
        for i, chunk in enumerate(shop.events(n_events, n_contacts, now=now, chunk=500_000)):
            files.append(data / f"events-{i:03d}.parquet")
            pq.write_table(chunk, files[-1])
            bar.advance(gen, chunk.num_rows)
    a_events, a_profile = shop.angela(now)
    store = Node.init(path, schema)
    # marked at once: a demo stopped half way is replaced by the next one too
    (path / DEMO_MARK).write_text(
        "Built by 'audience demo'; the next demo in this directory replaces it.\n",
        encoding="utf-8",
    )
    t0 = time.perf_counter()
    store.ingest_profiles(shop.profiles(n_contacts, now=now))
    store.ingest_profiles(a_profile)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} files"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # piped: no bars, not even blank lines
    ) as bar:
        task = bar.add_task("ingesting", total=len(files))
        for f in files:
            store.ingest_events(f)
            bar.advance(task)
    store.ingest_events(a_events)
    return store, time.perf_counter() - t0


@contextmanager
def small_shop(
    n_events: int, n_contacts: int, console: Console, prefix: str = "audience-"
) -> Iterator[Node]:
    """A shop built in a temporary directory (removed afterwards), for the
    parts of the demo that run on their own (``python -m audience.demo.plans``)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        now = shop.DEFAULT_NOW
        store, _ = build_store(Path(tmp) / "maison", data, n_events, n_contacts, console, now)
        yield store


def _explain_table(explain: dict[str, object]) -> Table:
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 2), pad_edge=False)
    table.add_column("rule" if explain.get("rules") else "condition")
    table.add_column("contacts", justify="right")
    rules = explain.get("rules") or explain.get("operands") or []
    assert isinstance(rules, list)
    for r in rules:
        table.add_row(escape(str(r.get("label") or r.get("text"))), f"{r['count']:,}")
    return table


WELCOME_SUBJECT = "Welcome to Maison, {{ first_name }}"
WELCOME_HTML = "<p>Dear {{ first_name }},</p><p>thank you for subscribing ({{ form }}).</p>"
WELCOME_TEXT = "Dear {{ first_name }}, thank you for subscribing ({{ form }})."


def _form_event(event_id: str, at: dt.datetime) -> dict[str, object]:
    return {
        "id": event_id,
        "contact_id": STORY,
        "type": "form_compiled",
        "ts": at.isoformat().replace("+00:00", "Z"),
        "context": "WEB",
        "properties": {"form_name": "addUser"},
    }


def welcome_story(store: Node, console: Console, now: dt.datetime) -> None:
    """The seed's trigger and DND policy: Angela subscribes, twice, and is welcomed once."""
    rules = (EXAMPLES / "maison.rules").read_text(encoding="utf-8")
    console.print(Rule("[bold]Thank newsletter subscribers[/] (a trigger under a DND policy)"))
    store.triggers.add_template("C-1234", WELCOME_SUBJECT, WELCOME_HTML, WELCOME_TEXT)
    # the story's events happen at the demo's own "now", before the wall clock
    saved, policies = store.triggers.add(
        rules, "maison.rules", valid_from_ms=int(now.timestamp() * 1000)
    )
    console.print(
        f"  saved the template C-1234, {plural(len(saved), 'trigger')} and "
        f"{plural(len(policies), 'DND policy', 'DND policies')} "
        "from maison.rules:"
    )
    program = parse(rules, filename="maison.rules")
    for d in program.definitions:
        if not isinstance(d, Segment):
            for line in format_text(d).rstrip().splitlines():
                console.print(f"  [cyan]{escape(line)}[/]", soft_wrap=True)
    steps = [
        ("Angela fills the newsletter form on the web", _form_event("form-1", now)),
        (
            "an hour later she sends the form again",
            _form_event("form-2", now + dt.timedelta(hours=1)),
        ),
        ("the first form event arrives a second time", _form_event("form-1", now)),
    ]
    for what, event in steps:
        t0 = time.perf_counter()
        report = store.ingest_events([event])
        ms = (time.perf_counter() - t0) * 1000
        console.print(
            f"  {what}: accepted {report.accepted}, duplicates {report.duplicates} "
            f"[dim]({ms:.0f} ms, ingest to delivery record)[/]"
        )
    console.print("  the delivery log for Angela:")
    for delivery in store.triggers.log.list(contact=STORY):
        why = f" ({delivery.cap}, {delivery.policy})" if delivery.cap else ""
        console.print(
            f"    [bold]{delivery.status}[/]{escape(why)}: to "
            f"{escape(str(delivery.payload.get('to', delivery.email or '')))}, "
            f"subject {escape(repr(delivery.payload.get('subject', '')))}",
            soft_wrap=True,
        )
    console.print(
        "  [dim]One welcome email is reserved (it counts against the DND policy's limits and "
        "waits for `audience worker STORE` to send it by SMTP); the second is suppressed by "
        "'max 1 per day'; the repeated event fires nothing.[/]"
    )


def run_demo(
    directory: str | None = None,
    *,
    n_events: int = 3_000_000,
    n_contacts: int = 50_000,
    console: Console | None = None,
) -> dict[str, int]:
    """Build the store (in ``directory``, default ``./maison-demo``; a store an
    earlier demo built there is replaced) and evaluate the seed's segments;
    return the audience size per segment."""
    console = console or Console()
    now = shop.DEFAULT_NOW
    path = Path(directory or DEFAULT_DIR)
    _make_room(path)
    with tempfile.TemporaryDirectory(prefix="audience-demo-") as tmp:
        console.print(Rule("[bold]audience demo: Maison, a fashion shop"))
        console.print(
            f"Generating {n_contacts:,} contacts and {n_events:,} events over 180 days "
            f"(to {now:%Y-%m-%d %H:%M} UTC) into the store [cyan]{escape(str(path))}[/]"
        )
        store, took = build_store(path, Path(tmp), n_events, n_contacts, console, now)
        snap = store.snapshot()
        console.print(
            f"Ingested {snap.n_events:,} events for {snap.n_contacts:,} contacts in {took:.1f} s "
            f"({snap.n_events / took:,.0f} events a second).\n"
            "[dim]Angela viewed the Red Shoes twice in the last 15 days and bought nothing.[/]"
        )
        sizes: dict[str, int] = {}
        for seg in seed_segments():
            text = format_text(seg)
            store.save_segment(seg.name, text)
            compiled = store.compile(text, filename="maison.rules")
            hits = compiled.evaluate(
                as_of=now
            )  # the first run compiles nothing: kernels are cached
            t0 = time.perf_counter()
            hits = compiled.evaluate(as_of=now, explain=True)
            ms = (time.perf_counter() - t0) * 1000
            sizes[seg.name] = len(hits)
            universe = int(hits.explain["universe"]) if hits.explain else snap.n_contacts
            in_it = STORY in set(hits.ids())
            console.print(Rule(f"[bold]{escape(seg.name)}", align="left"))
            for line in text.rstrip().splitlines():
                console.print(f"  [cyan]{escape(line)}[/]", soft_wrap=True)
            console.print(
                f"  audience: [bold]{len(hits):,}[/] of {universe:,} contacts "
                f"({len(hits) / max(universe, 1):.1%}), evaluated in {ms:.1f} ms"
            )
            mark = "[green]yes, she is in it[/]" if in_it else "[yellow]no[/]"
            console.print(f"  Angela: {mark}")
            if hits.explain:
                console.print(Padding(_explain_table(hits.explain), (0, 0, 0, 4), expand=False))
                console.print(f"  [dim]{escape(_events_read(hits.explain))}[/]")
            console.print(f"  [dim]a few contacts: {escape(', '.join(hits.ids()[:5]))}[/]")
        welcome_story(store, console, now)
        from audience.demo.plans import plans_story  # the scheduler's imports, only here

        plans_story(store, console, now)
        from audience.demo.journeys import journeys_story  # its servers' imports, only here

        journeys_story(store, console)
        from audience.demo.deliverability import deliverability_story

        # its own store in the demo's directory: readers at many mail providers
        deliverability_story(path / "mail", console, now, min(40_000, max(2_000, n_contacts)))
        from audience.demo.meta import meta_story  # its fake Graph API, only here

        # its own store too: the worker it runs sends only the reminders
        meta_story(path / "ads", console, now, min(n_contacts, 20_000))
        console.print(Rule())
        _try_it(console, path, sizes, now)
    return sizes


DEFAULT_DIR = "maison-demo"
# a file in the stores the demo builds: only such a store is replaced by the next demo
DEMO_MARK = "DEMO"
TRY_SEGMENT = "Red Shoes viewed without purchase"


def _make_room(path: Path) -> None:
    """Clear ``path`` for the store when it is an earlier demo's; refuse anything else."""
    if not path.exists():
        return
    if (path / DEMO_MARK).is_file():
        shutil.rmtree(path)
    elif path.is_dir() and not any(path.iterdir()):
        path.rmdir()
    else:
        raise StoreError(
            f"{path} already exists and was not made by 'audience demo': "
            "give the demo another directory (audience demo DIRECTORY)"
        )


def _events_read(explain: dict[str, object]) -> str:
    parts = explain.get("partitions")
    if not isinstance(parts, dict) or not parts.get("read"):
        return "read no events: the profiles were enough"
    text = (
        f"read {parts['read']} of the {parts.get('total', 0)} blocks of events "
        "the store keeps (by month)"
    )
    if parts.get("skipped"):
        text += f", skipped the {parts['skipped']} outside the time window"
    return text


def try_command(path: Path, now: dt.datetime) -> str:
    """The command that gives the count the demo showed for ``TRY_SEGMENT``: the
    shop's data ends at ``now``, so the question is asked as of then."""
    stamp = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (
        f"audience eval {shlex.quote(str(path))} --segment {shlex.quote(TRY_SEGMENT)} "
        f"--as-of {stamp}"
    )


def _try_it(console: Console, path: Path, sizes: dict[str, int], now: dt.datetime) -> None:
    console.print(f"The store is kept in [cyan]{escape(str(path))}[/]. Try it yourself:")
    console.print(f"  [bold]{escape(try_command(path, now))}[/]", soft_wrap=True)
    console.print(
        f"  [dim]prints {sizes.get(TRY_SEGMENT, 0):,}, as above: the shop's events end on "
        f"{now:%Y-%m-%d %H:%M} UTC, so the segment is asked as of then (without --as-of it "
        "means now, and 'in last 15 days' finds nothing). Add --explain for the counts per "
        "rule, --format ids for the contacts.[/]"
    )
