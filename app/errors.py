"""Warren's one error hierarchy and the single handler that turns it into a
response: a status from one table, HTML or JSON as the client prefers.

Adapters (lxd, dns, store) translate their library's exceptions into these
at the boundary, so nothing above them catches pylxd or dnspython errors.
"""
import logging

log = logging.getLogger(__name__)


class WarrenError(Exception):
    """Base of every error Warren raises on purpose; the message is for users."""


class ConfigError(WarrenError):
    """A configuration key has a bad or missing value."""


class ValidationError(WarrenError):
    """Input failed validation; carries every field error at once."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {' '.join(messages)}"
                                   for field, messages in errors.items()))


class AuthenticationFailed(WarrenError):
    """Wrong user name or password (deliberately not saying which)."""


class TooManyAttempts(WarrenError):
    """Sign-ins are blocked for a while after repeated failures."""


class NotFound(WarrenError):
    """The thing does not exist, or the caller may not know it does."""


class Forbidden(WarrenError):
    """The caller is known but may not do this."""


class Conflict(WarrenError):
    """The request clashes with existing state (a name already taken, ...)."""


class PreconditionFailed(Conflict):
    """The caller's copy is stale (If-Match names another version)."""


class PreconditionRequired(WarrenError):
    """A change that must say which version it replaces (If-Match) did not."""


class QuotaExceeded(WarrenError):
    """The request would take a member past an allowance."""


class BackendError(WarrenError):
    """A backend (LXD, DNS) refused or failed an operation."""


class BackendUnavailable(BackendError):
    """A backend could not be reached at all."""


class DnsError(BackendError):
    """The DNS server refused or failed an update."""


class LxdError(BackendError):
    """LXD refused or failed an operation."""


class LookupFailed(BackendError):
    """A lookup in the public DNS got no usable answer (a timeout, SERVFAIL,
    a refusal): neither yes nor no."""


STATUS = (
    (ValidationError, 422),
    (AuthenticationFailed, 401),
    (TooManyAttempts, 429),
    (NotFound, 404),
    (Forbidden, 403),
    (PreconditionFailed, 412),
    (PreconditionRequired, 428),
    (Conflict, 409),
    (QuotaExceeded, 409),
    (BackendUnavailable, 503),
    (BackendError, 502),
    (WarrenError, 500),
)


def status_for(error: WarrenError) -> int:
    """The HTTP status for an error, from the one table above."""
    for kind, status in STATUS:
        if isinstance(error, kind):
            return status
    return 500


def render(status: int, message: str, errors: dict | None = None):
    """The one error response: JSON {"error", "status", "fields"} for the API
    and clients that ask for JSON, the error page for browsers."""
    from flask import jsonify, render_template, request

    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    if request.path.startswith("/api/") or best == "application/json":
        body = {"error": message, "status": status}
        if errors:
            body["fields"] = errors
        response = jsonify(body)
        if status == 429:
            response.headers["Retry-After"] = "60"
        return response, status
    return render_template("error.html", status=status, message=message), status


def init_app(app):
    """Register the handlers that render WarrenError and unexpected errors."""
    from flask import request

    @app.errorhandler(WarrenError)
    def handle_warren_error(error: WarrenError):
        status = status_for(error)
        if status >= 500:
            log.error("request failed: %s", error, exc_info=error)
        return render(status, str(error), getattr(error, "errors", None))

    @app.errorhandler(404)
    def handle_not_found(_error):
        return render(404, "Not found.")

    @app.errorhandler(405)
    def handle_method(_error):
        return render(405, "That method is not allowed here.")

    @app.errorhandler(400)
    def handle_bad_request(error):
        return render(400, getattr(error, "description", None) or "Bad request.")

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception):
        if hasattr(error, "code") and isinstance(getattr(error, "code"), int):
            return render(error.code, getattr(error, "description", "Error."))
        from .accesslog import redact  # an invitation link's token stays out of every log
        log.exception("unexpected error on %s %s", request.method, redact(request.path))
        return render(500, "Something went wrong on our side; it has been logged.")
