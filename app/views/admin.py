"""Admin pages."""
from flask import Blueprint, render_template

from .. import accounts
from .guards import admin_required

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.route("/users")
@admin_required
def users():
    return render_template("admin/users.html", users=accounts.list_users())
