"""The member's API tokens in the web UI: make one (shown once, on the
answer page itself, never stored or flashed), list, revoke."""
from flask import Blueprint, flash, g, redirect, render_template, request, url_for

from .. import tokens
from ..errors import ValidationError
from ..forms import EmptyForm, TokenForm, show_errors
from .guards import login_required

bp = Blueprint("tokens", __name__)


def _form(**kwargs) -> TokenForm:
    form = TokenForm(**kwargs)
    form.scope.choices = [scope for scope in tokens.SCOPES
                          if scope != "admin" or g.user["role"] == "admin"]
    return form


@bp.route("/tokens", methods=["GET", "POST"])
@login_required
def page():
    form, status, made = _form(), 200, None
    if form.validate_on_submit():
        days = form.days.data.strip()
        try:
            made = tokens.create(g.user, form.name.data, form.scope.data,
                                 int(days) if days.isdigit() and len(days) < 6 else days)
        except ValidationError as error:
            show_errors(form, error.errors)
            status = 422
        else:
            form = _form(formdata=None)
    elif request.method == "POST":
        status = 400
    return render_template("member/tokens.html", form=form, made=made, rows=tokens.of_member(g.user),
                           revoke_form=EmptyForm()), status


@bp.route("/tokens/<int:token_id>/revoke", methods=["POST"])
@login_required
def revoke(token_id):
    row = tokens.revoke(g.user, token_id)
    flash(f"Token {row['name']} revoked; it no longer works.")
    return redirect(url_for("tokens.page"), 303)
