"""Member pages for DNS records: list, add, remove; ACME keys for certbot.
Routes on the member blueprint."""
from flask import flash, g, redirect, render_template, url_for

from .. import records
from ..config import current_settings
from ..errors import ValidationError
from ..forms import AcmeKeyForm, EmptyForm, RecordForm, show_errors
from ..store import get_db
from .guards import login_required
from .member import bp


def _page(form=None, acme_form=None, status=200, issued=None):
    settings = current_settings()
    db = get_db()
    return render_template("member/records.html", rows=records.of_member(db, g.user["id"]),
                           keys=records.acme_keys(db, g.user["id"]),
                           subtree=records.subtree(g.user["username"], settings.dns_zone),
                           form=form or RecordForm(formdata=None),
                           acme_form=acme_form or AcmeKeyForm(formdata=None),
                           button=EmptyForm(), issued=issued), status


def _attempt(form, slot: str, action):
    """(what action() returned, None), or (None, the page with the form's
    errors) when the form or the service refuses it."""
    if not form.validate_on_submit():
        return None, _page(**{slot: form}, status=400)
    try:
        return action(), None
    except ValidationError as error:
        show_errors(form, error.errors)
        return None, _page(**{slot: form}, status=422)


@bp.route("/dns")
@login_required
def records_page():
    return _page()


@bp.route("/dns/records", methods=["POST"])
@login_required
def add_record():
    form = RecordForm()
    row, refused = _attempt(form, "form", lambda: records.add(
        g.user, form.name.data, form.rtype.data, form.value.data, form.ttl.data))
    if refused:
        return refused
    flash(f"{row['fqdn']} {row['rtype']} {row['value']} added; it is published within moments.")
    return redirect(url_for("member.records_page"), 303)


@bp.route("/dns/records/<int:record_id>/delete", methods=["POST"])
@login_required
def remove_record(record_id):
    row = records.remove(g.user, record_id)
    flash(f"{row['fqdn']} {row['rtype']} {row['value']} removed.")
    return redirect(url_for("member.records_page"), 303)


@bp.route("/dns/acme-keys", methods=["POST"])
@login_required
def create_acme_key():
    form = AcmeKeyForm()
    made, refused = _attempt(form, "acme_form",
                             lambda: records.create_acme_key(g.user, form.acme_name.data))
    if refused:
        return refused
    row, secret = made
    issued = {"name": row["name"], "secret": secret,
              "ini": records.certbot_credentials(current_settings(), row["name"], secret)}
    page, status = _page(status=201, issued=issued)
    return page, status, {"Cache-Control": "no-store"}  # the secret is shown once: keep no copy


@bp.route("/dns/acme-keys/<int:acme_key_id>/delete", methods=["POST"])
@login_required
def revoke_acme_key(acme_key_id):
    row = records.revoke_acme_key(g.user, acme_key_id)
    flash(f"The key {row['name']} is revoked; BIND refuses it from now on.")
    return redirect(url_for("member.records_page"), 303)
