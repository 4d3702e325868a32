"""`warren snapshot`: snapshots of an instance (list, take, show, restore, rm)."""
import click

from .client import Client
from .common import Failed, client, fail_on_errors, json_option, show

COLUMNS = ["name", "size", "created_at", "expires_at", "manual", "action"]


@click.group()
def snapshot():
    """Snapshots of your instances."""


def _sized(row: dict) -> dict:
    """A snapshot for people: its size in MiB."""
    return {**row, "size": f"{row['size'] / 2 ** 20:.1f} MiB"}


def _settle(api: Client, instance_id: int, name: str, action: str) -> str:
    """Wait until Warren has done the action; what the instance's history
    says about it (exit 8 when it failed)."""
    answer = api.poll("show_snapshot", lambda row: row["action"] is None,
                      instance_id=instance_id, snapshot=name)
    if action == "delete" and answer is None:
        return f"Snapshot {name} deleted."
    events = [event["message"] for event in api.call("progress", instance_id=instance_id)["events"]
              if event["step"] == "snapshot"]
    said = events[-1] if events else f"{action} of snapshot {name} done"
    if answer is None or action == "delete" or " failed: " in said:
        raise Failed(said, 8)
    return said


@snapshot.command("ls")
@click.argument("instance")
@json_option
@fail_on_errors
def snapshot_list(instance, as_json):
    """The snapshots of INSTANCE, oldest first (manual false: the profile's schedule took it)."""
    api = client()
    rows = api.every("list_snapshots", instance_id=api.instance_by_name(instance)["id"])
    show(rows if as_json else [_sized(row) for row in rows], as_json, COLUMNS)


@snapshot.command("take")
@click.argument("instance")
@click.argument("name", default="")
@click.option("--wait", is_flag=True, help="Wait until it is taken.")
@json_option
@fail_on_errors
def snapshot_take(instance, name, wait, as_json):
    """Snapshot INSTANCE, as NAME (default: snap-<date>-<time>)."""
    api = client()
    instance_id = api.instance_by_name(instance)["id"]
    answer = api.call("take_snapshot", instance_id=instance_id, json={"name": name})
    said = _settle(api, instance_id, answer["name"], "take") if wait else \
        f"Snapshot {answer['name']} of {instance} is being taken."
    if as_json:
        show(answer, True)
    else:
        click.echo(said)


@snapshot.command("show")
@click.argument("instance")
@click.argument("name")
@json_option
@fail_on_errors
def snapshot_show(instance, name, as_json):
    """One snapshot, with what restoring it would lose."""
    api = client()
    row = api.call("show_snapshot", instance_id=api.instance_by_name(instance)["id"], snapshot=name)
    if as_json:
        show(row, True)
        return
    show(_sized(row), False, COLUMNS)
    click.echo("A restore to it:")
    for warning in row["restore_warnings"]:
        click.echo(f"  - {warning}")


@snapshot.command("restore")
@click.argument("instance")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask: accept what the restore loses.")
@click.option("--wait", is_flag=True, help="Wait until it is restored.")
@fail_on_errors
def snapshot_restore(instance, name, yes, wait):
    """Restore INSTANCE to its snapshot NAME (says first what is lost)."""
    api = client()
    instance_id = api.instance_by_name(instance)["id"]
    if not yes:
        row = api.call("show_snapshot", instance_id=instance_id, snapshot=name)
        for warning in row["restore_warnings"]:
            click.echo(f"- {warning}")
        click.confirm(f"Restore {instance} to {name}?", abort=True)
    api.call("restore_snapshot", instance_id=instance_id, snapshot=name, json={"confirm": True})
    click.echo(_settle(api, instance_id, name, "restore") if wait else
               f"Restoring {instance} to {name}.")


@snapshot.command("rm")
@click.argument("instance")
@click.argument("name")
@click.option("--wait", is_flag=True, help="Wait until it is gone.")
@fail_on_errors
def snapshot_remove(instance, name, wait):
    """Delete the snapshot NAME of INSTANCE."""
    api = client()
    instance_id = api.instance_by_name(instance)["id"]
    api.call("delete_snapshot", instance_id=instance_id, snapshot=name)
    click.echo(_settle(api, instance_id, name, "delete") if wait else
               f"Snapshot {name} is being deleted.")
