"""Instance snapshots: list them with their sizes and dates, take, restore
and delete one. Every call waits for LXD's operation to finish.

On a btrfs pool LXD 5.0.2 reports a snapshot's size as the bytes only
that snapshot holds (its qgroup's exclusive bytes): what deleting it
frees. A restore keeps newer snapshots there (only ZFS makes LXD delete
them), stops a running container itself (a hard stop) and puts back the
instance's config from the snapshot as well as its disk."""
import pylxd
from pylxd import exceptions as lxd_exceptions

from .client import translated

NEVER = "0001-01-01T00:00:00Z"  # LXD's zero time: no expiry


def _node(client: pylxd.Client, instance: str):
    return client.api.instances[instance].snapshots


def list_snapshots(client: pylxd.Client, instance: str) -> list[dict]:
    """An instance's snapshots, oldest first: name, size (bytes only it
    holds), created_at and expires_at (None when it never expires)."""
    with translated(f"listing snapshots of {instance}"):
        items = _node(client, instance).get(params={"recursion": 1}).json()["metadata"]
    found = [{"name": item["name"], "size": max(item.get("size") or 0, 0),
              "created_at": item["created_at"],
              "expires_at": None if item.get("expires_at", NEVER).startswith("0001-")
              else item["expires_at"]} for item in items]
    return sorted(found, key=lambda item: item["created_at"])


def _wait(client: pylxd.Client, response) -> None:
    operation = response.json().get("operation")
    if operation:
        client.operations.wait_for_operation(operation)


def take_snapshot(client: pylxd.Client, instance: str, name: str) -> None:
    """Take a (stateless) snapshot; the profile's snapshots.expiry dates it."""
    with translated(f"taking snapshot {name} of {instance}"):
        _wait(client, _node(client, instance).post(json={"name": name, "stateful": False}))


def delete_snapshot(client: pylxd.Client, instance: str, name: str) -> bool:
    """Delete a snapshot; False when it was gone already."""
    with translated(f"deleting snapshot {name} of {instance}"):
        try:
            _wait(client, _node(client, instance)[name].delete())
        except lxd_exceptions.NotFound:
            return False
    return True


def restore_snapshot(client: pylxd.Client, instance: str, name: str) -> None:
    """Put an instance's disk and config back to a snapshot (stop it first:
    LXD would stop a running container hard)."""
    with translated(f"restoring {instance} to snapshot {name}"):
        _wait(client, client.api.instances[instance].put(json={"restore": name}))
