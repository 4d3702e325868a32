"""Against the real LXD daemon that bin/test starts."""
import ipaddress
import time

import pytest

from app import addresses, lxd
from app.errors import NotFound
from support import idmap_lock


def wait_for(predicate, timeout=60.0, step=0.5):
    """Poll until predicate() is truthy; return its value or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {predicate.__name__}")
        time.sleep(step)


def test_client_connects(lxd_client):
    info = lxd.server_info(lxd_client)
    assert info["environment"]["server_version"].startswith("5.0")
    assert "lxc" in info["environment"]["driver"]


def test_storage_pool_is_btrfs(lxd_client, settings):
    pool = lxd_client.storage_pools.get(settings.lxd_storage_pool)
    assert pool.driver == "btrfs"


def test_bridge_has_no_nat_and_the_configured_range(lxd_client, settings):
    network = lxd_client.networks.get(settings.lxd_network)
    assert network.managed and network.type == "bridge"
    assert network.config["ipv4.nat"] == "false"
    assert network.config["ipv6.address"] == "none"
    assert network.config["dns.mode"] == "none"
    assert network.config["ipv4.address"] == settings.network_address
    assert network.config["ipv4.dhcp.ranges"] == addresses.dynamic_range(settings.network_address)


def test_setup_is_idempotent(lxd_client, settings):
    assert lxd.ensure_storage_pool(lxd_client, settings.lxd_storage_pool, "1GiB") is False
    assert lxd.ensure_network(lxd_client, settings.lxd_network, settings.network_address,
                              addresses.dynamic_range(settings.network_address)) is False


def test_image_aliases_exist(lxd_client):
    assert "busybox" in lxd.image_aliases(lxd_client)


def test_busybox_container_launches_unprivileged(lxd_client, settings, instances, unique_name):
    name = unique_name()
    instances.append(name)
    instance = lxd.create_instance(lxd_client, name, "busybox",
                                   config={"security.idmap.isolated": "true"}, lock_path=idmap_lock(),
                                   devices={"root": {"type": "disk", "path": "/",
                                                     "pool": settings.lxd_storage_pool},
                                            "eth0": {"type": "nic", "nictype": "bridged",
                                                     "parent": settings.lxd_network}})
    lxd.start_instance(instance)
    instance.sync()
    assert instance.status == "Running"
    code, uid_map, _ = lxd.execute(instance, ["cat", "/proc/self/uid_map"])
    inside, outside, count = (int(field) for field in uid_map.split())
    assert code == 0 and inside == 0 and outside != 0 and count == 65536
    address = wait_for(lambda: lxd.ipv4_address(instance), timeout=20)
    assert ipaddress.IPv4Address(address) in lxd.network_range(settings.network_address)
    assert lxd.delete_instance(lxd_client, name) is True
    assert not lxd_client.instances.exists(name)
    assert lxd.delete_instance(lxd_client, name) is False


def test_unknown_image_is_a_clear_error(lxd_client, instances, unique_name):
    name = unique_name()
    instances.append(name)
    with pytest.raises(NotFound, match="LXD says it does not exist"):
        lxd.create_instance(lxd_client, name, "no-such-image-alias")
    assert not lxd_client.instances.exists(name)


@pytest.mark.slow
def test_debian_image_takes_ssh_key_through_cloud_init(lxd_client, settings, instances,
                                                       unique_name, debian_image):
    key = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf4LHa0NAKnUXGQjJ3sTRb5KtcQ2yEMgoB0RX8n7H0d "
           "member@laptop")
    name = unique_name("deb")
    instances.append(name)
    instance = lxd.create_instance(
        lxd_client, name, debian_image, lock_path=idmap_lock(),
        config={"security.idmap.isolated": "true",
                "user.user-data": f"#cloud-config\nssh_authorized_keys:\n  - {key}\n"},
        devices={"root": {"type": "disk", "path": "/", "pool": settings.lxd_storage_pool},
                 "eth0": {"type": "nic", "nictype": "bridged", "parent": settings.lxd_network}})
    lxd.start_instance(instance)

    def cloud_init_done():
        code, out, _ = lxd.execute(instance, ["cloud-init", "status"])
        return out if "done" in out or "error" in out else None
    assert "status: done" in wait_for(cloud_init_done, timeout=120)
    code, keys, _ = lxd.execute(instance, ["cat", "/home/debian/.ssh/authorized_keys"])
    assert code == 0 and key in keys
    code, listening, _ = lxd.execute(instance, ["ss", "-ltnH", "sport = :22"])
    assert "LISTEN" in listening
    code, hostname, _ = lxd.execute(instance, ["hostname"])
    assert hostname.strip() == name
    address = wait_for(lambda: lxd.ipv4_address(instance), timeout=60)
    assert ipaddress.IPv4Address(address) in lxd.network_range(settings.network_address)


def test_a_socket_that_does_not_exist_means_lxd_is_unreachable(tmp_path):
    from app.errors import BackendUnavailable
    with pytest.raises(BackendUnavailable, match="LXD is not reachable"):
        lxd.Backend(socket_path=str(tmp_path / "no-such" / "unix.socket")).client()
