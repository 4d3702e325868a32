"""The zone as the world sees it, against the real named: answers on the
public address (port 53) from the simulated Internet, DNSSEC signatures a
validating resolver (unbound) accepts with the DS record Warren shows, and a
secondary name server that follows updates by NOTIFY and TSIG-signed
transfers. named is reconfigured for the test and put back afterwards."""
import os
import re
import subprocess
import time

import pytest

from app import dns as warren_dns, records
from app.dns.dnssec import ds_records
from app.projects import dns_owner
from app.store import get_db
from support import wait_until

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNBOUND = """server:
    interface: {address}
    port: {port}
    access-control: 0.0.0.0/0 allow
    do-ip6: no
    username: ""
    chroot: ""
    directory: "{folder}"
    pidfile: "{folder}/unbound-{port}.pid"
    use-syslog: no
    verbosity: 1
    module-config: "validator iterator"
    trust-anchor: "{anchor}"
    # Never ask anyone but the zone's own server.
    local-zone: "." refuse
    local-zone: "{zone}." transparent
stub-zone:
    name: "{zone}."
    stub-addr: {server}@53
"""
SECONDARY = """options {{
    directory "{folder}";
    pid-file "{folder}/named.pid";
    session-keyfile "{folder}/session.key";
    managed-keys-directory "{folder}";
    listen-on port {port} {{ {address}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
}};
controls {{ }};
{key}
server {primary} {{ keys {{ warren-transfer; }}; }};
zone "{zone}" {{
    type secondary;
    primaries {{ {primary} port 53 key warren-transfer; }};
    file "{folder}/db.secondary";
}};
"""


def named_sh(**settings):
    """dns/named.sh start with some settings more (none: as bin/test has it)."""
    env = {**os.environ, **{f"WARREN_{key.upper()}": value for key, value in settings.items()}}
    subprocess.run([f"{REPO}/dns/named.sh", "start"], check=True, capture_output=True, env=env)


def dig_in(internet, server, port, name, rdtype="A", *flags):
    return internet.run("dig", "+time=2", "+tries=1", "-p", str(port), f"@{server}", name, rdtype,
                        *flags).stdout


def answers(text: str, rdtype: str) -> list[str]:
    rows = [line.split(None, 4) for line in text.splitlines() if not line.startswith(";")]
    return sorted(row[4] for row in rows if len(row) == 5 and row[2:4] == ["IN", rdtype])


def flags(text: str) -> set[str]:
    match = re.search(r";; flags: ([a-z ]+);", text)
    return set(match[1].split()) if match else set()


@pytest.fixture
def public_named(internet, settings):
    """named also on the simulated Internet's host address, port 53, with a
    secondary inside that Internet; put back as it was afterwards."""
    secondary = f"{internet.client_ip}:5399"
    named_sh(dns_public_address=internet.host_ip, dns_secondaries=secondary)
    yield internet
    named_sh()


@pytest.mark.slow
def test_the_zone_answers_publicly_validates_with_its_ds_and_a_secondary_follows(
        app, settings, zone, public_named, make_user, unique_name, tmp_path):
    internet = public_named
    user = make_user(unique_name("z"))
    name = user["username"]
    web = f"web.{name}.{zone.name}"
    # The secondary, started before the update it has to follow.
    key = open(f"{settings.dns_dir}/transfer.key").read()
    folder = tmp_path / "secondary"
    folder.mkdir()
    (folder / "named.conf").write_text(SECONDARY.format(
        folder=folder, port=5399, address=internet.client_ip, key=key, primary=internet.host_ip,
        zone=zone.name))
    started = time.monotonic()
    internet.popen("named", "-4", "-g", "-c", str(folder / "named.conf"),
                   stdout=open(folder / "named.log", "w"), stderr=subprocess.STDOUT)
    wait_until(lambda: "SOA" in dig_in(internet, internet.client_ip, 5399, zone.name, "SOA"),
               timeout=20, message="the secondary to load the zone")
    try:
        with app.test_request_context():
            warren_dns.publish_address(zone, web, "10.87.0.44", dns_owner(name))
            records.add(user, "blog", "TXT", "signed and public")
            records.sync_member(get_db(), settings, user)
        # 6: the public address answers from the Internet.
        public = dig_in(internet, internet.host_ip, 53, web)
        assert answers(public, "A") == ["10.87.0.44"] and "aa" in flags(public), public
        # The secondary serves the name after the update (NOTIFY, then a signed transfer).
        wait_until(lambda: answers(dig_in(internet, internet.client_ip, 5399, web), "A") ==
                   ["10.87.0.44"], timeout=20, message="the secondary to follow the update")
        print(f"secondary followed in {time.monotonic() - started:.1f} s")
        # 5: a validating resolver with the DS Warren shows the admin.
        with app.app_context():
            (ds,) = ds_records(zone)
        anchor = ds.replace(" IN DS ", " DS ")
        good = UNBOUND.format(address=internet.client_ip, port=5355, folder=tmp_path, anchor=anchor,
                              zone=zone.name, server=internet.host_ip)
        tampered_digest = ds[:-4] + ("0000" if not ds.endswith("0000") else "1111")
        bad = UNBOUND.format(address=internet.client_ip, port=5356, folder=tmp_path,
                             anchor=tampered_digest.replace(" IN DS ", " DS "), zone=zone.name,
                             server=internet.host_ip)
        for port, text in ((5355, good), (5356, bad)):
            (tmp_path / f"unbound-{port}.conf").write_text(text)
            internet.popen("unbound", "-d", "-c", str(tmp_path / f"unbound-{port}.conf"),
                           stdout=open(tmp_path / f"unbound-{port}.log", "w"),
                           stderr=subprocess.STDOUT)
        validated = wait_until(lambda: (lambda out: out if "status:" in out else None)(
            dig_in(internet, internet.client_ip, 5355, web, "A", "+dnssec")),
            timeout=20, message="unbound to answer")
        assert answers(validated, "A") == ["10.87.0.44"] and "ad" in flags(validated), validated
        member_txt = dig_in(internet, internet.client_ip, 5355, f"blog.{name}.{zone.name}", "TXT")
        assert "ad" in flags(member_txt) and '"signed and public"' in member_txt
        bogus = dig_in(internet, internet.client_ip, 5356, web, "A", "+dnssec")
        assert "status: SERVFAIL" in bogus and answers(bogus, "A") == [], bogus
    finally:
        with app.app_context():
            warren_dns.remove_name(zone, web, dns_owner(name))
            records.withdraw_member(get_db(), settings, user)
