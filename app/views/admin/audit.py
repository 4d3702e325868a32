"""The audit log with filters, and host-wide usage."""
from flask import render_template, request

from ... import audit, usage
from ...store import get_db
from ..guards import admin_required
from . import bp


@bp.route("/audit")
@admin_required
def audit_log():
    filters = {key: request.args.get(key, "").strip() for key in (*audit.FILTERS, "since")}
    return render_template("admin/audit.html", entries=audit.entries(get_db(), filters),
                           filters=filters, choices=audit.choices(get_db()))


@bp.route("/usage")
@admin_required
def host_usage():
    return render_template("admin/usage.html", report=usage.host_report())
