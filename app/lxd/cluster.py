"""Cluster maintenance as LXD does it: the instances on a member and what
LXD's evacuation will do with each, evacuating and restoring a member, and
moving one instance to another member.

Which instances an evacuation moves follows LXD 5.0.2's own rule
(lxd/instance/drivers/driver_common.go canMigrate): the instance's
`cluster.evacuate` says migrate or stop outright; with `auto` (the default)
it moves only if every device can move: the root disk, a NIC on a managed
network (`network=`), none and tpm devices; a NIC on a host interface
(`parent=` only), another disk on a local pool, or any other device keeps it
on its member, stopped. A running container is stopped, moved and started
again (no live migration without CRIU)."""
import pylxd

from .client import translated
from .instances import instance_items

MOVABLE_TYPES = {"none", "tpm"}
REMOTE_DRIVERS = {"ceph", "cephfs", "cephobject"}


def _why_not_movable(item: dict, remote_pools: set[str]) -> str | None:
    """Why LXD's evacuation would stop this instance instead of moving it
    (None: it moves)."""
    policy = item["expanded_config"].get("cluster.evacuate", "auto")
    if policy in ("migrate", "live-migrate"):
        return None
    if policy == "stop":
        return "its cluster.evacuate is stop"
    for name, device in sorted(item["expanded_devices"].items()):
        kind = device.get("type")
        if kind == "disk" and device.get("path") != "/" and device.get("pool") not in remote_pools:
            return f"its disk {name} lives on that member only"
        if kind == "nic" and not device.get("network"):
            return f"its NIC {name} is on a host interface, not a managed network"
        if kind not in ("disk", "nic") and kind not in MOVABLE_TYPES:
            return f"its {kind} device {name} stays with the member"
    return None


def instances_on(client: pylxd.Client, member: str) -> list[dict]:
    """The instances on a member (all projects): project, name, type,
    status, and `stays` (why evacuation would stop it there; None: moves)."""
    listing = instance_items(client, all_projects=True)
    with translated("listing storage pools"):
        pools = client.api.storage_pools.get(params={"recursion": 1}).json()["metadata"] or []
    remote = {pool["name"] for pool in pools if pool.get("driver") in REMOTE_DRIVERS}
    return [{"project": item.get("project", "default"), "name": item["name"], "type": item["type"],
             "status": item["status"], "stays": _why_not_movable(item, remote)}
            for item in listing if item.get("location") == member]


def locations(client: pylxd.Client) -> dict[tuple[str, str], str]:
    """(project, instance name) -> the member it is on, for every instance."""
    return {(item.get("project", "default"), item["name"]): item.get("location", "")
            for item in instance_items(client, all_projects=True)}


def _member_state(client: pylxd.Client, member: str, action: str) -> None:
    with translated(f"{action} of cluster member {member}"):
        response = client.api.cluster.members[member].state.post(json={"action": action})
        client.operations.wait_for_operation(response.json()["operation"])


def evacuate_member(client: pylxd.Client, member: str) -> None:
    """LXD's evacuation of a member: movable instances go to the members
    with the fewest instances, the others are stopped. Waits for the end."""
    _member_state(client, member, "evacuate")


def restore_member(client: pylxd.Client, member: str) -> None:
    """Bring an evacuated member back: LXD moves back what it moved and
    starts what it stopped. Waits for the end."""
    _member_state(client, member, "restore")


def move_instance(client: pylxd.Client, name: str, target: str) -> None:
    """Move a stopped instance to another member (client scoped to its
    project); its name, config and devices go with it."""
    with translated(f"moving {name} to {target}"):
        response = client.api.instances[name].post(json={"name": name, "migration": True,
                                                         "live": False}, target=target)
        client.operations.wait_for_operation(response.json()["operation"])
