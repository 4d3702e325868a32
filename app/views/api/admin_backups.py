"""Admins: every instance's backups (the admin page's overview) and the
restore of a deleted instance."""
from flask import g

from ... import backups, restores
from ...store import get_db
from . import pages, resource
from .backups import shown
from .feature_schemas import BackupOverviewSchema, RestoredSchema
from .schemas import PageArgs, page_of

bp = resource("admin_backups", "Admins: backups of every instance.", admin=True)


def _row(row: dict) -> dict:
    return {**row, "last_good": row["last_good"] and shown(row["last_good"]),
            "failure": row["failure"] and shown(row["failure"]),
            "good": [shown(backup) for backup in row["good"]]}


@bp.route("/backups")
@bp.arguments(PageArgs, location="query")
@bp.response(200, page_of(BackupOverviewSchema))
def overview(args):
    """Per instance that has or had backups (deleted ones too): its last
    good backup, how many are kept, and the last failure since."""
    return pages.page([_row(row) for row in backups.overview(get_db())], args)


@bp.route("/backups/<int:backup_id>/restore-deleted", methods=["POST"])
@bp.response(202, RestoredSchema)
def restore_deleted(backup_id):
    """Bring a deleted instance back from one of its retained backups into
    its member's project, with its name, address (or a new one), DNS
    records, forwards and website where they are still free."""
    row = restores.restore_deleted(g.user, backup_id)
    return {"instance_id": row["id"], "fqdn": row["fqdn"], "ipv4": row["ipv4"],
            "status": row["status"]}
