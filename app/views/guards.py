"""Who is asking: loads the signed-in user per request and guards views."""
from functools import wraps

from flask import g, redirect, request, session, url_for

from .. import accounts
from ..errors import NotFound


def load_user():
    """Put the session's user (or None) on g before each request."""
    g.user = None
    user_id = session.get("user_id")
    if user_id is None:
        return
    try:
        user = accounts.get_user(user_id)
    except NotFound:
        session.revoke()
        return
    # A session made before the last password change is no longer valid.
    if user["disabled"] or session.get("password_changed_at") != user["password_changed_at"]:
        session.revoke()
        return
    g.user = user


def login_required(view):
    """Send anonymous visitors to the login page, then back."""
    @wraps(view)
    def wrapped(*args, **kwargs):
        if g.user is None:
            return redirect(url_for("auth.login", next=request.full_path))
        return view(*args, **kwargs)
    return wrapped


def admin_required(view):
    """Admins only; everyone else gets 404 so admin pages are not advertised."""
    @wraps(view)
    @login_required
    def wrapped(*args, **kwargs):
        if g.user["role"] != "admin":
            raise NotFound("Not found.")
        return view(*args, **kwargs)
    return wrapped
