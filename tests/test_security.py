"""Dangerous settings: Warren's profile validator refuses each one with a
reason, and the member's restricted LXD project refuses the same thing when
it is sent straight to the LXD API (real LXD)."""
import pytest
import yaml

from app import lxd, names, quotas
from app.errors import LxdError, ValidationError
from app.profiles import parse_profile
from support import idmap_lock, probe_project

BASE = {"description": "probe", "instance_type": "container",
        "limits": {"cpu": 1, "memory": "128MiB", "disk": "256MiB", "processes": 100,
                   "cpu_allowance": "50%", "cpu_priority": 5},
        "images": ["busybox"]}
CONFIG_KEYS = [
    ("security.privileged", "true"),
    ("raw.lxc", "lxc.apparmor.profile=unconfined"),
    ("raw.idmap", "both 1000 1000"),
    ("raw.seccomp", "2\nblacklist\n"),
    ("security.idmap.isolated", "false"),
    ("security.idmap.base", "1000000"),
    ("security.idmap.size", "1000000"),
    ("security.syscalls.intercept.mknod", "true"),
    ("security.syscalls.intercept.mount", "true"),
    ("security.syscalls.intercept.setxattr", "true"),
    ("linux.kernel_modules", "ip_tables"),
]
DEVICES = [
    ("host-path disk", {"type": "disk", "source": "/etc", "path": "/mnt/host"}),
    ("unix-char", {"type": "unix-char", "path": "/dev/kvm"}),
    ("unix-block", {"type": "unix-block", "path": "/dev/loop0"}),
    ("usb", {"type": "usb", "vendorid": "1d6b"}),
    ("gpu", {"type": "gpu"}),
    ("pci", {"type": "pci", "address": "0000:00:01.0"}),
    ("proxy", {"type": "proxy", "listen": "tcp:127.0.0.1:7777", "connect": "tcp:127.0.0.1:22"}),
    ("nic outside Warren's bridge", {"type": "nic", "nictype": "bridged", "parent": "lo"}),
]


@pytest.fixture(scope="module")
def member_project(settings):
    """A member project exactly as Warren makes it (full share), with one profile."""
    name = names.project_name(f"sec{__import__('os').getpid()}")
    yield probe_project(settings, name, quotas.TIERS["full"], BASE)
    lxd.delete_project(lxd.backend(settings), name)


def lxd_refuses(scoped, unique_name, config=None, devices=None):
    name = unique_name("sec")
    with pytest.raises(LxdError, match="Failed checking if instance creation allowed"):
        lxd.create_instance(scoped, name, "busybox", profiles=["probe"],
                            config={"security.idmap.isolated": "true", **(config or {})},
                            devices=devices or {}, lock_path=idmap_lock())
    assert lxd.get_instance(scoped, name) is None


@pytest.mark.parametrize("key, value", CONFIG_KEYS, ids=[key for key, _ in CONFIG_KEYS])
def test_dangerous_config_key_is_refused_by_warren_and_by_lxd(key, value, member_project,
                                                              unique_name):
    with pytest.raises(ValidationError) as caught:
        parse_profile("bad", yaml.safe_dump({**BASE, "config": {key: value}}), "bad.yaml")
    reason = caught.value.errors[f"bad.yaml: config.{key}"][0]
    assert reason.startswith(f"{key} is not allowed: ")
    lxd_refuses(member_project, unique_name, config={key: value})


@pytest.mark.parametrize("label, device", DEVICES, ids=[label for label, _ in DEVICES])
def test_dangerous_device_is_refused_by_warren_and_by_lxd(label, device, member_project,
                                                          unique_name):
    with pytest.raises(ValidationError, match="may not declare devices"):
        parse_profile("bad", yaml.safe_dump({**BASE, "devices": {"extra": device}}), "bad.yaml")
    lxd_refuses(member_project, unique_name, devices={"extra": device})


def test_the_probe_profile_itself_is_accepted(member_project, unique_name):
    """Control: the refusals above come from the dangerous key, not the setup."""
    name = unique_name("sec")
    lxd.create_instance(member_project, name, "busybox", profiles=["probe"],
                        config={"security.idmap.isolated": "true"}, lock_path=idmap_lock())
    assert lxd.delete_instance(member_project, name)


def test_half_share_project_refuses_nesting(settings, unique_name):
    name = names.project_name(unique_name("half"))
    try:
        scoped = probe_project(settings, name, quotas.TIERS["half"], BASE)
        lxd_refuses(scoped, unique_name, config={"security.nesting": "true"})
    finally:
        lxd.delete_project(lxd.backend(settings), name)
