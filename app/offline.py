"""An instance whose LXD cluster member is offline: why an action on it
waits, in the words its member reads. Jobs on it are held in the queue
(app/provisioning.py) until the member is back; nothing is refused or
reconciled away meanwhile."""
from . import lxd
from .errors import BackendError


def member_state(settings, name: str, cached: bool = False) -> str | None:
    """A cluster member's state as LXD lists it (Online, Evacuated,
    Offline, ...); None for a member LXD does not list. cached: LXD's list
    of a few seconds ago will do."""
    return next((member.status for member in lxd.backend(settings).members_now(cached)
                 if member.name == name), None)


def offline_reason(settings, instance: dict) -> str | None:
    """Why an action on this instance cannot run now: the cluster member it
    runs on is offline (LXD would wait for it, holding a worker thread).
    None on one server, when its member is there, or when LXD cannot be
    asked (the action then fails or succeeds on its own)."""
    if not instance.get("location"):
        return None
    try:
        state = member_state(settings, instance["location"], cached=True)
    except BackendError:
        return None
    if state == "Offline":
        return f"{instance['location']}, the cluster member {instance['name']} runs on, is offline"
    return None


def waiting_note(settings, instance: dict, action: str) -> str | None:
    """What the member is told of an action on this instance asked for while
    its cluster member is offline: it waits in the queue (None when the
    member is there)."""
    reason = offline_reason(settings, instance)
    return reason and (f"{reason}: the {action} is queued and runs by itself when "
                       f"{instance['location']} is back.")
