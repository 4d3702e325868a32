"""Command line for cluster maintenance:
`flask --app app cluster list|plan|evacuate|restore|move`."""
import time

import click
from flask import current_app
from flask.cli import AppGroup

from . import maintenance
from .cli import _fail
from .errors import WarrenError
from .store import get_db

cluster_cli = AppGroup("cluster", help="The LXD cluster's members and their maintenance.")
ACTOR = "cli"


def _settings():
    return current_app.config["WARREN"]


@cluster_cli.command("list")
def list_members():
    """Each member: LXD's state (Online, Evacuated, Offline) and how many
    of Warren's instances run there."""
    try:
        found = maintenance.members(_settings())
    except WarrenError as error:
        _fail(error)
    if not found:
        click.echo("LXD is not a cluster here: one server")
        return
    counts = dict(get_db().execute("SELECT location, count(*) FROM instances GROUP BY location")
                  .fetchall())
    for member in found:
        click.echo(f"{member.name}\t{member.status}\t{counts.get(member.name, 0)} instance(s)\t"
                   f"{', '.join(member.groups)}\t{member.message}")


def _print_plan(member: str) -> None:
    steps = maintenance.plan(get_db(), _settings(), member)
    if not steps:
        click.echo(f"no instances on {member}")
    for step in steps:
        what = step["fqdn"] or f"{step['name']} (project {step['project']}, not Warren's)"
        click.echo(f"{'moves' if step['stays'] is None else 'stops'}\t{what}\t{step['status']}"
                   + (f"\t{step['stays']}" if step["stays"] else ""))


@cluster_cli.command("plan")
@click.argument("member")
def show_plan(member):
    """What evacuating MEMBER would do: each instance moves or only stops."""
    try:
        _print_plan(member)
    except WarrenError as error:
        _fail(error)


def _request(member: str, action: str, wait: bool) -> None:
    db = get_db()
    try:
        row = maintenance.request(db, _settings(), ACTOR, member, action)
    except WarrenError as error:
        _fail(error)
    click.echo(f"{action} of {member} asked for; the worker carries it out")
    while wait:
        row = db["maintenance"].get(row["id"])
        if row["state"] in ("done", "failed"):
            click.echo(f"{action} of {member}: {row['state']}"
                       + (f": {row['error']}" if row["error"] else ""))
            if row["state"] == "failed":
                raise SystemExit(1)
            return
        time.sleep(1)


@cluster_cli.command("evacuate")
@click.argument("member")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--wait", is_flag=True, help="Wait until the worker has carried it out.")
def evacuate(member, yes, wait):
    """Evacuate MEMBER for maintenance (the plan is shown first)."""
    try:
        _print_plan(member)
    except WarrenError as error:
        _fail(error)
    if not yes:
        click.confirm(f"Evacuate {member}?", abort=True)
    _request(member, "evacuate", wait)


@cluster_cli.command("restore")
@click.argument("member")
@click.option("--wait", is_flag=True, help="Wait until the worker has carried it out.")
def restore(member, wait):
    """Bring an evacuated MEMBER back (its instances return)."""
    _request(member, "restore", wait)


@cluster_cli.command("move")
@click.argument("fqdn")
@click.argument("member")
def move(fqdn, member):
    """Move the instance named FQDN to MEMBER (stopped, moved, started)."""
    db = get_db()
    rows = list(db["instances"].rows_where("fqdn = ?", [fqdn.rstrip(".").lower()]))
    if not rows:
        _fail(WarrenError(f"no instance named {fqdn}"))
    try:
        maintenance.request_move(db, _settings(), ACTOR, rows[0]["id"], member)
    except WarrenError as error:
        _fail(error)
    click.echo(f"{fqdn} moves to {member}; its history tells when it is done")
