"""Member pages for an instance's backups: the list, "back up now", and a
restore with its confirmation. Routes on the member blueprint."""
from flask import flash, g, redirect, render_template, url_for

from .. import backups, instances, restores
from ..forms import EmptyForm
from ..units import approximate_size
from .guards import login_required
from .member import bp


@bp.app_template_filter("approx_size")
def approx_size_filter(value):
    return approximate_size(value) if value is not None else ""


@bp.route("/instances/<int:instance_id>/backups")
@login_required
def backups_page(instance_id):
    instance = instances.get_instance(g.user, instance_id)
    return render_template("member/backups.html", instance=instance, button=EmptyForm(),
                           rows=backups.of_instance_for(g.user, instance["id"]), age=backups.age)


@bp.route("/instances/<int:instance_id>/backups", methods=["POST"])
@login_required
def back_up(instance_id):
    backups.back_up_now(g.user, instance_id)
    flash("Backup queued; it is made when the worker has nothing more urgent to do.")
    return redirect(url_for("member.backups_page", instance_id=instance_id), 303)


@bp.route("/instances/<int:instance_id>/backups/<int:backup_id>/restore")
@login_required
def confirm_restore(instance_id, backup_id):
    instance, backup, lost = restores.restore_plan(g.user, instance_id, backup_id)
    return render_template("member/restore.html", instance=instance, backup=backup, lost=lost,
                           button=EmptyForm())


@bp.route("/instances/<int:instance_id>/backups/<int:backup_id>/restore", methods=["POST"])
@login_required
def restore(instance_id, backup_id):
    restores.request_restore(g.user, instance_id, backup_id)
    flash("Restore queued; the instance's history follows it.")
    return redirect(url_for("member.instance", instance_id=instance_id), 303)
