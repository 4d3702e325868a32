"""Admin pages: members, profiles, the approval queue, the audit log and
usage. Each page module adds its routes to this one blueprint."""
from flask import Blueprint, redirect, url_for

from ..guards import admin_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.route("/")
@admin_required
def index():
    return redirect(url_for("admin.users"))


from . import approvals, audit, backups, cluster, domains, events, members, profiles, zone  # noqa: E402,F401  (they register routes on bp)
