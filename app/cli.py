"""Command line: `flask --app app user|db|host|tier|event|backup|restore ...` (bin/up uses these too)."""
import sys
import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from . import accounts, addresses, firewall, lxd, members, quotas, shares, store
from .errors import ConfigError, WarrenError

user_cli = AppGroup("user", help="Create accounts and reset passwords.")
db_cli = AppGroup("db", help="The database schema.")
host_cli = AppGroup("host", help="Prepare this host's LXD for Warren.")
tier_cli = AppGroup("tier", help="Share tiers: the default quotas members get.")


def _fail(error: WarrenError):
    click.echo(f"error: {error}", err=True)
    for field, messages in getattr(error, "errors", {}).items():
        for message in messages:
            click.echo(f"  {field}: {message}", err=True)
    sys.exit(1)


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@user_cli.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(accounts.ROLES), default="member", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def create_user(username, role, password_stdin):
    """Create an account."""
    try:
        user = accounts.create_user(username, _read_password(password_stdin), role)
    except WarrenError as error:
        _fail(error)
    click.echo(f"created {user['role']} {user['username']}")


@user_cli.command("reset-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def reset_password(username, password_stdin):
    """Set a new password; the user's sessions are signed out."""
    try:
        user = accounts.find_user(username)
        accounts.set_password(user["id"], _read_password(password_stdin), actor="cli")
    except WarrenError as error:
        _fail(error)
    click.echo(f"password of {username} changed; their sessions were signed out")


def _pairs(items) -> dict:
    try:
        return dict(item.split("=", 1) for item in items)
    except ValueError:
        click.echo("error: write values as key=value, e.g. memory=8GiB", err=True)
        sys.exit(1)


def _describe(quota) -> str:
    return (", ".join(f"{key}={value}" for key, value in quota.lxd_limits().items())
            + f", nesting={'allowed' if quota.nesting else 'blocked'}, cpu_priority={quota.cpu_priority}"
            + f", forwards={quota.forwards}, records={quota.records}, domains={quota.domains}"
            + f", snapshots={quota.snapshots}")


def _report_lxd(change) -> None:
    """Say how a saved share change reached the members' LXD projects."""
    for name in change.projects:
        click.echo(f"LXD project {name}: limits updated")
    if change.unreachable:
        click.echo(f"warning: saved, but LXD is not reachable now ({change.unreachable}); the "
                   "worker brings the LXD projects in line on its next pass", err=True)


@user_cli.command("set-quota")
@click.argument("username")
@click.option("--tier", help="The member's share tier (see `flask tier list`).")
@click.argument("overrides", nargs=-1)
def set_quota(username, tier, overrides):
    """Set a member's tier and add overrides, e.g. set-quota alice instances=6 memory=8GiB;
    refused if the member's instances would not fit or LXD refuses the limits."""
    try:
        user = accounts.find_user(username)
        merged = {**members.overrides_of(user), **quotas.parse_overrides(_pairs(overrides))}
        quota, change = shares.set_quota(members.CLI, username, tier or user["tier"], merged)
    except WarrenError as error:
        _fail(error)
    click.echo(f"{username}: {_describe(quota)}")
    _report_lxd(change)


@tier_cli.command("list")
def list_tiers():
    """Show every share tier."""
    for name, quota in quotas.tiers(store.get_db()).items():
        click.echo(f"{name:<12} {_describe(quota)}")


@tier_cli.command("set")
@click.argument("name")
@click.argument("values", nargs=-1)
def set_tier(name, values):
    """Create or change a tier, e.g. `tier set half memory=4GiB cpu_priority=5`; refused if the
    instances of a member on it would not fit or LXD refuses the limits."""
    try:
        quota, change = shares.set_tier(members.CLI, name, quotas.parse_overrides(_pairs(values)))
    except WarrenError as error:
        _fail(error)
    click.echo(f"{name}: {_describe(quota)}")
    _report_lxd(change)


@user_cli.command("list")
def list_users():
    """List accounts."""
    for user in accounts.list_users():
        state = "disabled" if user["disabled"] else "active"
        click.echo(f"{user['username']:<32} {user['role']:<7} {state}")


@user_cli.command("ensure-admin")
def ensure_admin():
    """Create the first admin (WARREN_ADMIN_USER) unless an admin exists."""
    settings = current_app.config["WARREN"]
    try:
        generated = accounts.ensure_admin(settings.admin_user, settings.admin_password)
    except WarrenError as error:
        _fail(error)
    if generated:
        click.echo(f"created admin {settings.admin_user!r} with password: {generated}")
        click.echo("(shown once; change it after signing in, or: flask --app app user reset-password)")
    else:
        click.echo("an admin account exists; nothing to do")


@db_cli.command("migrate")
def migrate():
    """Bring the schema to the current version."""
    db = store.connect(current_app.config["WARREN"].database)
    click.echo(f"database schema at version {store.migrate(db)}")


@host_cli.command("setup-lxd")
def setup_lxd():
    """Create Warren's btrfs pool, its bridge (in the configured network mode)
    and the bridge's guards if missing (idempotent)."""
    settings = current_app.config["WARREN"]
    try:
        backend = lxd.backend(settings)
        client = backend.client()
        members = [member.name for member in backend.members()]  # [] on a single daemon
        if members:
            click.echo(f"LXD cluster: {', '.join(members)}")
        if members and settings.network_ipv6_prefix:
            raise ConfigError("IPv6 on an LXD cluster is not supported yet (Warren routes IPv4 only to "
                              "the instances on other members); leave WARREN_NETWORK_IPV6_PREFIX "
                              "empty. Nothing was changed.")
        tunnel = lxd.cluster_tunnel(settings.cluster_vxlan_group, settings.cluster_vxlan_id,
                                    settings.cluster_vxlan_interface) if members else None
        made = lxd.ensure_storage_pool(client, settings.lxd_storage_pool, settings.lxd_pool_size,
                                       members)
        click.echo(f"storage pool {settings.lxd_storage_pool}: {'created' if made else 'present'}")
        prefix = settings.network_ipv6_prefix
        made = lxd.ensure_network(client, settings.lxd_network, settings.network_address,
                                  addresses.dynamic_range(settings.network_address),
                                  mode=settings.network_mode,
                                  ipv6_address=addresses.ipv6_gateway(prefix) if prefix else None,
                                  ipv6_range=addresses.ipv6_dynamic_range(prefix) if prefix else None,
                                  members=members, tunnel=tunnel)
        click.echo(f"network {settings.lxd_network}: {'configured' if made else 'present'}")
        if members:
            click.echo(f"network {settings.lxd_network}: one segment across the members "
                       f"(VXLAN {settings.cluster_vxlan_id}, group {settings.cluster_vxlan_group}"
                       f"{', over ' + settings.cluster_vxlan_interface if settings.cluster_vxlan_interface else ''})")
        made = firewall.ensure_dhcp_guard(settings.lxd_network, settings.network_address)
        click.echo(f"DHCP guard on {settings.lxd_network}: {'installed' if made else 'present'}")
        isolated = settings.network_mode == "isolated"
        made = firewall.ensure_forward_guard(settings.lxd_network, isolated)
        click.echo(f"forward guard on {settings.lxd_network}: "
                   f"{('installed' if made else 'present') if isolated else ('removed' if made else 'none')}")
        lxd.ensure_default_profile(client, settings.lxd_storage_pool, settings.lxd_network)
    except WarrenError as error:
        _fail(error)


@click.command("backup")
@click.option("--instances", is_flag=True,
              help="First back up every ready instance (the worker must run) and wait for them.")
@click.option("--timeout", default=3600, show_default=True, help="Seconds to wait for the instances.")
def backup(instances, timeout):
    """Copy Warren's own state (database, zone and keys, profiles, secret key)
    into the backup directory; with --instances, every instance first."""
    from . import backups, jobs, warren_state
    from .statuses import READY
    settings = current_app.config["WARREN"]
    db = store.get_db()
    try:
        if instances:
            with store.transaction(db):
                wanted = [backups.queue(db, row, "manual")
                          for row in db["instances"].rows_where("status = ?", [READY])]
            jobs.wake_worker(settings)
            deadline = time.monotonic() + timeout
            while db.execute(f"SELECT count(*) FROM backups WHERE id IN ({','.join('?' * len(wanted))}) "
                             "AND state IN ('queued', 'running')", wanted).fetchone()[0]:
                if time.monotonic() > deadline:
                    _fail(WarrenError(f"the instances' backups did not finish within {timeout} s "
                                      "(is the worker running?)"))
                time.sleep(0.5)
            for row in db["backups"].rows_where(f"id IN ({','.join('?' * len(wanted))})", wanted):
                click.echo(f"instance {row['instance_id']}: {row['state']} "
                           f"{row['file'] or row['error']}")
        click.echo(f"Warren's state copied to {warren_state.back_up(settings)}")
    except WarrenError as error:
        _fail(error)


@click.command("restore")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--no-instances", is_flag=True, help="Only Warren's state, not the instances.")
def restore(path, no_instances):
    """Bring Warren back from a copy of its state (a folder under
    <backup dir>/warren/), then every instance missing from LXD from its
    newest backup. Run it while Warren is stopped (bin/down), then bin/up."""
    from . import restores, warren_state
    settings = current_app.config["WARREN"]
    store.close_db()
    try:
        for line in warren_state.restore(settings, path):
            click.echo(line)
        db = store.get_db()
        click.echo(f"database schema at version {store.migrate(db)}")
        current_app.extensions["warren.installation"] = store.installation_id(db)
        if not no_instances:
            for line in restores.restore_missing(db, settings):
                click.echo(line)
    except WarrenError as error:
        _fail(error)


@click.command("worker")
def run_worker():
    """Run the provisioning worker until SIGTERM or Ctrl-C (SIGUSR1 prints
    where every thread is, on standard error)."""
    import faulthandler
    import signal

    from .worker import Worker
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    worker = Worker(current_app._get_current_object())
    for signum in (signal.SIGTERM, signal.SIGINT):  # before start: a stop may come at once
        signal.signal(signum, lambda *_: worker.stop(wait_for_passes=False))
    worker.start()
    click.echo(f"worker running with {current_app.config['WARREN'].worker_threads} threads")
    worker.wait()


def init_app(app):
    """Register the command groups."""
    from .cluster_cli import cluster_cli
    from .event_cli import event_cli
    for group in (user_cli, db_cli, host_cli, tier_cli, event_cli, cluster_cli, run_worker, backup,
                  restore):
        app.cli.add_command(group)
