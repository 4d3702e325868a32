"""Retention: what Warren keeps and for how long, so nothing grows without
bound. Run by the worker as one of its periodic passes.

- finished jobs: WARREN_JOB_RETENTION_DAYS after they finished;
- audit entries: WARREN_AUDIT_RETENTION_DAYS;
- decided approval requests and used or expired invitations: as long as
  the audit entries that speak of them;
- progress lines: the newest WARREN_EVENTS_PER_INSTANCE per instance (all
  of an instance's go with it when it is deleted).
Sessions and failed sign-ins are pruned by their own modules as they expire.
"""
from datetime import datetime, timedelta, timezone


def _before(days: int) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=days)).isoformat(timespec="seconds")


def prune(db, settings) -> list[str]:
    """Delete what is past its retention; a line per kind of row removed."""
    audit_cutoff = _before(settings.audit_retention_days)
    removed = {
        "finished jobs": db.execute(
            "DELETE FROM jobs WHERE state IN ('done', 'failed') AND finished_at < ?",
            [_before(settings.job_retention_days)]).rowcount,
        "audit entries": db.execute("DELETE FROM audit WHERE at < ?", [audit_cutoff]).rowcount,
        "decided requests": db.execute(
            "DELETE FROM approvals WHERE state != 'pending' AND decided_at < ?",
            [audit_cutoff]).rowcount,
        "invitations": db.execute(
            "DELETE FROM invites WHERE coalesce(used_at, expires_at) < ?", [audit_cutoff]).rowcount,
        "old progress lines": db.execute(
            "DELETE FROM events WHERE id IN (SELECT id FROM (SELECT id, row_number() OVER "
            "(PARTITION BY instance_id ORDER BY id DESC) AS newer FROM events) WHERE newer > ?)",
            [settings.events_per_instance]).rowcount,
    }
    return [f"deleted {count} {what}" for what, count in removed.items() if count]
