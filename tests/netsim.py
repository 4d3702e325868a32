"""A simulated Internet for tests: a network namespace joined to the host by
a veth pair, with documentation-range addresses on both ends and no route
to anywhere else. Clients and "remote" servers run inside it with run() and
popen(); everything stays on this machine.

    with Internet() as internet:          # or the `internet` fixture
        server = internet.popen(sys.executable, "-c", SERVER, internet.client_ip)
        ...                                # the host reaches internet.client_ip

When the host already uses the requested prefix (a machine whose own uplink
sits in 192.0.2.0/24, or another Internet of a concurrent test run), the
default addresses move to a free /29 of the documentation ranges:
host_ip and client_ip always say which addresses were taken.

The veth ends carry IPv6 too, from the IPv6 documentation prefix
(2001:db8::/32, RFC 3849): a free /64 of 2001:db8:ff00::/40, ::1 on the
host's end and ::2 inside (host_ip6, client_ip6, network6).
"""
import atexit
import fcntl
import ipaddress
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


DEFAULT_HOST = "192.0.2.1/24"
DEFAULT_CLIENT = "192.0.2.2/24"
# RFC 5737: addresses that no real network uses, so none of them leads off
# this machine once they are connected to the namespace.
DOCUMENTATION = ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
# RFC 3849; the Internets take their /64s from one corner of it.
DOCUMENTATION6 = "2001:db8::/32"
INTERNET6 = ipaddress.IPv6Network("2001:db8:ff00::/40")
LOCK = "/run/lock/warren-netsim.lock"  # host-wide: choosing a prefix and taking it is one step
NETNS_DIR = Path("/run/netns")
_serial = itertools.count()


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _prefixes(family: str, network) -> list:
    """Every prefix of one family ("-4" or "-6") the host has an address in
    or a route to (the default route aside: it covers everything)."""
    used = []
    for interface in json.loads(_ip("-j", family, "addr", "show").stdout or "[]"):
        for address in interface.get("addr_info", []):
            used.append(network(f"{address['local']}/{address['prefixlen']}", strict=False))
    for route in json.loads(_ip("-j", family, "route", "show", "table", "all").stdout or "[]"):
        destination = route.get("dst", "default")
        if destination != "default" and route.get("type", "unicast") == "unicast":
            used.append(network(destination, strict=False))
    return used


def prefixes_in_use() -> list[ipaddress.IPv4Network]:
    """Every IPv4 prefix the host has an address in or a route to."""
    return _prefixes("-4", ipaddress.IPv4Network)


def ipv6_prefixes_in_use() -> list[ipaddress.IPv6Network]:
    """Every IPv6 prefix the host has an address in or a route to (the
    default route and link-local aside)."""
    return [network for network in _prefixes("-6", ipaddress.IPv6Network)
            if not network.is_link_local and not network.is_loopback]


def free_ipv6_prefix(within: ipaddress.IPv6Network, start: int = 0) -> ipaddress.IPv6Network:
    """A /64 of `within` that no address or route of this host overlaps."""
    used = ipv6_prefixes_in_use()
    count = 2 ** (64 - within.prefixlen)
    for step in range(min(count, 4096)):
        candidate = ipaddress.IPv6Network(
            (int(within.network_address) + ((start + step) % count << 64), 64))
        if not any(candidate.overlaps(other) for other in used):
            return candidate
    raise RuntimeError(f"no free /64 left in {within}")


def _candidates(host_address: str, client_address: str):
    """The requested pair first; for the default pair, then a /29 of each
    documentation range in turn."""
    yield host_address, client_address
    if (host_address, client_address) != (DEFAULT_HOST, DEFAULT_CLIENT):
        return
    for network in DOCUMENTATION:
        for block in ipaddress.IPv4Network(network).subnets(new_prefix=29):
            yield f"{block[1]}/29", f"{block[2]}/29"


class Internet:
    """A network namespace joined to the host by a veth pair: the host end holds the co-op's
    public address, the namespace end a client's address. Everything stays on this machine."""

    def __init__(self, host_address: str = DEFAULT_HOST, client_address: str = DEFAULT_CLIENT,
                 name: str | None = None):
        serial = next(_serial)
        self.name = name or (f"wn{os.getpid()}" if serial == 0 else f"wn{os.getpid()}n{serial}")
        if len(self.name) > 15:  # it also names the host's end of the veth
            raise ValueError(f"{self.name!r} is longer than an interface name may be (15)")
        host, client = ipaddress.IPv4Interface(host_address), ipaddress.IPv4Interface(client_address)
        if host.network != client.network or host.ip == client.ip:
            raise ValueError(f"{host_address} and {client_address} must be two addresses of one prefix")
        self._requested = (host_address, client_address)
        self.host_address, self.client_address = host_address, client_address
        self.network6: ipaddress.IPv6Network | None = None
        self._children: list[subprocess.Popen] = []
        self._started = False

    @property
    def host_ip(self) -> str:
        """The host end's address: what the Internet sees as the co-op's public address."""
        return str(ipaddress.IPv4Interface(self.host_address).ip)

    @property
    def client_ip(self) -> str:
        """The namespace end's address: a client somewhere on the Internet."""
        return str(ipaddress.IPv4Interface(self.client_address).ip)

    @property
    def network(self) -> ipaddress.IPv4Network:
        """The prefix the veth pair shares."""
        return ipaddress.IPv4Interface(self.host_address).network

    @property
    def host_ip6(self) -> str:
        """The host end's IPv6 address: the co-op's public IPv6 address."""
        return str(self.network6[1])

    @property
    def client_ip6(self) -> str:
        """The namespace end's IPv6 address: a client somewhere on the Internet."""
        return str(self.network6[2])

    def start(self) -> "Internet":
        """Make the namespace and the veth pair (once; a second call does nothing)."""
        if self._started:
            return self
        if (NETNS_DIR / self.name).exists():  # left by a crashed run of a process with our pid
            self._teardown()
        with open(LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.host_address, self.client_address = self._free_pair()
            self.network6 = free_ipv6_prefix(INTERNET6, start=os.getpid())
            try:
                self._create()
            except BaseException:
                self._teardown()
                raise
        self._started = True
        atexit.register(self.stop)
        return self

    def _free_pair(self) -> tuple[str, str]:
        used = prefixes_in_use()
        for host, client in _candidates(*self._requested):
            network = ipaddress.IPv4Interface(host).network
            if not any(network.overlaps(other) for other in used):
                return host, client
        raise RuntimeError(f"{self._requested[0]} overlaps a prefix this host already uses "
                           "(and no free documentation prefix is left): pass other addresses")

    def _create(self) -> None:
        _ip("netns", "add", self.name)
        # The peer is born inside the namespace, so no second host-side name exists even briefly.
        _ip("link", "add", self.name, "type", "veth", "peer", "name", "eth0", "netns", self.name)
        _ip("addr", "add", self.host_address, "dev", self.name)
        # nodad: both ends are ours, and the addresses are usable at once.
        _ip("-6", "addr", "add", f"{self.host_ip6}/64", "dev", self.name, "nodad")
        _ip("link", "set", self.name, "up")
        for command in (["ip", "link", "set", "lo", "up"],
                        ["ip", "addr", "add", self.client_address, "dev", "eth0"],
                        ["ip", "-6", "addr", "add", f"{self.client_ip6}/64", "dev", "eth0", "nodad"],
                        ["ip", "link", "set", "eth0", "up"]):
            self.run(*command, check=True)
        # Only the connected prefix is routed inside: no default route, so
        # nothing in here can send anywhere but to the host's end.

    def stop(self) -> None:
        """Kill every process inside, then delete the namespace and the veth pair."""
        self._teardown()
        self._started = False
        atexit.unregister(self.stop)

    def _teardown(self) -> None:
        if (NETNS_DIR / self.name).exists():
            for _ in range(50):
                pids = [int(pid) for pid in _ip("netns", "pids", self.name, check=False).stdout.split()]
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self._reap()
                time.sleep(0.1)
            _ip("netns", "del", self.name, check=False)
        self._reap()
        _ip("link", "del", self.name, check=False)  # usually gone with the namespace's end

    def _reap(self) -> None:
        for child in self._children:
            if child.poll() is None:
                try:
                    child.wait(timeout=0.1)
                except subprocess.TimeoutExpired:
                    pass
        self._children = [child for child in self._children if child.returncode is None]

    def _command(self, command) -> list[str]:
        if not self._started and not (NETNS_DIR / self.name).exists():
            raise RuntimeError(f"Internet {self.name} is not started")
        # nsenter, not `ip netns exec`: that remounts /sys, which daemons
        # inside may need as the host has it.
        return ["nsenter", f"--net={NETNS_DIR / self.name}", "--", *map(str, command)]

    def run(self, *command, **kwargs) -> subprocess.CompletedProcess:
        """Run a command in the namespace; text output captured unless told otherwise."""
        kwargs.setdefault("text", True)
        if not {"stdout", "stderr"} & set(kwargs):
            kwargs.setdefault("capture_output", True)
        return subprocess.run(self._command(command), **kwargs)

    def popen(self, *command, **kwargs) -> subprocess.Popen:
        """Start a background process in the namespace (stdout and stderr piped,
        text); stop() kills it."""
        kwargs.setdefault("text", True)
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        child = subprocess.Popen(self._command(command), **kwargs)
        self._children.append(child)
        return child

    def __enter__(self) -> "Internet":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# Prints "listening", then the peer address of every connection, one a line
# (an IPv6 peer as the plain address).
SERVER = """
import socket, sys
host = sys.argv[1]
server = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((host, int(sys.argv[2])))
server.listen()
print("listening", flush=True)
while True:
    connection, peer = server.accept()
    print(peer[0], flush=True)
    connection.close()
"""


def serve(internet: Internet, port: int, address: str | None = None) -> "queue.Queue[str]":
    """Start a server in the Internet on its client address (or another of
    its addresses, e.g. client_ip6); the peer addresses it reports arrive on
    the returned queue, one per connection."""
    server = internet.popen(sys.executable, "-c", SERVER, address or internet.client_ip, str(port))
    assert server.stdout.readline().strip() == "listening", server.stderr.read()
    reported = queue.Queue()
    threading.Thread(target=lambda: [reported.put(line.strip()) for line in server.stdout],
                     daemon=True).start()
    return reported


def next_peer(reported: "queue.Queue[str]", timeout: float = 10) -> str | None:
    """The address the next connection came from, or None if none comes in time."""
    try:
        return reported.get(timeout=timeout)
    except queue.Empty:
        return None
