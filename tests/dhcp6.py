"""A DHCPv6 client for the busybox test image, which has none (Debian's
busybox-static is built without udhcpc6, and the image's udhcpc hook
flushes every address of eth0, the link-local one too).

take_ipv6_lease(instance) does what a distribution's client (systemd-networkd
on the Debian image, which asks by itself when the router advertisement
carries the "managed" flag) does: bring back eth0's link-local address,
ask LXD's DHCPv6 server (dnsmasq, run with --dhcp-rapid-commit) for an
address with a Solicit carrying Rapid Commit, and put the address from the
Reply on eth0. The exchange runs from the host, by a Python program in the
container's network namespace: to the bridge that is the container's eth0
speaking.
"""
import subprocess
import sys

from support import run_in, wait_until

# Prints the address in the server's Reply, or "status N: message" when the
# server has none for this client.
CLIENT = r"""
import os, socket, struct, sys
mac = bytes.fromhex(sys.argv[1].replace(":", ""))

def option(code, data):
    return struct.pack("!HH", code, len(data)) + data

def options(data):
    while len(data) >= 4:
        code, length = struct.unpack("!HH", data[:4])
        yield code, data[4:4 + length]
        data = data[4 + length:]

transaction = os.urandom(3)
solicit = (b"\x01" + transaction + option(1, struct.pack("!HH", 3, 1) + mac)   # DUID-LL
           + option(3, mac[-4:] + struct.pack("!II", 0, 0))                  # IA_NA
           + option(8, b"\0\0") + option(14, b""))                           # elapsed, rapid commit
sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b"eth0")
sock.bind(("::", 546))
sock.settimeout(1)
for _ in range(10):
    try:
        sock.sendto(solicit, ("ff02::1:2", 547, 0, socket.if_nametoindex("eth0")))
        reply = sock.recv(4096)
    except (socket.timeout, OSError):  # OSError: the link-local address is still tentative
        continue
    if reply[0] == 7 and reply[1:4] == transaction:
        break
else:
    sys.exit("no DHCPv6 reply")
for code, data in options(reply[4:]):
    if code == 3:
        for inner, value in options(data[12:]):
            if inner == 5:
                print(socket.inet_ntop(socket.AF_INET6, value[:16]))
                sys.exit(0)
            if inner == 13:
                print(f"status {struct.unpack('!H', value[:2])[0]}: {value[2:].decode()}")
                sys.exit(0)
sys.exit(f"no address in the reply: {reply.hex()}")
"""


def in_netns(instance, program: str, *args: str) -> subprocess.CompletedProcess:
    """Run a Python program from the host in the container's network namespace."""
    return subprocess.run(["nsenter", f"--net=/proc/{instance.state().pid}/ns/net", "--",
                           sys.executable, "-c", program, *args],
                          capture_output=True, text=True, timeout=60)


def link_local_up(instance) -> None:
    """Give eth0 back the link-local address busybox's udhcpc hook flushed
    (its IPv4 address stays), which also sends a router solicitation."""
    run_in(instance, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6 && "
                                 "echo 0 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6")
    wait_until(lambda: "fe80::" in run_in(instance, "ip", "-6", "addr", "show", "dev", "eth0")
               and "tentative" not in run_in(instance, "ip", "-6", "addr", "show", "dev", "eth0"),
               10, f"a link-local address on {instance.name}")


def ask_dhcpv6(instance) -> str:
    """The address LXD's DHCPv6 server gives the instance (or its status)."""
    mac = run_in(instance, "cat", "/sys/class/net/eth0/address")
    result = in_netns(instance, CLIENT, mac)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def take_ipv6_lease(instance) -> str:
    """Ask by DHCPv6 and put the address on eth0; the address."""
    link_local_up(instance)
    address = ask_dhcpv6(instance)
    assert not address.startswith("status"), address
    run_in(instance, "ip", "-6", "addr", "add", f"{address}/64", "dev", "eth0")
    wait_until(lambda: "tentative" not in run_in(instance, "ip", "-6", "addr", "show", "dev", "eth0"),
               10, f"{address} usable on {instance.name}")
    return address
