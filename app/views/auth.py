"""Login, logout, password change, sign-up by invitation and event team links."""
from urllib.parse import urlsplit

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for

from .. import accounts, events, members
from ..errors import AuthenticationFailed, Conflict, TooManyAttempts, ValidationError
from ..forms import LoginForm, PasswordChangeForm, SignUpForm, TeamClaimForm, show_errors
from .guards import login_required

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths, so ?next= cannot redirect elsewhere."""
    if target and target.startswith("/") and not target.startswith("//") \
            and not urlsplit(target).netloc:
        return target
    return url_for("member.dashboard")


def _start_session(user: dict) -> None:
    session.rotate()  # a new id at login defeats session fixation
    session.pop("csrf_token", None)
    session["user_id"] = user["id"]
    session["password_changed_at"] = user["password_changed_at"]
    session.permanent = True


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = accounts.sign_in(form.username.data, form.password.data,
                                    request.remote_addr or "unknown")
        except AuthenticationFailed as error:
            form.form_errors.append(str(error))
            status = 401
        except TooManyAttempts as error:
            form.form_errors.append(str(error))
            status = 429
        else:
            _start_session(user)
            return redirect(_safe_next(request.args.get("next")))
    elif request.method == "POST":
        status = 422
    return render_template("auth/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
def logout():
    session.revoke()
    flash("You are signed out.")
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    form = PasswordChangeForm()
    status = 200
    if form.validate_on_submit():
        try:
            accounts.sign_in(g.user["username"], form.current.data, request.remote_addr or "unknown")
            # This session is kept only to be rotated below: one revoked now could
            # not be replaced (a revoked session stays revoked).
            accounts.set_password(g.user["id"], form.password.data, keep_session=session.session_id)
        except AuthenticationFailed:
            form.current.errors.append("This is not your current password.")
            status = 422
        except TooManyAttempts as error:
            form.current.errors.append(str(error))
            status = 429
        except ValidationError as error:
            form.password.errors.extend(error.errors.get("password", []))
            status = 422
        else:
            _start_session(accounts.get_user(g.user["id"]))
            flash("Password changed; your other sessions were signed out.")
            return redirect(url_for("member.dashboard"))
    elif request.method == "POST":
        status = 422
    return render_template("auth/password.html", form=form), status


@bp.route("/invite/<token>", methods=["GET", "POST"])
def accept_invite(token):
    """Sign up through a one-time invitation link."""
    invitation = members.invitation(token)  # 404 when unknown, used or expired
    form = SignUpForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = members.accept_invite(token, form.username.data, form.password.data)
        except ValidationError as error:
            show_errors(form, error.errors)
            status = 422
        except Conflict as error:
            form.username.errors = [str(error)]
            status = 409
        else:
            _start_session(user)
            flash(f"Welcome, {user['username']}. Your account is ready.")
            return redirect(url_for("member.dashboard"), 303)
    elif request.method == "POST":
        status = 422
    return render_template("auth/invite.html", form=form, invitation=invitation), status


@bp.route("/team/<token>", methods=["GET", "POST"])
def claim_team(token):
    """Set an event team's password through its one-time link, then sign in."""
    team = events.team_link(token)  # 404 when unknown, used or over
    form = TeamClaimForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = events.claim_team(token, form.password.data)
        except ValidationError as error:
            show_errors(form, error.errors)
            status = 422
        else:
            _start_session(user)
            flash(f"Welcome, team {team['name']}: you are signed in as {user['username']}.")
            return redirect(url_for("member.dashboard"), 303)
    elif request.method == "POST":
        status = 422
    return render_template("auth/team.html", form=form, team=team), status
