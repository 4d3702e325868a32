"""Share changes: a member's tier and overrides, a tier's values, an
approved quota raise. Each is checked against the bounds and against what
the members' instances use, and applied to their LXD projects inside the
transaction that saves it, so a change LXD refuses is never saved.
"""
import json
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field

from . import accounts, audit, projects, quotas
from .config import current_settings
from .errors import BackendUnavailable, Conflict, ValidationError, WarrenError
from .profiles import current_profiles
from .statuses import RELEASED, sql_list
from .store import get_db, transaction

log = logging.getLogger(__name__)


class _Refused(Exception):
    """LXD refused a share change (carries its error out of the transaction)."""

    def __init__(self, error: WarrenError):
        super().__init__(str(error))
        self.error = error


def _fit_problems(db, user: dict, quota: quotas.Quota) -> list[str]:
    """Why a member's current instances would not fit a new quota."""
    used = quotas.usage(db, user["id"])
    problems = [f"{label}: uses {used_text}, the new allowance is {allowed}"
                for label, used_text, allowed in quotas.exceeded(quota, used)]
    if not quota.nesting:
        profiles = current_profiles()
        nested = [row["name"] for row in db["instances"].rows_where(
            f"user_id = ? AND status NOT IN {sql_list(RELEASED)}", [user["id"]])
            if profiles.get(row["profile"]) is not None and profiles[row["profile"]].nesting]
        if nested:
            problems.append(f"nesting: {', '.join(nested)} use(s) a nesting profile")
    return problems


@dataclass
class ShareChange:
    """Members whose share changes in one transaction, and how LXD took it."""
    members: list[str] = field(default_factory=list)  # whose LXD projects must follow
    projects: list[str] = field(default_factory=list)  # the LXD projects updated
    unreachable: str | None = None  # why LXD could not be asked; its next pass applies it


@contextmanager
def share_change(db):
    """A transaction for share changes (the block adds the members it
    changes to `members`), applied to those members' LXD projects before
    it commits. If LXD refuses, nothing is saved: the transaction rolls
    back, the projects get the old limits again, and the error gives LXD's
    reason. If LXD cannot be reached, the change is saved and the worker's
    next pass brings the projects in line."""
    change = ShareChange()
    try:
        with transaction(db):
            yield change
            if change.members:
                try:
                    change.projects = projects.sync_existing(current_settings(), db, change.members)
                except BackendUnavailable as error:
                    log.warning("LXD projects of %s follow later: %s", ", ".join(change.members), error)
                    change.unreachable = str(error)
                except WarrenError as error:
                    raise _Refused(error) from error  # rolls the transaction back
    except _Refused as refused:
        error = refused.error
        try:  # LXD may have taken part of it (the project, not a profile): put the old back
            projects.sync_existing(current_settings(), db, change.members)
        except WarrenError as again:
            log.warning("LXD projects of %s not put back now (the worker's next pass does): %s",
                        ", ".join(change.members), again)
        if isinstance(error, ValidationError):
            raise error from None  # a bad profile file, not LXD: nothing was saved either
        raise type(error)(f"LXD refused the new limits, so nothing was saved: {error}") from error


def change_share(db, username: str, tier: str, overrides: dict) -> quotas.Quota:
    """Inside the caller's share_change: give a member a tier and exactly
    these overrides. Refused, naming each bound or resource, if a value is
    out of bounds or their instances would not fit."""
    quotas.check_bounds(overrides)
    if tier not in quotas.tiers(db):
        raise ValidationError({"tier": [f"Choose one of {', '.join(quotas.tiers(db))}."]})
    user = accounts.find_user(username)
    candidate = {**user, "tier": tier, "quota_overrides": json.dumps(overrides)}
    quota = quotas.quota_for(db, candidate)
    problems = _fit_problems(db, user, quota)
    if problems:
        raise Conflict(f"{username}'s instances would not fit: " + "; ".join(problems)
                       + ". Lower their use first or choose more.")
    db["users"].update(user["id"], {"tier": tier,
                                    "quota_overrides": json.dumps(overrides, sort_keys=True)})
    return quota


def set_quota(actor: dict, username: str, tier: str,
              overrides: dict) -> tuple[quotas.Quota, ShareChange]:
    """Give a member a tier and exactly these overrides (others follow the
    tier). Refused, naming each resource, if their instances would not fit,
    and not saved if LXD refuses the new limits for their project."""
    db = get_db()
    accounts.find_user(username)
    with audit.audited(db, actor["username"], "account.quota", username, member=username,
                       detail=f"tier {tier}, overrides {json.dumps(overrides, sort_keys=True)}"):
        with share_change(db) as change:
            quota = change_share(db, username, tier, overrides)
            change.members.append(username)
    return quota, change


def set_tier(actor: dict, name: str, values: dict) -> tuple[quotas.Quota, ShareChange]:
    """Create a tier or change some of its values; refused, naming the
    members, if the instances of a member on the tier would not fit, and
    not saved if LXD refuses the new limits for any of their projects."""
    db = get_db()
    with audit.audited(db, actor["username"], "tier.set", name or "-",
                       detail=json.dumps(values, sort_keys=True, default=str)):
        with share_change(db) as change:
            quota = quotas.set_tier(db, name, values)
            over = []
            for user in list(db["users"].rows_where("tier = ? AND deleting = 0", [name],
                                                    order_by="username")):
                problems = _fit_problems(db, user, quotas.quota_for(db, user))
                if problems:
                    over.append(f"{user['username']} ({'; '.join(problems)})")
                change.members.append(user["username"])
            if over:
                raise Conflict("Instances would not fit: " + ", ".join(over) + ".")
    return quota, change
