"""Command line for events: `flask --app app event create|list|show|retry|end`."""
import sys

import click
from flask.cli import AppGroup

from . import events
from .cli import _fail
from .errors import WarrenError

event_cli = AppGroup("event", help="Events: team machines with a start and an end.")
ACTOR = {"id": None, "username": "cli"}


def _text(value: str) -> str:
    """An option's text, or the contents of the file after @ (- is stdin)."""
    if value.startswith("@"):
        path = value[1:]
        if path == "-":
            return sys.stdin.read()
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    return value.replace("\\n", "\n")


@event_cli.command("create")
@click.argument("name")
@click.option("--teams", required=True,
              help="A count (35), or team[,account] lines; @FILE reads a file (a CSV), @- stdin.")
@click.option("--machines", required=True,
              help="'name profile image' lines (\\n between them), or @FILE.")
@click.option("--starts", required=True, help="'YYYY-MM-DD HH:MM' UTC.")
@click.option("--ends", required=True, help="'YYYY-MM-DD HH:MM' UTC.")
@click.option("--keys", "keys", required=True, help="SSH public keys for every machine, or @FILE.")
@click.option("--title", default="")
@click.option("--build-hours", default=12, show_default=True, help="Build this long before the start.")
@click.option("--grace-hours", default=24, show_default=True,
              help="Machines stay (stopped) this long after the end.")
@click.option("--keep", type=click.Choice(events.KEEP), default="backup", show_default=True,
              help="Back every machine up before it is removed, or not.")
def create(name, teams, machines, starts, ends, keys, title, build_hours, grace_hours, keep):
    """Create an event; prints each team's one-time link path."""
    try:
        event, links = events.create_event(ACTOR, name, _text(teams), _text(machines), starts, ends,
                                           _text(keys), title=title, build_hours=build_hours,
                                           grace_hours=grace_hours, keep=keep)
    except WarrenError as error:
        _fail(error)
    click.echo(f"event {event['name']}: {len(links)} teams, state {event['state']}")
    for team, token in links.items():
        click.echo(f"{team}\t/team/{token}")


@event_cli.command("list")
def list_events():
    """Every event with its state and progress."""
    for event in events.all_events():
        done = events.progress(event)
        click.echo(f"{event['name']}\t{event['state']}\t{event['starts_at']} - {event['ends_at']}\t"
                   f"{done['ready']}/{done['wanted']} ready, {done['failed']} failed")


@event_cli.command("show")
@click.argument("name")
def show(name):
    """An event's machines, team by team, with each one's state."""
    try:
        event = events.find(name)
    except WarrenError as error:
        _fail(error)
    done = events.progress(event)
    click.echo(f"{event['name']}: {event['state']}; {done['ready']}/{done['wanted']} ready, "
               f"{done['building']} building, {done['failed']} failed")
    for row in done["rows"]:
        click.echo(f"{row['team']}\t{row['name']}\t{row['status']}\t{row['fqdn']}"
                   + (f"\t{row['error']}" if row["error"] else ""))


@event_cli.command("retry")
@click.argument("name")
def retry(name):
    """Build the failed machines of an event again."""
    try:
        count = events.retry_failed(ACTOR, events.find(name)["id"])
    except WarrenError as error:
        _fail(error)
    click.echo(f"{count} failed machine(s) will be built again")


@event_cli.command("end")
@click.argument("name")
def end(name):
    """End an event now (machines stopped, then removed after its grace)."""
    try:
        events.end_now(ACTOR, events.find(name)["id"])
    except WarrenError as error:
        _fail(error)
    click.echo(f"event {name} ends now")
