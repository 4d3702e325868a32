"""gunicorn's access log without secrets. An invitation link is a
capability (whoever holds it can sign up), so its token is cut from every
field of a logged line: the request line, the path, the referrer of the
pages the invitee loads next, and the rest."""
import re

from gunicorn.glogging import Logger


def _any_spelling(text: str) -> str:
    """A pattern for text with each character literal or percent-encoded, as
    a client may send it (gunicorn decodes the path before routing)."""
    return "".join(f"(?:{re.escape(char)}|%{ord(char):02x})" for char in text)


INVITATION = re.compile(rf"({_any_spelling('/invite/')})[^?#\s\"]+", re.IGNORECASE)


def redact(text: str) -> str:
    """text with every invitation token replaced by [redacted]."""
    return INVITATION.sub(r"\1[redacted]", text)


class RedactingLogger(Logger):
    """gunicorn's logger, logging invitation links without their tokens."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {name: redact(value) if isinstance(value, str) else value
                for name, value in atoms.items()}
