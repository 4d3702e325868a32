"""When backups are due and which ones are kept: plain functions of dates,
the same for instances' backups and Warren's own.

Retention keeps the newest good backup of each of the last `daily` days
that have one, and the newest of each of the last `weekly` ISO weeks that
have one; the newest good backup is always kept, whatever the settings
and however old it is, so a run of failures (a full disk) never leaves an
instance without one. A deleted instance has no more backups coming: its
backups go once the newest is older than the whole retention window.
"""
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Made:
    """One backup as retention sees it: its id and when it was made."""
    id: object
    at: datetime


def to_keep(good: list[Made], daily: int, weekly: int) -> set:
    """The ids of the good backups retention keeps."""
    newest_first = sorted(good, key=lambda made: made.at, reverse=True)
    keep, days, weeks = set(), [], []
    for made in newest_first:
        day, week = made.at.date(), made.at.isocalendar()[:2]
        if day not in days and len(days) < daily:
            days.append(day)
            keep.add(made.id)
        if week not in weeks and len(weeks) < weekly:
            weeks.append(week)
            keep.add(made.id)
    if newest_first:
        keep.add(newest_first[0].id)
    return keep


def window(daily: int, weekly: int) -> timedelta:
    """How far back retention reaches: a deleted instance's backups are
    kept while the newest is younger than this."""
    return timedelta(days=max(daily, 7 * weekly))


def to_keep_deleted(good: list[Made], daily: int, weekly: int, now: datetime) -> set:
    """The ids of a deleted instance's good backups retention keeps: as for a
    live one while its newest is within the window, none after."""
    if not good or now - max(made.at for made in good) > window(daily, weekly):
        return set()
    return to_keep(good, daily, weekly)


def is_due(last: datetime | None, now: datetime, interval_hours: int) -> bool:
    """Whether a scheduled backup is due (interval 0: the schedule is off).
    A little slack, so a daily backup made at 03:00:05 is due again at
    03:00 the next day rather than one pass later every day."""
    if interval_hours <= 0:
        return False
    return last is None or now - last >= timedelta(hours=interval_hours) - timedelta(minutes=5)
