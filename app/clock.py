"""The time leases are judged by: the real UTC clock, or a fixed moment a
test sets to drive expiry without waiting."""
from datetime import datetime, timezone

_fixed: datetime | None = None


def now() -> datetime:
    """The current UTC time (or the time a test set)."""
    return _fixed or datetime.now(timezone.utc)


def set_now(moment: datetime | None) -> None:
    """Fix the clock at a moment (None: back to real time)."""
    global _fixed
    _fixed = moment
