"""The approval queue: waiting instance and quota requests, decided with a reason."""
from flask import flash, g, redirect, render_template, url_for

from ... import approvals
from ...errors import NotFound, ValidationError
from ...forms import DecisionForm
from ..guards import admin_required
from . import bp


@bp.route("/approvals")
@admin_required
def approval_queue():
    return render_template("admin/approvals.html", waiting=approvals.pending(),
                           done=approvals.decided(), form=DecisionForm())


@bp.route("/approvals/<int:approval_id>/<verdict>", methods=["POST"])
@admin_required
def decide(approval_id, verdict):
    if verdict not in ("approve", "deny"):
        raise NotFound("No such decision.")
    form = DecisionForm()
    try:
        row, change = approvals.decide(g.user, approval_id, verdict == "approve", form.reason.data)
    except ValidationError as error:
        flash(f"Not decided: {error}")
        return redirect(url_for("admin.approval_queue"), 303)
    if change.unreachable:
        flash(f"Request #{row['id']} {row['state']}, but LXD is not reachable now: the worker "
              f"brings {', '.join(change.members)}'s LXD project in line on its next pass.")
    else:
        flash(f"Request #{row['id']} {row['state']}.")
    return redirect(url_for("admin.approval_queue"), 303)
