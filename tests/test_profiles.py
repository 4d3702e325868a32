"""Profiles: parsing, validation with file/field/reason, reload on change."""
import os
from pathlib import Path

import pytest

from app.errors import ValidationError
from app.profiles import ProfileSet, load_folder, parse_profile

REPO = Path(__file__).resolve().parent.parent
GOOD = """
description: Test profile
instance_type: container
limits: {cpu: 1, memory: 256MiB, disk: 1GiB, processes: 100, cpu_allowance: 20%, cpu_priority: 3}
images: [busybox]
"""


def test_shipped_profiles_load():
    profiles = load_folder(REPO / "profiles")
    assert {"small", "burst", "nested"} <= set(profiles)
    assert profiles["burst"].lease_hours == 72
    assert profiles["nested"].nesting and not profiles["small"].nesting
    assert profiles["small"].lxd_config()["limits.memory"] == "512MiB"
    assert profiles["small"].lxd_devices("pool", "br")["root"] == \
        {"type": "disk", "path": "/", "pool": "pool", "size": "4GiB"}


def test_every_problem_names_file_field_and_reason():
    text = """
description: ""
instance_type: vm
limits: {cpu: 0, memory: lots, disk: 1GiB, processes: 100, cpu_priority: 11, cpu_allowance: 150%}
images: []
colour: blue
"""
    with pytest.raises(ValidationError) as caught:
        parse_profile("bad", text, "bad.yaml")
    errors = caught.value.errors
    for field in ("description", "instance_type", "limits.cpu", "limits.memory", "limits.cpu_priority",
                  "limits.cpu_allowance", "images", "colour"):
        assert f"bad.yaml: {field}" in errors, errors
    assert "'lots' is not a size" in errors["bad.yaml: limits.memory"][0]


@pytest.mark.parametrize("key, value, reason", [
    ("security.privileged", "true", "root is the host's root"),
    ("raw.lxc", "lxc.apparmor.profile=unconfined", "bypass every LXD restriction"),
    ("raw.idmap", "both 1000 1000", "bypass every LXD restriction"),
    ("security.idmap.base", "100000", "own isolated id map"),
    ("security.idmap.isolated", "false", "own isolated id map"),
    ("security.syscalls.intercept.mknod", "true", "syscall interception"),
    ("limits.cpu", "64", "from the profile's `limits` section"),
    ("user.warren.owner", "bob", "Warren's own bookkeeping"),
    ("environment.FOO", "bar", "not on Warren's allow-list"),
    ("security.nesting", "maybe", "must be one of true, false"),
])
def test_dangerous_or_unknown_config_is_refused_with_a_reason(key, value, reason):
    text = GOOD + f"config:\n  {key}: {value!r}\n"
    with pytest.raises(ValidationError) as caught:
        parse_profile("p", text, "p.yaml")
    messages = caught.value.errors[f"p.yaml: config.{key}"]
    assert reason in messages[0]


@pytest.mark.parametrize("device", [
    {"type": "disk", "source": "/etc", "path": "/mnt"},
    {"type": "unix-char", "path": "/dev/kvm"},
    {"type": "proxy", "listen": "tcp:0.0.0.0:80", "connect": "tcp:127.0.0.1:80"},
])
def test_devices_are_refused(device):
    import yaml
    text = GOOD + yaml.safe_dump({"devices": {"extra": device}})
    with pytest.raises(ValidationError, match="may not declare devices"):
        parse_profile("p", text, "p.yaml")


def test_invalid_yaml_names_the_file():
    with pytest.raises(ValidationError) as caught:
        parse_profile("p", "limits: [unclosed", "p.yaml")
    assert "is not valid YAML" in caught.value.errors["p.yaml"][0]


def test_profile_set_rereads_changed_files(tmp_path):
    (tmp_path / "one.yaml").write_text(GOOD)
    profiles = ProfileSet(str(tmp_path))
    assert profiles.get("one").limits.cpu == 1
    (tmp_path / "one.yaml").write_text(GOOD.replace("cpu: 1,", "cpu: 2,"))
    stat = (tmp_path / "one.yaml").stat()
    os.utime(tmp_path / "one.yaml", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10 ** 9))
    assert profiles.get("one").limits.cpu == 2
    (tmp_path / "two.yaml").write_text(GOOD)
    assert set(profiles.all()) == {"one", "two"}
    (tmp_path / "two.yaml").write_text("description: [")
    with pytest.raises(ValidationError, match="two.yaml"):
        profiles.all()


def test_lease_policy_fields():
    profile = parse_profile("bb", GOOD + "lease_hours: 10\nlease_renewals: 3\nlease_grace_hours: 5\n", "b.yaml")
    assert (profile.name, profile.lease_hours, profile.lease_renewals, profile.lease_grace_hours) == \
        ("bb", 10, 3, 5)
    with pytest.raises(ValidationError) as caught:
        parse_profile("bb", GOOD + "lease_renewals: -1\nlease_grace_hours: yes\n", "b.yaml")
    assert set(caught.value.errors) == {"b.yaml: lease_renewals", "b.yaml: lease_grace_hours"}


VM = """
description: A VM
instance_type: virtual-machine
limits: {cpu: 2, memory: 1GiB, disk: 8GiB}
images: [vm-tiny]
"""


def test_vm_profiles_leave_container_only_settings_out():
    profile = parse_profile("vm", VM, "vm.yaml")
    assert profile.is_vm and profile.limits.processes == 0  # counts nothing against the quota
    # limits.cpu goes on the instance (applied at start), never through the profile
    assert profile.lxd_config() == {"limits.memory": "1GiB"}
    bad = VM.replace("disk: 8GiB}", "disk: 8GiB, processes: 100, cpu_allowance: 50%}") \
        + "config: {security.nesting: true, limits.memory.swap: false, boot.autostart: true}\n"
    with pytest.raises(ValidationError) as caught:
        parse_profile("vm", bad, "vm.yaml")
    errors = caught.value.errors
    assert errors["vm.yaml: limits.processes"] == [
        "applies to containers only; leave it out of a virtual-machine profile"]
    assert "vm.yaml: limits.cpu_allowance" in errors
    assert errors["vm.yaml: config.security.nesting"] == ["security.nesting applies to containers only"]
    assert "vm.yaml: config.limits.memory.swap" in errors
    assert "vm.yaml: config.boot.autostart" not in errors
