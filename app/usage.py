"""Usage as LXD sees it: per member and host-wide, instances, CPU time,
memory and disk against each member's quota. Live figures come from LXD's
instance state (status, memory, root disk) and /1.0/metrics (CPU seconds);
reserved figures are what Warren's quota check counts."""
from dataclasses import dataclass, field

from . import lxd, quotas
from .config import current_settings
from .errors import BackendError, NotFound
from .names import project_name
from .store import get_db


@dataclass
class MemberUsage:
    username: str
    tier: str
    quota: quotas.Quota
    reserved: dict  # what the quota check counts
    running: int = 0
    cpu_seconds: float = 0.0
    memory: int = 0  # bytes in use now
    disk: int = 0  # bytes written on root disks
    instances: list[dict] = field(default_factory=list)
    error: str | None = None  # LXD did not answer for this member

    def percent(self, used: float, allowed: float) -> int:
        """Share of an allowance, for the bars (capped at 100)."""
        return min(100, round(100 * used / allowed)) if allowed else 100


def member_usage(user: dict) -> MemberUsage:
    """One member's live and reserved use."""
    db = get_db()
    result = MemberUsage(username=user["username"], tier=user["tier"],
                         quota=quotas.quota_for(db, user), reserved=quotas.usage(db, user["id"]))
    rows = list(db["instances"].rows_where("user_id = ?", [user["id"]], order_by="name"))
    client = lxd.backend(current_settings()).client(project_name(user["username"]))
    try:
        live, cpu = lxd.instance_usage(client), lxd.cpu_seconds(client)
    except NotFound:
        live, cpu = {}, {}  # no project yet
    except BackendError as error:
        live, cpu, result.error = {}, {}, str(error)
    for row in rows:
        state = live.get(row["lxd_name"], {})
        entry = {"name": row["name"], "fqdn": row["fqdn"], "profile": row["profile"],
                 "status": row["status"], "state": state.get("status", "-"),
                 "cpu_seconds": cpu.get(row["lxd_name"], 0.0), "memory": state.get("memory", 0),
                 "memory_limit": row["memory"], "disk": state.get("disk", 0),
                 "disk_limit": row["disk"], "snapshot_bytes": row["snapshot_bytes"]}
        result.instances.append(entry)
        result.running += entry["state"] == "Running"
        result.cpu_seconds += entry["cpu_seconds"]
        result.memory += entry["memory"]
        result.disk += entry["disk"]
    return result


def host_report() -> dict:
    """Every member's use, the totals, and the host's size."""
    db = get_db()
    members = [member_usage(user) for user in db["users"].rows_where("deleting = 0", order_by="username")]
    try:
        host = lxd.host_resources(lxd.backend(current_settings()).client())
    except BackendError as error:
        host = {"error": str(error)}
    totals = {"instances": sum(m.reserved["instances"] for m in members),
              "running": sum(m.running for m in members),
              "cpu_seconds": sum(m.cpu_seconds for m in members),
              "memory": sum(m.memory for m in members), "disk": sum(m.disk for m in members),
              "cpu_allowed": sum(m.quota.cpu for m in members),
              "memory_allowed": sum(m.quota.memory for m in members),
              "disk_allowed": sum(m.quota.disk for m in members)}
    return {"members": members, "totals": totals, "host": host}
