"""What the worker does for each job, step by step.

Every step is idempotent so a job can run again after a crash: the LXD
instance has a deterministic name in the member's project and carries
user.warren.* keys that say which request made it; DNS updates are guarded
by prerequisites. A failed request is rolled back (LXD instance and DNS
records removed, addresses freed) so nothing is left half-created.
"""
import logging
import os
import signal
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

import yaml

from . import (accounts, addresses, audit, certificates, dns, domains, forwards, hostroutes, ingress,
               isolation, jobs, lxd, maintenance, offline, quotas, records, sites, snapshots, statuses)
from .config import current_settings
from .errors import BackendUnavailable, Conflict, WarrenError
from .instances import lease_blocks_start, record_event
from .names import member_of
from .profiles import current_profiles
from .projects import dns_owner, ensure_member_project, installation
from .statuses import CREATING, DELETE_FAILED, FAILED, PUBLISHING, READY, STARTING
from .store import get_db, now, transaction

log = logging.getLogger(__name__)
MESSAGES = {
    CREATING: "Creating the instance in LXD.",
    STARTING: "Starting it.",
    PUBLISHING: "Publishing its DNS name.",
    READY: "Ready.",
}


def checkpoint(step: str) -> None:
    """Fault injection for the crash tests (WARREN_FAULT_AT): die here, at once."""
    if current_settings().fault_at == step:
        os.kill(os.getpid(), signal.SIGKILL)


def _set_status(db, instance: dict, status: str, message: str | None = None, **fields) -> None:
    with transaction(db):
        db["instances"].update(instance["id"], {"status": status, "updated_at": now(), **fields})
        record_event(db, instance["id"], status, message or MESSAGES.get(status, status))
    instance.update(status=status, **fields)


def cloud_config(keys: list[str], hostname: str | None = None) -> str:
    """cloud-init user-data that installs the member's keys for the image's
    default user and for root (and sets the hostname, for VMs)."""
    data = {"ssh_authorized_keys": keys, "disable_root": False}
    if hostname:
        data.update(hostname=hostname, preserve_hostname=False)
    return "#cloud-config\n" + yaml.safe_dump(data, default_flow_style=False)


def nic_device(network: str, ipv4: str, ipv6: str | None = None) -> dict:
    """An instance's NIC on Warren's bridge with its static addresses, filtered
    by LXD so a member who is root inside cannot take another instance's MAC
    or addresses (ARP, neighbour advertisement and IP source checks on the
    host side). LXD's DHCP and DHCPv6 hand the addresses out."""
    nic = {"type": "nic", "network": network, "name": "eth0", "ipv4.address": ipv4,
           **isolation.IPV4_FILTERING}
    if ipv6:
        nic.update({"ipv6.address": ipv6, **isolation.IPV6_FILTERING})
    return nic


KEYS_KEY = "user.warren.keys"  # root's authorized_keys, for images with the key template


def instance_setup(instance: dict, profile, image: dict, quota, owner: str) -> tuple[dict, dict]:
    """The config and devices of a new LXD instance for a request.

    Containers get an isolated id map and the share's CPU priority. A VM
    takes keys and hostname from cloud-init's config drive (it has no LXD
    agent to receive files), its CPUs on the instance (see
    Profile.lxd_config), and Secure Boot off when its image says it needs
    that (requirements.secureboot)."""
    settings = current_settings()
    config = {"user.warren.id": str(instance["id"]), "user.warren.owner": owner,
              "user.warren.hostname": instance["name"], "user.warren.installation": installation()}
    devices = {"eth0": nic_device(settings.lxd_network, instance["ipv4"],
                                  addresses.ipv6_of(instance, settings))}
    keys = instance["ssh_keys"].splitlines()
    cloud_init = image.get("warren.cloud-init") == "true"
    if profile.is_vm:
        if not cloud_init:
            raise Conflict(f"the image {instance['image']} cannot take SSH keys in a VM: it has no "
                           "cloud-init (image property warren.cloud-init)")
        config["limits.cpu"] = str(profile.limits.cpu)
        config["user.user-data"] = cloud_config(keys, hostname=instance["name"])
        if image.get("requirements.secureboot") == "false":
            config["security.secureboot"] = "false"
        devices["cloud-init"] = {"type": "disk", "source": "cloud-init:config"}
    else:
        config["security.idmap.isolated"] = "true"
        config["limits.cpu.priority"] = str(quotas.cpu_priority(quota, profile))
        if cloud_init:
            config["user.user-data"] = cloud_config(keys)
        elif takes_key_template(image):
            config[KEYS_KEY] = "".join(f"{key}\n" for key in keys)
    return config, devices


def takes_key_template(image: dict) -> bool:
    """Whether the image writes root's authorized_keys from the instance's
    user.warren.keys through an LXD template (at its first start, without
    a file push round trip: image property warren.key-template)."""
    return image.get("warren.key-template") == "true"


def _member_client(instance: dict):
    return lxd.backend(current_settings()).client(instance["project"])


def _own_instance(client, instance: dict):
    """The LXD instance this row made, None if absent; Conflict if the name
    is held by something Warren did not create for this row."""
    found = lxd.get_instance(client, instance["lxd_name"])
    if found is not None and found.config.get("user.warren.id") != str(instance["id"]):
        raise Conflict(f"an LXD instance named {instance['lxd_name']} already exists in "
                       f"{instance['project']} and was not made by this request")
    return found


def provision(db, instance: dict) -> None:
    """queued -> creating -> starting -> publishing -> ready."""
    settings = current_settings()
    user = accounts.get_user(instance["user_id"])
    profiles = current_profiles()
    profile = profiles.get(instance["profile"])
    if profile is None:
        raise Conflict(f"the profile {instance['profile']} no longer exists")
    _set_status(db, instance, CREATING)
    checkpoint("committed")
    quota = quotas.quota_for(db, user)
    ensure_member_project(settings, user["username"], quota, profiles)
    client = _member_client(instance)
    keys = instance["ssh_keys"].splitlines()
    created = _own_instance(client, instance)
    image = lxd.image_properties(client, instance["image"])
    fresh = created is None
    if fresh:
        config, devices = instance_setup(instance, profile, image, quota, user["username"])
        created = lxd.create_instance(client, instance["lxd_name"], instance["image"], config=config,
                                      devices=devices, profiles=[profile.name],
                                      instance_type=instance["instance_type"],
                                      lock_path=lxd.idmap_lock_path(lxd.backend(settings)),
                                      target=profile.placement)
    if lxd.location(created) != instance.get("location", ""):
        db["instances"].update(instance["id"], {"location": lxd.location(created)})
    if lxd.location(created) and instance["ipv4"]:
        hostroutes.route(settings, instance["ipv4"], lxd.location(created))  # reached on its member
    checkpoint("created")
    if image.get("warren.cloud-init") != "true" and not takes_key_template(image):
        # Before the start: pushing while LXD starts the container races in
        # LXD's file API (the forkfile connection is reset mid-transfer).
        lxd.push_file(created, "/root/.ssh/authorized_keys", "\n".join(keys) + "\n", 0o600)
    _set_status(db, instance, STARTING)
    if fresh:
        lxd.start_instance(created)  # known to be stopped: skip the state read
    else:
        lxd.set_power(created, "start")
    isolation.guard_started(settings, client, instance["lxd_name"])  # its port: only its own MAC
    checkpoint("started")
    _set_status(db, instance, PUBLISHING)
    checkpoint("before-dns")
    try:
        ipv4, ipv6 = sites.name_addresses(db, settings, instance)
        dns.publish_address(dns.zone_from_settings(settings), instance["fqdn"], ipv4,
                            dns_owner(user["username"]), ipv6=ipv6)
    except BackendUnavailable as error:
        # The instance is usable by address; reconcile publishes the name later.
        _set_status(db, instance, READY, f"Ready; DNS pending: {error}", dns_state="pending")
    else:
        _set_status(db, instance, READY, dns_state="published")
    sites.after_ready(db, instance)


def remove_everything(db, instance: dict, halfway=lambda: None) -> None:
    """Take down the instance's DNS name and LXD instance, if they are ours.
    With the DNS server down the removal is recorded and done by reconcile."""
    settings = current_settings()
    forwards.withdraw(db, settings, instance)  # before its address can go to someone else
    domains.withdraw(db, instance)  # no longer routed to it
    sites.withdraw(db, settings, instance)
    owner = dns_owner(member_of(instance["project"]))
    try:
        dns.remove_name(dns.zone_from_settings(settings), instance["fqdn"], owner)
    except Conflict as error:
        log.warning("left DNS name alone: %s", error)
    except BackendUnavailable as error:
        log.warning("DNS removal of %s deferred: %s", instance["fqdn"], error)
        db.execute("INSERT OR REPLACE INTO dns_removals (fqdn, owner, created_at) VALUES (?, ?, ?)",
                   [instance["fqdn"], owner, now()])
    records.withdraw_instance(db, settings, instance)  # the member's records at its name
    halfway()
    client = _member_client(instance)
    if _own_instance(client, instance) is not None:  # None too when the project is gone
        lxd.delete_instance(client, instance["lxd_name"])


def delete(db, instance: dict) -> None:
    """Remove DNS name and LXD instance, then the rows; the address is free."""
    remove_everything(db, instance, halfway=lambda: checkpoint("mid-delete"))
    with transaction(db):
        db.execute("DELETE FROM events WHERE instance_id = ?", [instance["id"]])
        db.execute("DELETE FROM jobs WHERE instance_id = ?", [instance["id"]])
        db.execute("DELETE FROM instances WHERE id = ?", [instance["id"]])


def power(db, instance: dict, action: str) -> None:
    """start, stop or restart a ready instance. A VM starts with its
    profile's current CPU count (never changed while it runs)."""
    if action in ("start", "restart") and lease_blocks_start(instance):
        raise Conflict(f"the lease of {instance['name']} has expired; it starts again only "
                       "after a renewal")
    client = _member_client(instance)
    found = _own_instance(client, instance)
    if found is None:
        raise Conflict(f"{instance['lxd_name']} is missing from LXD")
    profile = current_profiles().get(instance["profile"])
    step = action
    if profile is not None and profile.is_vm and action in ("start", "restart"):
        if action == "restart":
            lxd.set_power(found, "stop")
        found, step = lxd.get_instance(client, instance["lxd_name"]), "start"
        if found.status == "Stopped" and \
                lxd.set_config(client, instance["lxd_name"], "limits.cpu", str(profile.limits.cpu)):
            with transaction(db):
                record_event(db, instance["id"], action, f"CPUs set to {profile.limits.cpu} "
                             "from the profile.")
    lxd.set_power(found, step)
    if step in ("start", "restart"):
        isolation.guard_bridge(current_settings())  # a new port: held to its MAC
    with transaction(db):
        record_event(db, instance["id"], action, f"{action.capitalize()} done.")


def fail(db, instance: dict, error: Exception) -> None:
    """Roll a failed request back and record why."""
    reason = str(error)
    try:
        remove_everything(db, instance)
    except WarrenError as cleanup_error:
        log.error("could not clean up after %s: %s", instance["fqdn"], cleanup_error)
        reason += f" (clean-up also failed: {cleanup_error})"
    _set_status(db, instance, FAILED, f"Failed: {reason}", error=reason, ipv4=None,
                ipv6=None, dns_state="none")


def _provision_job(db, instance: dict, _kind: str) -> None:
    if instance["status"] in statuses.BUILDING:
        provision(db, instance)


def _delete_job(db, instance: dict, _kind: str) -> None:
    delete(db, instance)


def _power_job(db, instance: dict, kind: str) -> None:
    power(db, instance, kind)


def _provision_failed(db, instance: dict, _kind: str, error: WarrenError) -> None:
    fail(db, instance, error)


def _delete_failed(db, instance: dict, _kind: str, error: WarrenError) -> None:
    # Still holds resources (counts against quota); the member can retry.
    _set_status(db, instance, DELETE_FAILED, f"Deletion failed: {error}", error=str(error))


def _power_failed(db, instance: dict, kind: str, error: WarrenError) -> None:
    with transaction(db):
        record_event(db, instance["id"], kind, f"{kind.capitalize()} failed: {error}")


def _forwards_job(db, _instance: dict, _kind: str) -> None:
    forwards.sync(db, current_settings())


def _forwards_failed(db, instance: dict, _kind: str, error: WarrenError) -> None:
    with transaction(db):
        record_event(db, instance["id"], "forward", f"Port forwards not applied yet: {error} "
                     "(the worker tries again on its next pass).")


def _ingress_job(db, instance: dict, _kind: str) -> None:
    """Routes first (within a second of the change), then the certificates
    of the instance's host names (seconds, from the ACME directory)."""
    settings = current_settings()
    ingress.sync(db, settings)
    if instance["status"] == READY:
        # Published, the name leads to the proxy; unpublished, back to the
        # instance (sites.name_addresses). Before the certificate: the CA
        # looks the name up.
        ipv4, ipv6 = sites.name_addresses(db, settings, instance)
        dns.publish_address(dns.zone_from_settings(settings), instance["fqdn"], ipv4,
                            dns_owner(member_of(instance["project"])), ipv6=ipv6)
    hostnames = {route.hostname for route in ingress.desired_routes(db, settings)
                 if route.instance_id == instance["id"]}
    if hostnames:
        for line in certificates.refresh(db, settings, only=hostnames):
            if line.startswith("certificate"):
                with transaction(db):
                    record_event(db, instance["id"], "website", line[0].upper() + line[1:] + ".")


def _ingress_failed(db, instance: dict, _kind: str, error: WarrenError) -> None:
    with transaction(db):
        record_event(db, instance["id"], "website", f"Website not applied yet: {error} "
                     "(the worker tries again on its next pass).")


def _snapshots_job(db, instance: dict, _kind: str) -> None:
    settings = current_settings()

    def after_restore(client) -> None:
        """LXD put back the snapshot's config: Warren's NIC (address,
        filtering) and CPU priority as they are now."""
        device = nic_device(settings.lxd_network, instance["ipv4"],
                            addresses.ipv6_of(instance, settings))
        lxd.set_device(client, instance["lxd_name"], "eth0", device)
        profile = current_profiles().get(instance["profile"])
        if instance["instance_type"] == "container" and profile is not None:
            quota = quotas.quota_for(db, accounts.get_user(instance["user_id"]))
            lxd.set_config(client, instance["lxd_name"], "limits.cpu.priority",
                           str(quotas.cpu_priority(quota, profile)))

    snapshots.apply(db, settings, instance, after_restore)


def _snapshots_failed(db, instance: dict, _kind: str, error: WarrenError) -> None:
    snapshots.abandon(db, instance, error)
def _backup_id() -> int:
    return jobs.current.get()["backup_id"]


def _backup_job(db, instance: dict, _kind: str) -> None:
    from . import backups
    backups.run(db, instance, _backup_id())


def _backup_failed(db, instance: dict, _kind: str, error: WarrenError) -> None:
    from . import backups
    backups.failed(db, instance, _backup_id(), error)


def _restore_job(db, instance: dict, _kind: str) -> None:
    from . import restores
    restores.run(db, instance, _backup_id())


def _restore_failed(db, instance: dict, _kind: str, error: WarrenError) -> None:
    from . import restores
    restores.failed(db, instance, _backup_id(), error)


def _records_job(db, user: dict, _kind: str) -> None:
    records.sync_member(db, current_settings(), user)


def _records_failed(db, user: dict, _kind: str, error: WarrenError) -> None:
    log.warning("the DNS records of %s are not published yet: %s (the reconcile pass tries "
                "again)", user["username"], error)


def _move_job(db, instance: dict, _kind: str) -> None:
    maintenance.move_job(db, instance)


def _move_failed(db, instance: dict, _kind: str, error: WarrenError) -> None:
    maintenance.move_failed(db, instance, error)


@dataclass(frozen=True)
class Handler:
    """What the worker does for a job kind, and what a failure leaves behind."""
    run: Callable[[object, dict, str], None]
    on_failure: Callable[[object, dict, str, WarrenError], None]


# One line per job kind (jobs.KINDS); jobs.enqueue refuses any other kind.
HANDLERS = {
    "provision": Handler(_provision_job, _provision_failed),
    "delete": Handler(_delete_job, _delete_failed),
    **{kind: Handler(_power_job, _power_failed) for kind in jobs.POWER},
    "forwards": Handler(_forwards_job, _forwards_failed),
    "ingress": Handler(_ingress_job, _ingress_failed),
    "records": Handler(_records_job, _records_failed),
    "snapshots": Handler(_snapshots_job, _snapshots_failed),
    "backup": Handler(_backup_job, _backup_failed),
    "restore": Handler(_restore_job, _restore_failed),
    "move": Handler(_move_job, _move_failed),
}


# Jobs that need the instance's member: held back in the queue while it is
# offline (LXD would wait for it, holding a worker thread), tried again every
# HELD_RETRY, so they run in order once it is back. A build needs no
# particular member: LXD places it on one that is there.
HELD_WHILE_OFFLINE = frozenset(("delete",) + jobs.POWER + jobs.SYNC + jobs.BACKUP + jobs.MOVE)
HELD_RETRY = timedelta(seconds=10)


def _action(job: dict) -> str:
    return f"{'member' if job['instance_id'] is None else 'instance'}.{job['kind']}"


def _subject(db, job: dict) -> tuple[dict, str, str] | None:
    """The row a job acts on (an instance, or a member for member jobs), the
    member it belongs to and its name for the audit log; None when gone."""
    if job["instance_id"] is None:
        rows = list(db["users"].rows_where("id = ?", [job["user_id"]]))
        return (rows[0], rows[0]["username"], rows[0]["username"]) if rows else None
    rows = list(db["instances"].rows_where("id = ?", [job["instance_id"]]))
    return (rows[0], member_of(rows[0]["project"]), rows[0]["fqdn"]) if rows else None


def _hold(db, job: dict, instance: dict, note: str, member: str, target: str) -> None:
    """Put the job back in the queue until its member is back; its history
    and the audit log say so once."""
    with transaction(db):
        if jobs.hold(db, job["id"], note, HELD_RETRY):
            record_event(db, instance["id"], job["kind"], note)
            audit.record(db, audit.WORKER, _action(job), target, "queued", member=member, detail=note)
    log.info("job %s (%s %s) held: %s", job["id"], job["kind"], target, note)


def run_job(job: dict) -> str | None:
    """Run one claimed job; returns the error text, or None on success."""
    db = get_db()
    handler = HANDLERS.get(job["kind"])
    if handler is None:
        return f"unknown job kind {job['kind']!r}"
    found = _subject(db, job)
    if found is None:
        return None  # deleted meanwhile
    instance, member, target = found
    jobs.current.set(job)
    try:
        if job["kind"] in HELD_WHILE_OFFLINE and (note := offline.waiting_note(
                current_settings(), instance, job["kind"])):
            _hold(db, job, instance, note, member, target)
            return None
        handler.run(db, instance, job["kind"])
    except Exception as error:  # a bug too must not leave the request half-way
        if not isinstance(error, WarrenError):
            log.exception("job %s crashed", job["id"])
            error = WarrenError(f"internal error ({type(error).__name__}); it has been logged")
        log.warning("job %s (%s %s) failed: %s", job["id"], job["kind"], target, error)
        audit.record(db, audit.WORKER, _action(job), target, "failed", member=member,
                     detail=str(error))
        handler.on_failure(db, instance, job["kind"], error)
        return str(error)
    audit.record(db, audit.WORKER, _action(job), target, member=member,
                 detail=instance.get("status", ""))
    return None
