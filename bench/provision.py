"""Request-to-ready latency of Warren against raw LXD + one DNS update.

Warren: the deployed path, gunicorn (4 workers) and the worker process on a
scratch database, driven over HTTP: from the POST of the request form (the
form page itself is loaded before the clock starts, as a member has it open)
until <name>.<member>.<zone> resolves on the zone's server.
Baseline, in the same run and member project, with the same image and
profile: pylxd create + start, then one TSIG-signed dnspython update, then
the same poll. Runs are interleaved (baseline, Warren, baseline, ...) so
drift affects both alike. Prints both medians and their ratio.

    bin/bench provision [-n 10] [--image debian-12 --image busybox] [--profile small]
    bin/bench provision --vm [-n 5] [--image vm-tiny]

(bin/bench runs it on the test bridge, beside a real Warren without touching
its addresses.) Each image is measured separately, in its own member project.

With --vm it measures virtual machines on the VM test daemon
(tests/vmhost): the baseline is `lxc init --vm` + the cloud-init config
drive + `lxc start` (what `lxc launch --vm` does, plus the drive Warren
adds for keys) and the same DNS update; profile vm-small.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import dns.message
import dns.query

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from app import dns as warren_dns, lxd  # noqa: E402
from app.config import load_settings  # noqa: E402
from live import LiveWarren  # noqa: E402

KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf4LHa0NAKnUXGQjJ3sTRb5KtcQ2yEMgoB0RX8n7H0d "
       "bench@warren")


def wait_resolves(zone, fqdn: str, timeout: float = 60.0) -> None:
    query = dns.message.make_query(fqdn, "A")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dns.query.udp(query, zone.server, port=zone.port, timeout=2).answer:
            return
        time.sleep(0.002)
    raise SystemExit(f"{fqdn} did not resolve within {timeout}s")


VMHOST = os.environ.get("WARREN_VMHOST_DIR", "/var/lib/warren/vmhost")


def use_vm_daemon() -> None:
    """Point this process (and the Warren it starts) at the VM test daemon."""
    os.environ.update(WARREN_LXD_SOCKET=f"{VMHOST}/lxd/unix.socket", WARREN_LXD_NETWORK="warrenvm0",
                      WARREN_NETWORK_ADDRESS="10.89.0.1/24", WARREN_LXD_STORAGE_POOL="vmpool",
                      LXD_DIR=f"{VMHOST}/lxd")


def raw_launch_vm(settings, zone, project: str, name: str, profile: str, image: str, address: str):
    """The VM baseline with the lxc client: init, config drive, start, DNS."""
    import subprocess

    def lxc(*args):
        subprocess.run(["lxc", *args, "--project", project], check=True, capture_output=True)
    lxc("init", image, name, "--vm", "-p", profile, "-c", "limits.cpu=1",
        "-c", "security.secureboot=false", "-c", "user.user-data=#cloud-config\n{}",
        "-n", settings.lxd_network)
    lxc("config", "device", "set", name, "eth0", f"ipv4.address={address}")
    lxc("config", "device", "add", name, "cloud-init", "disk", "source=cloud-init:config")
    lxc("start", name)
    warren_dns.publish_address(zone, f"{name}.raw.{zone.name}", address, "bench-raw")


def raw_launch(settings, zone, project: str, name: str, profile: str, image: str, address: str):
    """The baseline: what Warren does, by hand, with no bookkeeping."""
    client = lxd.backend(settings).client(project=project)
    instance = client.instances.create({
        "name": name, "source": {"type": "image", "alias": image}, "profiles": [profile],
        "config": {"security.idmap.isolated": "true"},
        "devices": {"eth0": {"type": "nic", "network": settings.lxd_network, "name": "eth0",
                             "ipv4.address": address}}}, wait=True)
    instance.start(wait=True)
    warren_dns.publish_address(zone, f"{name}.raw.{zone.name}", address, "bench-raw")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10, help="containers per side (default 10)")
    parser.add_argument("--image", action="append",
                        help="image alias; repeat for several (default: debian-12 and busybox)")
    parser.add_argument("--profile", help="default: small, or vm-small with --vm")
    parser.add_argument("--vm", action="store_true", help="virtual machines on the VM test daemon")
    args = parser.parse_args()
    if args.vm:
        use_vm_daemon()
    for image in args.image or (["vm-tiny"] if args.vm else ["debian-12", "busybox"]):
        measure(args.n, image, args.profile or ("vm-small" if args.vm else "small"), args.vm)


def measure(n: int, image: str, profile: str, vm: bool = False) -> None:
    """One image: N baseline launches and N Warren requests, interleaved."""
    settings = load_settings()
    launch = raw_launch_vm if vm else raw_launch
    zone = warren_dns.zone_from_settings(settings)
    member = f"bench{os.getpid()}{image.replace('-', '')[:6]}"
    project = f"warren-{member}"
    live = LiveWarren(tempfile.mkdtemp(prefix="warren-bench-"))
    # Room for the warm-up, N requests and N baseline instances in one project.
    live.add_member(member, "instances=64", "cpu=64", "memory=64GiB", "disk=512GiB",
                    "processes=64000", role="admin")  # admins' requests skip the approval queue
    live.start()
    browser = live.session(member)

    def request(name: str, token: str | None = None) -> str:
        response = browser.submit("/instances/new", token, name=name, profile=profile,
                                  image=image, keys=KEY)
        if response.status_code != 303:
            raise SystemExit(f"request failed: {response.status_code} {response.text[:500]}")
        return response.headers["Location"]

    warren_times, raw_times, locations, raw_names = [], [], [], []
    # The pool's top addresses stay clear of what Warren hands out first.
    from app.addresses import static_pool
    raw_addresses = static_pool(settings.network_address)[-n:]
    try:
        # Warm-up: the first request creates the member's project and profiles.
        locations.append(request("warmup"))
        wait_resolves(zone, f"warmup.{member}.{zone.name}")
        for run in range(n):
            name = f"raw{run}"
            started = time.perf_counter()
            launch(settings, zone, project, f"{name}-{member}", profile, image, raw_addresses[run])
            wait_resolves(zone, f"{name}-{member}.raw.{zone.name}")
            raw_times.append(time.perf_counter() - started)
            raw_names.append(f"{name}-{member}")

            token = browser.token("/instances/new")  # the member has the form open
            started = time.perf_counter()
            locations.append(request(f"w{run}", token))
            wait_resolves(zone, f"w{run}.{member}.{zone.name}")
            warren_times.append(time.perf_counter() - started)
            if vm:  # software-emulated VMs load the host: keep at most one per side running
                lxd.delete_instance(lxd.backend(settings).client(project=project), raw_names.pop())
                warren_dns.remove_name(zone, f"{name}-{member}.raw.{zone.name}", "bench-raw")
                browser.submit(locations[-1] + "/delete")
                browser.wait_gone(locations.pop())
    finally:
        for location in locations:
            browser.submit(location + "/delete")
        for location in locations:
            browser.wait_gone(location)
        client = lxd.backend(settings).client(project=project)
        for name in raw_names:
            lxd.delete_instance(client, name)
            warren_dns.remove_name(zone, f"{name}.raw.{zone.name}", "bench-raw")
        live.stop()
        lxd.delete_project(lxd.backend(settings), project)

    raw, ours = statistics.median(raw_times), statistics.median(warren_times)
    print(f"image={image} profile={profile} n={n}")
    baseline = "raw lxc init --vm + drive + start + DNS" if vm else "raw pylxd create+start + 1 DNS update"
    print(f"{baseline}: median {raw * 1000:.0f} ms "
          f"(min {min(raw_times) * 1000:.0f}, max {max(raw_times) * 1000:.0f})")
    print(f"Warren request -> name resolves:       median {ours * 1000:.0f} ms "
          f"(min {min(warren_times) * 1000:.0f}, max {max(warren_times) * 1000:.0f})")
    print(f"ratio Warren/raw: {ours / raw:.3f}  (target <= 1.15)")


if __name__ == "__main__":
    main()
