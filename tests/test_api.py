"""The JSON API (/api/v1) in process: tokens, scopes, errors, pagination,
idempotent creates, ETag/If-Match, the audit's token name, and the pinned
OpenAPI document; port forwards, websites, DNS records and custom domains
(rows only: no worker runs them here; their own test files run them for
real), and snapshots taken, restored and deleted, and a backup made and
restored, on one real busybox instance with the worker. The live, end-to-end flows are in
tests/test_warren_cli.py and tests/test_schemathesis.py."""
import json
import time
import uuid
from pathlib import Path

import pytest

from app import accounts, dns, lxd, projects
from app.config import PortRange, Settings
from app.names import project_name
from app.store import get_db
from app.worker import Worker
from conftest import Auth, make_app
from live import free_port
from support import KEY, PASSWORD, api_token, csrf_token, instance_row, run_in, wait_until

PINNED = Path(__file__).resolve().parent.parent / "app" / "views" / "api" / "openapi-v1.json"


@pytest.fixture
def alice(app, make_user):
    make_user("alice")
    return api_token(app, "alice")


def test_a_token_is_stored_only_as_its_hash_and_shown_once(app, client, make_user):
    make_user("alice")
    headers = api_token(app, "alice")
    secret = headers["Authorization"].split()[1]
    with app.app_context():
        dump = json.dumps([list(row) for row in get_db().execute("SELECT * FROM api_tokens")])
    assert secret not in dump
    listed = client.get("/api/v1/tokens", headers=headers).get_json()["items"]
    assert secret not in json.dumps(listed) and listed[0]["prefix"] == secret[:10]
    made = client.post("/api/v1/tokens", headers=headers, json={"name": "ci", "scope": "read",
                                                                "days": 7})
    assert made.status_code == 201 and made.get_json()["token"].startswith("wrn_")
    assert "token" not in client.get("/api/v1/tokens", headers=headers).get_json()["items"][0]


def test_a_session_cookie_alone_reads_nothing_either(app, client, make_user):
    make_user("alice")
    Auth(client).login("alice")
    response = client.get("/api/v1/instances")
    assert response.status_code == 401 and "Bearer" in response.get_json()["error"]


def test_a_read_token_changes_nothing(app, client, make_user):
    make_user("alice")
    headers = api_token(app, "alice", "read")
    assert client.get("/api/v1/keys", headers=headers).status_code == 200
    response = client.post("/api/v1/keys", headers=headers, json={"keys": KEY})
    assert response.status_code == 403 and "read scope" in response.get_json()["error"]
    made = client.post("/api/v1/tokens", headers=headers, json={"name": "wider", "scope": "member"})
    assert made.status_code == 403  # a token never makes a wider one


def test_admin_routes_are_404_for_members_and_403_for_an_admins_narrow_token(app, client, make_user):
    make_user("alice")
    make_user("boss", role="admin")
    assert client.get("/api/v1/admin/members", headers=api_token(app, "alice")).status_code == 404
    narrow = client.get("/api/v1/admin/members", headers=api_token(app, "boss", "member"))
    assert narrow.status_code == 403
    wide = client.get("/api/v1/admin/members", headers=api_token(app, "boss", "admin"))
    assert wide.status_code == 200 and {row["username"] for row in wide.get_json()["items"]} \
        == {"alice", "boss"}


def test_members_cannot_make_admin_tokens_and_every_field_error_comes_at_once(app, client, alice):
    response = client.post("/api/v1/tokens", headers=alice, json={"name": "", "scope": "admin",
                                                                  "days": 9999})
    assert response.status_code == 422
    assert set(response.get_json()["fields"]) == {"name", "scope", "days"}


def test_revoked_expired_and_disabled_tokens_stop_working(app, client, make_user, admin):
    make_user("alice")
    headers = api_token(app, "alice")
    mine = client.get("/api/v1/tokens", headers=headers).get_json()["items"][0]
    assert client.delete(f"/api/v1/tokens/{mine['id']}", headers=headers).status_code == 200
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    headers = api_token(app, "alice")
    with app.app_context():
        get_db().execute("UPDATE api_tokens SET expires_at = '2000-01-01T00:00:00+00:00'")
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    headers = api_token(app, "alice")
    token = csrf_token(admin.get("/admin/users/alice").get_data(as_text=True))
    admin.post("/admin/users/alice/disable", data={"csrf_token": token})
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_each_token_is_rate_limited_and_its_uses_recorded(tmp_path, make_user):
    app = make_app(tmp_path, api_rate_per_minute=3)
    client = app.test_client()
    with app.app_context():
        from app import accounts
        accounts.create_user("alice", "correct horse battery")
    headers = api_token(app, "alice")
    statuses = [client.get("/api/v1/me", headers=headers).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    with app.app_context():
        row = get_db().execute("SELECT uses, last_used_from FROM api_tokens").fetchone()
    assert row == (4, "127.0.0.1")


def test_a_tokens_uses_are_written_in_batches_and_every_one_is_counted(app, client, make_user):
    from app import token_uses
    make_user("alice")
    headers = api_token(app, "alice")
    for _ in range(5):
        assert client.get("/api/v1/me", headers=headers).status_code == 200
    read = "SELECT uses, last_used_at IS NOT NULL FROM api_tokens"
    with app.app_context():
        assert get_db().execute(read).fetchone() == (1, 1)  # the first use at once, then batched
    token_uses.write_pending()  # as at exit (and every WRITE_SECONDS while in use)
    with app.app_context():
        assert get_db().execute(read).fetchone() == (5, 1)


def test_the_rate_limit_holds_exactly_in_one_process_while_uses_are_batched(tmp_path, make_user):
    from app import token_uses
    make_user("alice")  # in the same database as the app with a lower limit below
    app = make_app(tmp_path, api_rate_per_minute=100)
    client, headers = app.test_client(), api_token(app, "alice")
    statuses = [client.get("/api/v1/me", headers=headers).status_code for _ in range(10)]
    with app.app_context():
        assert get_db().execute("SELECT uses FROM api_tokens").fetchone()[0] < 10  # batched
    statuses += [client.get("/api/v1/me", headers=headers).status_code for _ in range(91)]
    assert statuses == [200] * 100 + [429]  # near the limit, each use is written and judged
    token_uses.write_pending()
    with app.app_context():
        assert get_db().execute("SELECT uses FROM api_tokens").fetchone()[0] == 101


def test_the_instance_list_reads_its_page_in_sql_and_lxd_only_for_rows(app, client, alice,
                                                                        monkeypatch):
    from app import accounts, instances, lxd
    from support import instance_row
    with app.app_context():
        db = get_db()
        user = accounts.find_user("alice")
        for name in ("e", "c", "a", "d", "b"):
            instance_row(db, user["id"], name, "ready", None)
    second = client.get("/api/v1/instances?per_page=2&page=2", headers=alice).get_json()
    assert [row["name"] for row in second["items"]] == ["c", "d"] and "page=3" in second["next"]
    last = client.get(second["next"], headers=alice).get_json()
    assert [row["name"] for row in last["items"]] == ["e"] and last["next"] is None
    with app.test_request_context():
        assert [row["name"] for row in instances.list_instances(user)] == list("abcde")  # the dashboard
        monkeypatch.setattr(lxd, "instance_states", lambda client: pytest.fail("LXD asked for no rows"))
        assert instances.list_instances(user, 2, 10) == []


def test_the_instance_list_answers_what_its_schema_dumps(app, client, alice, monkeypatch):
    # The list skips marshmallow's dump for speed (app/views/api/instances.py
    # listed()); it must give byte for byte what the schema would.
    from app.views.api import instances as instances_view
    from app.views.api.instances import present_all
    from app.views.api.schemas import InstanceSchema
    from support import instance_row
    with app.app_context():
        db = get_db()
        user = accounts.find_user("alice")
        ready = instance_row(db, user["id"], "web", "ready", "10.0.0.9")
        instance_row(db, user["id"], "db", "queued", None)
        failed = instance_row(db, user["id"], "old", "failed", None)
        db["instances"].update(failed, {"error": "LXD refused", "lease_expires_at": "2027-01-01"})
        lxd_name = db["instances"].get(ready)["lxd_name"]
    monkeypatch.setattr(lxd, "instance_states", lambda client: {lxd_name: "Running"})
    answer = client.get("/api/v1/instances", headers=alice).get_json()
    with app.test_request_context():
        rows = [dict(row, state=state) for row, state in
                zip(get_db()["instances"].rows_where(order_by="name"), ("-", "-", "Running"))]
        rows[0].pop("state")  # a row without LXD's state too
        expected = InstanceSchema(many=True).dump(present_all(rows[1:]))
        assert instances_view.listed(present_all(rows)) == InstanceSchema(many=True).dump(
            present_all(rows))
    assert answer["items"][1:] == expected
    assert {item["name"]: item["ssh"] is not None for item in answer["items"]} == {
        "db": False, "old": False, "web": True}


def test_the_audit_names_the_token_that_acted(app, client, make_user):
    make_user("boss", role="admin")
    headers = api_token(app, "boss", "admin")
    with app.app_context():
        name = get_db().execute("SELECT name FROM api_tokens").fetchone()[0]
    assert client.post("/api/v1/keys", headers=headers, json={"keys": KEY}).status_code == 201
    entries = client.get("/api/v1/admin/audit?action=key.add", headers=headers).get_json()["items"]
    assert [(row["actor"], row["via"]) for row in entries] == [("boss", f"token {name}")]


def test_bad_fields_and_types_are_all_reported_at_once(app, client, alice):
    response = client.post("/api/v1/instances", headers=alice,
                           json={"name": "Bad_Name", "profile": "nope", "keys": ""})
    assert response.status_code == 422
    assert set(response.get_json()["fields"]) == {"name", "profile", "keys"}
    typed = client.post("/api/v1/instances", headers=alice, json={"name": 5, "keys": [1], "x": 1})
    assert typed.status_code == 422 and set(typed.get_json()["fields"]) == {"name", "keys", "x"}
    assert client.get("/api/v1/instances/99999999999999999999999", headers=alice).status_code == 404


def test_lists_come_in_pages(app, client, alice):
    with app.app_context():
        db = get_db()
        user = db.execute("SELECT id FROM users WHERE username = 'alice'").fetchone()[0]
        for n in range(3):
            db["ssh_keys"].insert({"user_id": user, "fingerprint": f"SHA256:{n}",
                                   "public_key": f"ssh-ed25519 AAAA k{n}", "created_at": "2024"})
    first = client.get("/api/v1/keys?per_page=2", headers=alice).get_json()
    assert len(first["items"]) == 2 and "page=2" in first["next"]
    second = client.get(first["next"], headers=alice).get_json()
    assert second["page"] == 2 and second["items"]
    assert {row["id"] for row in first["items"]}.isdisjoint(row["id"] for row in second["items"])
    assert client.get("/api/v1/keys?per_page=0", headers=alice).status_code == 422


@pytest.mark.lxd
def test_a_retried_create_with_the_same_idempotency_key_makes_one_instance(app, client, alice,
                                                                           busybox_image):
    body = {"name": "web", "profile": "small", "image": "busybox", "keys": KEY}
    headers = {**alice, "Idempotency-Key": "make-web-1"}
    first = client.post("/api/v1/instances", headers=headers, json=body)
    assert first.status_code == 202, first.get_json()
    again = client.post("/api/v1/instances", headers=headers, json=body)
    assert (again.status_code, again.get_json()["id"]) == (202, first.get_json()["id"])
    assert again.headers["Location"] == first.headers["Location"] == first.get_json()["url"]
    other = client.post("/api/v1/instances", headers=headers, json={**body, "name": "db"})
    assert other.status_code == 409 and "another request" in other.get_json()["error"]
    with app.app_context():
        assert get_db()["instances"].count == 1
    progress = client.get(first.get_json()["progress_url"], headers=alice).get_json()
    assert progress["status"] == "queued" and progress["events"]


@pytest.mark.lxd
def test_a_profile_save_needs_the_etag_it_read(tmp_path, make_user):
    app = make_app(tmp_path, own_profiles=True)
    client = app.test_client()
    with app.app_context():
        from app import accounts
        accounts.create_user("boss", "correct horse battery", "admin")
    headers = api_token(app, "boss", "admin")
    read = client.get("/api/v1/admin/profiles/burst", headers=headers)
    etag, text = read.headers["ETag"], read.get_json()["text"]
    changed = text.replace("description:", "description: Changed.", 1)
    assert client.put("/api/v1/admin/profiles/burst", headers=headers,
                      json={"text": changed}).status_code == 428
    stale = client.put("/api/v1/admin/profiles/burst", headers={**headers, "If-Match": '"stale"'},
                       json={"text": changed})
    assert stale.status_code == 412
    review = client.post("/api/v1/admin/profiles/burst/review", headers=headers,
                         json={"text": changed}).get_json()
    assert review["changes"] == [] or review["problems"] == []
    saved = client.put("/api/v1/admin/profiles/burst", headers={**headers, "If-Match": etag},
                       json={"text": changed})
    assert saved.status_code == 200 and saved.headers["ETag"] != etag
    again = client.put("/api/v1/admin/profiles/burst", headers={**headers, "If-Match": etag},
                       json={"text": text})
    assert again.status_code == 412  # the second writer read the old version


def test_the_openapi_document_is_the_pinned_one(app, client):
    """A change to the API changes this document. If it is deliberate and
    keeps every existing client working (only additions), regenerate the
    pinned copy with bin/openapi and commit it. Removing or renaming anything is a
    breaking change: it belongs in /api/v2."""
    served = client.get("/api/v1/openapi.json").get_json()
    assert served["openapi"] == "3.1.0"
    assert served == json.loads(PINNED.read_text()), test_the_openapi_document_is_the_pinned_one.__doc__


def test_the_docs_page_loads_only_warrens_own_files(client):
    page = client.get("/api/v1/docs")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "swagger-ui-bundle.js" in html
    assert "http://" not in html and "https://" not in html
    for src in ("/static/vendor/swagger-ui/swagger-ui-bundle.js",
                "/static/vendor/swagger-ui/swagger-ui.css", "/static/api-docs.js"):
        assert client.get(src).status_code == 200, src
    assert "script-src" not in page.headers["Content-Security-Policy"]  # default-src 'self' holds


def test_tokens_are_made_and_revoked_in_the_web_ui(app, client, make_user):
    make_user("alice")
    Auth(client).login("alice")
    token = csrf_token(client.get("/tokens").get_data(as_text=True))
    page = client.post("/tokens", data={"csrf_token": token, "name": "laptop", "scope": "member",
                                        "days": "30"})
    assert page.status_code == 200
    secret = next(word for word in page.get_data(as_text=True).replace("<", " ").replace(">", " ")
                  .split() if word.startswith("wrn_") and len(word) > 20)
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    assert secret not in client.get("/tokens").get_data(as_text=True)  # shown once
    with app.app_context():
        token_id = get_db().execute("SELECT id FROM api_tokens").fetchone()[0]
    token = csrf_token(client.get("/tokens").get_data(as_text=True))
    assert client.post(f"/tokens/{token_id}/revoke", data={"csrf_token": token}).status_code == 303
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


PUBLIC = "198.51.100.1"  # a documentation address: rows only, nothing listens on it


@pytest.fixture
def ready(app, alice):
    """Ids of alice's two ready instances (rows only, no LXD behind them)."""
    with app.app_context():
        db = get_db()
        user = db.execute("SELECT id FROM users WHERE username = 'alice'").fetchone()[0]
        return [instance_row(db, user, name, "ready", f"10.95.0.{n}", f"{name}.alice.vm.example.test")
                for n, name in ((5, "web"), (6, "db"))]


def test_backups_are_listed_in_every_state_and_admins_see_the_overview(app, client, alice, ready,
                                                                       make_user):
    headers = api_token(app, "alice")
    with app.app_context():
        db = get_db()
        user = db.execute("SELECT id FROM users WHERE username = 'alice'").fetchone()[0]
        for state, size in (("done", 2048), ("failed", None)):
            db["backups"].insert({"instance_id": ready[0], "user_id": user, "reason": "schedule",
                                  "state": state, "size": size, "created_at": "2026-01-01T00:00:00+00:00",
                                  "finished_at": "2026-01-01T00:01:00+00:00",
                                  "sha256": "ab" * 32 if size else None,
                                  "error": None if size else "the disk is full"})
    queued = client.post(f"/api/v1/instances/{ready[0]}/backups", headers=headers)
    assert queued.status_code == 202 and queued.headers["Location"] == queued.get_json()["progress_url"]
    listed = client.get(queued.get_json()["url"], headers=headers).get_json()["items"]
    assert [(row["state"], row["size"], row["error"]) for row in listed] == [
        ("queued", None, None), ("failed", None, "the disk is full"), ("done", 2048, None)]
    assert listed[2]["sha256"] == "ab" * 32 and listed[2]["age"].endswith(" d")
    assert client.post(f"/api/v1/instances/{ready[0]}/backups", headers=headers).get_json()[
        "backup_id"] == listed[0]["id"]  # one waiting at a time
    failed = client.post(f"/api/v1/instances/{ready[0]}/backups/{listed[1]['id']}/restore",
                         headers=headers, json={"confirm": True})
    assert failed.status_code == 404  # only a complete backup can be restored
    elsewhere = client.post(f"/api/v1/instances/{ready[1]}/backups/{listed[2]['id']}/restore",
                            headers=headers, json={"confirm": True})
    assert elsewhere.status_code == 404  # another instance's backup
    assert client.get("/api/v1/admin/backups", headers=headers).status_code == 404

    make_user("boss", role="admin")
    boss = api_token(app, "boss", scope="admin")
    overview = client.get("/api/v1/admin/backups", headers=boss).get_json()["items"]
    assert [(row["member"], row["name"], row["deleted"], row["kept"], row["pending"])
            for row in overview] == [("alice", "web", False, 1, True)]
    assert overview[0]["last_good"]["size"] == 2048  # and the failure after it:
    assert overview[0]["failure"]["error"] == "the disk is full"
    assert client.post("/api/v1/admin/backups/999/restore-deleted", headers=boss).status_code == 404
    assert changes_via_token(app, "instance.backup") != []


def changes_via_token(app, action: str) -> list:
    with app.app_context():
        return [row["via"] for row in get_db()["audit"].rows_where("action = ?", [action])]


def test_forwards_are_listed_added_and_removed_with_every_field_error_at_once(app, client, alice,
                                                                              ready):
    app.config["WARREN"] = Settings(app.config["WARREN"], forward_address=PUBLIC,
                                    forward_ports=PortRange(20000, 20009))
    url = f"/api/v1/instances/{ready[0]}/forwards"
    bad = client.post(url, headers=alice, json={"protocol": "icmp", "instance_port": 0,
                                                "public_port": 80})
    assert bad.status_code == 422
    assert set(bad.get_json()["fields"]) == {"protocol", "instance_port", "public_port"}
    made = client.post(url, headers=alice, json={"instance_port": 6667})
    assert made.status_code == 201, made.get_json()
    row = made.get_json()
    assert (row["protocol"], row["public_port"], row["instance_port"], row["address"]) == \
        ("tcp", 20000, 6667, PUBLIC)
    assert [item["id"] for item in client.get(url, headers=alice).get_json()["items"]] == [row["id"]]
    assert client.get(f"/api/v1/instances/{ready[1]}/forwards", headers=alice).get_json()["items"] == []
    assert client.delete(f"{url}/{row['id']}", headers=alice).status_code == 200
    assert client.get(url, headers=alice).get_json()["items"] == []
    assert client.delete(f"{url}/{row['id']}", headers=alice).status_code == 409  # gone already
    assert changes_via_token(app, "forward.add") == changes_via_token(app, "forward.remove") != [None]


def test_websites_are_published_changed_and_taken_down(app, client, alice, ready):
    app.config["WARREN"] = Settings(app.config["WARREN"], ingress_address=PUBLIC)
    url = f"/api/v1/instances/{ready[0]}/site"
    assert client.get(url, headers=alice).status_code == 404  # not published
    bad = client.put(url, headers=alice, json={"mode": "proxy", "port": 70000})
    assert bad.status_code == 422 and set(bad.get_json()["fields"]) == {"mode", "port"}
    site = client.put(url, headers=alice, json={"port": 8080}).get_json()
    assert (site["mode"], site["port"], site["url"]) == \
        ("terminate", 8080, "https://web.alice.vm.example.test/")
    changed = client.put(url, headers=alice, json={"mode": "passthrough"}).get_json()
    assert (changed["mode"], changed["port"], changed["certificate"]) == ("passthrough", 443, None)
    assert client.get(url, headers=alice).get_json()["mode"] == "passthrough"
    assert client.delete(url, headers=alice).status_code == 200
    assert client.get(url, headers=alice).status_code == 404
    assert client.delete(url, headers=alice).status_code == 409


def test_dns_records_are_listed_added_and_removed_with_every_field_error_at_once(app, client,
                                                                                 alice):
    bad = client.post("/api/v1/records", headers=alice,
                      json={"name": "no spaces", "rtype": "A", "value": "192.0.2.1", "ttl": 5})
    assert bad.status_code == 422 and set(bad.get_json()["fields"]) == {"name", "rtype", "ttl"}
    made = client.post("/api/v1/records", headers=alice,
                       json={"name": "blog", "rtype": "cname", "value": "web.example.org"})
    assert made.status_code == 201, made.get_json()
    row = made.get_json()
    assert (row["fqdn"], row["rtype"], row["value"]) == \
        (f"blog.alice.{app.config['WARREN'].dns_zone}", "CNAME", "web.example.org.")
    assert [item["id"] for item in client.get("/api/v1/records", headers=alice).get_json()["items"]] \
        == [row["id"]]
    assert client.delete(f"/api/v1/records/{row['id']}", headers=alice).status_code == 200
    assert client.delete(f"/api/v1/records/{row['id']}", headers=alice).status_code == 404
    assert changes_via_token(app, "dns.record.add") != [None]


def test_custom_domains_show_their_proof_move_and_go(app, client, alice, ready):
    # Nothing answers on this local port: the first look finds no proof (and
    # no lookup leaves the machine).
    app.config["WARREN"] = Settings(app.config["WARREN"], public_resolvers=(f"127.0.0.1:{free_port()}",),
                                    domain_lookup_seconds=1)
    bad = client.post("/api/v1/domains", headers=alice, json={"hostname": "web.alice.vm.example.test",
                                                              "instance": 999})
    assert bad.status_code == 422 and set(bad.get_json()["fields"]) == {"hostname", "instance"}
    made = client.post("/api/v1/domains", headers=alice,
                       json={"hostname": "WWW.Example.org", "instance": ready[0]})
    assert made.status_code == 201, made.get_json()
    domain = made.get_json()
    assert (domain["hostname"], domain["state"], domain["instance_name"]) == \
        ("www.example.org", "pending", "web")
    assert domain["txt_line"].startswith("_warren-challenge.www.example.org. 300 IN TXT")
    assert domain["cname_line"] == "www.example.org. 300 IN CNAME web.alice.vm.example.test."
    url = f"/api/v1/domains/{domain['id']}"
    assert client.get(url, headers=alice).get_json()["txt_value"] == domain["txt_value"]
    assert client.post(f"{url}/check", headers=alice).status_code == 409  # looked at just now
    moved = client.post(f"{url}/move", headers=alice, json={"instance": ready[1]})
    assert moved.status_code == 200 and moved.get_json()["instance_name"] == "db"
    assert [row["hostname"] for row in client.get("/api/v1/domains", headers=alice)
            .get_json()["items"]] == ["www.example.org"]
    assert client.delete(url, headers=alice).status_code == 200
    assert client.get(url, headers=alice).status_code == 404


class Snapshotting:
    """The module's Warren with its worker, and one member's ready busybox instance."""


@pytest.fixture(scope="module")
def snapshotting(tmp_path_factory, settings, busybox_image):
    folder = tmp_path_factory.mktemp("api-snapshots")
    env = Snapshotting()
    env.app = make_app(folder, backup_dir=str(folder / "backups"))
    env.client, env.username = env.app.test_client(), f"a{uuid.uuid4().hex[:8]}"
    with env.app.app_context():
        accounts.create_user(env.username, PASSWORD)
    env.headers = api_token(env.app, env.username)
    worker = Worker(env.app).start()
    try:
        made = env.client.post("/api/v1/instances", headers=env.headers, json={
            "name": "web", "profile": "small", "image": "busybox", "keys": KEY})
        assert made.status_code == 202, made.get_json()
        env.id, progress = made.get_json()["id"], made.get_json()["progress_url"]
        seen = {}

        def settled():
            seen.update(env.client.get(progress, headers=env.headers).get_json())
            return seen["status"] in ("ready", "failed")
        wait_until(settled, timeout=180, message="web settled")  # (LXD creates one at a time)
        assert seen["status"] == "ready", seen
        with env.app.app_context():
            env.lxd_name = get_db()["instances"].get(env.id)["lxd_name"]
        yield env
    finally:
        worker.stop()
        with env.app.app_context():
            for row in get_db()["instances"].rows:
                dns.remove_name(dns.zone_from_settings(settings), row["fqdn"],
                                projects.dns_owner(env.username))
        lxd.delete_project(lxd.backend(settings), project_name(env.username))
        projects.forget_applied(project_name(env.username))


def settle(env, url: str) -> dict | None:
    """The snapshot at url once Warren has done what was asked of it (None: gone)."""
    answer = {}

    def done():
        response = env.client.get(url, headers=env.headers)
        answer["row"] = response.get_json() if response.status_code == 200 else None
        return response.status_code == 404 or answer["row"]["action"] is None
    wait_until(done, timeout=60, message=f"{url} settled")
    return answer["row"]


@pytest.mark.slow
def test_snapshots_are_taken_restored_only_when_confirmed_and_deleted(snapshotting, settings):
    env = snapshotting
    base = f"/api/v1/instances/{env.id}/snapshots"
    instance = lxd.get_instance(lxd.backend(settings).client(project=project_name(env.username)),
                                env.lxd_name)
    run_in(instance, "sh", "-c", "echo kept > /root/precious && sync")
    taken = env.client.post(base, headers=env.headers, json={"name": "before"})
    assert taken.status_code == 202 and taken.headers["Location"] == taken.get_json()["url"]
    assert settle(env, taken.get_json()["url"])["manual"] is True
    run_in(instance, "rm", "/root/precious")
    automatic = env.client.post(base, headers=env.headers, json={}).get_json()
    assert automatic["name"].startswith("snap-")
    settle(env, automatic["url"])
    bad = env.client.post(base, headers=env.headers, json={"name": "before"})
    assert bad.status_code == 422 and "already" in bad.get_json()["fields"]["name"][0]
    first = env.client.get(f"{base}?per_page=1", headers=env.headers).get_json()
    second = env.client.get(first["next"], headers=env.headers).get_json()
    assert [row["name"] for row in first["items"] + second["items"]] == ["before", automatic["name"]]

    warnings = env.client.get(f"{base}/before", headers=env.headers).get_json()["restore_warnings"]
    assert "is running: it is shut down" in warnings[1] and automatic["name"] in warnings[2]
    refused = env.client.post(f"{base}/before/restore", headers=env.headers, json={})
    assert refused.status_code == 422
    said = refused.get_json()["fields"]["confirm"][0]
    assert all(warning in said for warning in warnings)  # what the web page says, all of it
    started = time.monotonic()
    restoring = env.client.post(f"{base}/before/restore", headers=env.headers, json={"confirm": True})
    assert restoring.status_code == 202 and restoring.get_json()["warnings"] == warnings
    settle(env, restoring.get_json()["url"])
    print(f"restore of a running busybox through the API: {time.monotonic() - started:.1f} s")
    instance = lxd.get_instance(lxd.backend(settings).client(project=project_name(env.username)),
                                env.lxd_name)
    assert instance.status == "Running" and run_in(instance, "cat", "/root/precious") == "kept"

    for name in ("before", automatic["name"]):
        deleting = env.client.delete(f"{base}/{name}", headers=env.headers)
        assert deleting.status_code == 202
        assert settle(env, deleting.get_json()["url"]) is None
    assert env.client.get(base, headers=env.headers).get_json()["items"] == []
    with env.app.app_context():
        actions = [(row["action"], bool(row["via"])) for row in get_db()["audit"].rows_where(
            "action LIKE 'snapshot.%' AND result = 'ok'", order_by="id")]
    assert actions == [("snapshot.take", True)] * 2 + [("snapshot.restore", True)] + \
        [("snapshot.delete", True)] * 2


@pytest.mark.slow
def test_a_backup_is_made_and_restored_only_when_confirmed(snapshotting, settings):
    env = snapshotting
    base = f"/api/v1/instances/{env.id}/backups"
    started = time.monotonic()
    queued = env.client.post(base, headers=env.headers)
    assert queued.status_code == 202, queued.get_json()
    backup_id = queued.get_json()["backup_id"]
    made = {}

    def settled():
        rows = env.client.get(queued.get_json()["url"], headers=env.headers).get_json()["items"]
        made.update(next(row for row in rows if row["id"] == backup_id))
        return made["state"] in ("done", "failed")
    wait_until(settled, timeout=60, message="the backup made")
    assert made["state"] == "done" and made["size"] > 0 and len(made["sha256"]) == 64, made
    print(f"backup of a busybox through the API: {time.monotonic() - started:.1f} s")

    url = f"{base}/{backup_id}/restore"
    refused = env.client.post(url, headers=env.headers, json={})
    assert refused.status_code == 422
    said = refused.get_json()["fields"]["confirm"][0]
    assert "will be lost" in said and "It is running now" in said, said
    assert env.client.get(f"/api/v1/instances/{env.id}/progress",
                          headers=env.headers).get_json()["status"] == "ready"  # nothing queued
    started = time.monotonic()
    restoring = env.client.post(url, headers=env.headers, json={"confirm": True})
    assert restoring.status_code == 202, restoring.get_json()
    progress = {}

    def restored():
        progress.update(env.client.get(restoring.get_json()["progress_url"],
                                       headers=env.headers).get_json())
        return progress["status"] != "restoring"
    wait_until(restored, timeout=60, message="the restore done")
    assert progress["status"] == "ready" and any(
        event["message"].startswith("Restored from") for event in progress["events"]), \
        progress["events"][-3:]
    print(f"restore of a running busybox from a backup through the API: "
          f"{time.monotonic() - started:.1f} s")
    with env.app.app_context():
        actions = [row["action"] for row in get_db()["audit"].rows_where(
            "action IN ('instance.backup', 'instance.restore') AND result = 'ok' AND via IS NOT NULL")]
    assert actions == ["instance.backup", "instance.restore"]
