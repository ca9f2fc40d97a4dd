"""``audience report domains``: the trend for recipient domains (docs/report.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from audience.cli.output import console, echo_json, format_option, instant_ms

if TYPE_CHECKING:
    from rich.console import Console


@click.group("report")
def report_group() -> None:
    """Reports over the store's email events (the trend for recipient domains)."""


@report_group.command("domains")
@click.argument("store", type=click.Path())
@click.option(
    "--top",
    type=click.Choice(["10", "100"]),
    default=None,
    help="the busiest domains by sent volume over the span  [default: 10]",
)
@click.option(
    "--domain", "domains", multiple=True, metavar="D", help="a domain to show (repeatable)"
)
@click.option(
    "--by", type=click.Choice(["day", "week", "month"]), default="week", show_default=True
)
@click.option("--months", type=click.Choice(["3", "6", "12"]), default="6", show_default=True)
@click.option("--mail-group", metavar="G", help="only the sends of this mail group")
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    metavar="M",
    help="a metric to show (repeatable, or comma-separated); default: all",
)
@click.option("--as-of", "as_of", metavar="T", help="the report's time (ISO 8601); default now")
@click.option("--tz", default="UTC", show_default=True, help="the periods' time zone")
@click.option("--node", default="main", show_default=True)
@click.option("--html", "html_file", type=click.Path(dir_okay=False), help="write the dashboard")
@format_option()
def domains_cmd(
    store: str,
    top: str | None,
    domains: tuple[str, ...],
    by: str,
    months: str,
    mail_group: str | None,
    metrics: tuple[str, ...],
    as_of: str | None,
    tz: str,
    node: str,
    html_file: str | None,
    fmt: str,
) -> None:
    """Per recipient domain and per period of the send: sent, delivered, bounce,
    open, click, unsubscribe and complaint rates, with the anomalies.

    \b
    audience report domains shop                        # top 10, weekly, 6 months
    audience report domains shop --top 100 --by month --months 12
    audience report domains shop --domain libero.it --domain gmail.com --by day --months 3
    audience report domains shop --metric block_rate,open_rate --html trend.html

    Metrics: sent, delivered, hard_bounce_rate, soft_bounce_rate, block_rate,
    open_rate, human_open_rate, click_rate, unsubscribe_rate, complaint_rate."""
    from audience.cli.delivery_cmds import _store
    from audience.runtime.evaluate import parse_as_of
    from audience.runtime.node import open_store
    from audience.runtime.report import ReportError, ReportParams, build_report
    from audience.runtime.report.html import dashboard
    from audience.runtime.report.params import parse_metrics
    from audience.runtime.store import StoreError

    if domains and top is not None:
        raise click.UsageError("give --top or --domain, not both")
    at = instant_ms(as_of, "--as-of")
    try:
        params = ReportParams(
            as_of_ms=parse_as_of(None) if at is None else at,
            top=None if domains else int(top or 10),
            domains=domains,
            by=by,
            months=int(months),
            tz=tz,
            mail_group=mail_group,
            metrics=parse_metrics(metrics),
        )
        report = build_report(open_store(_store(store), node).snapshot(), params)
    except (ReportError, StoreError) as exc:
        raise click.ClickException(str(exc)) from None
    if html_file is not None:
        try:
            Path(html_file).write_text(dashboard(report), encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"{html_file}: {exc.strerror or exc}") from None
    if fmt == "json":
        echo_json(report.to_json())
    else:
        print_table(report)
    if html_file is not None:
        click.echo(f"dashboard written to {html_file}", err=fmt == "json")


def print_table(report: object, out: Console | None = None) -> None:
    """The report as a rich table (a row per domain and period) and its
    anomalies in words."""
    from rich.markup import escape
    from rich.table import Table

    from audience.runtime.report.compute import Report
    from audience.runtime.report.text import ARROW, HEADERS, cell, marks, summary

    assert isinstance(report, Report)
    out = out or console()
    p = report.params
    flagged = marks(report)
    table = Table("domain", p.by)
    for m in p.metrics:
        table.add_column(HEADERS[m], justify="right")
    for d, dom in enumerate(report.domains):
        for t, label in enumerate(report.periods.labels):
            row = [
                escape(dom) if t == 0 else "",
                label + ("*" if t == len(report.periods) - 1 else ""),
            ]
            for m in p.metrics:
                a = flagged.get((dom, label, m))
                text = cell(report, m, d, t)
                if a is not None:
                    colour = "red" if a.level == "alarm" else "yellow"
                    text = f"[{colour}]{text} {ARROW[a.direction]}[/{colour}]"
                row.append(text)
            table.add_row(*row, end_section=t == len(report.periods) - 1)
    out.print(table)
    out.print(f"* still filling (the {p.by} of the report's time)")
    if report.unattributed:
        out.print(f"{report.unattributed:,} sends to contacts without a usable email are not shown")
    out.print()
    for line in summary(report):
        out.print(escape(line), highlight=False)


def print_pivot(report: object, metric: str, out: Console | None = None) -> None:
    """One metric as a small table: a row per domain, a column per period."""
    import datetime as dt

    from rich.markup import escape
    from rich.table import Table

    from audience.runtime.report.compute import Report
    from audience.runtime.report.params import METRICS
    from audience.runtime.report.text import ARROW, cell, marks

    assert isinstance(report, Report)
    flagged = marks(report)
    labels = report.periods.labels
    short = [
        dt.date.fromisoformat(lb).strftime("%b") if report.params.by == "month" else lb[5:]
        for lb in labels
    ]
    table = Table()
    table.add_column("domain", no_wrap=True)
    for head in short:
        table.add_column(head, justify="right")
    table.title = METRICS[metric][0]
    for d, dom in enumerate(report.domains):
        row = [escape(dom)]
        for t, label in enumerate(labels):
            a = flagged.get((dom, label, metric))
            text = cell(report, metric, d, t)
            if a is not None:
                text = f"[red]{text}{ARROW[a.direction]}[/red]"
            row.append(text)
        table.add_row(*row)
    (out or console()).print(table)


def register(group: click.Group) -> None:
    group.add_command(report_group)
