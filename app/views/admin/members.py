"""Admin pages for members: list, create, invite, share and overrides,
disable, re-enable, delete."""
from flask import flash, g, redirect, render_template, request, url_for

from ... import accounts, instances, members, quotas, records, shares
from ...errors import BackendError, Conflict, ValidationError, status_for
from ...forms import (QUOTA_FIELDS, DeleteMemberForm, EmptyForm, InviteForm, MemberCreateForm,
                      QuotaForm, show_errors)
from ...store import get_db
from ..guards import admin_required
from . import bp


def _tier_choices(*forms) -> None:
    names = list(quotas.tiers(get_db()))
    for form in forms:
        form.tier.choices = names


@bp.route("/users", methods=["GET", "POST"])
@admin_required
def users():
    create, invite = MemberCreateForm(prefix="create"), InviteForm(prefix="invite")
    _tier_choices(create, invite)
    status, link = 200, None
    if request.method == "POST" and "create-username" in request.form and create.validate_on_submit():
        try:
            user = members.create_member(g.user, create.username.data, create.password.data,
                                         create.role.data, create.tier.data)
        except ValidationError as error:
            show_errors(create, error.errors)
            status = 422
        else:
            flash(f"Created {user['role']} {user['username']}.")
            return redirect(url_for("admin.user", username=user["username"]), 303)
    elif request.method == "POST" and "invite-role" in request.form and invite.validate_on_submit():
        try:
            token = members.invite(g.user, invite.role.data, invite.tier.data, invite.hours.data)
        except ValidationError as error:
            show_errors(invite, error.errors)
            status = 422
        else:
            link = url_for("auth.accept_invite", token=token, _external=True)
    elif request.method == "POST":
        status = 400
    return render_template("admin/users.html", rows=members.overview(), create=create,
                           invite=invite, link=link), status


def _user_page(member: dict, form: QuotaForm, delete_form: DeleteMemberForm, status: int = 200):
    tier = quotas.tiers(get_db()).get(member["tier"])
    tier_values = {key: quotas.show_value(key, getattr(tier, key)) if tier else "" for key in QUOTA_FIELDS}
    return render_template("admin/user.html", member=member, form=form, button=EmptyForm(),
                           form_fields=QUOTA_FIELDS,
                           delete_form=delete_form, quota=quotas.quota_for(get_db(), member),
                           tier_values=tier_values, rows=instances.list_instances(member),
                           records=records.of_member(get_db(), member["id"]),
                           acme_keys=records.acme_keys(get_db(), member["id"])), status


@bp.route("/users/<username>", methods=["GET", "POST"])
@admin_required
def user(username):
    member = accounts.find_user(username)
    form = QuotaForm()
    _tier_choices(form)
    if request.method == "GET":
        form.tier.data = member["tier"]
        for key, value in members.overrides_of(member).items():
            getattr(form, key).data = quotas.show_value(key, value)
        return _user_page(member, form, DeleteMemberForm())
    try:
        overrides = quotas.parse_overrides(form.values_text())
        _, change = shares.set_quota(g.user, username, form.tier.data, overrides)
    except ValidationError as error:
        show_errors(form, error.errors)
        return _user_page(member, form, DeleteMemberForm(), 422)
    except (Conflict, BackendError) as error:  # would not fit, or LXD refused: nothing saved
        form.form_errors.append(str(error))
        return _user_page(member, form, DeleteMemberForm(), status_for(error))
    flash(_saved(username, change))
    return redirect(url_for("admin.user", username=username), 303)


def _saved(username: str, change: shares.ShareChange) -> str:
    if change.unreachable:
        return (f"Saved {username}'s share, but LXD is not reachable now: the worker brings "
                "their LXD project in line on its next pass.")
    if change.projects:
        return f"Saved {username}'s share; their LXD project has the new limits."
    return f"Saved {username}'s share; their LXD project gets it when they first need one."


@bp.route("/users/<username>/disable", methods=["POST"])
@admin_required
def disable(username):
    stopped = members.disable(g.user, username)
    flash(f"{username} is disabled and signed out; {stopped} instance(s) are being stopped.")
    return redirect(url_for("admin.user", username=username), 303)


@bp.route("/users/<username>/enable", methods=["POST"])
@admin_required
def enable(username):
    members.enable(g.user, username)
    flash(f"{username} can sign in again; their instances stay stopped until started.")
    return redirect(url_for("admin.user", username=username), 303)


@bp.route("/users/<username>/delete", methods=["POST"])
@admin_required
def delete(username):
    member = accounts.find_user(username)
    form = DeleteMemberForm()
    try:
        count = members.delete_member(g.user, username, form.confirmation.data)
    except ValidationError as error:
        show_errors(form, error.errors)
        quota_form = QuotaForm(formdata=None, tier=member["tier"])
        _tier_choices(quota_form)
        return _user_page(member, quota_form, form, 422)
    flash(f"Deleting {username}: {count} instance(s), their DNS names and LXD project go first, "
          "then the account.")
    return redirect(url_for("admin.users"), 303)
