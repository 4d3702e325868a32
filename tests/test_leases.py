"""Leases of burst instances, driven by a controllable clock, against the
real LXD and named: warning, stop at expiry, renewal within the profile's
limit, deletion after the grace period; every step recorded."""
from app import leases
from app.store import get_db
from support import advance, dig_status, launch, member_instance, post_action, wait_event, wait_gone


def check(app):
    """What the worker's periodic pass does with leases."""
    with app.app_context():
        actions = leases.check(get_db())
    return actions


def test_lease_lifecycle(app, settings, worker, members, fixed_clock):
    alice = members()
    location, progress = launch(alice, name="build", profile="burst")
    assert check(app) == []
    advance(fixed_clock, hours=49)  # 23 hours left: inside the 24-hour warning
    assert check(app) == [f"lease warning: {progress['fqdn']}"]
    assert check(app) == []  # warned once
    assert "ends soon" in alice.get("/").get_data(as_text=True)
    advance(fixed_clock, hours=24)  # past the end: stopped, not deleted
    assert check(app) == [f"lease expired: stopping {progress['fqdn']}"]
    wait_event(alice, location, "Stop done.")
    assert member_instance(settings, alice, "build").status == "Stopped"
    assert "expired: stopped" in alice.get("/").get_data(as_text=True)

    assert post_action(alice, location, "renew").status_code == 303  # renewal 1 of 2
    wait_event(alice, location, "Start done.")
    assert member_instance(settings, alice, "build").status == "Running"
    assert post_action(alice, location, "renew").status_code == 303  # renewal 2 of 2
    refused = post_action(alice, location, "renew")
    assert refused.status_code == 409
    assert "renewed 2 times already; the burst profile allows 2" in refused.get_data(as_text=True)

    advance(fixed_clock, hours=72 + 24 + 1)  # past the end and the grace period
    check(app)
    wait_gone(alice, location)
    assert member_instance(settings, alice, "build") is None
    assert dig_status(settings, progress["fqdn"]) == "NXDOMAIN"


def test_lease_events_are_recorded(app, worker, members, fixed_clock):
    alice = members()
    location, _ = launch(alice, name="tmp", profile="burst")
    advance(fixed_clock, hours=50)
    check(app)
    post_action(alice, location, "renew")
    messages = [event["message"] for event in alice.get(f"{location}/progress").get_json()["events"]]
    assert any(message.startswith("Lease ends at") for message in messages)
    assert any(message.startswith("Lease renewed until") and "(renewal 1 of 2)" in message
               for message in messages)


def test_instances_without_a_lease_cannot_be_renewed(worker, members):
    alice = members()
    location, _ = launch(alice)
    response = post_action(alice, location, "renew")
    assert response.status_code == 409 and "has no lease to renew" in response.get_data(as_text=True)


def test_an_instance_stopped_at_lease_expiry_starts_only_after_a_renewal(app, settings, worker,
                                                                          members, fixed_clock):
    alice = members()
    location, progress = launch(alice, name="exam", profile="burst")
    advance(fixed_clock, hours=73)
    assert check(app) == [f"lease expired: stopping {progress['fqdn']}"]
    wait_event(alice, location, "Stop done.")
    for action in ("start", "restart"):
        refused = post_action(alice, location, action)
        assert refused.status_code == 409
        assert "lease of exam has expired; renew it" in refused.get_data(as_text=True)
    assert member_instance(settings, alice, "exam").status == "Stopped"
    assert post_action(alice, location, "renew").status_code == 303
    wait_event(alice, location, "Start done.")
    assert member_instance(settings, alice, "exam").status == "Running"
    assert post_action(alice, location, "restart").status_code == 303  # renewed: allowed again
