"""Websites: the member's rules (fields, readiness, ownership), the routes
computed from them, and the certificate timing rules. The proxy and the
CA themselves are exercised end to end in tests/test_ingress.py."""
from datetime import datetime, timedelta, timezone

import pytest

from app import acme_client, certificates, ingress, sites
from app.config import Settings
from app.errors import Conflict, NotFound, ValidationError
from app.store import get_db
from conftest import make_app
from support import instance_row

PUBLIC = "198.51.100.1"


@pytest.fixture
def public(app):
    """The ingress proxy on (a public address that is not loopback); rows only."""
    app.config["WARREN"] = Settings(app.config["WARREN"], ingress_address=PUBLIC)
    return app


def test_every_field_error_at_once_and_nobody_publishes_anothers_instance(public, make_user):
    alice, bob = make_user("alice"), make_user("bob")
    with public.test_request_context():
        db = get_db()
        web = instance_row(db, alice["id"], "web", "ready", "10.88.0.5")
        with pytest.raises(ValidationError) as caught:
            sites.publish(alice, web, "proxy", "http")
        assert set(caught.value.errors) == {"mode", "port"}
        with pytest.raises(NotFound):
            sites.publish(bob, web, "terminate", "80")
        site = sites.publish(alice, web, "terminate", "")
        assert (site["mode"], site["port"], site["url"]) == ("terminate", 80, f"https://web.{alice['id']}.zone/")
        assert sites.publish(alice, web, "passthrough", "8080")["port"] == 443  # always 443
        assert db["sites"].count == 1  # a change, not a second site
        with pytest.raises(NotFound):
            sites.unpublish(bob, web)
        sites.unpublish(alice, web)
        with pytest.raises(Conflict, match="not published"):
            sites.unpublish(alice, web)
        assert db["jobs"].count_where("kind = 'ingress' AND state = 'pending'") == 1  # merged


def test_only_ready_instances_are_published_and_routed(public, make_user):
    alice = make_user("alice")
    with public.test_request_context():
        db = get_db()
        building = instance_row(db, alice["id"], "new", "creating", "10.88.0.7")
        with pytest.raises(Conflict, match="once it is ready"):
            sites.publish(alice, building, "terminate", "80")
        web = instance_row(db, alice["id"], "web", "ready", "10.88.0.5")
        sites.publish(alice, web, "terminate", "8080")
        db["instances"].update(web, {"status": "deleting"})
        assert ingress.desired_routes(db, public.config["WARREN"]) == []


def test_websites_are_off_without_a_public_address(app, make_user):
    alice = make_user("alice")
    with app.test_request_context():
        web = instance_row(get_db(), alice["id"], "web", "ready", "10.88.0.5")
        assert ingress.public_address(app.config["WARREN"]) is None  # ssh_address is 127.0.0.1
        with pytest.raises(Conflict, match="no public address"):
            sites.publish(alice, web, "terminate", "80")


def test_routes_follow_the_pairs_and_a_name_is_routed_once(app):
    settings = Settings(app.config["WARREN"], public_hostname="warren.example.org")
    web = {"id": 1, "ipv4": "10.88.0.5", "site_mode": "terminate", "site_port": 8080}
    box = {"id": 2, "ipv4": "10.88.0.6", "site_mode": "passthrough", "site_port": 443}
    found = ingress.routes([("Web.Alice.Zone.", web), ("box.bob.zone", box),
                            ("web.alice.zone", box), ("warren.example.org", box)], settings)
    assert found == [
        ingress.Route("warren.example.org", "terminate", "127.0.0.1", settings.listen_port, None),
        ingress.Route("web.alice.zone", "terminate", "10.88.0.5", 8080, 1),
        ingress.Route("box.bob.zone", "passthrough", "10.88.0.6", 443, 2)]


def test_retries_back_off_and_renewal_comes_before_expiry():
    assert [certificates.backoff(n) for n in (1, 2, 3)] == [timedelta(minutes=m) for m in (1, 2, 4)]
    assert certificates.backoff(30) == timedelta(hours=12)
    start = datetime(2030, 1, 1, tzinfo=timezone.utc)
    ninety = acme_client.renewal_time(start, start + timedelta(days=90), timedelta(days=30))
    assert ninety == start + timedelta(days=60)
    six = acme_client.renewal_time(start, start + timedelta(days=6), timedelta(days=30))
    assert six == start + timedelta(days=4)  # a third of the lifetime left


def test_served_through_the_ingress_cookies_are_secure_and_loopback_is_trusted(tmp_path):
    app = make_app(tmp_path, public_hostname="warren.example.org")
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SESSION_COOKIE_NAME"] == "__Host-warren_session"
    response = app.test_client().get("/login", headers={"X-Forwarded-Proto": "https",
                                                        "X-Forwarded-For": "203.0.113.9"},
                                     environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert "Secure" in response.headers.get("Set-Cookie", "")
    (tmp_path / "plain").mkdir()
    plain = make_app(tmp_path / "plain")
    assert plain.config["SESSION_COOKIE_SECURE"] is False
