"""Sessions in two forms. A visitor who has not signed in keeps their few
values (the CSRF token, a flash message) in a signed, size-bounded cookie, so
anonymous traffic writes nothing on the server. A signed-in session lives in
the sessions table: the cookie carries only a random id and the row is keyed
by the id's SHA-256, so logout and password changes revoke a session for
real and a copied database reveals no cookie.

A row is only ever inserted under a brand-new id; an existing session is
updated, never re-inserted, so a request still in flight when its session is
revoked cannot bring the session back."""
import hashlib
import json
import logging
import secrets
from datetime import datetime, timezone

from flask import request
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SessionInterface, SessionMixin
from itsdangerous import BadData, URLSafeTimedSerializer
from werkzeug.datastructures import CallbackDict

from .store import get_db, now, transaction

log = logging.getLogger(__name__)

MAX_PER_USER = 20  # signed-in sessions kept per account; a new one pushes out the oldest
MAX_ANONYMOUS_COOKIE = 2048  # bytes: a CSRF token and a message or two fit many times over
ANONYMOUS_SALT = "warren-anonymous-session"


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class WarrenSession(CallbackDict, SessionMixin):
    """A session whose changes are tracked so only dirty ones are written;
    session_id is set while it is a signed-in session with a row."""

    def __init__(self, initial=None, session_id: str | None = None):
        def on_update(session):
            session.modified = True
        super().__init__(initial, on_update)
        self.session_id = session_id
        self.modified = False
        self.rotate_requested = False
        self.revoke_requested = False

    def rotate(self) -> None:
        """Issue a new id at the next save (at login), dropping the old one."""
        self.rotate_requested = True
        self.modified = True

    def revoke(self) -> None:
        """Delete this session server-side and clear its data (at logout)."""
        self.clear()
        self.revoke_requested = True


def revoke_user_sessions(db, user_id: int, keep: str | None = None) -> int:
    """Delete every session of a user, except the one with id keep."""
    if keep:
        cursor = db.execute("DELETE FROM sessions WHERE user_id = ? AND id_hash != ?",
                            [user_id, _digest(keep)])
    else:
        cursor = db.execute("DELETE FROM sessions WHERE user_id = ?", [user_id])
    return cursor.rowcount


def _insert_row(db, app, session: WarrenSession) -> tuple[str, datetime]:
    """A row under a fresh id (inside the caller's transaction); the account's
    oldest sessions beyond MAX_PER_USER go, so signing in in a loop stays bounded."""
    session_id = secrets.token_urlsafe(32)
    expires = datetime.now(timezone.utc) + app.permanent_session_lifetime
    user_id = session["user_id"]
    db["sessions"].insert({
        "id_hash": _digest(session_id), "user_id": user_id, "data": json.dumps(dict(session)),
        "created_at": now(), "expires_at": expires.isoformat(timespec="seconds"),
    })
    db.execute("DELETE FROM sessions WHERE user_id = ? AND rowid NOT IN "
               "(SELECT rowid FROM sessions WHERE user_id = ? ORDER BY rowid DESC LIMIT ?)",
               [user_id, user_id, MAX_PER_USER])
    return session_id, expires


class StoreSessionInterface(SessionInterface):
    """Flask session interface: signed cookies while anonymous, the store's
    sessions table once signed in."""

    def anonymous_serializer(self, app) -> URLSafeTimedSerializer:
        """Signs and reads anonymous session cookies with the app's secret key."""
        return URLSafeTimedSerializer(app.secret_key, salt=ANONYMOUS_SALT,
                                      serializer=TaggedJSONSerializer(),
                                      signer_kwargs={"digest_method": hashlib.sha256})

    def open_session(self, app, request):
        value = request.cookies.get(self.get_cookie_name(app))
        if not value:
            return WarrenSession()
        if "." in value:  # a signed anonymous cookie; ids (token_urlsafe) never hold a dot
            return WarrenSession(self._read_anonymous(app, value))
        row = get_db().execute(
            "SELECT data FROM sessions WHERE id_hash = ? AND expires_at > ?",
            [_digest(value), now()]).fetchone()
        if row is None:
            return WarrenSession()
        return WarrenSession(json.loads(row[0]), value)

    def _read_anonymous(self, app, value: str) -> dict:
        if len(value) > MAX_ANONYMOUS_COOKIE:
            return {}
        try:
            data = self.anonymous_serializer(app).loads(
                value, max_age=app.permanent_session_lifetime.total_seconds())
        except BadData:
            return {}
        # Only a server-side row may say who is signed in.
        if not isinstance(data, dict) or "user_id" in data:
            return {}
        return data

    def save_session(self, app, session, response):
        if session.session_id is None:
            if "user_id" in session:  # signing in: the first row, under a fresh id
                with transaction(get_db()) as db:
                    session_id, expires = _insert_row(db, app, session)
                self._set_id_cookie(app, response, session, session_id, expires)
            elif session.modified or session.revoke_requested:
                self._set_anonymous_cookie(app, response, session)
            return
        db = get_db()
        if session.revoke_requested or "user_id" not in session:
            db.execute("DELETE FROM sessions WHERE id_hash = ?", [_digest(session.session_id)])
            session.session_id = None
            self._set_anonymous_cookie(app, response, session)  # e.g. "You are signed out."
        elif session.rotate_requested:
            with transaction(db):
                # Only a session that still exists may be replaced: one revoked while
                # this request ran stays revoked.
                replaced = db.execute("DELETE FROM sessions WHERE id_hash = ?",
                                      [_digest(session.session_id)]).rowcount
                if replaced:
                    session_id, expires = _insert_row(db, app, session)
            if replaced:
                self._set_id_cookie(app, response, session, session_id, expires)
            else:
                self._forget(app, response)
        elif session.modified:
            updated = db.execute(
                "UPDATE sessions SET data = ? WHERE id_hash = ? AND expires_at > ?",
                [json.dumps(dict(session)), _digest(session.session_id), now()]).rowcount
            if not updated:  # signed out meanwhile: the late write must not revive it
                self._forget(app, response)

    def _cookie_options(self, app) -> dict:
        return {"domain": self.get_cookie_domain(app), "path": self.get_cookie_path(app),
                "httponly": self.get_cookie_httponly(app), "secure": self.get_cookie_secure(app),
                "samesite": self.get_cookie_samesite(app)}

    def _set_id_cookie(self, app, response, session, session_id: str, expires: datetime) -> None:
        session.session_id = session_id
        response.set_cookie(self.get_cookie_name(app), session_id, expires=expires,
                            **self._cookie_options(app))

    def _set_anonymous_cookie(self, app, response, session) -> None:
        value = self.anonymous_serializer(app).dumps(dict(session)) if session else ""
        if len(value) > MAX_ANONYMOUS_COOKIE and "_flashes" in session:
            session.pop("_flashes")  # unread messages go before the CSRF token does
            value = self.anonymous_serializer(app).dumps(dict(session)) if session else ""
        if len(value) > MAX_ANONYMOUS_COOKIE:
            log.warning("anonymous session of %d bytes dropped", len(value))
            value = ""
        if value:
            response.set_cookie(self.get_cookie_name(app), value, **self._cookie_options(app))
        elif self.get_cookie_name(app) in request.cookies:
            self._forget(app, response)

    def _forget(self, app, response) -> None:
        response.delete_cookie(self.get_cookie_name(app), **self._cookie_options(app))


def purge_expired(db) -> int:
    """Delete expired sessions; returns how many went."""
    return db.execute("DELETE FROM sessions WHERE expires_at <= ?", [now()]).rowcount
