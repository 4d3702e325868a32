"""How many instances the worker builds at once: measured, not fixed.

The best number depends on the host (cores, disk), the image (a Debian
root file system takes longer to shift than busybox) and what else runs, so
the worker finds it while it works: while builds are waiting, it counts how
many finish per second over a window of builds, and moves the number of
builds allowed at once one step at a time in the direction that made that
rate go up (hill climbing; it turns round when the rate drops). When no
build waits, the rate says nothing about the host and the number stays.
Other jobs (start, stop, delete, ...) never wait for a build slot.
"""
import os
import threading
import time

MIN_WINDOW = 3  # builds per measurement, at least
# Never fewer at once: one build alone leaves the host idle while it waits on
# LXD and DNS (measured: 105 busybox containers, 94 s on one thread, 81-83 s
# on 2 to 16), and where more make no difference noise must not walk it to 1.
FLOOR = 2
WORSE = 0.95  # a rate below this share of the last one turns the search round


class BuildSlots:
    """The builds running now and how many may (limit, between FLOOR and
    the worker's threads). try_acquire() before claiming a build, release()
    after it (built=False for a slot taken but not used)."""

    def __init__(self, ceiling: int, start: int | None = None, clock=time.monotonic):
        self.ceiling = max(1, ceiling)
        self.limit = min(self.ceiling, start or max(2, os.cpu_count() or 2))
        self.running = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._direction = 1
        self._last_rate: float | None = None
        self._window_started: float | None = None
        self._window_builds = 0
        self._window_saturated = True
        self.history: list[tuple[int, float]] = []  # (limit, builds per second) per window

    def try_acquire(self) -> bool:
        with self._lock:
            if self.running >= self.limit:
                return False
            self.running += 1
            if self._window_started is None:
                self._window_started = self._clock()
            return True

    def release(self, built: bool = True, backlog: bool = False) -> None:
        """A slot is free again; built: a build finished in it; backlog:
        builds were still waiting for a slot when it finished."""
        with self._lock:
            self.running = max(0, self.running - 1)
            if not built:
                return
            self._window_builds += 1
            self._window_saturated &= backlog
            if self._window_builds < max(MIN_WINDOW, self.limit):
                return
            elapsed = self._clock() - (self._window_started or self._clock())
            if self._window_saturated and elapsed > 0:
                self._step(self._window_builds / elapsed)
            self._window_started = self._clock() if self.running else None
            self._window_builds = 0
            self._window_saturated = True

    def _step(self, rate: float) -> None:
        self.history.append((self.limit, rate))
        if self._last_rate is not None and rate < self._last_rate * WORSE:
            self._direction = -self._direction
        self._last_rate = rate
        floor = min(FLOOR, self.ceiling)
        self.limit = min(self.ceiling, max(floor, self.limit + self._direction))
        if self.limit in (floor, self.ceiling):  # at an end, the next step can only go back
            self._direction = 1 if self.limit == floor else -1
