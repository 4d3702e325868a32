"""The JSON API, /api/v1: what members and admins do in the web UI, over
the same service functions, for scripts and the `warren` command-line
client (cli/).

flask-smorest builds the OpenAPI 3.1 document from these modules' schemas
and routes (served at /api/v1/openapi.json, with a docs page at
/api/v1/docs). Each resource is one module with one blueprint made by
`resource()`; adding a resource is a new module here and one line in
RESOURCES. Every request is authenticated with a personal access token
(Authorization: Bearer ...; app/tokens.py) and nothing else: a session
cookie is ignored here, so no browser can be tricked into an API call, and
the CSRF check (which guards cookie-authenticated forms) does not apply.
Errors are Warren's one error hierarchy rendered by errors.py, with every
field error at once.
"""
from flask import Flask, g, render_template, request
from flask_smorest import Api
from flask_smorest import Blueprint as SmorestBlueprint
from werkzeug.exceptions import UnprocessableEntity

from ... import audit, errors, tokens, web_security
from ...errors import AuthenticationFailed, NotFound
from .schemas import ErrorSchema

PREFIX = "/api/v1"
MAX_ID = 2 ** 63 - 1  # SQLite's largest integer: a larger id names nothing
READS = ("GET", "HEAD", "OPTIONS")


class WarrenApi(Api):
    """flask-smorest's Api with Warren's error handling (errors.py renders
    every error, with one body shape) instead of its own."""
    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self):
        pass


def resource(name: str, description: str, admin: bool = False) -> SmorestBlueprint:
    """A blueprint for one API resource: token authentication with the
    scope its routes need (read for reads, member for changes, admin for
    admin resources), its errors in Warren's shape."""
    bp = SmorestBlueprint(name, __name__, url_prefix=PREFIX + ("/admin" if admin else ""),
                          description=description)
    bp.before_request(lambda: _authenticate("admin" if admin else
                                            "read" if request.method in READS else "member"))
    bp.teardown_request(_forget_token)
    bp.register_error_handler(UnprocessableEntity, _invalid_request)
    return bp


def _authenticate(needed: str) -> None:
    g.user = None  # a session cookie never speaks for an API request
    for value in (request.view_args or {}).values():
        if isinstance(value, int) and value > MAX_ID:
            raise NotFound("Not found.")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationFailed("Send an API token: Authorization: Bearer <token>. Make one "
                                   "under Tokens in the web UI or with `warren token create`.")
    user, row = tokens.authenticate(token.strip(), request.remote_addr or "unknown")
    g.via = audit.VIA.set(row["name"])
    tokens.require(row, user, needed)
    g.user, g.token = user, row


def _forget_token(_error=None) -> None:
    via = g.pop("via", None)
    if via is not None:
        audit.VIA.reset(via)


def _invalid_request(error):
    """A body or query the schema refuses: every field error at once, in
    the one error shape."""
    messages = (getattr(error, "data", None) or {}).get("messages") or {}
    fields = {}
    for location in messages.values():  # {"json": {field: [...]}, "query": {...}}
        for field, problems in (location.items() if isinstance(location, dict) else ()):
            fields[field] = _flat(problems)
    return errors.render(422, "The request has invalid fields.", fields)


def _flat(problems) -> list[str]:
    if isinstance(problems, dict):
        return [f"{key}: {text}" for key, value in problems.items() for text in _flat(value)]
    return [str(problem) for problem in problems] if isinstance(problems, list) else [str(problems)]


def docs():
    """The API's docs page (Swagger UI, served from Warren's own origin)."""
    response = render_template("api/docs.html")
    return response, 200, {"Content-Security-Policy": web_security.docs_policy()}


def init_app(app: Flask) -> Api:
    """Register every resource and the OpenAPI document."""
    from . import (admin_approvals, admin_audit, admin_backups, admin_members, admin_profiles,
                   account, backups, domains, forwards, instances, keys, records, sites, snapshots)
    from ... import csrf

    app.config.update(
        API_TITLE="Warren", API_VERSION="1", OPENAPI_VERSION="3.1.0", OPENAPI_URL_PREFIX=PREFIX,
        OPENAPI_JSON_PATH="openapi.json",
        API_SPEC_OPTIONS={
            "info": {"description": "Warren's JSON API. Authenticate with a personal access token: "
                                    "Authorization: Bearer <token>."},
            "components": {"securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
            "security": [{"token": []}]})
    api = WarrenApi(app)
    # One line per resource: adding one is a module with a `bp` and a line here.
    RESOURCES = (instances, keys, account, admin_members, admin_profiles, admin_approvals,
                 admin_audit, snapshots, forwards, sites, records, domains, backups, admin_backups)
    for module in RESOURCES:
        csrf.exempt(module.bp)
        api.register_blueprint(module.bp)
    app.add_url_rule(PREFIX + "/docs", "api_docs", docs)
    return api
