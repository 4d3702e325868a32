"""Against the real named that bin/test starts: TSIG-signed updates, refusals."""
import dns.name
import dns.query
import dns.rcode
import dns.tsigkeyring
import dns.update
import pytest

from app import dns as warren_dns
from app.errors import Conflict, DnsError


def fqdn(zone, *labels):
    return ".".join(labels + (zone.name,))


@pytest.fixture
def names(zone):
    """Names published in a test are removed afterwards."""
    published = []
    yield published
    for name, owner in published:
        try:
            warren_dns.remove_name(zone, name, owner)
        except Conflict:
            pass


def raw_update(zone, name, keyring=None, keyname=None, rdtype="A", value="192.0.2.1"):
    update = dns.update.UpdateMessage(zone.name, keyring=keyring, keyname=keyname,
                                      keyalgorithm=zone.algorithm)
    update.replace(dns.name.from_text(name), 60, rdtype, value)  # absolute, not zone-relative
    return dns.query.tcp(update, zone.server, port=zone.port, timeout=5)


def test_zone_answers_with_soa_and_ns(dig, zone):
    assert dig(zone.name, "NS") == [f"ns1.{zone.name}."]
    (soa,) = dig(zone.name, "SOA")
    assert soa.startswith(f"ns1.{zone.name}. hostmaster.{zone.name}. ")
    assert dig(f"ns1.{zone.name}") == ["127.0.0.1"]


def test_signed_update_resolves_with_dig(dig, zone, names, unique_name):
    name = fqdn(zone, unique_name("web"), "alice")
    names.append((name, "alice"))
    warren_dns.publish_address(zone, name, "10.87.0.10", "alice")
    assert dig(name) == ["10.87.0.10"]
    marker = name.replace(".alice.", ".alice._owner.", 1)
    assert dig(marker, "TXT") == ['"warren owner=alice"'] and dig(name, "TXT") == []
    warren_dns.publish_address(zone, name, "10.87.0.11", "alice")  # ours: replaced
    assert dig(name) == ["10.87.0.11"]
    assert warren_dns.remove_name(zone, name, "alice") is True
    assert dig(name) == [] and dig(name, "TXT") == []
    assert warren_dns.remove_name(zone, name, "alice") is False


def test_unsigned_update_is_refused(dig, zone, unique_name):
    name = fqdn(zone, unique_name("web"), "mallory")
    response = raw_update(zone, name)
    assert response.rcode() == dns.rcode.REFUSED
    assert dig(name) == []


def test_wrong_secret_is_rejected(dig, zone, unique_name):
    name = fqdn(zone, unique_name("web"), "mallory")
    forged = warren_dns.Zone(zone.name, zone.server, zone.port, zone.key_name, zone.algorithm,
                             "c2VjcmV0LXRoYXQtaXMtbm90LXRoZS1rZXk=", zone.ttl)
    with pytest.raises(DnsError, match="rejected Warren's TSIG key.*PeerBadSignature"):
        warren_dns.publish_address(forged, name, "192.0.2.66", "mallory")
    assert dig(name) == []


def test_unknown_key_is_rejected(dig, zone, unique_name):
    name = fqdn(zone, unique_name("web"), "mallory")
    stranger = warren_dns.Zone(zone.name, zone.server, zone.port, "stranger", zone.algorithm,
                               zone.secret, zone.ttl)
    with pytest.raises(DnsError, match="PeerBadKey"):
        warren_dns.publish_address(stranger, name, "192.0.2.66", "mallory")
    assert dig(name) == []


@pytest.mark.parametrize("labels, rdtype, value", [
    ((), "NS", "ns2.example.net."),          # the apex's delegation
    (("ns1",), "A", "192.0.2.53"),            # the name server's own address
    (("web", "alice"), "MX", "10 mail.example.net."),  # a type Warren never needs
])
def test_warrens_key_gets_only_what_it_needs(dig, zone, labels, rdtype, value):
    name = fqdn(zone, *labels) if labels else zone.name
    before = dig(name, rdtype)
    keyring = dns.tsigkeyring.from_text({zone.key_name: (zone.algorithm, zone.secret)})
    response = raw_update(zone, name, keyring, zone.key_name, rdtype, value)
    assert response.rcode() == dns.rcode.REFUSED
    assert dig(name, rdtype) == before


def test_a_name_that_is_not_ours_is_never_overwritten(dig, zone, names, unique_name):
    name = fqdn(zone, unique_name("web"), "bob")
    names.append((name, "bob"))
    warren_dns.publish_address(zone, name, "10.87.0.20", "bob")
    with pytest.raises(Conflict, match="not by alice"):
        warren_dns.publish_address(zone, name, "10.87.0.21", "alice")
    with pytest.raises(Conflict):
        warren_dns.remove_name(zone, name, "alice")
    assert dig(name) == ["10.87.0.20"]


def test_names_outside_the_zone_are_refused_before_sending(zone):
    with pytest.raises(DnsError, match="not a name inside the zone"):
        warren_dns.publish_address(zone, "web.example.com", "10.87.0.1", "alice")
    with pytest.raises(DnsError):
        warren_dns.publish_address(zone, zone.name, "10.87.0.1", "alice")
