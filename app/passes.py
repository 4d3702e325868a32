"""The worker's periodic passes, and the guard each runs its items in.

A pass is a function (db, settings) -> list of lines, one per thing it
did. The worker runs every pass in its own guard, and a pass runs each of
its items through each_guarded(), so one poisoned item (a name BIND
refuses, an instance LXD will not touch, a bug) is logged and skipped and
never stops the rest of the pass or the passes after it.
"""
import logging
from typing import Callable, Iterable, TypeVar

from .errors import BackendUnavailable

log = logging.getLogger(__name__)
Item = TypeVar("Item")


def each_guarded(items: Iterable[Item], describe: Callable[[Item], str],
                 work: Callable[[Item], object]) -> list:
    """Run work(item) for every item, each in its own guard; the results of
    the items that worked (failures are logged with describe(item)). An
    unreachable backend ends the pass: the other items would only fail too."""
    results = []
    for item in items:
        try:
            results.append(work(item))
        except BackendUnavailable:
            raise
        except Exception:  # one bad item must not stop the others
            log.exception("skipped %s", describe(item))
    return results
