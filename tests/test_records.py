"""Members' own DNS records: checked by Warren, published with the member's
key, confined by BIND (a member key and an ACME key refused outside their
names), repaired by the reconcile pass, removed with the instance (at its
name) and with the member."""
import html
import os
import re
import subprocess

import dns.query
import dns.rcode
import dns.tsig
import dns.tsigkeyring
import dns.update
import pytest

from app import dns as warren_dns, jobs, provisioning, records
from app.errors import QuotaExceeded, ValidationError
from app.projects import dns_owner
from app.store import get_db
from conftest import post_form
from support import instance_row

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def member(app, make_user, unique_name):
    """A fresh member (a unique name: the zone is shared); their records and
    keys leave DNS and BIND afterwards, as when a member is deleted."""
    username = unique_name("r")
    user = make_user(username)
    yield user
    with app.app_context():
        records.withdraw_member(get_db(), app.config["WARREN"], user)


def signed(zone, key_name, secret, *changes):
    """Send one update signed with some key; its rcode as text."""
    update = dns.update.UpdateMessage(zone.name, keyring=dns.tsigkeyring.from_text(
        {key_name: ("hmac-sha256", secret)}), keyname=key_name, keyalgorithm="hmac-sha256")
    for method, *arguments in changes:
        getattr(update, method)(*arguments)
    return dns.rcode.to_text(dns.query.tcp(update, zone.server, port=zone.port, timeout=5).rcode())


def member_key(app, user):
    with app.app_context():
        return next(get_db()["dns_keys"].rows_where("user_id = ? AND kind = 'member'", [user["id"]]))


def run_jobs(app):
    """Run the waiting jobs the way the worker does."""
    with app.app_context():
        while (job := jobs.claim(get_db())) is not None:
            jobs.finish(get_db(), job["id"], provisioning.run_job(job))


# --- checked by Warren (no backend) --------------------------------------------

def test_every_field_error_at_once(app, make_user):
    user = make_user("alice")
    with app.test_request_context(), pytest.raises(ValidationError) as raised:
        records.add(user, "@", "A", "10.0.0.1", "5")
    assert set(raised.value.errors) == {"name", "rtype", "ttl"}
    with app.test_request_context(), pytest.raises(ValidationError) as raised:
        records.add(user, "bad name!", "MX", "mail.example.org", "")
    assert set(raised.value.errors) == {"name", "value"}
    assert "MX" in raised.value.errors["value"][0]


def test_targets_are_absolute_and_single_labels_are_refused(app, make_user):
    user = make_user("alice")
    with app.test_request_context():
        row = records.add(user, "www", "CNAME", "web.example.org")
        assert (row["fqdn"], row["value"]) == ("www.alice.vm.example.test", "web.example.org.")
        assert records.add(user, "web", "MX", "10 mx.example.org")["value"] == "10 mx.example.org."
        assert records.add(user, "web", "TXT", 'v=spf1 "quoted" -all')["value"] == \
            '"v=spf1 \\"quoted\\" -all"'
        with pytest.raises(ValidationError, match="not a full name"):
            records.add(user, "blog", "CNAME", "web")
        with pytest.raises(ValidationError, match="Warren's own markers"):
            records.add(user, "blog", "TXT", "warren owner=bob@x")


def test_another_members_names_and_warrens_markers_are_refused(app, make_user, client, auth):
    make_user("alice")
    auth.login("alice")
    for name in ("web.bob.vm.example.test", "web.alice._owner.vm.example.test",
                 "vm.example.test", "alice.vm.example.test"):
        response = post_form(client, "/dns", {"name": name, "rtype": "TXT", "value": "x"},
                             url="/dns/records", expect=422)
        assert "subtree" in response.get_data(as_text=True)
    with app.app_context():
        assert get_db()["dns_records"].count == 0


def test_bobs_record_is_404_for_alice(app, make_user, client, auth):
    bob = make_user("bob")
    make_user("alice")
    with app.test_request_context():
        row = records.add(bob, "blog", "TXT", "hello")
        key_id = get_db()["dns_keys"].insert({
            "user_id": bob["id"], "kind": "acme", "name": "_acme-challenge.web.bob.vm.example.test.",
            "secret": "c2VjcmV0LXNlY3JldC1zZWNyZXQ=", "created_at": "x"}).last_pk
    auth.login("alice")
    page = client.get("/dns").get_data(as_text=True)
    assert "bob" not in page
    for url in (f"/dns/records/{row['id']}/delete", f"/dns/acme-keys/{key_id}/delete"):
        assert post_form(client, "/dns", {}, url=url).status_code == 404, url
    with app.app_context():
        assert get_db()["dns_records"].count == 1 and get_db()["dns_keys"].count == 1


def test_a_cname_shares_its_name_with_nothing(app, make_user):
    user = make_user("alice")
    with app.test_request_context():
        db = get_db()
        instance_row(db, user["id"], "web", "ready", "10.0.0.9", fqdn="web.alice.vm.example.test")
        with pytest.raises(ValidationError, match="cannot share a name with its address"):
            records.add(user, "web", "CNAME", "elsewhere.example.org")
        with pytest.raises(ValidationError, match="Warren publishes its addresses"):
            records.add(user, "web", "AAAA", "2001:db8::1")
        records.add(user, "web", "MX", "10 mx.example.org")  # beside an address: fine
        records.add(user, "blog", "TXT", "hello")
        with pytest.raises(ValidationError, match="cannot share a name with other data"):
            records.add(user, "blog", "CNAME", "web.example.org")
        records.add(user, "www", "CNAME", "web.example.org")
        with pytest.raises(ValidationError, match="is a CNAME"):
            records.add(user, "www", "TXT", "hello")


def test_records_are_capped_by_the_share(app, make_user):
    user = make_user("alice")
    with app.test_request_context():
        get_db()["users"].update(user["id"], {"quota_overrides": '{"records": 2}'})
        user = get_db()["users"].get(user["id"])
        records.add(user, "a", "TXT", "one")
        records.add(user, "b", "TXT", "two")
        with pytest.raises(QuotaExceeded, match="DNS records: you hold 2 of your 2"):
            records.add(user, "c", "TXT", "three")
        with pytest.raises(QuotaExceeded):
            records.create_acme_key(user, "web")  # ACME keys count too


# --- published, and confined by BIND (real named) ----------------------------

def test_member_records_resolve_and_bind_keeps_the_member_key_in_its_subtree(
        app, settings, zone, dig, member, unique_name):
    name = member["username"]
    with app.test_request_context():
        web = f"web.{name}.{zone.name}"
        warren_dns.publish_address(zone, web, "10.87.0.41", dns_owner(name))
        records.add(member, "blog", "TXT", "hello world")
        records.add(member, "www", "CNAME", web)
        records.add(member, "web", "MX", "10 mx.example.org")
        records.add(member, "_acme-challenge.web", "TXT", "token")
    run_jobs(app)  # the records job, as the worker runs it
    assert dig(f"blog.{name}.{zone.name}", "TXT") == ['"hello world"']
    assert dig(f"www.{name}.{zone.name}", "CNAME") == [f"{web}."]
    assert dig(web, "MX") == ["10 mx.example.org."]
    assert dig(web) == ["10.87.0.41"]  # the instance's address is untouched
    key = member_key(app, member)
    assert key["name"] == f"{name}.{zone.name}."
    other = unique_name("r")
    refused = {
        "another member's name": ("add", f"web.{other}", 60, "TXT", '"x"'),
        "Warren's owner marker": ("delete", f"web.{name}._owner", "TXT"),
        "an address record": ("add", f"evil.{name}", 60, "A", "192.0.2.66"),
        "the instance's address": ("delete", f"web.{name}", "A"),
        "the member's own apex": ("add", name, 60, "TXT", '"x"'),
        "the zone's apex": ("add", "@", 60, "TXT", '"x"'),
    }
    for what, change in refused.items():
        assert signed(zone, key["name"], key["secret"], change) == "REFUSED", what
    with app.app_context():
        owner = dns_owner(name)
        assert dig(f"web.{name}._owner.{zone.name}", "TXT") == [f'"warren owner={owner}"']
        assert warren_dns.remove_name(zone, web, owner) is True


def test_reconcile_repairs_a_record_removed_by_hand_and_publishes_after_an_outage(
        app, settings, zone, dig, member):
    name = member["username"]
    blog = f"blog.{name}.{zone.name}"
    with app.test_request_context():
        records.add(member, "blog", "TXT", "first")
    run_jobs(app)
    key = member_key(app, member)
    assert signed(zone, key["name"], key["secret"], ("delete", f"blog.{name}", "TXT")) == "NOERROR"
    assert signed(zone, key["name"], key["secret"],
                  ("add", f"stray.{name}", 60, "TXT", '"not in the rows"')) == "NOERROR"
    assert dig(blog, "TXT") == []
    with app.app_context():
        done = records.sync_all(get_db(), settings)
    assert any(blog in line for line in done), done
    assert dig(blog, "TXT") == ['"first"'] and dig(f"stray.{name}.{zone.name}", "TXT") == []
    with app.app_context():
        assert not [line for line in records.sync_all(get_db(), settings) if name in line]
    subprocess.run([f"{REPO}/dns/named.sh", "stop"], check=True, capture_output=True)
    try:
        with app.test_request_context():
            records.add(member, "later", "TXT", "while named was down")
        run_jobs(app)  # fails: named is down; the row stays
        with app.app_context():
            assert get_db()["jobs"].count_where("state = 'failed' AND kind = 'records'") == 1
    finally:
        subprocess.run([f"{REPO}/dns/named.sh", "start"], check=True, capture_output=True)
    with app.app_context():
        records.sync_all(get_db(), settings)
    assert dig(f"later.{name}.{zone.name}", "TXT") == ['"while named was down"']


def test_deleting_an_instance_takes_the_records_at_its_name(app, settings, zone, dig, member):
    name = member["username"]
    web = f"web.{name}.{zone.name}"
    with app.test_request_context():
        db = get_db()
        row_id = instance_row(db, member["id"], "web", "ready", "10.87.0.42", fqdn=web)
        warren_dns.publish_address(zone, web, "10.87.0.42", dns_owner(name))
        records.add(member, "web", "MX", "10 mx.example.org")
        records.add(member, "www", "CNAME", web)
    run_jobs(app)
    assert dig(web, "MX") == ["10 mx.example.org."]
    with app.app_context():
        warren_dns.remove_name(zone, web, dns_owner(name))
        records.withdraw_instance(get_db(), settings, get_db()["instances"].get(row_id))
        assert [row["rtype"] for row in records.of_member(get_db(), member["id"])] == ["CNAME"]
    assert dig(web) == [] and dig(web, "MX") == []
    assert dig(f"www.{name}.{zone.name}", "CNAME") == [f"{web}."]  # a name of its own: stays


def test_deleting_a_member_removes_their_records_and_keys(app, settings, zone, dig, make_user,
                                                          unique_name):
    user = make_user(unique_name("r"))
    name = user["username"]
    with app.test_request_context():
        records.add(user, "blog", "TXT", "bye")
        _row, secret = records.create_acme_key(user, "web")
    run_jobs(app)
    key = member_key(app, user)
    assert dig(f"blog.{name}.{zone.name}", "TXT") == ['"bye"']
    with app.app_context():
        records.withdraw_member(get_db(), settings, user)
        assert get_db()["dns_keys"].count_where("user_id = ?", [user["id"]]) == 0
    assert dig(f"blog.{name}.{zone.name}", "TXT") == []
    for key_name, key_secret in ((key["name"], key["secret"]),
                                 (f"_acme-challenge.web.{name}.{zone.name}.", secret)):
        with pytest.raises(dns.tsig.PeerBadKey):  # BIND no longer knows the key
            signed(zone, key_name, key_secret, ("add", f"x.{name}", 60, "TXT", '"x"'))


def test_a_marker_where_older_warrens_put_it_is_moved_out_of_the_subtree(
        app, settings, zone, dig, member):
    name = member["username"]
    web = f"web.{name}.{zone.name}"
    owner = None
    with app.test_request_context():
        owner = dns_owner(name)
        records.add(member, "blog", "TXT", "make the member key")
    run_jobs(app)
    key = member_key(app, member)
    # As an older Warren published it: A and the marker at the name itself.
    assert signed(zone, zone.key_name, zone.secret, ("add", f"web.{name}", 60, "A", "10.87.0.43")) \
        == "NOERROR"
    assert signed(zone, key["name"], key["secret"],
                  ("add", f"web.{name}", 60, "TXT", f'"warren owner={owner}"')) == "NOERROR"
    with app.app_context():
        done = records.sync_all(get_db(), settings)
    assert any("moved the owner marker" in line for line in done), done
    assert dig(web, "TXT") == []
    assert dig(f"web.{name}._owner.{zone.name}", "TXT") == [f'"warren owner={owner}"']
    assert warren_dns.owned_names(zone)[web] == owner
    assert warren_dns.remove_name(zone, web, owner) is True


CERTBOT = """
import sys
from certbot import errors
from certbot_dns_rfc2136._internal.dns_rfc2136 import _RFC2136Client
import dns.tsig
server, port, key, secret, name, other = sys.argv[1:]
client = _RFC2136Client(server, int(port), key, secret, dns.tsig.HMAC_SHA256, 5)
client.add_txt_record(name, "validation-token", 60)
print("added")
sys.stdout.flush()
try:
    client.add_txt_record(other, "validation-token", 60)
    print("other: added")
except errors.PluginError as error:
    print("other:", error)
sys.stdout.flush()
if input() == "delete":
    client.del_txt_record(name, "validation-token")
    print("deleted")
"""


def test_certbots_rfc2136_client_sets_its_challenge_with_an_acme_key_and_nothing_else(
        app, settings, zone, dig, member, client, auth):
    name = member["username"]
    challenge = f"_acme-challenge.web.{name}.{zone.name}"
    auth.login(name)
    page = post_form(client, "/dns", {"acme_name": "web"}, url="/dns/acme-keys", expect=201)
    assert page.headers["Cache-Control"] == "no-store"
    ini = html.unescape(re.search(r'<pre id="certbot-ini">(.*?)</pre>', page.get_data(as_text=True),
                                  re.S)[1])
    settings_ini = dict(line.split(" = ", 1) for line in ini.splitlines())
    assert settings_ini["dns_rfc2136_name"] == f"{challenge}."
    row = {"name": settings_ini["dns_rfc2136_name"]}
    secret = settings_ini["dns_rfc2136_secret"]
    assert secret not in client.get("/dns").get_data(as_text=True)  # shown once
    certbot = subprocess.Popen(
        ["/usr/bin/python3", "-c", CERTBOT, settings.dns_server, str(settings.dns_port),
         row["name"], secret, challenge, f"_acme-challenge.blog.{name}.{zone.name}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert certbot.stdout.readline().strip() == "added", certbot.stderr.read()
    assert certbot.stdout.readline().strip() == "other: Received response from server: REFUSED"
    assert dig(challenge, "TXT") == ['"validation-token"']
    with app.app_context():  # the reconcile pass leaves certbot's TXT alone
        records.sync_all(get_db(), settings)
    assert dig(challenge, "TXT") == ['"validation-token"']
    out, err = certbot.communicate("delete\n", timeout=30)
    assert out.strip() == "deleted", err
    assert dig(challenge, "TXT") == []
