"""Member pages."""
from flask import Blueprint, render_template

from .guards import login_required

bp = Blueprint("member", __name__)


@bp.route("/")
@login_required
def dashboard():
    return render_template("member/dashboard.html")
