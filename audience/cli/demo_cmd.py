"""``audience demo``: the sample shop and the Red Shoes story."""

from __future__ import annotations

import click


@click.command("demo")
@click.argument("directory", required=False)
@click.option(
    "--events", "n_events", default=3_000_000, show_default=True, help="Events to generate."
)
@click.option("--contacts", "n_contacts", default=50_000, show_default=True, help="Contacts.")
def demo_cmd(directory: str | None, n_events: int, n_contacts: int) -> None:
    """Build a sample shop store in DIRECTORY (default ./maison-demo; a store an earlier
    demo built there is replaced) and evaluate the seed's segments, printing counts,
    explanations and whether Angela is in each; then the welcome trigger, two plans
    run by the scheduler, the welcome journey (its emails to an SMTP server and
    clicks through a tracking server, both on loopback), and an ads account: its
    token's reminders, a custom audience synced with a segment and a lead from a
    lead form's webhook (a fake Graph API on loopback)."""
    from audience.cli.output import console
    from audience.demo.run import run_demo
    from audience.runtime.store import StoreError

    if n_events < 0 or n_contacts < 1:
        raise click.UsageError("--events must be >= 0 and --contacts >= 1")
    try:
        # piped: the rules between the parts stay 80 wide; no line is wrapped
        out = console(piped_width=80)
        run_demo(directory, n_events=n_events, n_contacts=n_contacts, console=out)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


def register(group: click.Group) -> None:
    group.add_command(demo_cmd)
