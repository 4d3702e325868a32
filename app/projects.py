"""Each member's own restricted LXD project, created on first need.

The project is restricted (no privileged containers, no host devices or
paths, NICs only on Warren's bridge), carries the member's quota as
aggregate limits, allows nesting only when the member's share does, and
holds a copy of every Warren profile the member may use.
"""
import hashlib
import json
import threading

from . import accounts, lxd, names, quotas
from .names import PROJECT_PREFIX, project_name
from .passes import each_guarded
from .profiles import current_profiles
from .quotas import Quota
from .statuses import READY
from .store import get_db

_applied: dict[str, str] = {}  # project -> digest of what was last applied
_applied_lock = threading.Lock()
_project_locks: dict[str, threading.Lock] = {}


def installation() -> str:
    """This Warren's installation id (see store.installation_id)."""
    from flask import current_app
    return current_app.extensions["warren.installation"]


def dns_owner(username: str) -> str:
    """The owner written in an instance's TXT marker: member@installation."""
    return names.dns_owner(username, installation())


def project_config(quota: Quota, network: str, installation_id: str, vms: bool = False,
                   snapshots: bool = True) -> dict:
    """Restrictions and limits of a member project.

    restricted.snapshots lets LXD take snapshots (a restricted project
    blocks them by default) while `snapshots` says the member may: see
    snapshots_allowed.

    With VMs the aggregate limits.processes is left out: LXD 5.0 requires
    every instance of a project with that limit to set limits.processes,
    which a VM cannot. Containers keep their own limits.processes (pids
    cgroup) and Warren's quota check still counts processes."""
    limits = quota.lxd_limits()
    if vms:
        del limits["limits.processes"]
    return {
        "user.warren.installation": installation_id,
        "features.profiles": "true",
        "features.images": "false",  # see the default project's images
        "features.storage.volumes": "true",
        "restricted": "true",
        "restricted.containers.nesting": "allow" if quota.nesting else "block",
        "restricted.containers.privilege": "isolated",  # requires security.idmap.isolated
        "restricted.devices.disk": "managed",
        "restricted.devices.nic": "managed",
        "restricted.networks.access": network,
        "restricted.snapshots": "allow" if snapshots else "block",
        # Warren's backups (app/backups.py) go through LXD's backup API, which
        # a restricted project blocks by default; members never reach LXD's
        # API themselves, so only Warren makes them.
        "restricted.backups": "allow",
        **limits,
    }


def usable_profiles(profiles: dict, quota: Quota) -> dict:
    """The profiles a member with this quota may use."""
    return {name: profile for name, profile in profiles.items() if quota.nesting or not profile.nesting}


def snapshots_allowed(username: str, quota: Quota) -> bool:
    """Whether LXD may take new snapshots in the member's project: their
    share includes snapshots and their disk quota (root disks plus what
    snapshots hold, app/snapshots.py) is not full."""
    db = get_db()
    row = db.execute("SELECT id FROM users WHERE username = ?", [username]).fetchone()
    return quotas.snapshots_allowed(quota, quotas.usage(db, row[0]) if row else {"disk": 0})


def runs_vms(settings, profiles: dict) -> bool:
    """Whether member projects hold VMs: a VM profile exists and LXD can run VMs."""
    return any(profile.is_vm for profile in profiles.values()) and \
        lxd.instance_types(lxd.backend(settings)).get("virtual-machine", "unknown") is None


def ensure_member_project(settings, username: str, quota: Quota, profiles: dict) -> str:
    """Create or update the member's project and sync profiles into it.

    Skips all LXD calls when this process already applied the same state."""
    name = project_name(username)
    usable = usable_profiles(profiles, quota)
    vms = runs_vms(settings, usable)
    config = project_config(quota, settings.lxd_network, installation(), vms,
                            snapshots_allowed(username, quota))
    wanted = {profile_name: (profile.lxd_config(),
                             profile.lxd_devices(settings.lxd_storage_pool, settings.lxd_network),
                             profile.description)
              for profile_name, profile in usable.items()}
    digest = hashlib.sha256(json.dumps([config, wanted], sort_keys=True).encode()).hexdigest()
    with _applied_lock:
        if _applied.get(name) == digest:
            return name
        lock = _project_locks.setdefault(name, threading.Lock())
    with lock:  # one thread brings a project in line; the others then find it done
        with _applied_lock:
            if _applied.get(name) == digest:
                return name
        client = lxd.backend(settings).client()
        member_client = lxd.backend(settings).client(name)
        if lxd.project_exists(client, name):
            # Profiles the member may no longer use go first: LXD will not
            # block nesting while a profile in the project still asks for it.
            for stale in set(lxd.profile_names(member_client)) - set(wanted) - {"default"}:
                lxd.delete_profile(member_client, stale)
        lxd.ensure_project(client, name, config, f"Warren member {username}",
                           absent=("limits.processes",) if vms else ())
        for profile_name, (profile_config, devices, description) in wanted.items():
            lxd.ensure_profile(member_client, profile_name, profile_config, devices, description)
        with _applied_lock:
            _applied[name] = digest
    return name


def applied_digest(name: str) -> str | None:
    """The digest of what this process last applied to a project, if any."""
    with _applied_lock:
        return _applied.get(name)


def forget_applied(name: str | None = None) -> None:
    """Drop the record of applied state (after outside changes, in tests)."""
    with _applied_lock:
        if name is None:
            _applied.clear()
        else:
            _applied.pop(name, None)


def sync_existing(settings, db, usernames: list[str]) -> list[str]:
    """Mirror changed quotas into the LXD projects members already have;
    returns the projects updated. (Members without a project get theirs,
    with the current quota, on their first request.)"""
    client = lxd.backend(settings).client()
    synced = []
    for username in usernames:
        name = project_name(username)
        if not lxd.project_exists(client, name):
            continue
        forget_applied(name)
        user = accounts.find_user(username)
        quota = quotas.quota_for(db, user)
        profiles = current_profiles()
        ensure_member_project(settings, username, quota, profiles)
        _sync_priorities(settings, db, user, quota, profiles)
        synced.append(name)
    return synced


def sync_profiles(settings, db) -> list[str]:
    """Bring every member project in line with the profile files as they
    are now (e.g. after a git pull in profiles/); cheap when nothing changed,
    since each project's applied state is remembered. Each project is synced
    in its own guard. Returns the projects that changed."""
    existing = set(lxd.project_names(lxd.backend(settings).client(), PROJECT_PREFIX,
                                     installation()))
    profiles = current_profiles()

    def sync(user):
        name = project_name(user["username"])
        quota = quotas.quota_for(db, user)
        with _applied_lock:
            before = _applied.get(name)
        ensure_member_project(settings, user["username"], quota, profiles)
        with _applied_lock:
            after = _applied.get(name)
        if after != before:
            _sync_priorities(settings, db, user, quota, profiles)
            return name
        return None

    users = [user for user in db["users"].rows_where("deleting = 0")
             if project_name(user["username"]) in existing]
    return [name for name in each_guarded(users, lambda user: f"the project of {user['username']}",
                                          sync) if name]


def _sync_priorities(settings, db, user: dict, quota, profiles: dict) -> None:
    """Give the member's instances the CPU priority their share now allows
    (LXD applies it live)."""
    scoped = lxd.backend(settings).client(project_name(user["username"]))
    for row in db["instances"].rows_where("user_id = ? AND status = ? AND instance_type = 'container'",
                                          [user["id"], READY]):
        profile = profiles.get(row["profile"])
        if profile is not None:
            lxd.set_config(scoped, row["lxd_name"], "limits.cpu.priority",
                           str(quotas.cpu_priority(quota, profile)))
