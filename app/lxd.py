"""The only module that talks to LXD (through pylxd).

pylxd's exceptions become Warren's LxdError / BackendUnavailable / NotFound /
Conflict here, so callers never see the library. Every call waits for its
operation to finish (wait=True): nothing returns while LXD is still working.
"""
import fcntl
import ipaddress
import logging
import os
import threading
import time
from contextlib import contextmanager

import pylxd
import requests
from pylxd import exceptions as lxd_exceptions

from .errors import BackendUnavailable, Conflict, LxdError, NotFound

log = logging.getLogger(__name__)


@contextmanager
def translated(action: str):
    """Run a block of pylxd calls, turning its errors into Warren's."""
    try:
        yield
    except lxd_exceptions.NotFound as error:
        raise NotFound(f"{action}: LXD says it does not exist ({error})") from error
    except lxd_exceptions.Conflict as error:
        raise Conflict(f"{action}: LXD reports a conflict ({error})") from error
    except lxd_exceptions.LXDAPIException as error:
        raise LxdError(f"{action}: LXD refused: {error}") from error
    except (lxd_exceptions.ClientConnectionFailed, requests.RequestException) as error:
        # RequestException: also a socket path that does not exist, which
        # pylxd takes for a URL without a scheme.
        raise BackendUnavailable(f"{action}: LXD is not reachable ({error})") from error


_clients = threading.local()


def connect(socket_path: str, project: str | None = None) -> pylxd.Client:
    """A client on the daemon's unix socket, optionally scoped to a project.

    Clients are kept per thread: making one costs a round trip to LXD."""
    cache = _clients.__dict__.setdefault("by_key", {})
    key = (socket_path, project)
    if key not in cache:
        cache[key] = _new_client(socket_path, project)
    return cache[key]


def _new_client(socket_path: str, project: str | None) -> pylxd.Client:
    with translated("connecting to LXD"):
        try:
            return pylxd.Client(endpoint=socket_path, project=project)
        except lxd_exceptions.ClientConnectionFailed as error:
            raise BackendUnavailable(
                f"LXD is not reachable on {socket_path}: is the daemon running? ({error})") from error


def server_info(client: pylxd.Client) -> dict:
    """The server's environment: version, drivers, kernel features."""
    with translated("reading LXD server info"):
        return client.host_info


DRIVERS = {"container": "lxc", "virtual-machine": "qemu"}


def instance_types(socket_path: str) -> dict[str, str | None]:
    """Instance type -> None when this LXD can run it, else the reason LXD
    gives (its "Instance type not operational" warning, e.g. "vhost_vsock
    kernel module not loaded")."""
    def load():
        client = connect(socket_path)
        with translated("reading LXD server info"):
            info = client.api.get().json()["metadata"]["environment"]
            drivers = {driver.strip() for driver in info.get("driver", "").split("|")}
            missing = [kind for kind, driver in DRIVERS.items() if driver not in drivers]
            reasons = []
            if missing:
                warnings = client.api.warnings.get(params={"recursion": 1}).json()["metadata"] or []
                reasons = [warning["last_message"] for warning in warnings
                           if warning["type"] == "Instance type not operational"]
        return {kind: None if kind not in missing else
                (reasons[0] if reasons else f"LXD has no {DRIVERS[kind]} driver on this server")
                for kind in DRIVERS}
    return cached(("instance types", socket_path), load)


def ensure_storage_pool(client: pylxd.Client, name: str, size: str) -> bool:
    """Create a loop-file btrfs pool unless it exists; True when created.

    btrfs, not dir: only a quota-capable driver makes root disk sizes real."""
    with translated(f"storage pool {name}"):
        if client.storage_pools.exists(name):
            driver = client.storage_pools.get(name).driver
            if driver != "btrfs":
                raise LxdError(f"storage pool {name} uses the {driver} driver; Warren needs btrfs "
                               "so disk limits hold (set WARREN_LXD_STORAGE_POOL to another name)")
            return False
        client.storage_pools.create({"name": name, "driver": "btrfs", "config": {"size": size}})
        return True


def bridge_config(address: str, dhcp_range: str) -> dict:
    """The managed bridge's config: our range, DHCP (static leases for Warren's
    instances, a small dynamic range for the rest), no NAT, no IPv6.

    dns.mode=none: names are published in Warren's own zone, and without it
    LXD refuses two members' instances that share a name (web.alice and
    web.bob) because dnsmasq's names are per bridge, not per project."""
    return {"ipv4.address": address, "ipv4.nat": "false", "ipv4.dhcp": "true",
            "ipv4.dhcp.ranges": dhcp_range, "ipv6.address": "none", "dns.mode": "none"}


def ensure_network(client: pylxd.Client, name: str, address: str, dhcp_range: str) -> bool:
    """Create the bridge, or bring its config back in line; True when changed."""
    wanted = bridge_config(address, dhcp_range)
    with translated(f"network {name}"):
        if client.networks.exists(name):
            network = client.networks.get(name)
            if network.type != "bridge" or not network.managed:
                raise LxdError(f"network {name} exists but is not a managed bridge")
            if all(network.config.get(key) == value for key, value in wanted.items()):
                return False
            network.config.update(wanted)
            network.save(wait=True)
            return True
        client.networks.create(name, type="bridge", config=wanted,
                               description="Warren member instances (no NAT)")
        return True


def network_range(address: str) -> ipaddress.IPv4Network:
    """The IPv4 network a bridge address belongs to."""
    return ipaddress.IPv4Interface(address).network


def ensure_default_profile(client: pylxd.Client, pool: str, network: str) -> bool:
    """Give the default project's default profile a root disk and a NIC, so
    a plain `lxc launch` by an admin lands on Warren's pool and bridge."""
    with translated("default profile"):
        profile = client.profiles.get("default")
        devices = dict(profile.devices)
        changed = False
        if "root" not in devices:
            devices["root"] = {"type": "disk", "path": "/", "pool": pool}
            changed = True
        if "eth0" not in devices:
            devices["eth0"] = {"type": "nic", "nictype": "bridged", "parent": network, "name": "eth0"}
            changed = True
        if changed:
            profile.devices = devices
            profile.save(wait=True)
        return changed


def image_aliases(client: pylxd.Client) -> set[str]:
    """The image aliases known to the server."""
    with translated("listing images"):
        return {alias["name"] for image in client.images.all() for alias in image.aliases}


_image_cache: dict[tuple, tuple[float, object]] = {}
IMAGE_CACHE_SECONDS = 10.0


def cached(key: tuple, load):
    """A value from load(), reused for IMAGE_CACHE_SECONDS (image metadata
    changes only when an admin imports an image)."""
    hit = _image_cache.get(key)
    if hit and time.monotonic() - hit[0] < IMAGE_CACHE_SECONDS:
        return hit[1]
    value = load()
    _image_cache[key] = (time.monotonic(), value)
    return value


@contextmanager
def _host_lock(path: str | None):
    """An exclusive lock shared by every process on the host (flock)."""
    if path is None:
        yield
        return
    handle = os.open(path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)


def create_instance(client: pylxd.Client, name: str, image: str, *, config: dict | None = None,
                    devices: dict | None = None, profiles: list[str] | None = None,
                    instance_type: str = "container", lock_path: str | None = None):
    """Create (not start) an instance from a local image alias.

    With lock_path, creations are serialised host-wide: LXD 5.0 computes an
    isolated id map while another container being created still has no
    volatile.idmap.base, reads it as 0, and hands out a range below the
    subordinate ids, which then fails to start."""
    spec = {"name": name, "type": instance_type, "source": {"type": "image", "alias": image},
            "config": config or {}, "devices": devices or {}, "profiles": profiles or []}
    with _host_lock(lock_path), translated(f"creating instance {name}"):
        return client.instances.create(spec, wait=True)


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
                if "busy" not in str(error).lower() or attempt == attempts - 1:
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
    """Run a command inside an instance: (exit code, stdout, stderr)."""
    with translated(f"running {command[0]} in {instance.name}"):
        result = instance.execute(command)
    return result.exit_code, result.stdout, result.stderr


def project_exists(client: pylxd.Client, name: str) -> bool:
    """Whether a project exists."""
    with translated(f"project {name}"):
        return client.projects.exists(name)


def ensure_project(client: pylxd.Client, name: str, config: dict, description: str,
                   absent: tuple = ()) -> bool:
    """Create a project, or bring the given keys back in line and remove the
    `absent` ones; True when changed."""
    with translated(f"project {name}"):
        if not client.projects.exists(name):
            try:
                client.projects.create(name, config=config, description=description)
                return True
            except lxd_exceptions.LXDAPIException as error:
                if "already exists" not in str(error):
                    raise  # otherwise someone else made it meanwhile: bring it in line
        project = client.projects.get(name)
        if all(project.config.get(key) == value for key, value in config.items()) \
                and not any(key in project.config for key in absent):
            return False
        project.config.update(config)
        for key in absent:
            project.config.pop(key, None)
        project.save(wait=True)
        return True


def ensure_profile(client: pylxd.Client, name: str, config: dict, devices: dict,
                   description: str) -> bool:
    """Create a profile in the client's project, or make it exactly this; LXD
    applies a changed profile to running instances live. True when changed."""
    with translated(f"profile {name}"):
        if not client.profiles.exists(name):
            try:
                client.profiles.create(name, config=config, devices=devices, description=description)
                return True
            except lxd_exceptions.LXDAPIException as error:
                if "already exists" not in str(error):
                    raise  # otherwise someone else made it meanwhile: bring it in line
        profile = client.profiles.get(name)
        if profile.config == config and profile.devices == devices \
                and profile.description == description:
            return False
        profile.config, profile.devices, profile.description = config, devices, description
        profile.save(wait=True)
        return True


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


def instance_devices(client: pylxd.Client) -> dict[str, dict]:
    """Name -> status, config, own devices and expanded devices of every
    instance in the client's project (one request)."""
    return {item["name"]: {key: item[key] for key in
                           ("status", "config", "devices", "expanded_devices")}
            for item in _instance_list(client)}


def network_config(client: pylxd.Client, name: str) -> dict:
    """The config of a managed network."""
    with translated(f"network {name}"):
        return dict(client.networks.get(name).config)


def bridge_ports(client: pylxd.Client, bridge: str) -> dict[str, str]:
    """Host-side interface -> MAC address of every running instance NIC on
    the bridge, in every project (one request)."""
    with translated("listing instances of all projects"):
        items = client.api.instances.get(
            params={"recursion": 1, "all-projects": "true"}).json()["metadata"]
    ports = {}
    for item in items:
        if item["status"] not in ("Running", "Frozen"):  # only these have a host-side interface
            continue
        for device, spec in item["expanded_devices"].items():
            if spec.get("type") != "nic" or bridge not in (spec.get("network"), spec.get("parent")):
                continue
            host_name = item["config"].get(f"volatile.{device}.host_name")
            mac = spec.get("hwaddr") or item["config"].get(f"volatile.{device}.hwaddr")
            if host_name and mac:
                ports[host_name] = mac.lower()
    return ports


def profile_names(client: pylxd.Client) -> list[str]:
    """The profiles of the client's project."""
    with translated("listing profiles"):
        return [profile["name"] for profile in
                client.api.profiles.get(params={"recursion": 1}).json()["metadata"]]


def delete_profile(client: pylxd.Client, name: str) -> None:
    """Delete a profile; Conflict naming the instances when it is in use."""
    with translated(f"profile {name}"):
        profile = client.profiles.get(name)
        users = [path.rsplit("/", 1)[-1].split("?")[0] for path in profile.used_by]
        if users:
            raise Conflict(f"profile {name} is used by {', '.join(sorted(users))}")
        profile.delete()


def image_properties(client: pylxd.Client, alias: str) -> dict:
    """The properties of the image behind an alias (os, warren.cloud-init, ...)."""
    def load():
        with translated(f"image {alias}"):
            return dict(client.images.get_by_alias(alias).properties)
    return cached(("properties", id(client), alias), load)


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


def _instance_list(client: pylxd.Client) -> list[dict]:
    """Every instance of the client's project in one request (clean names:
    pylxd's .all() appends ?project= to them)."""
    with translated("listing instances"):
        return client.api.instances.get(params={"recursion": 1}).json()["metadata"]


def instance_states(client: pylxd.Client) -> dict[str, str]:
    """Name -> status (Running, Stopped, ...) of every instance in the project."""
    return {item["name"]: item["status"] for item in _instance_list(client)}


def ipv4_address(instance) -> str | None:
    """The instance's global IPv4 on eth0 as it reports it, if any."""
    with translated(f"reading state of {instance.name}"):
        state = instance.state()
    for address in (state.network or {}).get("eth0", {}).get("addresses", []):
        if address["family"] == "inet" and address["scope"] == "global":
            return address["address"]
    return None



def delete_project(socket_path: str, name: str) -> bool:
    """Delete a project with its instances and profiles; False if absent."""
    client = connect(socket_path)
    with translated(f"deleting project {name}"):
        if not client.projects.exists(name):
            return False
    scoped = connect(socket_path, project=name)
    with translated(f"deleting project {name}"):
        for instance_name in instance_states(scoped):
            delete_instance(scoped, instance_name)
        for profile in scoped.profiles.all():
            if profile.name != "default":
                profile.delete()
        client.projects.get(name).delete()
    return True


def project_names(client: pylxd.Client, prefix: str, installation: str) -> list[str]:
    """Names of the projects that start with prefix and carry this
    user.warren.installation."""
    with translated("listing projects"):
        return [project.name for project in client.projects.all()
                if project.name.startswith(prefix)
                and project.config.get("user.warren.installation") == installation]


def instance_configs(client: pylxd.Client) -> dict[str, dict]:
    """Name -> config of every instance in the client's project (one request)."""
    return {item["name"]: item["config"] for item in _instance_list(client)}


def instance_usage(client: pylxd.Client) -> dict[str, dict]:
    """Name -> status, root disk use and memory use of every instance in
    the client's project, from LXD's instance state (one request)."""
    with translated("reading instance state"):
        items = client.api.instances.get(params={"recursion": 2}).json()["metadata"]
    usage = {}
    for item in items:
        state = item.get("state") or {}
        usage[item["name"]] = {
            "status": item["status"],
            "disk": ((state.get("disk") or {}).get("root") or {}).get("usage", 0),
            "memory": (state.get("memory") or {}).get("usage", 0),
            "processes": state.get("processes", 0) if state.get("processes", -1) >= 0 else 0,
        }
    return usage


def cpu_seconds(client: pylxd.Client) -> dict[str, float]:
    """Name -> CPU seconds used so far by each running instance of the
    client's project, from /1.0/metrics (OpenMetrics text)."""
    from prometheus_client.parser import text_string_to_metric_families
    with translated("reading metrics"):
        text = client.api.metrics.get().text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "lxd_cpu_seconds_total" and "name" in sample.labels:
                found[sample.labels["name"]] = found.get(sample.labels["name"], 0.0) + sample.value
    return found


def host_resources(client: pylxd.Client) -> dict:
    """The host's CPU threads and memory, from /1.0/resources."""
    with translated("reading host resources"):
        resources = client.api.resources.get().json()["metadata"]
    return {"cpu": resources["cpu"]["total"], "memory": resources["memory"]["total"]}
