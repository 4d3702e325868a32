"""Instances: create, start, stop, rename, delete, configure, run commands
and write files in them, and list them with their state and devices."""
import time

import pylxd
from pylxd import exceptions as lxd_exceptions

from ..errors import NotFound
from . import idmaps
from .client import translated


def create_instance(client: pylxd.Client, name: str, image: str, *, config: dict | None = None,
                    devices: dict | None = None, profiles: list[str] | None = None,
                    instance_type: str = "container", lock_path: str | None = None,
                    target: str | None = None):
    """Create (not start) an instance from a local image alias; on a
    cluster, target places it (a member, or @group for a cluster group),
    else LXD picks the member.

    With lock_path (idmaps.lock_path), a container's isolated id map is
    allocated under the host's id map lock (see app/lxd/idmaps.py): held
    from the request until LXD has written the range, not while LXD
    unpacks the image and shifts its files."""
    spec = {"name": name, "type": instance_type, "source": {"type": "image", "alias": image},
            "config": config or {}, "devices": devices or {}, "profiles": profiles or []}
    if instance_type != "container":
        lock_path = None  # a VM has no id map
    with translated(f"creating instance {name}"):
        with idmaps.allocation(lock_path) as lock:
            lock.acquire()
            operation = client.api.instances.post(json=spec, target=target).json()["operation"]
            if lock_path is not None:
                idmaps.wait_for_base(client, name, operation)
        client.operations.wait_for_operation(operation)
        return client.instances.get(name)


def location(instance) -> str:
    """The cluster member an instance is on ("" on a single daemon, where
    LXD says "none")."""
    return "" if instance.location in (None, "", "none") else instance.location


def start_instance(instance) -> None:
    """Start an instance and wait until LXD reports it running."""
    with translated(f"starting instance {instance.name}"):
        instance.start(wait=True)


def delete_instance(client: pylxd.Client, name: str, attempts: int = 20) -> bool:
    """Stop (forcefully) and delete an instance; False when it did not exist.

    Retries while LXD is still busy with another operation on it (a start
    that just failed is followed by LXD's own stop)."""
    with translated(f"deleting instance {name}"):
        for attempt in range(attempts):
            try:
                instance = client.instances.get(name)
            except lxd_exceptions.NotFound:
                return False
            try:
                if instance.status != "Stopped":
                    instance.stop(force=True, wait=True)
                instance.delete(wait=True)
                return True
            except lxd_exceptions.LXDAPIException as error:
                # LXD 5.0.2 also refuses a delete right after a forced stop with "A
                # matching non-reusable operation has now succeeded".
                text = str(error).lower()
                if not ("busy" in text or "non-reusable operation" in text) or attempt == attempts - 1:
                    raise
                time.sleep(0.25)


def rename_instance(client: pylxd.Client, name: str, new_name: str) -> None:
    """Rename an instance; LXD renames only stopped ones, so a running one
    is stopped (cleanly, forced after 30 s) and started again."""
    with translated(f"renaming instance {name} to {new_name}"):
        instance = client.instances.get(name)
        running = instance.status == "Running"
        if running:
            try:
                instance.stop(timeout=30, wait=True)
            except lxd_exceptions.LXDAPIException:
                instance.stop(force=True, wait=True)
        instance.rename(new_name, wait=True)
        if running:
            client.instances.get(new_name).start(wait=True)


def execute(instance, command: list[str]) -> tuple[int, str, str]:
    """Run a command inside an instance: (exit code, stdout, stderr).

    LXD records the output in log files, read back and removed afterwards:
    no websockets (pylxd's websocket teardown raises over HTTPS when LXD
    closes first, and its manager thread outlives the call)."""
    node = instance.client.api.instances[instance.name]
    with translated(f"running {command[0]} in {instance.name}"):
        response = node.exec.post(json={"command": command, "environment": {}, "interactive": False,
                                         "wait-for-websocket": False, "record-output": True})
        operation = instance.client.operations.wait_for_operation(response.json()["operation"])
        outputs = []
        for fd in ("1", "2"):
            log = node.logs[operation.metadata["output"][fd].rsplit("/", 1)[-1]]
            outputs.append(log.get(is_api=False).content.decode("utf-8", errors="replace"))
            log.delete()
    return operation.metadata["return"], outputs[0], outputs[1]


def set_config(client: pylxd.Client, name: str, key: str, value: str) -> bool:
    """Set one config key of an instance (live where LXD can); True if changed."""
    with translated(f"configuring {name}"):
        instance = client.instances.get(name)
        if instance.config.get(key) == value:
            return False
        instance.config[key] = value
        instance.save(wait=True)
        return True


def set_device(client: pylxd.Client, name: str, device: str, settings: dict) -> bool:
    """Set keys on one of an instance's own devices (live where LXD can);
    True if changed.

    A device that only comes from a profile is copied onto the instance
    first. PATCH with the instance's ETag: only this device is sent, and a
    concurrent change to the instance makes LXD refuse instead of losing it."""
    with translated(f"configuring device {device} of {name}"):
        node = client.api.instances[name]
        response = node.get()
        current = response.json()["metadata"]
        wanted = dict(current["devices"].get(device)
                      or current["expanded_devices"].get(device) or {})
        if not wanted:
            raise NotFound(f"instance {name} has no device {device}")
        if current["devices"].get(device) == {**wanted, **settings}:
            return False
        wanted.update(settings)
        node.patch(json={"devices": {device: wanted}, "description": current["description"]},
                   headers={"If-Match": response.headers.get("ETag", "")})
        return True


def get_instance(client: pylxd.Client, name: str):
    """The instance with this name in the client's project, or None."""
    with translated(f"reading instance {name}"):
        try:
            return client.instances.get(name)
        except lxd_exceptions.NotFound:
            return None


def push_file(instance, path: str, content: str, mode: int = 0o600, uid: int = 0, gid: int = 0,
              directory_mode: int = 0o700) -> None:
    """Write a file into an instance (works while it is stopped, too),
    creating its directory when the first attempt finds it missing."""
    folder = path.rsplit("/", 1)[0] or "/"
    with translated(f"writing {path} in {instance.name}"):
        try:
            instance.files.put(path, content.encode(), mode=oct(mode)[2:], uid=uid, gid=gid)
        except lxd_exceptions.LXDAPIException as error:
            if "not found" not in str(error).lower() and "no such file" not in str(error).lower():
                raise
            instance.files.mk_dir(folder, mode=oct(directory_mode)[2:], uid=uid, gid=gid)
            instance.files.put(path, content.encode(), mode=oct(mode)[2:], uid=uid, gid=gid)


def set_power(instance, action: str, timeout: int = 30) -> None:
    """start, stop or restart; a clean shutdown that is forced after timeout."""
    with translated(f"{action} {instance.name}"):
        instance.sync()
        if action == "start":
            if instance.status != "Running":
                instance.start(wait=True)
            return
        if instance.status == "Running":
            try:
                instance.stop(timeout=timeout, wait=True)
            except lxd_exceptions.LXDAPIException:
                instance.stop(force=True, wait=True)
        if action == "restart":
            instance.start(wait=True)


UNREACHABLE = "Unreachable"


def instance_items(client: pylxd.Client, all_projects: bool = False) -> list[dict]:
    """Every instance of the client's project (or of every project) in one
    request (clean names: pylxd's .all() appends ?project= to them).

    An instance on an offline cluster member is listed by LXD 5.0.2 with
    status Error and no config at all: it is there, but nothing about it can
    be read. Such an item gets status Unreachable, config None and no
    devices."""
    params = {"recursion": 1, **({"all-projects": "true"} if all_projects else {})}
    with translated("listing instances"):
        listing = client.api.instances.get(params=params).json()["metadata"] or []
    return [item if item.get("config") is not None else
            {**item, "status": UNREACHABLE, "config": None, "expanded_config": {}, "devices": {},
             "expanded_devices": {}}
            for item in listing]


def instance_states(client: pylxd.Client) -> dict[str, str]:
    """Name -> status (Running, Stopped, ...) of every instance in the project."""
    return {item["name"]: item["status"] for item in instance_items(client)}


def instance_devices(client: pylxd.Client) -> dict[str, dict]:
    """Name -> status, config, own devices and expanded devices of every
    instance in the client's project (one request)."""
    return {item["name"]: {key: item[key] for key in
                           ("status", "config", "devices", "expanded_devices")}
            for item in instance_items(client)}


def instance_configs(client: pylxd.Client) -> dict[str, dict | None]:
    """Name -> config of every instance in the client's project (one
    request); None for one LXD cannot read (on an offline cluster member)."""
    return {item["name"]: item["config"] for item in instance_items(client)}


def ipv4_address(instance) -> str | None:
    """The instance's global IPv4 on eth0 as it reports it, if any."""
    with translated(f"reading state of {instance.name}"):
        state = instance.state()
    for address in (state.network or {}).get("eth0", {}).get("addresses", []):
        if address["family"] == "inet" and address["scope"] == "global":
            return address["address"]
    return None
