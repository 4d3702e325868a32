"""Port forwards: a public port of the co-op's address, TCP or UDP, that
LXD's network forward sends to a member's instance.

The rules (fields, ranges, quota, taken ports, who may touch what) are
checked on rows alone; the traffic is checked end to end: a client in the
simulated Internet (tests/netsim.py) reaches servers in a Debian container
through the forwards (real LXD, named, the worker), and after the
instance is deleted nothing answers and LXD holds no port for it."""
import re
import socket
import sys
import time

import pytest

from app import forwards, lxd
from app.config import PortRange, Settings
from app.errors import Conflict, NotFound, QuotaExceeded, ValidationError
from app.store import get_db
from conftest import post_form
from support import KEY, instance_row, launch, member_instance, post_action, wait_gone, wait_until

PUBLIC = "198.51.100.1"

# In the container: a TCP server on 7000 and a UDP server on 7001, each
# answering with the container's hostname.
SERVERS = """
import socket, socketserver, threading
name = socket.gethostname().encode()
class Tcp(socketserver.BaseRequestHandler):
    def handle(self): self.request.sendall(name + b"\\n")
class Udp(socketserver.BaseRequestHandler):
    def handle(self): self.request[1].sendto(name + b"\\n", self.client_address)
socketserver.ThreadingTCPServer.allow_reuse_address = True
threading.Thread(target=socketserver.ThreadingTCPServer(("0.0.0.0", 7000), Tcp).serve_forever).start()
socketserver.UDPServer(("0.0.0.0", 7001), Udp).serve_forever()
"""

# From the Internet: what a TCP or UDP server at ADDRESS:PORT answers ("" if nothing).
CLIENT = """
import socket, sys
address, port, protocol = sys.argv[1], int(sys.argv[2]), sys.argv[3]
try:
    if protocol == "tcp":
        with socket.create_connection((address, port), timeout=1) as connection:
            print(connection.recv(100).decode().strip())
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1)
            sock.sendto(b"hello", (address, port))
            print(sock.recv(100).decode().strip())
except OSError:
    print("")
"""


def answer(internet, port: int, protocol: str) -> str:
    return internet.run(sys.executable, "-c", CLIENT, internet.host_ip, str(port),
                        protocol).stdout.strip()


@pytest.fixture
def public(app):
    """Forwards on (a public address that is not loopback), rows only."""
    app.config["WARREN"] = Settings(app.config["WARREN"], forward_address=PUBLIC,
                                    forward_ports=PortRange(20000, 20009))
    return app


@pytest.fixture
def forwarding(app, internet, settings):
    """Forwards on the simulated Internet's host address; LXD's forward on
    it is removed afterwards."""
    app.config["WARREN"] = Settings(app.config["WARREN"], forward_address=internet.host_ip)
    yield internet
    lxd.delete_forward(lxd.backend(settings).client(), app.config["WARREN"].lxd_network,
                       internet.host_ip)


def test_fields_ranges_and_taken_ports_are_refused_with_every_reason(public, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    with public.test_request_context():
        db = get_db()
        web = instance_row(db, alice["id"], "web", "ready", "10.88.0.5")
        box = instance_row(db, bob["id"], "box", "ready", "10.88.0.6")
        with pytest.raises(ValidationError) as caught:
            forwards.add(alice, web, "sctp", "0", "80")
        assert set(caught.value.errors) == {"protocol", "instance_port", "public_port"}
        assert "20000-20009" in caught.value.errors["public_port"][0]
        first = forwards.add(alice, web, "tcp", "22")
        assert (first["public_port"], first["instance_port"]) == (20000, 22)  # the first free one
        assert forwards.add(alice, web, "udp", "22")["public_port"] == 20000  # per protocol
        with pytest.raises(ValidationError) as caught:
            forwards.add(bob, box, "tcp", "80", "20000")
        assert "20000/tcp is already forwarded" in caught.value.errors["public_port"][0]
        assert forwards.add(bob, box, "tcp", "80")["public_port"] == 20001
        # Nobody reaches another member's instance or forward.
        with pytest.raises(NotFound):
            forwards.add(bob, web, "tcp", "80")
        with pytest.raises(NotFound):
            forwards.remove(bob, web, first["id"])
        with pytest.raises(Conflict):
            forwards.remove(bob, box, first["id"])
        assert [row["public_port"] for row in forwards.of_instance(db, web)] == [20000, 20000]


def test_the_tier_caps_forwards_and_only_ready_instances_get_them(public, make_user):
    alice = make_user("alice")
    with public.test_request_context():
        db = get_db()
        db["users"].update(alice["id"], {"tier": "half"})  # two forwards
        alice = db["users"].get(alice["id"])
        web = instance_row(db, alice["id"], "web", "ready", "10.88.0.5")
        building = instance_row(db, alice["id"], "new", "creating", "10.88.0.7")
        forwards.add(alice, web, "tcp", "22")
        forwards.add(alice, web, "udp", "51820")
        with pytest.raises(QuotaExceeded, match="port forwards: you hold 2 of your 2"):
            forwards.add(alice, web, "tcp", "80")
        with pytest.raises(Conflict, match="once it is ready"):
            forwards.add(alice, building, "tcp", "80")
        assert db["forwards"].count == 2
        assert db["jobs"].count_where("kind = 'forwards' AND state = 'pending'") == 1  # merged


def test_forwards_are_off_without_a_public_address(app, make_user):
    alice = make_user("alice")
    with app.test_request_context():
        web = instance_row(get_db(), alice["id"], "web", "ready", "10.88.0.5")
        assert forwards.public_address(app.config["WARREN"]) is None  # ssh_address is 127.0.0.1
        with pytest.raises(Conflict, match="no public address"):
            forwards.add(alice, web, "tcp", "22")


def reachable(address: str, port: int) -> bool:
    try:
        socket.create_connection((address, port), timeout=1).close()
        return True
    except OSError:
        return False


def forward_ports_in_lxd(app, address: str) -> list[tuple]:
    settings = app.config["WARREN"]
    found = lxd.forward_ports(lxd.backend(settings).client(), settings.lxd_network, address)
    return sorted((port["protocol"], port["listen_port"], port["target_address"], port["target_port"])
                  for port in (found[0] if found else []))


def listed_ports(client, location: str) -> list[int]:
    return [int(port) for port in re.findall(r"<code>[0-9.]+:([0-9]+)</code>",
                                             client.get(location).get_data(as_text=True))]


@pytest.mark.slow
@pytest.mark.lxd
@pytest.mark.named
def test_tcp_and_udp_forwards_answer_from_the_internet_and_go_with_the_instance(
        app, forwarding, worker, members, debian_image, settings):
    internet = forwarding
    alice, bob = members(), members()
    location, progress = launch(alice, name="game", image=debian_image, keys=KEY)
    container = member_instance(settings, alice, "game")
    code, _, err = lxd.execute(container, ["sh", "-c", f"setsid python3 -c '{SERVERS}' "
                                           "</dev/null >/dev/null 2>&1 &"])
    assert code == 0, err
    wait_until(lambda: reachable(progress["ipv4"], 7000), message="the servers in the container")

    started = time.monotonic()
    post_form(alice, location, {"protocol": "tcp", "instance_port": "7000", "public_port": ""},
              url=location + "/forwards", expect=303)
    (tcp_port,) = listed_ports(alice, location)
    wait_until(lambda: answer(internet, tcp_port, "tcp") == "game", timeout=30, step=0.05,
               message="the TCP forward")
    print(f"forward added -> TCP port answers: {time.monotonic() - started:.2f} s")
    post_form(alice, location, {"protocol": "udp", "instance_port": "7001",
                                "public_port": str(tcp_port + 5)},
              url=location + "/forwards", expect=303)
    wait_until(lambda: answer(internet, tcp_port + 5, "udp") == "game", timeout=30, step=0.1,
               message="the UDP forward")
    assert forward_ports_in_lxd(app, internet.host_ip) == [
        ("tcp", str(tcp_port), progress["ipv4"], "7000"),
        ("udp", str(tcp_port + 5), progress["ipv4"], "7001")]

    # Another member: the taken port is refused, with the reason, and nothing changes.
    bob_location, _ = launch(bob, name="box")
    refused = post_form(bob, bob_location, {"protocol": "tcp", "instance_port": "22",
                                            "public_port": str(tcp_port)},
                        url=bob_location + "/forwards", expect=422)
    assert f"Port {tcp_port}/tcp is already forwarded" in refused.get_data(as_text=True)
    post_form(bob, bob_location, {"protocol": "tcp", "instance_port": "22", "public_port": ""},
              url=location + "/forwards", expect=404)  # alice's instance, with bob's session
    assert answer(internet, tcp_port, "tcp") == "game"

    # Drift: a port removed behind Warren's back is put back by the pass.
    client = lxd.backend(settings).client()
    lxd.set_forward_ports(client, settings.lxd_network, internet.host_ip, [], None, True,
                          forwards.DESCRIPTION)
    assert answer(internet, tcp_port, "tcp") == ""
    with app.app_context():
        repaired = forwards.sync(get_db(), app.config["WARREN"])
    assert len(repaired) == 2
    assert answer(internet, tcp_port, "tcp") == "game"

    # Deleting the instance takes its forwards with it, in LXD too.
    post_action(alice, location, "delete")
    wait_gone(alice, location)
    assert forward_ports_in_lxd(app, internet.host_ip) == []
    assert answer(internet, tcp_port, "tcp") == ""
    assert answer(internet, tcp_port + 5, "udp") == ""


def test_a_clusters_forwards_table_is_one_nft_transaction_nft_accepts():
    """The table Warren's host writes on a cluster (app/hostforwards.py),
    checked by nft itself (-c: parsed and validated, nothing changed); the
    forwards themselves are tested on the cluster (tests/test_cluster.py)."""
    from app import firewall, hostforwards
    ports = [lxd.port_entry("tcp", 20001, "10.79.0.5", 22, "web.alice"),
             lxd.port_entry("udp", 20002, "10.79.0.6", 7001)]
    script = hostforwards.ruleset(PUBLIC, "10.79.0.1/24", "wcnet0", ports)
    checked = firewall.nft(script, "-c")
    assert checked.returncode == 0, checked.stderr
    assert script.count("dnat to 10.79.0.5:22") == 2  # arriving, and from this host itself
    assert 'ct status dnat ip daddr 10.79.0.0/24 oifname != "wcnet0" masquerade' in script
    assert hostforwards.key(ports[1]) == "udp 20002 10.79.0.6 7001"
