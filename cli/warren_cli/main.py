"""The `warren` command. Tables for people, --json for scripts.

Exit codes (also in `warren --help`):
  0  done
  1  Warren refused the request (another 4xx)
  2  wrong usage of the command
  3  not logged in, or the token is unknown, expired, revoked or too narrow (401/403)
  4  no such thing (404)
  5  invalid input (422; every field error is printed)
  6  conflict: a clash with the current state, a quota, a stale version (409/412)
  7  Warren could not be reached, or failed (5xx), or a rate limit (429)
  8  the instance, or a snapshot's or backup's action, failed while --wait followed it
"""
import os
import shutil
import sys
from pathlib import Path

import click

from . import backups, config, publishing, snapshots
from .client import Client
from .common import Failed, client, fail_on_errors, json_option, show, table

EXIT_CODES = __doc__.split("Exit codes (also in `warren --help`):\n", 1)[1]
STEPS = ("queued", "creating", "starting", "publishing", "ready")
SETTLED = ("ready", "failed", "delete-failed", "denied", "awaiting-approval")


@click.group(epilog="Exit codes:\n\n\b\n" + EXIT_CODES)
@click.version_option("1.0.0", prog_name="warren")
def cli():
    """Warren from a shell: your instances, their snapshots, backups, forwards, websites, DNS
    records and domains, usage, tokens; members for admins."""


@cli.command()
@click.argument("url")
@click.option("--token-stdin", is_flag=True, help="Read the token from standard input.")
@fail_on_errors
def login(url, token_stdin):
    """Store Warren's URL and an API token (made under Tokens in the web UI)."""
    token = sys.stdin.readline().strip() if token_stdin else \
        click.prompt("API token", hide_input=True).strip()
    me = Client(url, token).call("me")
    where = config.save(url, token)
    click.echo(f"Logged in to {url} as {me['username']} (token {me['token']['name']}, "
               f"{me['token']['scope']} scope); saved in {where}.")


@cli.command()
@json_option
@fail_on_errors
def whoami(as_json):
    """Who the stored token acts as."""
    me = client().call("me")
    show(me if as_json else {**me, "token": me["token"]["name"], "scope": me["token"]["scope"]},
         as_json, None if as_json else ["username", "role", "tier", "token", "scope"])


@cli.command("ls")
@json_option
@fail_on_errors
def list_instances(as_json):
    """Your instances."""
    show(client().every("list_instances"), as_json,
         ["name", "status", "state", "profile", "image", "ipv4", "fqdn", "lease_expires_at"])


def _key_text(paths) -> str:
    lines = []
    for path in paths:
        try:
            lines.append(Path(path).expanduser().read_text().strip())
        except OSError as error:
            raise Failed(f"cannot read the key {path}: {error.strerror}", 2) from None
    return "\n".join(lines)


def _follow(api: Client, instance_id: int, until, label: str) -> dict | None:
    """Follow an instance's progress with a progress bar on stderr."""
    shown = {"step": 0}
    with click.progressbar(length=len(STEPS) - 1, label=label, file=sys.stderr,
                           show_eta=False) as bar:
        def update(progress):
            if progress["status"] in STEPS:
                step = STEPS.index(progress["status"])
                bar.update(step - shown["step"])
                shown["step"] = step
        return api.wait(instance_id, until, update)


@cli.command()
@click.argument("name")
@click.option("--profile", default="small", show_default=True)
@click.option("--image", default=None, help="An image the profile offers (default: its first).")
@click.option("--key", "keys", multiple=True, help="A public key file, e.g. ~/.ssh/id_ed25519.pub "
              "(repeatable; saved keys are used too).")
@click.option("--wait", is_flag=True, help="Follow the progress until ready or failed.")
@click.option("--idempotency-key", default=None, help="Retrying with the same key makes one instance.")
@json_option
@fail_on_errors
def create(name, profile, image, keys, wait, idempotency_key, as_json):
    """Request an instance NAME."""
    api = client()
    body = {"name": name, "profile": profile, "image": image or _first_image(api, profile),
            "keys": _key_text(keys)}
    if not keys:
        body["saved_key_ids"] = [row["id"] for row in api.every("list_keys")]
    row = api.call("create_instance", json=body,
                   headers={"Idempotency-Key": idempotency_key} if idempotency_key else None)
    if not wait:
        show(row, as_json, ["id", "name", "status", "fqdn"])
        return
    progress = _follow(api, row["id"], lambda p: p["status"] in SETTLED, f"creating {name}")
    row = api.call("show_instance", instance_id=row["id"])
    show(row, as_json, ["id", "name", "status", "state", "ipv4", "fqdn"])
    if progress["status"] != "ready":
        raise Failed(f"{name} is {progress['status']}: {progress.get('error') or ''}".rstrip(": "), 8)


def _first_image(api: Client, profile: str) -> str:
    """The profile's first image ("" for an unknown profile: the server
    then names the choices)."""
    for row in api.every("list_profiles"):
        if row["name"] == profile:
            return row["images"][0]
    return ""


@cli.command()
@click.argument("name")
@json_option
@fail_on_errors
def status(name, as_json):
    """One instance in detail."""
    show(client().instance_by_name(name), as_json,
         ["id", "name", "status", "state", "profile", "image", "ipv4", "ipv6", "fqdn",
          "lease_expires_at", "error"])


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.option("--print", "print_only", is_flag=True, help="Print the ssh command instead of running it.")
@click.argument("ssh_args", nargs=-1, type=click.UNPROCESSED)
@fail_on_errors
def ssh(name, print_only, ssh_args):
    """Log in to NAME through Warren's SSH jump host (extra arguments go to ssh)."""
    row = client().instance_by_name(name)
    if not row.get("ssh"):
        raise Failed(f"{name} is {row['status']}; ssh works once it is ready.", 6)
    route = row["ssh"]
    command = ["ssh", "-o", f"HostKeyAlias={route['host']}", "-J", route["jump"],
               f"{route['user']}@{route['address']}", *ssh_args]
    if print_only:
        click.echo(" ".join(command))
        return
    if not shutil.which("ssh"):
        raise Failed("ssh is not installed here.", 1)
    os.execvp("ssh", command)


def _power(action: str):
    @click.argument("name")
    @fail_on_errors
    def command(name):
        api = client()
        answer = api.call(action, instance_id=api.instance_by_name(name)["id"])
        click.echo(answer.get("waits") or f"{action.capitalize()} of {name} queued.")
    command.__name__ = action
    command.__doc__ = f"{action.capitalize()} the instance NAME."
    return cli.command(action)(command)


for _action in ("start", "stop", "restart"):
    _power(_action)


@cli.command("rm")
@click.argument("name")
@click.option("--wait", is_flag=True, help="Wait until it is gone.")
@fail_on_errors
def remove(name, wait):
    """Delete the instance NAME with its DNS name."""
    api = client()
    row = api.instance_by_name(name)
    answer = api.call("delete_instance", instance_id=row["id"])
    if answer.get("waits"):
        click.echo(answer["waits"])
    if wait:
        api.wait(row["id"], lambda p: p["status"] == "delete-failed")
    click.echo(f"{name} {'deleted' if wait else 'is being deleted'}.")


@cli.command()
@click.argument("name")
@fail_on_errors
def renew(name):
    """Renew the lease of NAME."""
    api = client()
    answer = api.call("renew", instance_id=api.instance_by_name(name)["id"])
    click.echo(f"Lease of {name} renewed until {answer['lease_expires_at']}.")


@cli.command()
@json_option
@fail_on_errors
def usage(as_json):
    """Your quota and what you use."""
    report = client().call("usage")
    if as_json:
        show(report, True)
        return
    table([{"resource": key, "used": report["used"].get(key), "allowed": value}
           for key, value in report["quota"].items()], ["resource", "used", "allowed"])


@cli.group()
def token():
    """Your API tokens."""


@token.command("ls")
@json_option
@fail_on_errors
def token_list(as_json):
    """Your tokens (never their secrets)."""
    show(client().every("list_tokens"), as_json,
         ["id", "name", "scope", "prefix", "expires_at", "last_used_at", "revoked_at"])


@token.command("create")
@click.argument("name")
@click.option("--scope", type=click.Choice(["read", "member", "admin"]), default="member",
              show_default=True)
@click.option("--days", type=int, default=90, show_default=True)
@json_option
@fail_on_errors
def token_create(name, scope, days, as_json):
    """Make a token NAME; it is printed once."""
    row = client().call("create_token", json={"name": name, "scope": scope, "days": days})
    show(row, as_json, ["id", "name", "scope", "expires_at", "token"])


@token.command("revoke")
@click.argument("token_id", type=int)
@fail_on_errors
def token_revoke(token_id):
    """Revoke the token with this id (see `warren token ls`)."""
    row = client().call("revoke_token", token_id=token_id)
    click.echo(f"Token {row['name']} revoked.")


@cli.group()
def admin():
    """Admin work (needs an admin token)."""


@admin.group()
def member():
    """Members and their shares."""


MEMBER_COLUMNS = ["username", "role", "tier", "disabled", "deleting", "created_at"]


@member.command("ls")
@json_option
@fail_on_errors
def member_list(as_json):
    """Every account."""
    show(client().every("list_members"), as_json, MEMBER_COLUMNS)


@member.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(["member", "admin"]), default="member", show_default=True)
@click.option("--tier", default="full", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@json_option
@fail_on_errors
def member_create(username, role, tier, password_stdin, as_json):
    """Create an account with a password you hand over."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else \
        click.prompt("Password", hide_input=True, confirmation_prompt=True)
    show(client().call("create_member", json={"username": username, "password": password,
                                              "role": role, "tier": tier}), as_json, MEMBER_COLUMNS)


@member.command("show")
@click.argument("username")
@json_option
@fail_on_errors
def member_show(username, as_json):
    """One account with its share and use."""
    show(client().call("show_member", username=username), as_json,
         MEMBER_COLUMNS + ["quota", "used", "overrides"])


@member.command("share")
@click.argument("username")
@click.option("--tier", required=True)
@click.argument("overrides", nargs=-1)
@json_option
@fail_on_errors
def member_share(username, tier, overrides, as_json):
    """Give USERNAME a tier and exactly these overrides (key=value ...)."""
    values = dict(item.split("=", 1) for item in overrides if "=" in item)
    show(client().call("set_share", username=username, json={"tier": tier, "overrides": values}),
         as_json, MEMBER_COLUMNS + ["overrides"])


@member.command("disable")
@click.argument("username")
@fail_on_errors
def member_disable(username):
    """Sign a member out and stop their instances."""
    answer = client().call("disable_member", username=username)
    click.echo(f"{username} is disabled; {answer['stopping']} instance(s) are being stopped.")


@member.command("enable")
@click.argument("username")
@fail_on_errors
def member_enable(username):
    """Let a disabled member in again."""
    client().call("enable_member", username=username)
    click.echo(f"{username} can sign in again.")


@member.command("rm")
@click.argument("username")
@click.option("--yes", is_flag=True, help="Do not ask; the name is confirmed to Warren anyway.")
@fail_on_errors
def member_remove(username, yes):
    """Delete a member with everything they have."""
    if not yes:
        click.confirm(f"Delete {username} with every instance and DNS name?", abort=True)
    answer = client().call("delete_member", username=username, params={"confirm": username})
    click.echo(f"Deleting {username}: {answer['instances']} instance(s) first, then the account.")


@member.command("invite")
@click.option("--role", type=click.Choice(["member", "admin"]), default="member", show_default=True)
@click.option("--tier", default="full", show_default=True)
@click.option("--hours", type=int, default=72, show_default=True)
@fail_on_errors
def member_invite(role, tier, hours):
    """Print a one-time sign-up link."""
    click.echo(client().call("invite", json={"role": role, "tier": tier, "hours": hours})["url"])


for _group in (snapshots.snapshot, backups.backup, publishing.forward, publishing.site,
               publishing.record, publishing.domain):
    cli.add_command(_group)


def main():
    cli(prog_name="warren")
