"""The life of an instance row: every status Warren writes, and the groups
the services ask about. A leaf module: it imports nothing of Warren's."""

AWAITING_APPROVAL = "awaiting-approval"
QUEUED = "queued"
CREATING = "creating"
STARTING = "starting"
PUBLISHING = "publishing"
READY = "ready"
DELETING = "deleting"
FAILED = "failed"
DENIED = "denied"
DELETE_FAILED = "delete-failed"
RESTORING = "restoring"  # from a backup (app/restores.py)

# Provisioning steps, in order: a provision job resumes from any of them.
BUILDING = (QUEUED, CREATING, STARTING, PUBLISHING)
# The worker still has work to do.
BUSY = BUILDING + (DELETING, RESTORING)
# Requests that hold nothing: no quota, no address, no LXD instance.
RELEASED = (FAILED, DENIED)
# A request has settled (the status page stops following it).
SETTLED = (READY, FAILED, DELETE_FAILED, DENIED, AWAITING_APPROVAL)


def sql_list(constants: tuple[str, ...]) -> str:
    """A group of Warren's own constants (statuses, job kinds) as an SQL list
    literal, e.g. ('failed', 'denied'); never used for user input."""
    return "(" + ", ".join(f"'{constant}'" for constant in constants) + ")"
