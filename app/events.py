"""Events: a burst of team machines with a start and an end (a weekend's
competition of 35 teams with three machines each).

An admin creates the event with its teams, the machines each team gets
and its times; every error of the form comes at once and nothing is made
until it is right. Each team is an account of its own (role member), on a
tier made for the event (`ev-NAME`: exactly the team's machines), so the
event never eats into a member's own share, and each team sees only its
own machines, as any member does. A team gets a one-time link that sets the
team account's password.

The worker's pass (advance) moves each event along:
  scheduled -> building   build_hours before the start: every team's machines
                          are requested (already approved: the admin made the
                          event); the worker builds them in parallel
  building  -> ended      at the end: machines stopped, team accounts disabled
  ended     -> archiving  after grace_hours: a backup of every machine (keep=backup)
  archiving -> removing   once those backups are done or failed: machines,
                          names and routes removed (keep=none skips archiving)
  removing  -> removed    once no machine is left; with keep=none the team
                          accounts go too (with keep=backup they stay disabled,
                          since their backups belong to them)
"""
import dataclasses
import hashlib
import json
import logging
import re
import secrets
from datetime import datetime, timedelta, timezone

from . import (accounts, audit, backups, clock, instances, jobs, lxd, projects, quotas, sessions,
               sshkeys, statuses)
from .config import current_settings
from .errors import Conflict, NotFound, ValidationError, WarrenError
from .instances import NAME as MACHINE_NAME
from .names import project_name
from .passes import each_guarded
from .profiles import current_profiles
from .store import get_db, now, transaction

log = logging.getLogger(__name__)
EVENT_NAME = re.compile(r"[a-z][a-z0-9-]{0,18}[a-z0-9]")
TEAM_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,28}[a-z0-9])?")
MAX_TEAMS = 500
STATES = ("scheduled", "building", "ended", "archiving", "removing", "removed")
KEEP = ("backup", "none")
TIME_FORMAT = "%Y-%m-%d %H:%M"


def tier_name(event: str) -> str:
    return f"ev-{event}"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_time(text: str) -> datetime | None:
    """'YYYY-MM-DD HH:MM' (UTC) or ISO 8601; None when unreadable."""
    text = (text or "").strip()
    for parse in (lambda: datetime.strptime(text, TIME_FORMAT), lambda: datetime.fromisoformat(text)):
        try:
            moment = parse()
        except ValueError:
            continue
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return None


def parse_teams(text: str, event: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Teams from a count ("35": t01..t35) or one per line, `team` or
    `team,account` (a CSV of team names to account names); the account
    defaults to EVENT-TEAM. Returns (team, account) pairs and every problem."""
    text = (text or "").strip()
    if text.isdigit():
        count = int(text)
        if not 1 <= count <= MAX_TEAMS:
            return [], [f"Give from 1 to {MAX_TEAMS} teams."]
        width = max(2, len(str(count)))
        return [(f"t{number:0{width}d}", f"{event}-t{number:0{width}d}")
                for number in range(1, count + 1)], []
    pairs, problems, seen_teams, seen_accounts = [], [], set(), set()
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not lines:
        return [], ["Give a number of teams, or one team per line (team or team,account)."]
    if len(lines) > MAX_TEAMS:
        problems.append(f"At most {MAX_TEAMS} teams.")
    for number, line in enumerate(lines, 1):
        cells = [cell.strip().lower() for cell in line.split(",")]
        if len(cells) > 2:
            problems.append(f"line {number}: {line!r} has {len(cells)} fields; use team or team,account.")
            continue
        team, account = cells[0], (cells[1] if len(cells) == 2 and cells[1] else f"{event}-{cells[0]}")
        if not TEAM_NAME.fullmatch(team):
            problems.append(f"line {number}: {team!r} is not a valid team name (lower-case letters, "
                            "digits and hyphens, up to 30, not starting or ending with a hyphen).")
        elif team in seen_teams:
            problems.append(f"line {number}: the team {team} is listed twice.")
        elif account in seen_accounts:
            problems.append(f"line {number}: the account {account} is listed twice.")
        else:
            for problem in accounts.check_username(account):
                problems.append(f"line {number}: account {account}: {problem}")
        seen_teams.add(team)
        seen_accounts.add(account)
        pairs.append((team, account))
    return pairs, problems


def parse_machines(text: str) -> tuple[list[dict], list[str]]:
    """The machines every team gets, one per line: `name profile image`."""
    machines, problems, seen = [], [], set()
    profiles, installed = current_profiles(), instances.available_images()
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return [], ["List the machines each team gets, one per line: name profile image."]
    for number, line in enumerate(lines, 1):
        cells = line.split()
        if len(cells) != 3:
            problems.append(f"line {number}: {line!r}: use name profile image.")
            continue
        name, profile_name, image = cells
        profile = profiles.get(profile_name)
        if not MACHINE_NAME.fullmatch(name):
            problems.append(f"line {number}: {name!r} is not a valid machine name (a DNS label).")
        elif name in seen:
            problems.append(f"line {number}: the machine {name} is listed twice.")
        if profile is None:
            problems.append(f"line {number}: there is no profile {profile_name} (have: "
                            f"{', '.join(sorted(profiles))}).")
        elif image not in profile.images:
            problems.append(f"line {number}: the {profile_name} profile offers {', '.join(profile.images)}, "
                            f"not {image}.")
        elif image not in installed:
            problems.append(f"line {number}: the image {image} is not installed on this server.")
        elif reason := instances.unavailable(profile):
            problems.append(f"line {number}: {profile_name} is unavailable on this server: {reason}.")
        seen.add(name)
        machines.append({"name": name, "profile": profile_name, "image": image})
    return machines, problems


def event_quota(machines: list[dict]) -> quotas.Quota:
    """One team's allowance: exactly its machines (and a manual snapshot each)."""
    profiles = current_profiles()
    chosen = [profiles[machine["profile"]] for machine in machines]
    return quotas.Quota(
        instances=len(chosen), cpu=sum(p.limits.cpu for p in chosen),
        memory=sum(p.limits.memory for p in chosen), disk=sum(p.limits.disk for p in chosen),
        processes=sum(p.limits.processes for p in chosen), nesting=any(p.nesting for p in chosen),
        cpu_priority=min(10, max(p.limits.cpu_priority for p in chosen)), forwards=0, records=0,
        domains=0, snapshots=len(chosen))


def budget_problems(teams: int, quota: quotas.Quota) -> list[str]:
    """What the whole event would take beyond the host's budget for events."""
    settings = current_settings()
    problems = []
    wanted = teams * quota.instances
    if wanted > settings.event_max_instances:
        problems.append(f"{teams} teams x {quota.instances} machines = {wanted} instances, more than "
                        f"this host's event budget of {settings.event_max_instances} "
                        "(WARREN_EVENT_MAX_INSTANCES).")
    memory = lxd.host_resources(lxd.backend(settings).client())["memory"]
    if teams * quota.memory > memory * settings.event_memory_share / 100:
        total = quotas.show_value("memory", teams * quota.memory)
        problems.append(f"the machines' memory limits add up to {total}, more than "
                        f"{settings.event_memory_share}% of the host's "
                        f"{quotas.show_value('memory', memory)} (WARREN_EVENT_MEMORY_SHARE).")
    return problems


def create_event(actor: dict, name: str, teams_text: str, machines_text: str, starts: str,
                 ends: str, keys_text: str, *, title: str = "", build_hours: int = 12,
                 grace_hours: int = 24, keep: str = "backup") -> tuple[dict, dict[str, str]]:
    """Validate everything (every error at once), then make the event, its
    tier and its team accounts; returns the event and each team's one-time
    link token (shown once)."""
    db = get_db()
    name = (name or "").strip().lower()
    with audit.audited(db, actor["username"], "event.create", name or "-"):
        event, links = _create(db, actor, name, teams_text, machines_text, starts, ends, keys_text,
                               title, build_hours, grace_hours, keep)
    try:  # due already: the machines are requested now, not on the worker's next pass
        _advance_one(db, event)
    except WarrenError as error:
        log.warning("event %s: the build starts on the worker's next pass: %s", name, error)
    return get(event["id"]), links


def _create(db, actor, name, teams_text, machines_text, starts, ends, keys_text, title,
            build_hours, grace_hours, keep):
    errors: dict[str, list[str]] = {}
    if not EVENT_NAME.fullmatch(name) or "--" in name:
        errors["name"] = ["Use 2 to 20 lower-case letters, digits or hyphens, starting with a letter."]
    elif db["team_events"].count_where("name = ?", [name]):
        errors["name"] = [f"There is an event named {name} already."]
    teams, problems = parse_teams(teams_text, name or "event")
    if problems:
        errors["teams"] = problems
    machines, problems = parse_machines(machines_text)
    if problems:
        errors["machines"] = problems
    start, end = parse_time(starts), parse_time(ends)
    if start is None:
        errors["starts_at"] = [f"Give a time like {clock.now():{TIME_FORMAT}} (UTC)."]
    if end is None:
        errors["ends_at"] = [f"Give a time like {clock.now():{TIME_FORMAT}} (UTC)."]
    elif end <= clock.now():
        errors["ends_at"] = ["The end is in the past."]
    elif start is not None and end <= start:
        errors["ends_at"] = ["The end must come after the start."]
    if keep not in KEEP:
        errors["keep"] = [f"Choose one of {', '.join(KEEP)}."]
    for field, value, top in (("build_hours", build_hours, 24 * 14), ("grace_hours", grace_hours, 24 * 60)):
        if not isinstance(value, int) or not 0 <= value <= top:
            errors[field] = [f"Give a whole number of hours from 0 to {top}."]
    keys, problems = sshkeys.parse_keys(keys_text)
    if not keys and not problems:
        problems.append("Paste at least one SSH public key (the organisers').")
    if problems:
        errors["keys"] = problems
    taken = [account for _team, account in teams
             if db["users"].count_where("username = ?", [account])]
    if taken:
        errors.setdefault("teams", []).append(f"These account names are taken: {', '.join(taken)}.")
    if teams and machines and "machines" not in errors:
        quota = event_quota(machines)
        problems = budget_problems(len(teams), quota)
        if problems:
            errors.setdefault("teams", []).extend(problems)
    if errors:
        raise ValidationError(errors)

    links = {}
    stamp = now()
    with transaction(db):
        quotas.set_tier(db, tier_name(name), dataclasses.asdict(quota))
        event_id = db["team_events"].insert({
            "name": name, "title": (title or "").strip()[:200], "spec": json.dumps(machines),
            "keys": "\n".join(key.line for key in keys), "starts_at": start.isoformat(timespec="seconds"),
            "ends_at": end.isoformat(timespec="seconds"), "build_hours": build_hours,
            "grace_hours": grace_hours, "keep": keep, "state": "scheduled",
            "created_by": actor["username"], "created_at": stamp, "updated_at": stamp}).last_pk
        for team, account in teams:
            token = secrets.token_urlsafe(24)
            user = accounts.add_account_without_password(db, account, "member", tier_name(name),
                                                         actor["username"])
            db["event_teams"].insert({"event_id": event_id, "name": team, "user_id": user["id"],
                                      "username": account, "invite_hash": _digest(token)})
            links[team] = token
    return get(event_id), links


def get(event_id) -> dict:
    rows = list(get_db()["team_events"].rows_where("id = ?", [event_id]))
    if not rows:
        raise NotFound("There is no such event.")
    return rows[0]


def find(name: str) -> dict:
    rows = list(get_db()["team_events"].rows_where("name = ?", [name]))
    if not rows:
        raise NotFound(f"There is no event named {name}.")
    return rows[0]


def all_events() -> list[dict]:
    return list(get_db()["team_events"].rows_where(order_by="starts_at DESC"))


def teams_of(db, event: dict) -> list[dict]:
    return list(db["event_teams"].rows_where("event_id = ?", [event["id"]], order_by="name"))


def machines_of(db, event: dict) -> list[dict]:
    """Every instance row of the event's teams, with its team."""
    return [dict(row) for row in db.query(
        "SELECT instances.*, event_teams.name AS team FROM instances JOIN event_teams "
        "ON instances.user_id = event_teams.user_id WHERE event_teams.event_id = ? "
        "ORDER BY event_teams.name, instances.name", [event["id"]])]


def progress(event: dict) -> dict:
    """How many machines are ready, building and failed (with why), of how many."""
    db = get_db()
    rows = machines_of(db, event)
    wanted = len(teams_of(db, event)) * len(json.loads(event["spec"]))
    counts = {"ready": 0, "building": 0, "failed": 0, "other": 0}
    for row in rows:
        if row["status"] == statuses.READY:
            counts["ready"] += 1
        elif row["status"] in statuses.BUILDING:
            counts["building"] += 1
        elif row["status"] == statuses.FAILED:
            counts["failed"] += 1
        else:
            counts["other"] += 1
    return {"wanted": wanted, **counts, "rows": rows,
            "failures": [row for row in rows if row["status"] == statuses.FAILED]}


def _set_state(db, event: dict, state: str, detail: str) -> None:
    with transaction(db):
        db["team_events"].update(event["id"], {"state": state, "updated_at": now()})
        audit.record(db, audit.WORKER, f"event.{state}", event["name"], detail=detail)
    event["state"] = state


def _request_machines(db, event: dict) -> list[str]:
    """Request every machine a team lacks (a failed one stays until a retry)."""
    machines = json.loads(event["spec"])
    done = []
    for team in teams_of(db, event):
        if team["user_id"] is None:
            continue
        user = accounts.get_user(team["user_id"])
        have = {row["name"] for row in db["instances"].rows_where("user_id = ?", [user["id"]])}
        for machine in machines:
            if machine["name"] in have:
                continue
            instances.request_instance(user, machine["name"], machine["profile"], machine["image"],
                                       event["keys"], approved=True)
            done.append(f"{machine['name']} of {team['name']}")
    return done


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


def _stop_and_lock(db, event: dict) -> None:
    with transaction(db):
        for team in teams_of(db, event):
            if team["user_id"] is None:
                continue
            db["users"].update(team["user_id"], {"disabled": 1})
            sessions.revoke_user_sessions(db, team["user_id"])
        for row in machines_of(db, event):
            if row["status"] == statuses.READY:
                jobs.enqueue(db, row["id"], "stop")
    jobs.wake_worker(current_settings())


def _archived(db, event: dict) -> bool:
    """Whether every ready machine has a finished (done or failed) backup
    made since the end; queues the missing ones."""
    finished = True
    for row in machines_of(db, event):
        if row["status"] != statuses.READY:
            continue
        latest = db.execute("SELECT state FROM backups WHERE instance_id = ? AND created_at >= ? "
                            "ORDER BY id DESC LIMIT 1", [row["id"], event["ends_at"]]).fetchone()
        if latest is None:
            with transaction(db):
                backups.queue(db, row, "manual")
            finished = False
        elif latest[0] in (backups.QUEUED, backups.RUNNING):
            finished = False
    if not finished:
        jobs.wake_worker(current_settings())
    return finished


def _remove_machines(db, event: dict) -> None:
    with transaction(db):
        for row in machines_of(db, event):
            if row["status"] != statuses.DELETING:
                db["instances"].update(row["id"], {"status": statuses.DELETING, "updated_at": now()})
                jobs.cancel_power(db, row["id"])
                jobs.enqueue(db, row["id"], "delete")
    jobs.wake_worker(current_settings())


def _finish(db, event: dict) -> bool:
    """Removed once no machine is left. With keep=none the accounts go too
    (the member deletion pass removes their projects and rows); with
    keep=backup the disabled accounts stay, without their LXD projects."""
    if machines_of(db, event):
        return False
    settings = current_settings()
    for team in teams_of(db, event):
        if team["user_id"] is None:
            continue
        if event["keep"] == "none":
            with transaction(db):
                db["users"].update(team["user_id"], {"disabled": 1, "deleting": 1})
        else:
            lxd.delete_project(lxd.backend(settings), project_name(team["username"]))
            projects.forget_applied(project_name(team["username"]))
    return True


def _advance_one(db, event: dict) -> str | None:
    moment = clock.now()
    start, end = _at(event["starts_at"]), _at(event["ends_at"])
    state = event["state"]
    if state == "scheduled" and moment >= start - timedelta(hours=event["build_hours"]):
        _set_state(db, event, "building", f"building {len(teams_of(db, event))} teams' machines")
        state = "building"
    if state == "building":
        if moment >= end:
            _stop_and_lock(db, event)
            _set_state(db, event, "ended", "machines stopped, team accounts disabled")
            return f"event {event['name']} ended"
        requested = _request_machines(db, event)
        return f"event {event['name']}: requested {len(requested)} machine(s)" if requested else None
    if state == "ended" and moment >= end + timedelta(hours=event["grace_hours"]):
        if event["keep"] == "backup":
            _set_state(db, event, "archiving", "backing up every machine")
            state = "archiving"
        else:
            _remove_machines(db, event)
            _set_state(db, event, "removing", "removing machines, names and routes")
            return f"event {event['name']}: removing"
    if state == "archiving" and _archived(db, event):
        _remove_machines(db, event)
        _set_state(db, event, "removing", "backups done; removing machines, names and routes")
        return f"event {event['name']}: removing"
    if state == "removing" and _finish(db, event):
        _set_state(db, event, "removed", "nothing of it is left" if event["keep"] == "none"
                   else "machines removed; the disabled team accounts hold their backups")
        return f"event {event['name']} removed"
    if state == "removed":
        _drop_tier(db, event)
    return None


def _drop_tier(db, event: dict) -> None:
    """The event's tier goes once no account is on it any more (with
    keep=none, after the member deletion pass removed the team accounts)."""
    with transaction(db):
        db.execute("DELETE FROM tiers WHERE name = ? AND NOT EXISTS "
                   "(SELECT 1 FROM users WHERE tier = ?)", [tier_name(event["name"])] * 2)


def advance(db, settings) -> list[str]:
    """The worker's pass: move every live event along (each in its own guard)."""
    live = list(db["team_events"].rows_where(
        "state != 'removed' OR EXISTS (SELECT 1 FROM tiers WHERE tiers.name = 'ev-' || team_events.name)"))
    return [line for line in each_guarded(live, lambda event: f"event {event['name']}",
                                          lambda event: _advance_one(db, event)) if line]


def retry_failed(actor: dict, event_id) -> int:
    """Forget the failed machines of an event that is building; the next
    pass requests them again. Returns how many."""
    db = get_db()
    event = get(event_id)
    with audit.audited(db, actor["username"], "event.retry", event["name"]):
        if event["state"] != "building":
            raise Conflict(f"The event {event['name']} is {event['state']}; retries are for building events.")
        failed = [row for row in machines_of(db, event) if row["status"] == statuses.FAILED]
        with transaction(db):
            for row in failed:
                db.execute("DELETE FROM events WHERE instance_id = ?", [row["id"]])
                db.execute("DELETE FROM jobs WHERE instance_id = ?", [row["id"]])
                db.execute("DELETE FROM instances WHERE id = ?", [row["id"]])
    jobs.wake_worker(current_settings())
    return len(failed)


def end_now(actor: dict, event_id) -> None:
    """Bring the end forward to now (the next pass stops everything)."""
    db = get_db()
    event = get(event_id)
    with audit.audited(db, actor["username"], "event.end", event["name"]):
        if event["state"] not in ("scheduled", "building"):
            raise Conflict(f"The event {event['name']} has ended already.")
        with transaction(db):
            db["team_events"].update(event["id"], {"ends_at": clock.now().isoformat(timespec="seconds"),
                                              "state": "building", "updated_at": now()})
    jobs.wake_worker(current_settings())


def team_link(token: str) -> dict:
    """The team behind an unused link (NotFound otherwise), with its event."""
    rows = list(get_db()["event_teams"].rows_where("invite_hash = ?", [_digest(token or "")]))
    if not rows:
        raise NotFound("This team link is unknown or used already; ask the organisers.")
    event = get(rows[0]["event_id"])
    if event["state"] not in ("scheduled", "building") or rows[0]["user_id"] is None:
        raise NotFound(f"The event {event['name']} is over.")
    return {**rows[0], "event": event}


def claim_team(token: str, password: str) -> dict:
    """Set the team account's password through its link (once)."""
    team = team_link(token)
    db = get_db()
    with transaction(db):
        used = db.execute("UPDATE event_teams SET invite_hash = NULL WHERE id = ? AND invite_hash = ?",
                          [team["id"], _digest(token)]).rowcount
        if not used:
            raise NotFound("This team link was used already.")
    accounts.set_password(team["user_id"], password)
    with transaction(db):
        audit.record(db, team["username"], "event.claim-team", team["name"], member=team["username"],
                     detail=f"event {team['event']['name']}")
    return accounts.get_user(team["user_id"])
