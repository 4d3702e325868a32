"""The worker's periodic passes: each runs in its own guard, and inside
each, one bad item is logged and skipped while the others are acted on."""
import pytest

from app import passes, statuses
from app.errors import BackendUnavailable, DnsError
from app.store import get_db
from app.worker import PASSES, run_passes
from support import advance, dig_status, launch


def test_one_bad_item_is_skipped_and_the_rest_still_run():
    seen = []

    def work(item):
        if item == 2:
            raise DnsError("REFUSED")
        seen.append(item)
        return item * 10

    assert passes.each_guarded([1, 2, 3], str, work) == [10, 30]
    assert seen == [1, 3]


def test_an_unreachable_backend_ends_the_pass():
    def work(_item):
        raise BackendUnavailable("named is down")
    with pytest.raises(BackendUnavailable):
        passes.each_guarded([1, 2], str, work)


def test_a_name_bind_refuses_does_not_stop_another_members_lease(app, settings, worker, members,
                                                                 fixed_clock):
    poisoner, renter = members(), members()
    _, poisoned = launch(poisoner, name="ns")
    _, leased = launch(renter, name="exam", profile="burst")
    _, other = launch(renter, name="site")
    worker.stop()  # the test runs the passes itself, once
    with app.app_context():
        db = get_db()
        # A ready row whose name BIND's update policy refuses (the name server's own name),
        # and another whose record went missing: reconcile must publish the second.
        db.execute("UPDATE instances SET fqdn = ?, dns_state = 'pending' WHERE fqdn = ?",
                   [f"ns1.{settings.dns_zone}", poisoned["fqdn"]])
        db.execute("UPDATE instances SET dns_state = 'pending' WHERE fqdn = ?", [other["fqdn"]])
        from app import dns
        from app.projects import dns_owner
        dns.remove_name(dns.zone_from_settings(settings), other["fqdn"], dns_owner(renter.username))
        advance(fixed_clock, hours=73)  # the burst lease is over
        done = run_passes(db, settings)
        assert set(done) == {name for name, _ in PASSES}  # every pass ran to its end
        assert f"published {other['fqdn']}" in done["reconcile"]
        assert f"lease expired: stopping {leased['fqdn']}" in done["leases"]
        row = db.execute("SELECT lease_state FROM instances WHERE fqdn = ?", [leased["fqdn"]]).fetchone()
        assert row[0] == "expired"
        queued = db.execute("SELECT j.kind FROM jobs j JOIN instances i ON i.id = j.instance_id "
                            "WHERE i.fqdn = ? AND j.state = 'pending'", [leased["fqdn"]]).fetchall()
        assert queued == [("stop",)]
        assert db["instances"].count_where("status = ?", [statuses.READY]) == 3
    assert dig_status(settings, other["fqdn"]) == "NOERROR"
