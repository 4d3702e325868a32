"""Warren: self-service LXD instances with DNS names for a shared server."""
import logging
from datetime import timedelta

from flask import Flask
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()


def create_app(config: dict | None = None) -> Flask:
    """Build the app from WARREN_* settings, with optional overrides."""
    from . import cli, errors, profiles, store, web_security
    from .config import load_settings, read_secret_key
    from .sessions import StoreSessionInterface
    from .views import (admin, auth, backups, console, domains, guards, member,  # noqa: F401 (records, backups: routes on member.bp)
                        records, snapshots, tokens)

    settings = load_settings(config)
    secure = web_security.cookies_secure(settings)
    app = Flask(__name__)
    app.config.update(
        WARREN=settings,
        SECRET_KEY=read_secret_key(settings),
        # __Host-: the browser keeps it only if Secure, Path=/ and without Domain,
        # so no sibling subdomain can plant or overwrite it.
        SESSION_COOKIE_NAME="__Host-warren_session" if secure else "warren_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.session_hours),
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
        MAX_CONTENT_LENGTH=1024 * 1024,
        # Console sockets (flask-sock): a ping keeps proxies from closing an idle
        # console and finds browsers that vanished; keys come in small messages.
        SOCK_SERVER_OPTIONS={"ping_interval": 25, "max_message_size": 64 * 1024},
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app.jinja_env.add_extension("jinja2.ext.do")
    app.session_interface = StoreSessionInterface()
    store.init_app(app)
    profiles.init_app(app)
    errors.init_app(app)
    web_security.init_app(app)
    csrf.init_app(app)
    cli.init_app(app)
    app.before_request(guards.load_user)
    for blueprint in (auth.bp, member.bp, domains.bp, snapshots.bp, console.bp, tokens.bp, admin.bp):
        app.register_blueprint(blueprint)
    from .views import api
    api.init_app(app)
    return app
