"""The admin's backups page: every instance's last good backup, its age and
size, failures, Warren's own copies and the off-host copy; back up
everything now; restore a deleted instance."""
from flask import flash, g, redirect, render_template, url_for

from ... import backups, offsite, restores, warren_state
from ...config import current_settings
from ...forms import EmptyForm
from ...store import get_db
from ..guards import admin_required
from . import bp


@bp.route("/backups")
@admin_required
def backups_page():
    settings = current_settings()
    db = get_db()
    return render_template("admin/backups.html", rows=backups.overview(db), button=EmptyForm(),
                           copies=list(reversed(warren_state.copies(settings))), settings=settings,
                           offsite=backups.offsite_status(db) if offsite.enabled(settings) else None)


@bp.route("/backups", methods=["POST"])
@admin_required
def back_up_all():
    count = backups.back_up_all(g.user)
    flash(f"Backups of {count} instance(s) queued; they run one at a time, after members' requests.")
    return redirect(url_for("admin.backups_page"), 303)


@bp.route("/backups/<int:backup_id>/restore", methods=["POST"])
@admin_required
def restore_deleted(backup_id):
    row = restores.restore_deleted(g.user, backup_id)
    flash(f"Restoring {row['fqdn']} at {row['ipv4']}; its history is on the member's page.")
    return redirect(url_for("admin.backups_page"), 303)
