"""The admin's cluster page: each LXD cluster member and its state,
evacuation (with the list of what moves and what only stops first),
restore, moving one instance, and the maintenance history."""
from flask import flash, g, redirect, render_template, request, url_for

from ... import maintenance
from ...config import current_settings
from ...errors import ValidationError
from ...forms import EmptyForm
from ...statuses import READY
from ...store import get_db
from ..guards import admin_required
from . import bp


def _checked() -> None:
    if not EmptyForm().validate_on_submit():
        raise ValidationError({"csrf_token": ["The form expired; load the page again."]})


@bp.route("/cluster")
@admin_required
def cluster_page():
    db = get_db()
    counts = dict(db.execute("SELECT location, count(*) FROM instances GROUP BY location").fetchall())
    ready = list(db["instances"].rows_where("status = ?", [READY], order_by="fqdn"))
    return render_template("admin/cluster.html", members=maintenance.members(current_settings()),
                           counts=counts, history=maintenance.history(db), ready=ready,
                           button=EmptyForm())


@bp.route("/cluster/<member>/plan")
@admin_required
def cluster_plan(member):
    return render_template("admin/cluster_plan.html", member=member, button=EmptyForm(),
                           steps=maintenance.plan(get_db(), current_settings(), member))


@bp.route("/cluster/<member>/<any(evacuate, restore):step>", methods=["POST"])
@admin_required
def cluster_action(member, step):
    _checked()
    maintenance.request(get_db(), current_settings(), g.user["username"], member, step)
    flash(f"{step.capitalize()} of {member} asked for; the worker carries it out.")
    return redirect(url_for("admin.cluster_page"), 303)


@bp.route("/cluster/move", methods=["POST"])
@admin_required
def cluster_move():
    _checked()
    instance_id, target = request.form.get("instance_id", ""), request.form.get("member", "")
    if not instance_id.isdigit() or not target:
        raise ValidationError({"instance_id": ["Choose an instance and a member."]})
    instance = maintenance.request_move(get_db(), current_settings(), g.user["username"],
                                        int(instance_id), target)
    flash(f"{instance['fqdn']} moves to {target}; its history tells when it is done.")
    return redirect(url_for("admin.cluster_page"), 303)
