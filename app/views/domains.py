"""Member pages for custom domains: add one to an instance, see what to
publish and its state, check now, move, remove."""
from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from .. import domains
from ..config import current_settings
from ..errors import ValidationError
from ..forms import DomainForm, DomainMoveForm, EmptyForm, show_errors
from .guards import login_required

bp = Blueprint("domains", __name__)


def _choices(form) -> None:
    form.instance.choices = [(str(row["id"]), f"{row['name']} ({row['fqdn']})")
                             for row in domains.ready_instances(g.user)]


def _page(form: DomainForm, status: int = 200, move_form: DomainMoveForm | None = None):
    move_form = move_form or DomainMoveForm(formdata=None)
    _choices(form)
    _choices(move_form)
    settings = current_settings()
    return render_template("member/domains.html", rows=domains.of_member(g.user), form=form,
                           move_form=move_form, button=EmptyForm(),
                           recheck_minutes=settings.domain_recheck_minutes,
                           grace_hours=settings.domain_grace_hours), status


@bp.route("/domains", methods=["GET", "POST"])
@login_required
def page():
    form = DomainForm()
    if request.method == "GET":
        form.instance.data = request.args.get("instance")  # from an instance's page
        return _page(form)
    if not form.validate_on_submit():
        return _page(form, 400)
    try:
        row = domains.add(g.user, form.hostname.data, form.instance.data)
    except ValidationError as error:
        show_errors(form, error.errors)
        return _page(form, 422)
    flash(f"{row['hostname']} added to {row['instance_name']}: {_state_text(row)}")
    return redirect(url_for("domains.page", _anchor=f"domain-{row['id']}"), 303)


def _state_text(row: dict) -> str:
    if row["state"] == domains.VERIFIED:
        return f"verified ({row['result']})."
    return f"{row['state']}, not routed yet ({row['result'] or 'not looked up yet'})."


@bp.route("/domains/<int:domain_id>/check", methods=["POST"])
@login_required
def check(domain_id):
    row = domains.check_now(g.user, domain_id)
    flash(f"{row['hostname']}: {_state_text(row)}")
    return redirect(url_for("domains.page", _anchor=f"domain-{domain_id}"), 303)


@bp.route("/domains/<int:domain_id>/move", methods=["POST"])
@login_required
def move(domain_id):
    domains.get_domain(g.user, domain_id)  # someone else's: 404 before anything else
    form = DomainMoveForm()
    if not form.validate_on_submit():
        return _page(DomainForm(formdata=None), 400, form)
    try:
        row = domains.move(g.user, domain_id, form.instance.data)
    except ValidationError as error:
        show_errors(form, error.errors)
        return _page(DomainForm(formdata=None), 422, form)
    flash(f"{row['hostname']} now goes to {row['instance_name']}.")
    return redirect(url_for("domains.page", _anchor=f"domain-{domain_id}"), 303)


@bp.route("/domains/<int:domain_id>/delete", methods=["POST"])
@login_required
def remove(domain_id):
    row = domains.remove(g.user, domain_id)
    flash(f"{row['hostname']} removed; Warren no longer serves it.")
    return redirect(url_for("domains.page"), 303)
