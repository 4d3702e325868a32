"""Custom domains: a member's own host name on one of their instances,
routed only while a DNS record the member publishes proves it is theirs.

The proofs are looked up for real: the "public DNS" is a second named in
a simulated Internet (tests/publicdns.py), authoritative for
their-domain.test, whose records each test changes the way a member does
at their DNS provider. Time (grace periods, backoff) moves with the
controllable clock."""
import re
import sys
import time

import pytest

from app import audit, domains, members as members_service, quotas
from app.config import Settings
from app.errors import LookupFailed, NotFound, QuotaExceeded, ValidationError
from app.store import get_db
from conftest import Auth, post_form
from netsim import Internet
from publicdns import PublicDns
from support import (advance, csrf_token, instance_row, launch, post_action, wait_gone,
                     wait_until)

ZONE = "their-domain.test"


@pytest.fixture(scope="module")
def public_dns(tmp_path_factory):
    """One public DNS for the module (each test uses its own names)."""
    with Internet() as internet:
        server = PublicDns(internet, tmp_path_factory.mktemp("publicdns"), [ZONE]).start()
        yield server
        server.stop()


@pytest.fixture
def world(app, public_dns, fixed_clock):
    """The app asking the public DNS, on the controllable clock."""
    app.config["WARREN"] = Settings(app.config["WARREN"], public_resolvers=public_dns.resolvers,
                                    domain_lookup_seconds=2, ssh_public_name="ssh.coop.example")
    return app


@pytest.fixture
def host(unique_name):
    return lambda: f"{unique_name('www')}.{ZONE}"


def challenge(domain: dict) -> tuple[str, str]:
    return domain["txt_name"], domain["txt_value"]


def check(user, domain, fixed_clock) -> dict:
    """Press "check now" (past the few seconds it waits between looks)."""
    advance(fixed_clock, seconds=domains.CHECK_NOW_SECONDS)
    return domains.check_now(user, domain["id"])


def actions(db, hostname) -> list[tuple[str, str, str]]:
    return [(entry["actor"], entry["action"], entry["result"])
            for entry in reversed(audit.entries(db, {}))
            if entry["target"] == hostname]


BAD_NAMES = {
    "": "Give a host name",
    "192.0.2.7": "is an IP address",
    "[2001:db8::1]": "is an IP address",
    "*.their-domain.test": "Wildcards are not supported",
    "www..their-domain.test": "empty label",
    "-www.their-domain.test": "only letters, digits and inner hyphens",
    "_dmarc.their-domain.test": "only letters, digits and inner hyphens",
    "ab--cd.their-domain.test": "reserved for xn--",
    "a" * 64 + ".their-domain.test": "longer than 63 characters",
    ("a" * 60 + ".") * 5 + "test": "at most 253 characters",
    "www.exämple.org": "ASCII form",
    "localhost": "full host name with its domain",
    "printer.local": ".local names are not in the public DNS",
    "1.2.3.999": "cannot be all digits",
    "org": "full host name with its domain",
    "co.uk": "is a public suffix",
    "github.io": "is a public suffix",
    "www.alice.vm.example.test": "inside Warren's own zone",
    "ssh.coop.example": "Warren's own host name",
}


def test_bad_names_are_refused_with_every_reason_at_once(world, make_user):
    alice = make_user("alice")
    with world.test_request_context():
        db = get_db()
        world.config["WARREN"] = Settings(world.config["WARREN"], dns_zone="vm.example.test")
        web = instance_row(db, alice["id"], "web", "ready", "10.88.0.5")
        for name, reason in BAD_NAMES.items():
            with pytest.raises(ValidationError) as caught:
                domains.add(alice, name, web)
            assert list(caught.value.errors) == ["hostname"], name
            assert reason in " ".join(caught.value.errors["hostname"]), (name, caught.value.errors)
            assert len(" ".join(caught.value.errors["hostname"])) < 400  # the input is quoted short
        # Every field at once: a bad name and no instance of hers.
        with pytest.raises(ValidationError) as caught:
            domains.add(alice, "-bad-.their-domain.test", "999")
        assert set(caught.value.errors) == {"hostname", "instance"}
        assert db["domains"].count == 0
        assert {entry["result"] for entry in audit.entries(db, {"action": "domain.add"})} == {"refused"}
        # A name is kept as DNS writes it: lower case, no final dot.
        assert domains.add(alice, " WWW.Their-Domain.TEST. ", web)["hostname"] == "www.their-domain.test"
        # At the top of a registered domain DNS allows no CNAME: only the TXT way is offered.
        assert domains.add(alice, ZONE, web)["apex"] and not domains.get_domain(alice, 1)["apex"]


def test_the_form_shows_every_field_error_next_to_its_field(world, client, make_user):
    alice = make_user("alice")
    with world.app_context():
        instance_row(get_db(), alice["id"], "web", "ready", "10.88.0.5")
    Auth(client).login("alice")
    page = post_form(client, "/domains", {"hostname": "192.0.2.7", "instance": "0"}, expect=422)
    text = page.get_data(as_text=True)
    assert "is an IP address" in text and "Choose one of your ready instances." in text
    assert 'value="192.0.2.7"' in text  # the input is kept


def test_a_txt_record_proves_a_domain(world, public_dns, make_user, host, fixed_clock):
    alice = make_user("alice")
    with world.test_request_context():
        db = get_db()
        web = instance_row(db, alice["id"], "web", "ready", "10.88.0.5")
        name = host()
        domain = domains.add(alice, name, web)
        # Nothing published yet: looked up at once, refused, not routed.
        assert domain["state"] == "pending"
        assert f"no TXT record at _warren-challenge.{name}" in domain["result"]
        assert f"no CNAME at {name}" in domain["result"]
        assert domains.routable(db) == []
        txt_name, txt_value = challenge(domain)
        assert txt_name == f"_warren-challenge.{name}" and re.fullmatch(r"warren-verify=[0-9a-f]{32}",
                                                                        txt_value)
        # Someone else's token (an old claim, another member's) proves nothing.
        public_dns.txt(txt_name, "warren-verify=" + "0" * 32)
        domain = check(alice, domain, fixed_clock)
        assert domain["state"] == "pending" and "does not hold" in domain["result"]
        with pytest.raises(Exception, match="ask again in"):  # "check now" waits a few seconds
            domains.check_now(alice, domain["id"])
        public_dns.txt(txt_name, "v=spf1 -all", txt_value)
        domain = check(alice, domain, fixed_clock)
        assert (domain["state"], domain["proof"]) == ("verified", "txt")
        assert domains.routable(db) == [(name, web)]
        assert actions(db, name) == [("alice", "domain.add", "ok"), ("alice", "domain.check", "ok"),
                                     ("alice", "domain.check", "refused"),
                                     ("alice", "domain.verified", "ok"), ("alice", "domain.check", "ok")]


def test_a_cname_to_an_own_instance_proves_a_domain(world, public_dns, make_user, host, fixed_clock):
    alice, bob = make_user("alice"), make_user("bob")
    with world.test_request_context():
        db = get_db()
        web = instance_row(db, alice["id"], "web", "ready", "10.88.0.5")
        box = instance_row(db, bob["id"], "box", "ready", "10.88.0.6")
        name = host()
        domain = domains.add(alice, name, web)
        assert (domain["cname_name"], domain["cname_target"]) == (name, db["instances"].get(web)["fqdn"])
        public_dns.cname(name, db["instances"].get(box)["fqdn"])  # bob's instance: no proof for alice
        domain = check(alice, domain, fixed_clock)
        assert domain["state"] == "pending" and "not to one of your instances" in domain["result"]
        public_dns.cname(name, domain["cname_target"].upper())
        domain = check(alice, domain, fixed_clock)
        assert (domain["state"], domain["proof"]) == ("verified", "cname")
        assert domains.routable(db) == [(name, web)]
        # Only ready instances are served.
        db["instances"].update(web, {"status": "deleting"})
        assert domains.routable(db) == []


def test_a_domain_lapses_after_the_grace_period_and_returns_with_its_proof(
        world, public_dns, make_user, host, fixed_clock):
    alice = make_user("alice")
    settings = world.config["WARREN"]
    with world.test_request_context():
        db = get_db()
        web = instance_row(db, alice["id"], "web", "ready", "10.88.0.5")
        name = host()
        domain = domains.add(alice, name, web)
        txt_name = domain["txt_name"]
        public_dns.txt(txt_name, domain["txt_value"])
        assert check(alice, domain, fixed_clock)["state"] == "verified"
        public_dns.remove(txt_name)
        # Gone, but within the grace period: still verified and served.
        advance(fixed_clock, minutes=settings.domain_recheck_minutes)
        assert domains.recheck(db, settings) == []
        domain = domains.get_domain(alice, domain["id"])
        assert domain["state"] == "verified" and "no TXT record" in domain["result"]
        assert domains.routable(db) == [(name, web)]
        # Past the grace period: lapsed, no longer served.
        advance(fixed_clock, hours=settings.domain_grace_hours)
        assert domains.recheck(db, settings) == [f"{name} verified -> lapsed"]
        assert domains.get_domain(alice, domain["id"])["state"] == "lapsed"
        assert domains.routable(db) == []
        # The record is back: the pass finds it at its next look.
        public_dns.txt(txt_name, domain["txt_value"])
        assert domains.recheck(db, settings) == []  # not due yet: Warren does not ask again at once
        advance(fixed_clock, minutes=5)
        assert domains.recheck(db, settings) == [f"{name} lapsed -> verified"]
        assert domains.routable(db) == [(name, web)]
        assert [action for actor, action, _ in actions(db, name) if actor == "warren"] == [
            "domain.lapsed", "domain.verified"]


def test_another_member_cannot_claim_see_or_remove_a_domain(world, public_dns, app, make_user,
                                                            host, fixed_clock):
    alice, bob = make_user("alice"), make_user("bob")
    name = host()
    with world.test_request_context():
        db = get_db()
        web = instance_row(db, alice["id"], "web", "ready", "10.88.0.5")
        web2 = instance_row(db, alice["id"], "web2", "ready", "10.88.0.7")
        box = instance_row(db, bob["id"], "box", "ready", "10.88.0.6")
        domain = domains.add(alice, name, web)
        with pytest.raises(ValidationError) as caught:
            domains.add(bob, name.upper() + ".", box)
        assert caught.value.errors == {"hostname": [
            f"{name} is already claimed by another member of this co-op; if the name is yours, "
            "ask an admin."]}
        for attempt in (lambda: domains.get_domain(bob, domain["id"]),
                        lambda: domains.check_now(bob, domain["id"]),
                        lambda: domains.move(bob, domain["id"], box),
                        lambda: domains.remove(bob, domain["id"])):
            with pytest.raises(NotFound):
                attempt()
        # Alice moves it between her own instances; never onto bob's.
        with pytest.raises(ValidationError, match="ready instances"):
            domains.move(alice, domain["id"], box)
        assert domains.move(alice, domain["id"], web2)["instance_id"] == web2
        with pytest.raises(ValidationError, match="added .* already"):
            domains.add(alice, name, web)
        # The database refuses a domain on another member's instance too.
        with pytest.raises(Exception, match="instance of its own member"):
            db.execute("UPDATE domains SET instance_id = ? WHERE id = ?", [box, domain["id"]])
    bobs = app.test_client()
    Auth(bobs).login("bob")
    assert name not in bobs.get("/domains").get_data(as_text=True)
    token = csrf_token(bobs.get("/domains").get_data(as_text=True))
    for action in ("check", "move", "delete"):
        response = bobs.post(f"/domains/{domain['id']}/{action}",
                             data={"csrf_token": token, "instance": str(box)})
        assert response.status_code == 404, action
    alices = app.test_client()
    Auth(alices).login("alice")
    page = alices.get("/domains").get_data(as_text=True)
    assert name in page and domain["txt_value"] in page and "pending" in page
    post_form(alices, "/domains", {}, url=f"/domains/{domain['id']}/delete", expect=303)
    with world.app_context():
        assert get_db()["domains"].count == 0


def test_the_share_caps_custom_domains(world, make_user, host, client, runner):
    alice = make_user("alice")
    with world.test_request_context():
        db = get_db()
        db["users"].update(alice["id"], {"tier": "half"})  # two domains
        alice = db["users"].get(alice["id"])
        web = instance_row(db, alice["id"], "web", "ready", "10.88.0.5")
        domains.add(alice, host(), web)
        domains.add(alice, host(), web)
        with pytest.raises(QuotaExceeded, match="custom domains: you hold 2 of your 2"):
            domains.add(alice, host(), web)
        assert quotas.usage(db, alice["id"])["domains"] == 2
        db["users"].update(alice["id"], {"quota_overrides": '{"domains": 3}'})  # an override
        assert domains.add(db["users"].get(alice["id"]), host(), web)["state"] == "pending"
    result = runner.invoke(args=["tier", "set", "half", "domains=1001"])
    assert "domains: must be a whole number from 0 to 1000" in result.output
    assert "domains=5" in runner.invoke(args=["tier", "set", "half", "domains=5"]).output
    Auth(client).login("alice")
    assert re.search(r"custom domains</td>\s*<td>3</td>\s*<td>3</td>",
                     client.get("/usage").get_data(as_text=True))
    assert 'name="domains"' in client.get("/requests").get_data(as_text=True)


# A DNS server that never answers: it reads queries and drops them.
SILENT = """
import socket, sys
server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
server.bind((sys.argv[1], 5300))
print("listening", flush=True)
while True:
    server.recvfrom(512)
"""


def test_a_lookup_is_bounded_in_time(public_dns):
    from app.dns import public as dnslookup
    silent = public_dns.internet.popen(sys.executable, "-c", SILENT, public_dns.address)
    try:
        assert silent.stdout.readline().strip() == "listening"
        started = time.monotonic()
        with pytest.raises(LookupFailed, match="within 1 s"):
            dnslookup.txt(dnslookup.Resolvers(((public_dns.address, 5300),), 1.0), f"www.{ZONE}")
        assert time.monotonic() - started < 2
    finally:
        silent.kill()


def test_one_failing_lookup_never_stops_the_pass_and_misses_back_off(
        world, public_dns, make_user, host, fixed_clock, monkeypatch):
    alice = make_user("alice")
    settings = world.config["WARREN"]
    with world.test_request_context():
        db = get_db()
        web = instance_row(db, alice["id"], "web", "ready", "10.88.0.5")
        refused = domains.add(alice, "www.not-served-here.test", web)  # the server answers REFUSED
        assert "REFUSED" in refused["result"]
        broken, good = domains.add(alice, host(), web), domains.add(alice, host(), web)
        public_dns.txt(good["txt_name"], good["txt_value"])
        real_look = domains.look

        def look(resolvers, domain, targets):  # a bug that strikes one domain only
            if domain["id"] == broken["id"]:
                raise RuntimeError("a bug")
            return real_look(resolvers, domain, targets)
        monkeypatch.setattr(domains, "look", look)
        advance(fixed_clock, minutes=5)
        assert domains.recheck(db, settings) == [f"{good['hostname']} pending -> verified"]
        after = {row["id"]: row for row in db["domains"].rows}
        assert after[refused["id"]]["misses"] == 2 and "REFUSED" in after[refused["id"]]["result"]
        assert after[broken["id"]]["misses"] == 1  # skipped: looked at again next pass
        # Nothing is asked again before its time: 10 minutes after a second miss.
        assert domains.recheck(db, settings) == []
        assert {row["id"]: row["checked_at"] for row in db["domains"].rows} == \
            {key: row["checked_at"] for key, row in after.items()}
        assert after[refused["id"]]["next_check_at"] == domains.stamp(
            fixed_clock.now() + domains.retry_after(2))
    assert [domains.retry_after(misses).total_seconds() / 60 for misses in (1, 2, 3, 4)] == \
        [5, 10, 20, 40]
    assert domains.retry_after(10 ** 6) == domains.LONGEST_RETRY


@pytest.mark.slow
@pytest.mark.lxd
def test_a_domain_is_served_while_its_instance_lives_and_goes_with_it_or_its_member(
        world, public_dns, worker, members, host, fixed_clock, monkeypatch):
    # `world` comes first: the worker's passes use the settings it sets (the public DNS).
    told = []
    monkeypatch.setattr(domains, "ROUTE_HOOKS", [lambda db, _ids: told.append(domains.routable(db))])
    alice, bob = members(), members()
    location, _ = launch(alice, name="web")
    web = int(location.rsplit("/", 1)[1])
    name = host()
    post_form(alice, "/domains", {"hostname": name, "instance": str(web)}, expect=303)
    page = alice.get("/domains").get_data(as_text=True)
    domain_id = int(re.search(r'id="domain-([0-9]+)"', page)[1])
    public_dns.txt(re.search(r'class="txt-name">([^<]+)<', page)[1],
                   re.search(r'class="txt-value">([^<]+)<', page)[1])
    advance(fixed_clock, seconds=domains.CHECK_NOW_SECONDS)
    started = time.monotonic()
    post_form(alice, "/domains", {}, url=f"/domains/{domain_id}/check", expect=303)
    print(f"check now -> verified: {time.monotonic() - started:.3f} s")
    assert "verified by its TXT record" in alice.get("/domains").get_data(as_text=True)
    assert name in alice.get(location).get_data(as_text=True)  # on the instance's page too
    assert told == [[(name, web)]]
    # Deleting the instance takes its domain with it, and the ingress is told.
    post_action(alice, location, "delete")
    wait_gone(alice, location)
    assert told[-1] == []
    with world.app_context():
        db = get_db()
        assert db["domains"].count == 0
        assert actions(db, name)[-1] == ("warren", "domain.remove", "ok")
    # Deleting a member takes theirs.
    box_location, _ = launch(bob, name="box")
    post_form(bob, "/domains", {"hostname": host(), "instance": box_location.rsplit("/", 1)[1]},
              expect=303)
    with world.test_request_context():
        members_service.delete_member({"id": 0, "username": "boss"}, bob.username, bob.username)

    def bob_gone():
        with world.app_context():
            return get_db()["users"].count_where("username = ?", [bob.username]) == 0
    wait_until(bob_gone, timeout=60, message="the member's deletion")
    with world.app_context():
        assert get_db()["domains"].count == 0
