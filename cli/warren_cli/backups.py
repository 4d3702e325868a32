"""`warren backup`: backups of an instance (list, back up now, restore)."""
import click

from .client import ApiError, Client
from .common import Failed, client, fail_on_errors, json_option, show

COLUMNS = ["id", "created_at", "age", "size", "reason", "state", "sha256", "error"]


@click.group()
def backup():
    """Backups of your instances."""


def _sized(row: dict) -> dict:
    """A backup for people: its size in MiB, the start of its checksum."""
    return {**row, "size": "" if row["size"] is None else f"{row['size'] / 2 ** 20:.1f} MiB",
            "sha256": (row["sha256"] or "")[:12], "error": row["error"] or ""}


def _made(api: Client, instance_id: int, backup_id: int) -> str:
    """Wait until the backup is made; what happened (exit 8 when it failed)."""
    def state(rows):
        return next((row for row in rows if row["id"] == backup_id), None)

    def settled(_progress):
        row = state(api.every("list_backups", instance_id=instance_id))
        return row is None or row["state"] in ("done", "failed")

    api.wait(instance_id, settled, timeout=3600)
    row = state(api.every("list_backups", instance_id=instance_id))
    if row is None or row["state"] != "done":
        raise Failed(f"Backup {backup_id} failed: {row['error'] if row else 'it is gone'}", 8)
    return f"Backup {backup_id} made ({_sized(row)['size']})."


def _restored(api: Client, instance_id: int) -> str:
    """Wait until the restore is over; the instance's history about it
    (exit 8 when it failed or was refused)."""
    progress = api.wait(instance_id, lambda answer: answer["status"] != "restoring", timeout=3600)
    said = [event["message"] for event in (progress or {"events": []})["events"]
            if event["step"] == "restore" or event["message"].startswith("Restored from")]
    if progress is None or not said or not said[-1].startswith("Restored from"):
        raise Failed(said[-1] if said else "The restore failed.", 8)
    return said[-1]


@backup.command("ls")
@click.argument("instance")
@json_option
@fail_on_errors
def backup_list(instance, as_json):
    """The backups of INSTANCE, newest first (only done ones can be restored)."""
    api = client()
    rows = api.every("list_backups", instance_id=api.instance_by_name(instance)["id"])
    show(rows if as_json else [_sized(row) for row in rows], as_json, COLUMNS)


@backup.command("now")
@click.argument("instance")
@click.option("--wait", is_flag=True, help="Wait until it is made.")
@json_option
@fail_on_errors
def backup_now(instance, wait, as_json):
    """Back up INSTANCE now (made when the worker has nothing more urgent to do)."""
    api = client()
    instance_id = api.instance_by_name(instance)["id"]
    answer = api.call("back_up", instance_id=instance_id)
    said = _made(api, instance_id, answer["backup_id"]) if wait else \
        f"Backup {answer['backup_id']} of {instance} is queued."
    if as_json:
        show(answer, True)
    else:
        click.echo(said)


@backup.command("restore")
@click.argument("instance")
@click.argument("backup_id", type=int)
@click.option("--yes", is_flag=True, help="Do not ask: accept what the restore loses.")
@click.option("--wait", is_flag=True, help="Wait until it is restored.")
@fail_on_errors
def backup_restore(instance, backup_id, yes, wait):
    """Put INSTANCE back to its backup BACKUP_ID (says first what is lost)."""
    api = client()
    instance_id = api.instance_by_name(instance)["id"]
    if not yes:
        try:  # unconfirmed, Warren answers with what would be lost
            api.call("restore_backup", instance_id=instance_id, backup_id=backup_id,
                     json={"confirm": False})
        except ApiError as error:
            if "confirm" not in error.fields:
                raise
            for message in error.fields["confirm"]:
                click.echo(f"- {message}")
        click.confirm(f"Restore {instance} to backup {backup_id}?", abort=True)
    api.call("restore_backup", instance_id=instance_id, backup_id=backup_id, json={"confirm": True})
    click.echo(_restored(api, instance_id) if wait else
               f"Restoring {instance} from backup {backup_id}.")
