"""Server-side sessions: the cookie carries only a random id; the data lives
in the sessions table, keyed by the id's SHA-256, so logout and password
changes revoke a session for real and a copied database reveals no cookie."""
import hashlib
import json
import secrets
from datetime import datetime, timezone

from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from .store import get_db, now


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class ServerSession(CallbackDict, SessionMixin):
    """A session whose changes are tracked so only dirty ones are written."""

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
        """Delete this session server-side and clear the cookie (at logout)."""
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


class StoreSessionInterface(SessionInterface):
    """Flask session interface backed by the store's sessions table."""

    def open_session(self, app, request):
        session_id = request.cookies.get(self.get_cookie_name(app))
        if not session_id:
            return ServerSession()
        row = get_db().execute(
            "SELECT data FROM sessions WHERE id_hash = ? AND expires_at > ?",
            [_digest(session_id), now()]).fetchone()
        if row is None:
            return ServerSession()
        return ServerSession(json.loads(row[0]), session_id)

    def save_session(self, app, session, response):
        name = self.get_cookie_name(app)
        domain = self.get_cookie_domain(app)
        path = self.get_cookie_path(app)
        db = get_db()
        if session.session_id and (session.revoke_requested or session.rotate_requested
                                   or (not session and session.modified)):
            db.execute("DELETE FROM sessions WHERE id_hash = ?", [_digest(session.session_id)])
            if session.revoke_requested or not session:
                response.delete_cookie(name, domain=domain, path=path)
                return
            session.session_id = None
        if not session or not (session.modified or session.session_id is None):
            return
        session_id = session.session_id or secrets.token_urlsafe(32)
        lifetime = app.permanent_session_lifetime
        expires = datetime.now(timezone.utc) + lifetime
        db["sessions"].upsert({
            "id_hash": _digest(session_id),
            "user_id": session.get("user_id"),
            "data": json.dumps(dict(session)),
            "created_at": now(),
            "expires_at": expires.isoformat(timespec="seconds"),
        }, pk="id_hash")
        if session_id != session.session_id:
            response.set_cookie(name, session_id, expires=expires, domain=domain, path=path,
                                httponly=self.get_cookie_httponly(app),
                                secure=self.get_cookie_secure(app),
                                samesite=self.get_cookie_samesite(app))
        session.session_id = session_id


def purge_expired(db) -> int:
    """Delete expired sessions; returns how many went."""
    return db.execute("DELETE FROM sessions WHERE expires_at <= ?", [now()]).rowcount
