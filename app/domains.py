"""Custom domains: a member's own host name (www.their-domain.org) attached
to one of their instances, served by the ingress once a DNS record the
member publishes proves the name is theirs (app/domain_proofs.py).

A domain is pending until its proof is first found, then verified; the
worker's pass looks again every WARREN_DOMAIN_RECHECK_MINUTES, and a
domain whose proof has not been seen for WARREN_DOMAIN_GRACE_HOURS lapses
until it is found again. Unproven names wait longer after each miss
(5 minutes, doubling, up to a day), so Warren never hammers a member's DNS;
the member's "check now" looks at once (at most every CHECK_NOW_SECONDS).

A host name belongs to one member (a UNIQUE column), on one of their own
instances (a trigger); the member may move it between their instances.
Names in Warren's own zone, Warren's own host names, public suffixes, IP
literals and wildcards are refused, and the share tier caps the count.

routable() is what the ingress serves. Every change to it that this module
makes (a domain verified, lapsed, moved or removed) calls the functions in
ROUTE_HOOKS after its transaction: that is where the ingress's route and
certificate sync is triggered. Instance status changes (an instance no
longer ready) change routable() too, outside this module.
"""
import logging
import secrets
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Callable

from . import audit, clock, hostnames, quotas
from .dns import public as dnslookup
from .config import current_settings
from .domain_proofs import Finding, instructions, look
from .errors import ConfigError, Conflict, NotFound, ValidationError
from .passes import each_guarded
from .statuses import READY, RELEASED, sql_list
from .store import get_db, transaction
from .units import shown

log = logging.getLogger(__name__)
PENDING, VERIFIED, LAPSED = "pending", "verified", "lapsed"
FIRST_RETRY = timedelta(minutes=5)  # an unproven domain is looked at again after this,
LONGEST_RETRY = timedelta(hours=24)  # doubling with each miss up to this
CHECK_NOW_SECONDS = 10  # a member's "check now" looks at most this often per domain
BATCH = 50  # due domains one pass looks at (the oldest due first)
LOOKUP_THREADS = 8  # lookups one pass runs at once
# Warren's own host names besides its zone: settings naming one.
OWN_NAME_SETTINGS = ("ssh_public_name", "public_hostname")
# Called with the database and the ids of the instances whose host names
# changed, after a change of routable(); the ingress registers its sync.
ROUTE_HOOKS: list[Callable] = []
TAKEN = "{} is already claimed by another member of this co-op; if the name is yours, ask an admin."


def stamp(moment: datetime) -> str:
    """A moment as the domains table keeps it."""
    return moment.isoformat(timespec="seconds")


def routable(db) -> list[tuple[str, int]]:
    """(host name, instance id) of every domain the ingress may serve:
    verified, on a ready instance of an active member."""
    return [tuple(row) for row in db.execute(
        "SELECT d.hostname, d.instance_id FROM domains d JOIN instances i ON i.id = d.instance_id "
        "JOIN users u ON u.id = d.user_id WHERE d.state = ? AND i.status = ? AND u.disabled = 0 "
        "AND u.deleting = 0 ORDER BY d.hostname", [VERIFIED, READY])]


def routes_changed(db, instance_ids) -> None:
    """Tell the ingress (ROUTE_HOOKS) that routable() changed for these
    instances; a failing hook is logged, and the others still run."""
    for hook in ROUTE_HOOKS:
        try:
            hook(db, sorted(set(instance_ids)))
        except Exception:  # the ingress's own pass repairs what a failed sync missed
            log.exception("the route hook %r failed", hook)


def _with_instances(where: str, values: list) -> list[dict]:
    rows = get_db().query(
        "SELECT d.*, i.name AS instance_name, i.fqdn AS instance_fqdn, u.username "
        "FROM domains d JOIN instances i ON i.id = d.instance_id JOIN users u ON u.id = d.user_id "
        f"WHERE {where} ORDER BY d.hostname", values)
    return [{**row, **instructions(row, row["instance_fqdn"])} for row in rows]


def of_member(user: dict) -> list[dict]:
    """The member's domains with their instance and what to publish."""
    return _with_instances("d.user_id = ?", [user["id"]])


def of_instance(user: dict, instance_id: int) -> list[dict]:
    """The member's domains on one of their instances."""
    return _with_instances("d.user_id = ? AND d.instance_id = ?", [user["id"], instance_id])


def everything() -> list[dict]:
    """Every member's domains (for admins)."""
    return _with_instances("1", [])


def get_domain(user: dict, domain_id) -> dict:
    """One of the member's domains; NotFound for anyone else's."""
    rows = _with_instances("d.id = ? AND d.user_id = ?", [domain_id, user["id"]])
    if not rows:
        raise NotFound("No such domain.")
    return rows[0]


def ready_instances(user: dict) -> list[dict]:
    """The member's instances a domain may go to."""
    return list(get_db()["instances"].rows_where("user_id = ? AND status = ?", [user["id"], READY],
                                                 order_by="name"))


def _instance(user: dict, instance_id, errors: dict) -> dict | None:
    rows = [row for row in ready_instances(user) if str(row["id"]) == str(instance_id).strip()]
    if not rows:
        errors["instance"] = ["Choose one of your ready instances."]
        return None
    return rows[0]


def _own_names(settings) -> list[str]:
    return [name for name in (settings.get(key) or "" for key in OWN_NAME_SETTINGS)
            if name and not hostnames.problems(hostnames.normalised(name))]


def hostname_problems(db, settings, user: dict, hostname: str) -> list[str]:
    """Everything that keeps a member from claiming a (normalised) host name."""
    found = hostnames.problems(hostname)
    if found:
        return found
    if hostnames.inside(hostname, settings.dns_zone):
        return [f"{shown(hostname)} is inside Warren's own zone {settings.dns_zone}: your "
                "instances have their names there already."]
    for own in _own_names(settings):
        if hostnames.inside(hostname, own):
            return [f"{shown(hostname)} is Warren's own host name {own} (or below it)."]
    if hostnames.is_public_suffix(hostname):
        return [f"{shown(hostname)} is a public suffix: names are registered below it and "
                "nobody holds it as a whole. Give your own name, such as www.example.org."]
    holder = db.execute("SELECT user_id FROM domains WHERE hostname = ?", [hostname]).fetchone()
    if holder and holder[0] != user["id"]:
        return [TAKEN.format(hostname)]
    if holder:
        return [f"You have added {hostname} already; move it to another instance instead."]
    return []


def add(user: dict, hostname: str, instance_id) -> dict:
    """Claim a host name for one of the member's ready instances (pending
    until its proof is found: the first look happens at once)."""
    db, settings = get_db(), current_settings()
    hostname = hostnames.normalised(hostname)
    with audit.audited(db, user["username"], "domain.add", hostname or "-",
                       member=user["username"]) as note:
        errors: dict[str, list[str]] = {}
        instance = _instance(user, instance_id, errors)
        problems = hostname_problems(db, settings, user, hostname)
        if problems:
            errors["hostname"] = problems
        if errors:
            raise ValidationError(errors)
        note["detail"] = f"on {instance['fqdn']}"
        when = clock.now()
        with transaction(db):
            quotas.check_one_more(db, user, "domains")
            try:
                domain_id = db["domains"].insert({
                    "hostname": hostname, "user_id": user["id"], "instance_id": instance["id"],
                    "token": secrets.token_hex(16), "state": PENDING, "created_at": stamp(when),
                    "next_check_at": stamp(when)}).last_pk
            except sqlite3.IntegrityError as error:
                if "UNIQUE" in str(error):  # claimed meanwhile by another request
                    raise ValidationError({"hostname": [TAKEN.format(hostname)]}) from None
                raise ValidationError({"instance": [  # deleted meanwhile
                    "That instance is no longer yours to use; choose another."]}) from None
    try:
        check(db, settings, db["domains"].get(domain_id), user["username"])
    except ConfigError as error:  # no resolver to ask: the worker's pass looks later
        log.error("could not look up the proof of %s: %s", hostname, error)
    return get_domain(user, domain_id)


def check_now(user: dict, domain_id) -> dict:
    """Look for the proof of one of the member's domains at once; the row after."""
    domain = get_domain(user, domain_id)
    db = get_db()
    with audit.audited(db, user["username"], "domain.check", domain["hostname"],
                       member=user["username"]) as note:
        if domain["checked_at"]:
            waited = (clock.now() - datetime.fromisoformat(domain["checked_at"])).total_seconds()
            if waited < CHECK_NOW_SECONDS:
                raise Conflict(f"{domain['hostname']} was looked at {max(0, int(waited))} s ago; "
                               f"ask again in {CHECK_NOW_SECONDS} seconds.")
        check(db, current_settings(), domain, user["username"])
        domain = get_domain(user, domain_id)
        note["detail"] = f"{domain['state']}: {domain['result']}"
    return domain


def move(user: dict, domain_id, instance_id) -> dict:
    """Attach one of the member's domains to another of their ready instances."""
    domain = get_domain(user, domain_id)
    db = get_db()
    with audit.audited(db, user["username"], "domain.move", domain["hostname"],
                       member=user["username"]) as note:
        errors: dict[str, list[str]] = {}
        instance = _instance(user, instance_id, errors)
        if errors:
            raise ValidationError(errors)
        if instance["id"] == domain["instance_id"]:
            raise ValidationError({"instance": [f"{domain['hostname']} is on {instance['name']} "
                                                "already."]})
        note["detail"] = f"from {domain['instance_fqdn']} to {instance['fqdn']}"
        with transaction(db):
            db["domains"].update(domain["id"], {"instance_id": instance["id"]})
    if domain["state"] == VERIFIED:
        routes_changed(db, [domain["instance_id"], instance["id"]])
    return get_domain(user, domain_id)


def remove(user: dict, domain_id, actor: dict | None = None) -> dict:
    """Give up one of the member's domains (an admin may do it for them); the removed row."""
    domain = get_domain(user, domain_id)
    db = get_db()
    with audit.audited(db, (actor or user)["username"], "domain.remove", domain["hostname"],
                       member=user["username"], detail=f"was {domain['state']}"):
        with transaction(db):
            db.execute("DELETE FROM domains WHERE id = ?", [domain["id"]])
    if domain["state"] == VERIFIED:
        routes_changed(db, [domain["instance_id"]])
    return domain


def remove_any(actor: dict, domain_id) -> dict:
    """An admin removes any member's domain; the removed row."""
    db = get_db()
    row = db.execute("SELECT user_id FROM domains WHERE id = ?", [domain_id]).fetchone()
    if row is None:
        raise NotFound("No such domain.")
    return remove({"id": row[0], "username": _username(db, row[0])}, domain_id, actor)


def withdraw(db, instance: dict) -> None:
    """Before an instance goes away: its domains go with it."""
    with transaction(db):
        gone = list(db["domains"].rows_where("instance_id = ?", [instance["id"]]))
        for domain in gone:
            audit.record(db, audit.WORKER, "domain.remove", domain["hostname"],
                         member=_username(db, domain["user_id"]),
                         detail=f"was {domain['state']}; its instance {instance['fqdn']} is deleted")
        db.execute("DELETE FROM domains WHERE instance_id = ?", [instance["id"]])
    if any(domain["state"] == VERIFIED for domain in gone):
        routes_changed(db, [])  # sites.withdraw, next in the removal, syncs the proxy


def _username(db, user_id: int) -> str | None:
    row = db.execute("SELECT username FROM users WHERE id = ?", [user_id]).fetchone()
    return row[0] if row else None


def _targets(db, user_id: int) -> set[str]:
    """The names a member's CNAME proof may point to: their instances' names."""
    return {row[0].lower() for row in db.execute(
        f"SELECT fqdn FROM instances WHERE user_id = ? AND status NOT IN {sql_list(RELEASED)}",
        [user_id])}


def retry_after(misses: int) -> timedelta:
    """How long an unproven domain waits after `misses` looks in a row
    without its proof."""
    return min(FIRST_RETRY * 2 ** min(max(misses, 1) - 1, 20), LONGEST_RETRY)


def _next_state(domain: dict, finding: Finding, when: datetime, settings) -> dict:
    """The columns a look changes: state, proof, when to look next."""
    recheck = timedelta(minutes=settings.domain_recheck_minutes)
    changes = {"checked_at": stamp(when), "result": finding.note}
    if finding.proof:
        return {**changes, "state": VERIFIED, "proof": finding.proof, "seen_at": stamp(when),
                "misses": 0, "next_check_at": stamp(when + recheck)}
    misses = domain["misses"] + 1
    if domain["state"] != VERIFIED:
        return {**changes, "misses": misses, "next_check_at": stamp(when + retry_after(misses))}
    lapse_at = datetime.fromisoformat(domain["seen_at"]) + timedelta(hours=settings.domain_grace_hours)
    if when >= lapse_at:
        return {**changes, "state": LAPSED, "misses": 1,
                "next_check_at": stamp(when + retry_after(1))}
    return {**changes, "misses": misses, "next_check_at": stamp(min(when + recheck, lapse_at))}


def _apply(db, domain: dict, finding: Finding, when: datetime, settings, actor: str) -> str | None:
    """Write what a look found; a line when the state changed."""
    with transaction(db):
        rows = list(db["domains"].rows_where("id = ?", [domain["id"]]))
        if not rows:  # removed while it was looked up
            return None
        current = rows[0]
        changes = _next_state(current, finding, when, settings)
        db["domains"].update(current["id"], changes)
        state = changes.get("state", current["state"])
        if state == current["state"]:
            return None
        audit.record(db, actor, f"domain.{state}", current["hostname"],
                     member=_username(db, current["user_id"]), detail=finding.note)
    return f"{current['hostname']} {current['state']} -> {state}"


def check(db, settings, domain: dict, actor: str) -> str | None:
    """Look for one domain's proof now and write the outcome; a line when
    its state changed (the ingress is told)."""
    finding = look(dnslookup.from_settings(settings), domain, _targets(db, domain["user_id"]))
    changed = _apply(db, domain, finding, clock.now(), settings, actor)
    if changed:
        routes_changed(db, [domain["instance_id"]])
    return changed


def _look_guarded(resolvers, domain: dict, targets: set[str]) -> Finding | None:
    try:
        return look(resolvers, domain, targets)
    except ConfigError:
        raise  # no resolver at all: every other domain would fail the same way
    except Exception:  # one bad item must not stop the others
        log.exception("looking up the proof of %s failed", domain["hostname"])
        return None


def recheck(db, settings) -> list[str]:
    """The periodic pass: look again at the domains that are due (at most
    BATCH, LOOKUP_THREADS at a time, each bounded by the lookup timeout)
    and write each outcome in its own guard; a line per state change."""
    when = clock.now()
    due = list(db["domains"].rows_where("next_check_at <= ?", [stamp(when)],
                                        order_by="next_check_at", limit=BATCH))
    if not due:
        return []
    resolvers = dnslookup.from_settings(settings)
    targets = {domain["id"]: _targets(db, domain["user_id"]) for domain in due}
    with ThreadPoolExecutor(min(LOOKUP_THREADS, len(due)), thread_name_prefix="domains") as pool:
        findings = list(pool.map(lambda domain: _look_guarded(resolvers, domain, targets[domain["id"]]),
                                 due))
    looked = [(domain, finding) for domain, finding in zip(due, findings) if finding is not None]
    changed = [line for line in each_guarded(
        looked, lambda pair: f"domain {pair[0]['hostname']}",
        lambda pair: _apply(db, pair[0], pair[1], when, settings, audit.WORKER)) if line]
    if changed:
        routes_changed(db, [domain["instance_id"] for domain, _finding in looked])
    return changed
