"""The approval queue: instance requests on profiles that need approval,
and members' requests for a larger quota. An admin approves, or denies
with a reason; the member sees the outcome on their requests page and on
the instance's page.

A waiting instance request already holds its name, quota and address (so
approving it can never overbook); a denial releases them.
"""
import json

from . import accounts, audit, jobs, members, quotas, shares
from .config import current_settings
from .errors import Conflict, NotFound, ValidationError
from .instances import record_event
from .statuses import AWAITING_APPROVAL, DENIED, QUEUED
from .store import get_db, now, transaction

MAX_REASON = 500
DECIDED = "This request was decided already."


def describe(row: dict) -> str:
    """A request in one line: the instance, or the quota values wanted."""
    if row["kind"] == "instance":
        return row.get("fqdn") or f"instance #{row['instance_id']}"
    wanted = json.loads(row["wanted"])
    return "quota: " + ", ".join(f"{key}={quotas.show_value(key, value)}"
                                 for key, value in sorted(wanted.items()))


def _rows(where: str, values: list, limit: int = -1) -> list[dict]:
    rows = get_db().query(
        "SELECT a.*, u.username, i.fqdn, i.profile, i.image, i.cpu, i.memory, i.disk "
        "FROM approvals a JOIN users u ON u.id = a.user_id "
        f"LEFT JOIN instances i ON i.id = a.instance_id WHERE {where} ORDER BY a.id DESC LIMIT ?",
        [*values, limit])
    return [{**row, "summary": describe(row)} for row in rows]


def one(approval_id: int) -> dict:
    """One request with its member and summary; NotFound when unknown."""
    rows = _rows("a.id = ?", [approval_id])
    if not rows:
        raise NotFound("No such request.")
    return rows[0]


def pending() -> list[dict]:
    """Requests waiting for an admin, oldest last."""
    return _rows("a.state = 'pending'", [])


def decided(limit: int = 50) -> list[dict]:
    """The most recent decisions."""
    return _rows("a.state != 'pending'", [], limit)


def of_member(user: dict) -> list[dict]:
    """A member's own requests and their outcomes."""
    return _rows("a.user_id = ?", [user["id"]])


def request_quota(user: dict, wanted_text: dict[str, str], reason: str) -> dict:
    """Ask the admins for a larger allowance (only the values given)."""
    db = get_db()
    with audit.audited(db, user["username"], "quota.request", user["username"],
                       member=user["username"], detail=reason or ""):
        wanted_text = {key: value.strip() for key, value in wanted_text.items() if value and value.strip()}
        errors = {}
        try:
            wanted = quotas.parse_overrides(wanted_text)
        except ValidationError as error:
            errors.update(error.errors)
            wanted = {}
        if not wanted_text:
            errors["form"] = ["Fill in at least one value you need more of."]
        if not (reason or "").strip():
            errors["reason"] = ["Say what you need it for; the admins decide on that."]
        elif len(reason) > MAX_REASON:
            errors["reason"] = [f"Use at most {MAX_REASON} characters."]
        if errors:
            raise ValidationError(errors)
        with transaction(db):
            if db["approvals"].count_where("user_id = ? AND kind = 'quota' AND state = 'pending'",
                                           [user["id"]]):
                raise Conflict("You already have a quota request waiting; wait for the decision.")
            approval_id = db["approvals"].insert({
                "user_id": user["id"], "kind": "quota", "wanted": json.dumps(wanted, sort_keys=True),
                "reason": reason.strip(), "created_at": now()}).last_pk
    return get_db()["approvals"].get(approval_id)


def decide(actor: dict, approval_id: int, approve: bool,
           reason: str) -> tuple[dict, shares.ShareChange]:
    """Approve or deny a waiting request (a denial needs a reason). A
    request is decided once: deciding it again changes nothing (Conflict).
    An approved quota takes effect, and reaches the member's LXD project,
    in the same transaction; if LXD refuses it the request stays waiting."""
    db = get_db()
    rows = _rows("a.id = ?", [approval_id])
    if not rows:
        raise NotFound("No such request.")
    row = rows[0]
    verdict = "approve" if approve else "deny"
    with audit.audited(db, actor["username"], f"{row['kind']}.{verdict}", row["summary"],
                       member=row["username"], detail=reason or ""):
        if row["state"] != "pending":
            raise Conflict(DECIDED)
        reason = (reason or "").strip()
        if not approve and not reason:
            raise ValidationError({"reason": ["Give the member a reason for the denial."]})
        if len(reason) > MAX_REASON:
            raise ValidationError({"reason": [f"Use at most {MAX_REASON} characters."]})
        user = accounts.get_user(row["user_id"])
        if approve and user["disabled"]:
            raise Conflict(f"{user['username']} is disabled; enable the account first.")
        with shares.share_change(db) as change:
            if db["approvals"].get(approval_id)["state"] != "pending":  # decided meanwhile
                raise Conflict(DECIDED)
            db["approvals"].update(approval_id, {
                "state": "approved" if approve else "denied", "decided_by": actor["username"],
                "decision": reason, "decided_at": now()})
            if row["kind"] == "quota" and approve:
                user = accounts.get_user(row["user_id"])  # as it is inside the transaction
                shares.change_share(db, user["username"], user["tier"],
                                     {**members.overrides_of(user), **json.loads(row["wanted"])})
                change.members.append(user["username"])
            elif row["kind"] == "instance":
                _decide_instance(db, row, actor, approve, reason)
    if approve and row["kind"] == "instance":
        jobs.wake_worker(current_settings())
    return db["approvals"].get(approval_id), change


def _decide_instance(db, row: dict, actor: dict, approve: bool, reason: str) -> None:
    instance = db["instances"].get(row["instance_id"])
    if instance["status"] != AWAITING_APPROVAL:
        raise Conflict(f"{instance['fqdn']} is {instance['status']}, no longer waiting.")
    by = f" by {actor['username']}" + (f": {reason}" if reason else ".")
    if approve:
        db["instances"].update(instance["id"], {"status": QUEUED, "updated_at": now()})
        record_event(db, instance["id"], "approved", "Approved" + by)
        jobs.enqueue(db, instance["id"], "provision")
    else:
        db["instances"].update(instance["id"], {"status": DENIED, "error": f"Denied{by}",
                                                "ipv4": None, "ipv6": None, "updated_at": now()})
        record_event(db, instance["id"], DENIED, "Denied" + by)
