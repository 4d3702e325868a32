"""Virtual machines: capability detection on the stock LXD (which cannot run
VMs on this machine), and the whole VM path on a real LXD VM (QEMU, OVMF,
systemd-boot, a Debian kernel) through the test-only VM daemon described
in tests/vmhost/README.md. Member projects stay restricted throughout."""
import os
import re
import subprocess
import threading
import time

import pytest

from app import lxd
from app.errors import LxdError
from app.names import project_name
from app.store import get_db
from conftest import REPO, make_app, post_form
from support import (member_instance, sweep_bridge, dig_status, post_action, request_instance, wait_done, wait_gone,
                     wait_until)

# serial: VMs boot under software emulation on two cores; beside other tests they time out.
pytestmark = [pytest.mark.vm, pytest.mark.slow, pytest.mark.serial]

VMHOST = os.environ.get("WARREN_VMHOST_DIR", "/var/lib/warren/vmhost")
VM_SOCKET = f"{VMHOST}/lxd/unix.socket"
VM = lxd.Backend(socket_path=VM_SOCKET)
REPORT = re.compile(r"warren-vm: hostname=(\S+) cpus=(\d+) mem_kib=(\d+) keys=(\d+) addr=(\S*)")


# --- a host that cannot run VMs (the stock daemon here) ---------------------

class TestWithoutVmSupport:
    @pytest.fixture
    def app(self, tmp_path):
        return make_app(tmp_path, own_profiles=True)

    def test_vm_profiles_are_unavailable_with_lxds_reason_and_requests_create_nothing(
            self, app, settings, worker, members, admin):
        client = lxd.backend(settings).client()
        warnings = client.api.warnings.get(params={"recursion": 1}).json()["metadata"]
        reasons = [w["last_message"] for w in warnings if w["type"] == "Instance type not operational"]
        assert reasons, "expected LXD to say why it cannot run VMs here"
        alice = members()
        form = alice.get("/instances/new").get_data(as_text=True)
        assert "vm-small" in form and f"unavailable here: {reasons[0]}" in form
        assert f"unavailable here: {reasons[0]}" in admin.get("/admin/profiles").get_data(as_text=True)
        refused = request_instance(alice, name="vm1", profile="vm-small", image="vm-tiny", expect=422)
        assert f"vm-small is unavailable on this server: {reasons[0]}." in refused.get_data(as_text=True)
        with app.app_context():
            assert get_db()["instances"].count == 0 and get_db()["jobs"].count == 0
        assert not lxd.project_exists(client, project_name(alice.username))  # nothing made at all
        with app.app_context():
            audit = list(get_db()["audit"].rows_where("action = 'instance.request'"))
        assert [row["result"] for row in audit] == ["refused"]


# --- a real VM on the VM test daemon ----------------------------------------

@pytest.fixture
def app(tmp_path):
    """A scratch Warren on the VM test daemon (its bridge, pool and socket)."""
    if not os.path.exists(VM_SOCKET):
        pytest.fail("the VM test daemon is not running: bin/test starts it (tests/vmhost/vmhost.sh)")
    sweep_bridge(VM_SOCKET, "warrenvm0")  # a VM an interrupted test left would hold .2
    return make_app(tmp_path, own_profiles=True, lxd_socket=VM_SOCKET, lxd_network="warrenvm0",
                    network_address="10.89.0.1/24", lxd_storage_pool="vmpool")


def console_report(project, name, wanted, timeout=120):
    """Read the VM's serial console through Warren's own LXD adapter (closed
    the way LXD 5.0.2 survives) until the guest's report line satisfies
    `wanted`; returns its fields. A console that ends or stays silent (one
    opened on a VM that was just restarting) is opened again: the guest
    reports every 5 s."""
    seen, deadline = "", time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            console = lxd.open_console(VM, project, name, 100, 30)
        except LxdError:  # not running yet
            time.sleep(1)
            continue
        chunks = []
        reader = threading.Thread(target=_read_into, args=(console, chunks), daemon=True)
        reader.start()
        silent_until, heard = time.monotonic() + 15, 0
        try:
            while time.monotonic() < min(deadline, silent_until):
                if len(chunks) > heard:
                    silent_until, heard = time.monotonic() + 15, len(chunks)
                seen = b"".join(chunks).decode(errors="replace").replace("\r", "")
                for match in REPORT.finditer(seen):
                    fields = dict(zip(("hostname", "cpus", "mem_kib", "keys", "addr"), match.groups()))
                    if wanted(fields):
                        return fields
                if not reader.is_alive():
                    break  # the console ended: open it again
                time.sleep(0.5)
        finally:
            console.close()
    pytest.fail(f"no console report of {name} matched in {timeout}s; last output: {seen[-2000:]}")


def _read_into(console, chunks: list) -> None:
    while data := console.read():
        chunks.append(data)


def daemon_pid() -> int:
    return VM.client().host_info["environment"]["server_pid"]


@pytest.fixture(autouse=True)
def daemon_survives(request):
    """Every real-VM test leaves the VM test daemon running: the same process
    before and after (LXD 5.0.2 can panic when a console is closed badly)."""
    if "TestWithoutVmSupport" in request.node.nodeid or not os.path.exists(VM_SOCKET):
        yield
        return
    before = daemon_pid()
    yield
    assert daemon_pid() == before, "the VM test daemon restarted or died during the test"


def vm_of(client, name="vm1"):
    return member_instance(None, client, name, socket_path=VM_SOCKET)


def approve_all(app, admin):
    with app.app_context():
        waiting = [row["id"] for row in get_db()["approvals"].rows_where("state = 'pending'")]
    for approval_id in waiting:
        post_form(admin, "/admin/approvals", {"reason": "ok"},
                  url=f"/admin/approvals/{approval_id}/approve", expect=303)


def launch_vm(app, admin, member, name="vm1"):
    location = request_instance(member, name=name, profile="vm-small", image="vm-tiny").headers["Location"]
    assert wait_done(member, location)["status"] == "awaiting-approval"  # vm-small needs approval
    approve_all(app, admin)
    progress = wait_done(member, location, timeout=180)
    assert progress["status"] == "ready", progress
    return location, progress


def test_a_vm_from_the_form_runs_resolves_sees_its_limits_and_leaves_nothing(
        app, settings, dig, worker, members, admin):
    alice = members()
    location, progress = launch_vm(app, admin, alice)
    vm = vm_of(alice)
    assert vm.type == "virtual-machine" and vm.status == "Running"
    assert "lxd_agent" not in vm.expanded_devices  # no agent: keys come from the config drive
    assert vm.expanded_devices["cloud-init"]["source"] == "cloud-init:config"
    project = VM.client().projects.get(project_name(alice.username))
    assert project.config["restricted"] == "true"
    assert dig(progress["fqdn"]) == [progress["ipv4"]]
    report = console_report(project_name(alice.username), vm.name,
                            lambda fields: fields["addr"] == progress["ipv4"])
    assert report["hostname"] == "vm1" and report["keys"] == "1"
    assert report["cpus"] == "1"  # the profile's limits.cpu, seen by the guest kernel
    assert 700 * 1024 < int(report["mem_kib"]) <= 1024 * 1024  # limits.memory 1GiB, less the kernel's

    for action, state in (("stop", "Stopped"), ("start", "Running"), ("restart", "Running")):
        assert post_action(alice, location, action).status_code == 303
        deadline = time.monotonic() + 90
        while not any(event["step"] == action and event["message"].endswith("done.")
                      for event in alice.get(f"{location}/progress").get_json()["events"]):
            assert time.monotonic() < deadline, f"{action} not done"
            time.sleep(0.2)
        assert vm_of(alice).status == state

    assert post_action(alice, location, "delete").status_code == 303
    wait_gone(alice, location, timeout=90)
    assert vm_of(alice) is None
    assert dig_status(settings, progress["fqdn"]) == "NXDOMAIN"
    assert lxd.instance_states(VM.client(project=project_name(alice.username))) == {}


def test_a_vm_profile_cpu_change_waits_for_the_next_restart(app, worker, members, admin):
    alice = members()
    location, _ = launch_vm(app, admin, alice)
    text = (REPO / "profiles" / "vm-small.yaml").read_text().replace("cpu: 1", "cpu: 2")
    review = post_form(admin, "/admin/profiles/vm-small", {"text": text}, expect=200)
    assert "at their next start or restart" in review.get_data(as_text=True)  # the admin is told
    post_form(admin, "/admin/profiles/vm-small", {"text": text, "reviewed": text}, expect=303)
    vm = vm_of(alice)
    assert vm.status == "Running" and vm.config["limits.cpu"] == "1"  # untouched while running
    scoped = VM.client(project=project_name(alice.username))
    assert "limits.cpu" not in scoped.profiles.get("vm-small").config
    assert post_action(alice, location, "restart").status_code == 303
    report = console_report(project_name(alice.username), vm.name,
                            lambda fields: fields["cpus"] == "2")
    assert report["hostname"] == "vm1"
    assert vm_of(alice).config["limits.cpu"] == "2"
    events = [event["message"] for event in alice.get(f"{location}/progress").get_json()["events"]]
    assert "CPUs set to 2 from the profile." in events


def test_a_vms_serial_console_opens_through_warren_and_closes_in_lxd(app, worker, members, admin):
    from app import accounts, consoles
    alice = members()
    location, _ = launch_vm(app, admin, alice)
    vm = vm_of(alice)
    with app.test_request_context():
        user = accounts.find_user(alice.username)
        instance = consoles.console_instance(user, int(location.rsplit("/", 1)[1]))
        with consoles.opened(user, instance, 100, 30) as console:
            assert lxd.console_operations(VM, project_name(alice.username), vm.name)
            seen, deadline = b"", time.monotonic() + 60
            while not REPORT.search(seen.decode(errors="replace")):  # the guest reports every 5 s
                assert time.monotonic() < deadline, f"no report on the serial console: {seen[-500:]!r}"
                seen += console.read()
        assert REPORT.search(seen.decode(errors="replace")).group(1) == "vm1"
    wait_until(lambda: not lxd.console_operations(VM, project_name(alice.username), vm.name),
               timeout=15, message="the VM's console operation ended")


@pytest.fixture(scope="session")
def debian_vm_image():
    """The Debian VM image on the VM test daemon, built on first need and cached."""
    subprocess.run([str(REPO / "images" / "ensure.sh"), "/var/lib/warren/images", "debian-12-vm"],
                   check=True, env=dict(os.environ, LXD_DIR=f"{VMHOST}/lxd"))
    return "debian-12-vm"


def test_a_debian_vm_takes_the_members_key_and_hostname_without_the_agent(
        app, tmp_path, worker, members, admin, debian_vm_image):
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    alice = members()
    location = request_instance(alice, name="deb", profile="vm-small", image=debian_vm_image,
                                keys=key.with_suffix(".pub").read_text()).headers["Location"]
    approve_all(app, admin)
    progress = wait_done(alice, location, timeout=180)
    assert progress["status"] == "ready", progress
    command = ["ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "ConnectTimeout=5", "-o", "BatchMode=yes", f"root@{progress['ipv4']}",
               "hostname; nproc; sed -n 's/MemTotal: *//p' /proc/meminfo; findmnt -no SOURCE /; "
               "df --output=size -BG / | tail -n 1; test -e /dev/lxd/sock || echo no-agent-socket"]
    deadline = time.monotonic() + 240  # boots in about 30-60 s under software emulation
    while True:
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert result.returncode == 0, result.stderr
    hostname, cpus, memory, device, size, agent = result.stdout.split("\n")[:6]
    assert (hostname, cpus, agent) == ("deb", "1", "no-agent-socket")
    assert 700 * 1024 < int(memory.split()[0]) <= 1024 * 1024
    assert device == "/dev/sda2" and int(size.strip().rstrip("G")) >= 7  # grown to the 8GiB root disk
    assert post_action(alice, location, "delete").status_code == 303
    wait_gone(alice, location, timeout=90)
    assert vm_of(alice, "deb") is None
