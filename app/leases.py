"""Leases of temporary instances (profiles with lease_hours): a warning
ahead of the end, a stop at expiry, deletion after the grace period, and
renewal within the profile's limit. Every step is recorded as an event.
The worker checks leases on each reconcile pass; app.clock gives the time."""
from datetime import datetime, timedelta

from . import audit, clock, jobs
from .errors import Conflict
from .instances import get_instance, record_event
from .names import member_of
from .passes import each_guarded
from .profiles import current_profiles
from .statuses import DELETING, READY
from .store import get_db, now, transaction

WARNING = timedelta(hours=24)


def _end(row) -> datetime:
    return datetime.fromisoformat(row["lease_expires_at"])


def warning_due(row) -> bool:
    """Whether the dashboard should warn about this instance's lease."""
    return bool(row["lease_expires_at"]) and clock.now() >= _end(row) - WARNING


def check(db) -> list[str]:
    """Warn, stop and delete leased instances as their time comes (each
    instance in its own guard)."""
    actions, moment = [], clock.now()
    profiles = current_profiles()
    rows = list(db["instances"].rows_where("lease_expires_at IS NOT NULL AND status = ?", [READY]))
    each_guarded(rows, lambda row: f"the lease of {row['fqdn']}",
                 lambda row: _act(db, row, profiles.get(row["profile"]), moment, actions))
    return actions


def _act(db, row: dict, profile, moment: datetime, actions: list[str]) -> None:
    end = _end(row)
    grace = timedelta(hours=profile.lease_grace_hours if profile else 24)
    member = member_of(row["project"])
    with transaction(db):
        if moment >= end + grace:
            db["instances"].update(row["id"], {"status": DELETING, "updated_at": now()})
            record_event(db, row["id"], "lease", "Lease expired and the grace period is over: deleting.")
            jobs.cancel_power(db, row["id"])
            jobs.enqueue(db, row["id"], "delete")
            audit.record(db, audit.WORKER, "lease.delete", row["fqdn"], member=member,
                         detail="grace period over")
            actions.append(f"lease over: deleting {row['fqdn']}")
        elif moment >= end and row["lease_state"] != "expired":
            db["instances"].update(row["id"], {"lease_state": "expired", "updated_at": now()})
            record_event(db, row["id"], "lease", f"Lease expired: stopping. It is deleted at "
                         f"{(end + grace).isoformat(timespec='minutes')} unless renewed.")
            jobs.enqueue(db, row["id"], "stop")
            audit.record(db, audit.WORKER, "lease.stop", row["fqdn"], member=member,
                         detail="lease expired")
            actions.append(f"lease expired: stopping {row['fqdn']}")
        elif moment >= end - WARNING and row["lease_state"] == "active":
            db["instances"].update(row["id"], {"lease_state": "warned", "updated_at": now()})
            record_event(db, row["id"], "lease", f"Lease ends at {end.isoformat(timespec='minutes')}; "
                         "renew it to keep the instance.")
            actions.append(f"lease warning: {row['fqdn']}")


def renew(user: dict, instance_id) -> str:
    """Extend a lease by the profile's length from now, within its renewal
    limit; an expired (stopped) instance is started again."""
    row = get_instance(user, instance_id)
    profile = current_profiles().get(row["profile"])
    if not row["lease_expires_at"] or profile is None or not profile.lease_hours:
        raise Conflict(f"{row['name']} has no lease to renew.")
    if row["status"] != READY:
        raise Conflict(f"{row['name']} is {row['status']}; wait until it is ready.")
    if row["lease_renewals"] >= profile.lease_renewals:
        raise Conflict(f"{row['name']} was renewed {row['lease_renewals']} times already; the "
                       f"{profile.name} profile allows {profile.lease_renewals}.")
    end = (clock.now() + timedelta(hours=profile.lease_hours)).isoformat(timespec="seconds")
    db = get_db()
    with transaction(db):
        db["instances"].update(row["id"], {"lease_expires_at": end, "lease_state": "active",
                                           "lease_renewals": row["lease_renewals"] + 1,
                                           "updated_at": now()})
        record_event(db, row["id"], "lease", f"Lease renewed until {end[:16]} (renewal "
                     f"{row['lease_renewals'] + 1} of {profile.lease_renewals}).")
        if row["lease_state"] == "expired":
            jobs.enqueue(db, row["id"], "start")
        audit.record(db, user["username"], "lease.renew", row["fqdn"], member=user["username"],
                     detail=f"until {end}")
    return end
