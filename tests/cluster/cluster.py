"""A three-member LXD cluster on this one machine, for tests (see README.md).

Each member (m1, m2, m3) is a stock `lxd` daemon with its own LXD_DIR
(/var/lib/warren/cluster/mN) in its own network namespace (wcl-mN, address
10.77.0.1N), joined by a veth pair to the host bridge wcl0 (10.77.0.1/24, no
NAT, no default route in the namespaces: nothing leaves 10.77.0.0/24). The
daemons listen on <netns address>:8443 and on their unix sockets only.

Used from pytest (`Cluster().up()` ... `.down()`) or by hand:

    python tests/cluster/cluster.py up|down|status

Only the standard library, pylxd and requests.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pylxd
import requests
from pylxd.client import LXDSSLAdapter, get_session_for_url

REPO = Path(__file__).resolve().parents[2]
BASE = Path("/var/lib/warren/cluster")
# Fixed, not WARREN_LOG_DIR: the cluster is one per host, and under xdist
# each worker has its own WARREN_LOG_DIR.
LOG_DIR = Path("/var/log/warren")
IMAGE_CACHE = Path(os.environ.get("WARREN_IMAGE_CACHE", "/var/lib/warren/images"))

BRIDGE = "wcl0"
HOST_ADDRESS = "10.77.0.1/24"
PREFIX_LEN = 24
PORT = 8443
MEMBERS = {"m1": "10.77.0.11", "m2": "10.77.0.12", "m3": "10.77.0.13"}

# Mounts a member's private mount namespace must not keep copies of: other
# daemons' pools and sockets, and other namespaces' handles in /run/netns
# (a copied nsfs mount would keep a deleted namespace, and its veth, alive).
FOREIGN_MOUNTS = r"^(/run/netns|/var/lib/lxd|/var/lib/warren|/var/snap)(/|$)"

# The daemon's start: a fresh sysfs (so /sys/class/net shows the namespace's
# interfaces), the host's cgroup tree moved back under it, then lxd. This is
# what LXD's own test suite does; `ip netns exec` remounts /sys and the
# daemon loses the cgroup tree.
START_SCRIPT = r"""set -e
moved="$LXD_DIR/.cgroup-move"
mkdir -p "$moved"
mount --move /sys/fs/cgroup "$moved"
umount -l /sys
mount -t sysfs sysfs /sys
mount --move "$moved" /sys/fs/cgroup
rmdir "$moved"
for m in $(awk '{print $5}' /proc/self/mountinfo | grep -E '@FOREIGN_MOUNTS@' | sort -r); do
    umount -l "$m" 2>/dev/null || true
done
exec lxd --group root
""".replace("@FOREIGN_MOUNTS@", FOREIGN_MOUNTS)


class ClusterError(RuntimeError):
    pass


@dataclass(frozen=True)
class Member:
    name: str
    address: str
    base: Path

    @property
    def netns(self) -> str:
        return f"wcl-{self.name}"

    @property
    def veth(self) -> str:
        """The host end of the member's veth pair (the other end is eth0 inside)."""
        return f"wcl{self.name}"

    @property
    def lxd_dir(self) -> Path:
        return self.base / self.name

    @property
    def socket(self) -> Path:
        return self.lxd_dir / "unix.socket"

    @property
    def log(self) -> Path:
        return LOG_DIR / f"cluster-{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.base / f"{self.name}.pid"

    @property
    def url(self) -> str:
        return f"https://{self.address}:{PORT}"

    @property
    def https_address(self) -> str:
        return f"{self.address}:{PORT}"

    def env(self) -> dict:
        """The environment of the daemon and of lxc/lxd commands for it: no
        proxy variables, LXD_DIR set."""
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env["LXD_DIR"] = str(self.lxd_dir)
        return env


def run(args, *, check=True, input=None, env=None, timeout=120) -> subprocess.CompletedProcess:
    result = subprocess.run(args, input=input, env=env, capture_output=True, text=True,
                            timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise ClusterError(f"{' '.join(map(str, args))} failed ({result.returncode}): "
                           f"{result.stderr.strip() or result.stdout.strip()}")
    return result


def unique_name(prefix: str = "wcl") -> str:
    """An instance name no other daemon on this host uses. Every daemon here
    creates lxc.payload.<name> cgroups in the same hierarchy, so instance
    names must be unique across all daemons, not only within the cluster."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Cluster:
    """A three-member LXD cluster in network namespaces.

    Paths and addresses: `members` (name -> Member), `urls`, `sockets`,
    `client_cert`, `client_key`, `cluster_cert`. `timings` holds the seconds
    each step of the last `up()` took.
    """

    def __init__(self, base: Path | str = BASE, offline_threshold: int | None = None):
        """offline_threshold: cluster.offline_threshold in seconds (LXD's
        default is 20, its minimum 11); None leaves it as it is (LXD's
        default on a new cluster). Members are seen offline after that long
        without a heartbeat.

        One cluster per host: the bridge, namespaces and addresses are fixed,
        so `base` only moves the files."""
        self.base = Path(base)
        self.members = {name: Member(name, address, self.base) for name, address in MEMBERS.items()}
        self.offline_threshold = offline_threshold
        self.timings: dict[str, float] = {}
        self._procs: dict[str, subprocess.Popen] = {}

    # --- paths ------------------------------------------------------------------

    @property
    def client_cert(self) -> Path:
        return self.base / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.base / "client.key"

    @property
    def cluster_cert(self) -> Path:
        """The certificate every member serves on HTTPS (LXD_DIR/cluster.crt,
        the same file on all members)."""
        return self.members["m1"].lxd_dir / "cluster.crt"

    @property
    def urls(self) -> dict[str, str]:
        return {name: m.url for name, m in self.members.items()}

    @property
    def sockets(self) -> dict[str, Path]:
        return {name: m.socket for name, m in self.members.items()}

    # --- lifecycle ----------------------------------------------------------------

    def up(self) -> Cluster:
        """Reuse a running, healthy cluster; otherwise clean leftovers and
        build it. Returns self."""
        with self._lock():
            if self.healthy():
                self.timings = {"reused": 0.0}
                self._apply_offline_threshold()
                return self
            self._down()
            try:
                self._build()
            except BaseException:
                self._dump_logs()
                self._down()
                raise
        return self

    def down(self) -> None:
        """Kill everything the cluster runs and remove everything it made:
        daemons (SIGKILL), their instances' processes and cgroups, dnsmasq and
        whatever else lives in the namespaces, the namespaces, veths, the
        bridge, loop devices and mounts under the base, and the LXD_DIRs."""
        with self._lock():
            self._down()

    def healthy(self) -> bool:
        """All daemons running and answering, all three members online, the
        client certificate trusted over HTTPS."""
        try:
            if not all(self._daemon_alive(name) for name in self.members):
                return False
            if not Path("/sys/class/net", BRIDGE).exists():
                return False
            if not all(Path("/run/netns", m.netns).exists() for m in self.members.values()):
                return False
            if self.member_status() != {name: "Online" for name in self.members}:
                return False
            self.client("m1", timeout=10)
            return True
        except Exception:  # noqa: BLE001 - any failure means "not healthy"
            return False

    def _build(self) -> None:
        start = time.monotonic()
        step = start

        def lap(name):
            nonlocal step
            now = time.monotonic()
            self.timings[name] = round(now - step, 2)
            step = now

        self.timings = {}
        self.base.mkdir(parents=True, exist_ok=True)
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self._make_client_cert()
        lap("client certificate")
        self._make_network()
        lap("namespaces and bridge")
        for name in self.members:
            self._spawn(name)
        for name in self.members:
            self._wait_ready(name)
        lap("daemons started")
        self._bootstrap()
        lap("bootstrap m1")
        for name in ("m2", "m3"):
            self._join(name)
            lap(f"join {name}")
        self._trust_client()
        self.wait_online(timeout=60)
        self.client("m1")
        lap("trust and checks")
        self.timings["total"] = round(time.monotonic() - start, 2)

    # --- network ------------------------------------------------------------------

    def _make_network(self) -> None:
        run(["ip", "link", "add", BRIDGE, "type", "bridge"])
        run(["ip", "addr", "add", HOST_ADDRESS, "dev", BRIDGE])
        run(["ip", "link", "set", BRIDGE, "up"])
        for member in self.members.values():
            run(["ip", "netns", "add", member.netns])
            run(["ip", "link", "add", member.veth, "type", "veth", "peer", "name", member.veth + "p"])
            run(["ip", "link", "set", member.veth + "p", "netns", member.netns])
            run(["ip", "link", "set", member.veth, "master", BRIDGE, "up"])
            inside = ["ip", "netns", "exec", member.netns]
            run(inside + ["ip", "link", "set", "lo", "up"])
            run(inside + ["ip", "link", "set", member.veth + "p", "name", "eth0"])
            run(inside + ["ip", "addr", "add", f"{member.address}/{PREFIX_LEN}", "dev", "eth0"])
            run(inside + ["ip", "link", "set", "eth0", "up"])
            # No default route: the only network a member reaches is 10.77.0.0/24.

    # --- daemons ------------------------------------------------------------------

    def _spawn(self, name: str) -> int:
        member = self.members[name]
        member.lxd_dir.mkdir(parents=True, exist_ok=True)
        member.lxd_dir.chmod(0o711)
        env = member.env()
        with open(member.log, "ab") as log:
            proc = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{member.netns}", "--",
                 "unshare", "-m", "--propagation", "private", "--",
                 "sh", "-c", START_SCRIPT],
                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True, cwd="/")
        # nsenter (net only), unshare (no --fork) and sh all exec: this pid is
        # lxd's. Its log is its stderr: with --logfile as well, every line
        # came twice, and a Go panic only reaches stderr.
        self._procs[name] = proc
        member.pid_file.write_text(f"{proc.pid}\n")
        return proc.pid

    def _wait_ready(self, name: str, timeout: int = 60) -> None:
        member = self.members[name]
        result = run(["lxd", "waitready", f"--timeout={timeout}"], env=member.env(), check=False,
                     timeout=timeout + 10)
        if result.returncode != 0 or not self._daemon_alive(name):
            raise ClusterError(f"{name}: daemon not ready ({result.stderr.strip()}); "
                               f"see {member.log}")

    def daemon_pid(self, name: str) -> int | None:
        """The pid of member `name`'s lxd, if it runs."""
        try:
            pid = int(self.members[name].pid_file.read_text())
        except (OSError, ValueError):
            return None
        return pid if self._is_our_lxd(pid, self.members[name].lxd_dir) else None

    def _daemon_alive(self, name: str) -> bool:
        return self.daemon_pid(name) is not None

    @staticmethod
    def _is_our_lxd(pid: int, lxd_dir: Path) -> bool:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return (state != "Z" and cmdline[:1] == [b"lxd"]
                and f"LXD_DIR={lxd_dir}".encode() in environ)

    def lxc(self, member: str, *args: str, input: str | None = None, check: bool = True,
            netns: bool = False) -> str:
        """Run `lxc ARGS` against member's daemon (its unix socket); with
        netns, inside the member's namespace. Returns stdout."""
        m = self.members[member]
        prefix = ["nsenter", f"--net=/run/netns/{m.netns}", "--"] if netns else []
        return run(prefix + ["lxc", *args], input=input, env=m.env(), check=check).stdout

    def _lxd_init(self, name: str, preseed: dict) -> None:
        m = self.members[name]
        # JSON is YAML: no YAML library needed.
        run(["nsenter", f"--net=/run/netns/{m.netns}", "--", "lxd", "init", "--preseed"],
            input=json.dumps(preseed), env=m.env())

    def _bootstrap(self) -> None:
        m1 = self.members["m1"]
        config = {"core.https_address": m1.https_address, "images.auto_update_interval": "0"}
        self._lxd_init("m1", {"config": config,
                              "cluster": {"server_name": "m1", "enabled": True}})
        # Not in the preseed: LXD 5.0.2 applies the server config before it
        # enables clustering, and setting cluster.offline_threshold on a
        # daemon that is not clustered yet hits a nil heartbeat task (the
        # request ends in EOF).
        self._apply_offline_threshold()

    def _apply_offline_threshold(self) -> None:
        if self.offline_threshold is not None:
            self.local_client("m1").api.patch(json={"config": {
                "cluster.offline_threshold": str(self.offline_threshold)}})

    def _join(self, name: str) -> None:
        out = self.lxc("m1", "cluster", "add", name)
        token = [line for line in out.splitlines() if line.strip()][-1].strip()
        m = self.members[name]
        self._lxd_init(name, {"cluster": {"enabled": True, "server_name": name,
                                          "server_address": m.https_address,
                                          "cluster_token": token}})

    def kill_member(self, name: str, wait_offline: bool = False, timeout: float = 60) -> None:
        """SIGKILL member `name`'s daemon (a crash: its instances, dnsmasq and
        namespace stay). With wait_offline, wait until another member lists
        it as offline (cluster.offline_threshold, 20 s by default)."""
        pid = self.daemon_pid(name)
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            self._reap(name, pid)
        if wait_offline:
            self.wait_status(name, "Offline", timeout=timeout)

    def start_member(self, name: str, timeout: float = 90) -> None:
        """Start member `name`'s daemon again (after kill_member) and wait
        until the cluster lists it online."""
        if not self._daemon_alive(name):
            self._spawn(name)
            self._wait_ready(name, timeout=int(timeout))
        self.wait_status(name, "Online", timeout=timeout)

    def _reap(self, name: str, pid: int, timeout: float = 10) -> None:
        proc = self._procs.pop(name, None)
        if proc is not None and proc.pid == pid:
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
            return
        deadline = time.monotonic() + timeout
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                break
            if state == "Z":  # not our child: its parent reaps it
                break
            time.sleep(0.05)

    # --- cluster state ----------------------------------------------------------------

    def local_client(self, member: str = "m1", project: str | None = None,
                     timeout: float | None = 30) -> pylxd.Client:
        """A pylxd client on member's unix socket (no certificate involved)."""
        socket = str(self.members[member].socket)
        endpoint = "http+unix://" + requests.utils.quote(socket, safe="")
        session = get_session_for_url(endpoint)
        session.trust_env = False
        return pylxd.Client(endpoint=socket, project=project, timeout=timeout, session=session)

    def member_status(self) -> dict[str, str]:
        """name -> status ("Online", "Offline", "Evacuated", ...) as the first
        answering member sees it."""
        last = None
        for name in self.members:
            if not self._daemon_alive(name):
                continue
            try:
                client = self.local_client(name, timeout=10)
                data = client.api.cluster.members.get(params={"recursion": 1}).json()["metadata"]
                return {m["server_name"]: m["status"] for m in data}
            except Exception as error:  # noqa: BLE001 - try the next member
                last = error
        raise ClusterError(f"no member answers: {last}" if last else "no member daemon runs")

    def wait_status(self, name: str, status: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            try:
                seen = self.member_status().get(name)
            except ClusterError as error:
                seen = str(error)
            if seen == status:
                return
            time.sleep(0.5)
        raise ClusterError(f"{name} is not {status} after {timeout} s (last seen: {seen})")

    def wait_online(self, timeout: float = 60) -> None:
        for name in self.members:
            self.wait_status(name, "Online", timeout=timeout)

    def memory(self) -> dict[str, int]:
        """Resident memory (bytes) of each member's lxd process."""
        usage = {}
        for name in self.members:
            pid = self.daemon_pid(name)
            if pid is None:
                continue
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    usage[name] = int(line.split()[1]) * 1024
        return usage

    def status(self) -> dict:
        info = {"base": str(self.base), "bridge": Path("/sys/class/net", BRIDGE).exists(),
                "daemons": {name: self.daemon_pid(name) for name in self.members},
                "urls": self.urls, "memory_mb": {k: round(v / 2**20) for k, v in self.memory().items()}}
        try:
            info["members"] = self.member_status()
        except ClusterError as error:
            info["members"] = str(error)
        info["healthy"] = self.healthy()
        return info

    # --- certificates and HTTPS clients --------------------------------------------

    def _make_client_cert(self) -> None:
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1",
             "-nodes", "-sha384", "-days", "3650", "-subj", "/CN=warren-cluster-harness",
             "-keyout", str(self.client_key), "-out", str(self.client_cert)])
        self.client_key.chmod(0o600)

    def _trust_client(self) -> None:
        der = ssl.PEM_cert_to_DER_cert(self.client_cert.read_text())
        self.local_client("m1").api.certificates.post(json={
            "type": "client", "name": "warren-cluster-harness",
            "certificate": base64.b64encode(der).decode()})

    def session(self) -> requests.Session:
        """A requests session for the cluster's HTTPS API: trust_env=False
        (REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE and proxy variables would otherwise
        override `verify` and the route), the harness's client certificate,
        and the server pinned to the cluster certificate. The pin is pylxd's
        own LXDSSLAdapter (SHA-256 fingerprint of that certificate), since
        LXD's certificate does not name the netns addresses."""
        session = requests.Session()
        session.trust_env = False
        session.cert = (str(self.client_cert), str(self.client_key))
        session.verify = str(self.cluster_cert)
        session.mount("https://", LXDSSLAdapter())
        return session

    def client(self, member: str = "m1", project: str | None = None,
               timeout: float | None = None) -> pylxd.Client:
        """A pylxd client over HTTPS to member's address (see session()).
        pylxd 2.4.2 takes the session as is (`session=`) and ignores its own
        cert/verify then; cert is passed too so that pylxd's websocket
        helpers (exec, events) present the client certificate."""
        return pylxd.Client(endpoint=self.members[member].url,
                            cert=(str(self.client_cert), str(self.client_key)),
                            verify=str(self.cluster_cert), project=project, timeout=timeout,
                            session=self.session())

    # --- images, pools, networks -------------------------------------------------------

    def import_image(self, name: str = "busybox") -> str:
        """Build (if needed) and import image `name` into the cluster with
        images/ensure.sh through m1 (images are cluster-wide; a member that
        needs one fetches it from a member holding it). Returns the alias."""
        run([str(REPO / "images" / "ensure.sh"), str(IMAGE_CACHE), name],
            env=self.members["m1"].env(), timeout=1800)
        return name

    def ensure_pool_and_network(self, pool: str = "wpool", network: str = "wclbr0",
                                address: str = "10.78.0.1/24") -> str:
        """Create storage pool `pool` and bridge `network` the LXD cluster
        way: once per member with --target (member-specific keys only), then
        once globally. The pool is a ~2 GiB btrfs loop file per member if
        btrfs works, else dir; the bridge has ipv4.nat=false and no IPv6 (each
        member gets its own bridge with the same address, in its own
        namespace). Returns the pool's driver.

        For the harness's own test only: in the real tests, Warren's setup
        creates its pool and network itself."""
        client = self.local_client("m1")
        driver = None
        try:
            driver = client.api.storage_pools[pool].get().json()["metadata"]["driver"]
        except pylxd.exceptions.NotFound:
            for candidate, per_member in (("btrfs", {"size": "2GiB"}), ("dir", {})):
                try:
                    for name in self.members:
                        self._wait(client, client.api.storage_pools.post(
                            json={"name": pool, "driver": candidate, "config": per_member},
                            target=name))
                    self._wait(client, client.api.storage_pools.post(
                        json={"name": pool, "driver": candidate, "config": {}}))
                    driver = candidate
                    break
                except pylxd.exceptions.LXDAPIException:
                    try:  # drop the pending or errored pool and try the next driver
                        client.api.storage_pools[pool].delete()
                    except pylxd.exceptions.LXDAPIException:
                        pass
            if driver is None:
                raise ClusterError(f"could not create storage pool {pool}")
        try:
            client.api.networks[network].get()
        except pylxd.exceptions.NotFound:
            for name in self.members:
                client.api.networks.post(json={"name": network, "type": "bridge", "config": {}},
                                         target=name)
            client.api.networks.post(json={"name": network, "type": "bridge", "config": {
                "ipv4.address": address, "ipv4.nat": "false", "ipv6.address": "none"}})
        return driver

    @staticmethod
    def _wait(client: pylxd.Client, response: requests.Response) -> None:
        body = response.json()
        if body.get("type") == "async":
            client.operations.wait_for_operation(body["operation"])

    # --- teardown --------------------------------------------------------------------

    def _down(self) -> None:
        names = self._instance_names()
        for _ in range(50):
            pids = self._cluster_pids(names)
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for name, proc in list(self._procs.items()):
                if proc.pid in pids:
                    self._reap(name, proc.pid, timeout=5)
            time.sleep(0.1)
        else:
            raise ClusterError(f"processes survive SIGKILL: {sorted(self._cluster_pids(names))}")
        self._procs.clear()
        self._remove_cgroups(names)
        for member in self.members.values():
            if Path("/run/netns", member.netns).exists():
                run(["ip", "netns", "del", member.netns], check=False)
            if Path("/sys/class/net", member.veth).exists():
                run(["ip", "link", "del", member.veth], check=False)
        if Path("/sys/class/net", BRIDGE).exists():
            run(["ip", "link", "del", BRIDGE])
        for mountpoint in self._mounts_under_base():
            run(["umount", "-l", mountpoint], check=False)
        self._detach_loops()
        # LXC's lock files for our instances (/run/lxc/lock/<LXD_DIR>/containers/...).
        shutil.rmtree(self._lxc_locks, ignore_errors=True)
        if self.base.exists():
            for entry in self.base.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        leftovers = self.leftovers()
        if leftovers:
            raise ClusterError(f"teardown left: {leftovers}")

    @property
    def _lxc_locks(self) -> Path:
        return Path("/run/lxc/lock") / self.base.relative_to("/")

    def _instance_names(self) -> set[str]:
        """Names the members' instances have on the host (`project_name`
        outside the default project): the lxc.payload.<name> cgroups."""
        names = set()
        for member in self.members.values():
            for kind in ("containers", "virtual-machines"):
                folder = member.lxd_dir / kind
                if folder.is_dir():
                    names.update(entry.name for entry in folder.iterdir())
        return names

    def _cluster_pids(self, instance_names: set[str]) -> set[int]:
        """Every process the cluster runs: anything with one of our LXD_DIRs
        in its environment (daemons, lxc monitors, forkfile...), anything in
        the members' namespaces (dnsmasq), and our instances' processes (their
        cgroups)."""
        pids = set()
        marker = f"LXD_DIR={self.base}/".encode()
        payloads = {f"lxc.payload.{n}" for n in instance_names} | {f"lxc.monitor.{n}" for n in instance_names}
        netns_ids = set()
        for member in self.members.values():
            try:
                netns_ids.add(os.stat(f"/run/netns/{member.netns}").st_ino)
            except OSError:
                pass
        me = os.getpid()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit() or int(entry.name) == me:
                continue
            pid = int(entry.name)
            try:
                if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
                if marker in Path(f"/proc/{pid}/environ").read_bytes():
                    pids.add(pid)
                    continue
                if netns_ids and os.stat(f"/proc/{pid}/ns/net").st_ino in netns_ids:
                    pids.add(pid)
                    continue
                if payloads:
                    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
                        path = line.split(":", 2)[2]
                        if path.strip("/").split("/", 1)[0] in payloads:
                            pids.add(pid)
                            break
            except (OSError, IndexError):
                continue
        return pids

    @staticmethod
    def _remove_cgroups(instance_names: set[str]) -> None:
        """The lxc.payload/lxc.monitor cgroups of our instances, which a
        killed daemon did not remove."""
        root = Path("/sys/fs/cgroup")
        if not instance_names or not root.is_dir():
            return
        tops = [root] + [p for p in root.iterdir() if p.is_dir() and not p.is_symlink()]
        for top in tops:
            for name in instance_names:
                for kind in ("lxc.payload.", "lxc.monitor."):
                    group = top / (kind + name)
                    if group.is_dir():
                        for dirpath, _, _ in sorted(os.walk(group), key=lambda w: -len(w[0])):
                            try:
                                os.rmdir(dirpath)
                            except OSError:
                                pass

    def _mounts_under_base(self) -> list[str]:
        prefix = str(self.base) + "/"
        mounts = []
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == str(self.base) or point.startswith(prefix):
                mounts.append(point)
        return sorted(mounts, key=len, reverse=True)

    def _loops_under_base(self) -> list[str]:
        result = run(["losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE"], check=False)
        loops = []
        for line in result.stdout.splitlines():
            parts = line.split(None, 1)
            if len(parts) == 2 and parts[1].strip().startswith(str(self.base) + "/"):
                loops.append(parts[0])
        return loops

    def _detach_loops(self) -> None:
        deadline = time.monotonic() + 10
        while self._loops_under_base() and time.monotonic() < deadline:
            for device in self._loops_under_base():
                run(["losetup", "-d", device], check=False)
            time.sleep(0.2)

    def leftovers(self) -> dict:
        """What the cluster left on the host; empty after a clean down()."""
        found = {}
        namespaces = [m.netns for m in self.members.values() if Path("/run/netns", m.netns).exists()]
        links = [n for n in [BRIDGE] + [m.veth for m in self.members.values()]
                 if Path("/sys/class/net", n).exists()]
        pids = sorted(self._cluster_pids(set()))
        locks = [str(self._lxc_locks)] if self._lxc_locks.exists() else []
        for key, value in (("namespaces", namespaces), ("links", links), ("processes", pids),
                           ("mounts", self._mounts_under_base()), ("loops", self._loops_under_base()),
                           ("lxc locks", locks)):
            if value:
                found[key] = value
        return found

    # --- helpers ---------------------------------------------------------------------

    @contextmanager
    def _lock(self):
        """One up()/down() at a time on this host (flock on the base folder)."""
        self.base.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.base, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _dump_logs(self) -> None:
        for member in self.members.values():
            try:
                tail = member.log.read_text(errors="replace").splitlines()[-15:]
            except OSError:
                continue
            print(f"--- {member.log} (tail)", *tail, sep="\n", file=sys.stderr)

    unique_name = staticmethod(unique_name)


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else ""
    cluster = Cluster()
    if command == "up":
        start = time.monotonic()
        cluster.up()
        print(json.dumps({"seconds": round(time.monotonic() - start, 2), "steps": cluster.timings,
                          "memory_mb": {k: round(v / 2**20) for k, v in cluster.memory().items()},
                          "urls": cluster.urls, "client_cert": str(cluster.client_cert),
                          "client_key": str(cluster.client_key),
                          "cluster_cert": str(cluster.cluster_cert)}, indent=2))
        return 0
    if command == "down":
        start = time.monotonic()
        cluster.down()
        print(f"cluster: down in {time.monotonic() - start:.2f} s")
        return 0
    if command == "status":
        info = cluster.status()
        print(json.dumps(info, indent=2))
        return 0 if info["healthy"] else 1
    print(f"usage: {argv[0]} up|down|status", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
