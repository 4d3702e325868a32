"""Sweeps over every route in app.url_map: CSRF on every POST, no GET
changes state, and another member's ids always give 404."""
import hashlib
import json

import pytest

from app.store import get_db, now
from conftest import Auth
from support import api_token, csrf_token

ACTIONS = ("start", "stop", "restart", "delete")
VOLATILE_TABLES = {"sessions", "login_failures"}


def instance_row(app, username):
    """A ready instance row for a member (no LXD needed: every check below
    happens before Warren would touch LXD)."""
    with app.app_context():
        db = get_db()
        user = db.execute("SELECT id FROM users WHERE username = ?", [username]).fetchone()[0]
        return db["instances"].insert({
            "user_id": user, "name": "secret", "lxd_name": f"secret-{username}",
            "project": f"warren-{username}", "profile": "small",
            "image": "busybox", "instance_type": "container",
            "fqdn": f"secret.{username}.vm.example.test", "ipv4": None, "ssh_keys": "",
            "cpu": 1, "memory": 1, "disk": 1, "processes": 1, "status": "ready", "error": None,
            "lease_expires_at": None, "created_at": now(), "updated_at": now()}).last_pk


PLACEHOLDERS = {"username": "bob", "name": "small", "token": "no-such-invitation", "approval_id": 1,
                "key_id": 1, "forward_id": 1, "record_id": 1, "acme_key_id": 1, "domain_id": 1,
                "token_id": 1, "snapshot": "snap0", "backup_id": 1, "member": "m1"}
BOBS_KEY = 900  # an id no other placeholder uses
BOBS_DOMAIN = 901
BOBS_TOKEN = 902
BOBS_RECORD = 903
API = "/api/v1/"
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def urls(app, method, values):
    """Every URL of the app for a method, with placeholders filled in."""
    values = {**PLACEHOLDERS, **values}
    found = []
    for rule in app.url_map.iter_rules():
        if method not in rule.methods or rule.endpoint == "static":
            continue
        options = [dict()]
        for argument in rule.arguments:
            choices = {"action": ACTIONS, "verdict": ("approve", "deny"),
                       "step": ("evacuate", "restore")}.get(argument) \
                or [values[argument]]
            options = [dict(option, **{argument: choice}) for option in options for choice in choices]
        found += [_build(app, rule, option) for option in options]
    return found


def _build(app, rule, arguments):
    with app.test_request_context():
        from flask import url_for
        return url_for(rule.endpoint, **arguments)


@pytest.fixture
def two_members(app, client, make_user):
    make_user("alice")
    make_user("bob")
    bob_instance = instance_row(app, "bob")
    with app.app_context():
        db = get_db()
        bob = db.execute("SELECT id FROM users WHERE username = 'bob'").fetchone()[0]
        db["ssh_keys"].insert({"id": BOBS_KEY, "user_id": bob, "fingerprint": "SHA256:bob",
                               "public_key": "ssh-ed25519 AAAA bob", "created_at": now()})
        db["domains"].insert({"id": BOBS_DOMAIN, "hostname": "www.bob.example", "user_id": bob,
                              "instance_id": bob_instance, "token": "t", "created_at": now(),
                              "next_check_at": "9999"})
        db["dns_records"].insert({"id": BOBS_RECORD, "user_id": bob, "fqdn": "blog.bob.vm.example.test",
                                  "rtype": "TXT", "value": '"bob"', "ttl": 300, "created_at": now()})
        db["api_tokens"].insert({"id": BOBS_TOKEN, "user_id": bob, "name": "bobs", "token_hash": "x",
                                 "prefix": "wrn_x", "scope": "member", "created_at": now(),
                                 "expires_at": "9999"})
    Auth(client).login("alice")
    return bob_instance


def test_every_post_route_needs_a_csrf_token(app, client, two_members):
    own = instance_row(app, "alice")
    posts = [url for url in urls(app, "POST", {"instance_id": own}) if not url.startswith(API)]
    assert len(posts) >= 7  # login, logout, password, new instance, 4 actions...
    for url in posts:
        response = client.post(url, data={})
        assert response.status_code == 400, url
        response = client.post(url, data={"csrf_token": "forged"})
        assert response.status_code == 400, url
    with app.app_context():
        assert get_db()["jobs"].count == 0  # nothing was queued
    assert client.get("/").status_code == 200  # and alice is still signed in


def test_no_api_write_is_authorised_by_a_session_cookie_alone(app, client, two_members):
    """The API takes no CSRF token, so the cookie must never be enough: a
    signed-in browser's cookie (even with a valid CSRF token) is refused."""
    own = instance_row(app, "alice")
    token = csrf_token(client.get("/").get_data(as_text=True))
    checked = 0
    for method in WRITES:
        for url in urls(app, method, {"instance_id": own}):
            if not url.startswith(API):
                continue
            response = client.open(url, method=method, json={"csrf_token": token, "name": "x"},
                                   headers={"X-CSRFToken": token})
            assert response.status_code == 401, (method, url)
            assert response.get_json()["status"] == 401
            checked += 1
    assert checked >= 20
    with app.app_context():
        assert get_db()["jobs"].count == 0
        assert get_db()["ssh_keys"].count_where("user_id = (SELECT id FROM users "
                                                "WHERE username = 'alice')") == 0


def state_digest(app):
    with app.app_context():
        db = get_db()
        data = {table: [list(row) for row in db.execute(f"SELECT * FROM {table} ORDER BY rowid")]
                for table in db.table_names() if table not in VOLATILE_TABLES}
    return hashlib.sha256(json.dumps(data, default=str).encode()).hexdigest()


def test_no_get_route_changes_state(app, client, two_members):
    own = instance_row(app, "alice")
    before = state_digest(app)
    gets = urls(app, "GET", {"instance_id": own})
    assert len(gets) >= 7
    for url in gets:
        assert client.get(url).status_code < 500, url
    assert state_digest(app) == before


def test_no_admin_get_route_changes_state(app, client, make_user, two_members):
    make_user("boss", role="admin")
    Auth(client).logout()
    Auth(client).login("boss")
    before = state_digest(app)
    gets = urls(app, "GET", {"instance_id": two_members})
    for url in gets:
        assert client.get(url).status_code < 500, url
    assert client.get("/admin/users/bob").status_code == 200
    assert client.get("/admin/profiles/small").status_code == 200
    assert state_digest(app) == before


def test_every_route_with_another_members_id_is_404(app, client, two_members):
    token = csrf_token(client.get("/").get_data(as_text=True))
    checked = 0
    for method in ("GET", "POST"):
        for url in urls(app, method, {"instance_id": two_members, "key_id": BOBS_KEY,
                                      "domain_id": BOBS_DOMAIN}):
            if url.startswith(API) or not {str(two_members), str(BOBS_KEY), str(BOBS_DOMAIN)} \
                    & set(url.split("/")):
                continue  # (the API's own sweep sends a token)
            response = client.open(url, method=method, data={"csrf_token": token})
            assert response.status_code == 404, (method, url)
            checked += 1
    assert checked >= 10  # page, progress, the four actions, a key, and a domain's three actions
    with app.app_context():
        assert get_db()["ssh_keys"].count_where("id = ?", [BOBS_KEY]) == 1
        assert get_db()["domains"].get(BOBS_DOMAIN)["instance_id"] == two_members
    with app.app_context():
        assert get_db()["jobs"].count == 0
        assert get_db()["instances"].get(two_members)["status"] == "ready"


def test_every_api_route_with_another_members_id_is_404(app, client, two_members):
    headers = api_token(app, "alice")
    checked = 0
    for method in ("GET",) + WRITES:
        bobs = {"instance_id": two_members, "key_id": BOBS_KEY, "token_id": BOBS_TOKEN,
                "record_id": BOBS_RECORD, "domain_id": BOBS_DOMAIN}
        for url in urls(app, method, bobs):
            if not url.startswith(API) or not {str(value) for value in bobs.values()} \
                    & set(url.split("/")):
                continue
            response = client.open(url, method=method, json={}, headers=headers)
            assert response.status_code == 404, (method, url, response.get_json())
            checked += 1
    # show, delete, progress, three powers, renew, a key, a token; snapshots (list, take, show,
    # restore, delete), forwards (list, add, remove), the site (show, publish, unpublish), a
    # record, a domain (show, check, move, remove)
    assert checked >= 26
    with app.app_context():
        db = get_db()
        assert db["ssh_keys"].count_where("id = ?", [BOBS_KEY]) == 1
        assert db["dns_records"].count_where("id = ?", [BOBS_RECORD]) == 1
        assert db["domains"].get(BOBS_DOMAIN)["instance_id"] == two_members
        assert db["api_tokens"].get(BOBS_TOKEN)["revoked_at"] is None
        assert db["jobs"].count == 0
        assert db["instances"].get(two_members)["status"] == "ready"
