"""Member pages for snapshots of an instance: the list with sizes and
dates and the profile's schedule, take one, restore one (after a page that
says what is lost), delete one."""
from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from .. import snapshots
from ..errors import ValidationError
from ..forms import EmptyForm, RestoreForm, SnapshotForm, show_errors
from ..profiles import current_profiles
from .guards import login_required

bp = Blueprint("snapshots", __name__)


def _page(instance_id, form: SnapshotForm, status: int = 200):
    instance, listed, error = snapshots.snapshots_of(g.user, instance_id)
    return render_template("member/snapshots.html", instance=instance, snapshots=listed,
                           error=error, form=form, button=EmptyForm(),
                           schedule=snapshots.schedule_of(current_profiles().get(instance["profile"])),
                           held=sum(item["size"] for item in listed)), status


@bp.route("/instances/<int:instance_id>/snapshots", methods=["GET", "POST"])
@login_required
def page(instance_id):
    form = SnapshotForm()
    if request.method == "GET":
        return _page(instance_id, SnapshotForm(formdata=None))
    if not form.validate_on_submit():
        return _page(instance_id, form, 400)
    try:
        row = snapshots.take(g.user, instance_id, form.name.data)
    except ValidationError as error:
        show_errors(form, error.errors)
        return _page(instance_id, form, 422)
    flash(f"Snapshot {row['name']} is being taken.")
    return redirect(url_for("snapshots.page", instance_id=instance_id), 303)


def _restore_page(instance_id, snapshot, form: RestoreForm, status: int = 200):
    instance, found, warnings, must_confirm = snapshots.restore_plan(g.user, instance_id, snapshot)
    return render_template("member/snapshot_restore.html", instance=instance, snapshot=found,
                           warnings=warnings, must_confirm=must_confirm, form=form), status


@bp.route("/instances/<int:instance_id>/snapshots/<snapshot>/restore", methods=["GET", "POST"])
@login_required
def restore(instance_id, snapshot):
    form = RestoreForm()
    if request.method == "GET":
        return _restore_page(instance_id, snapshot, RestoreForm(formdata=None))
    if not form.validate_on_submit():
        return _restore_page(instance_id, snapshot, form, 400)
    try:
        snapshots.restore(g.user, instance_id, snapshot, bool(form.confirm.data))
    except ValidationError as error:
        show_errors(form, error.errors)
        return _restore_page(instance_id, snapshot, form, 422)
    flash(f"Restoring to snapshot {snapshot}; the history below follows it.")
    return redirect(url_for("member.instance", instance_id=instance_id), 303)


@bp.route("/instances/<int:instance_id>/snapshots/<snapshot>/delete", methods=["POST"])
@login_required
def delete(instance_id, snapshot):
    snapshots.remove(g.user, instance_id, snapshot)
    flash(f"Snapshot {snapshot} is being deleted.")
    return redirect(url_for("snapshots.page", instance_id=instance_id), 303)
