"""The worker's build parallelism: found by measuring throughput (pure logic
with a controlled clock; tests/test_events.py and `bin/bench event` build
real bursts)."""
from app.parallelism import BuildSlots


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def host(limit: int) -> float:
    """Builds per second of a host whose best is 6 at once (past it, they
    slow each other down)."""
    return min(limit, 6) - 0.5 * max(0, limit - 6)


def run_burst(slots: BuildSlots, clock: Clock, builds: int, backlog=True) -> None:
    for _ in range(builds):
        while slots.try_acquire():
            pass
        clock.now += 1 / host(slots.running)
        slots.release(built=True, backlog=backlog)
        for _ in range(slots.running):  # the others went on running
            slots.release(built=False)


def test_the_limit_climbs_to_where_the_host_is_fastest_and_stays_near_it():
    clock = Clock()
    slots = BuildSlots(ceiling=16, start=2, clock=clock)
    run_burst(slots, clock, 400)
    assert 5 <= slots.limit <= 7, slots.history
    assert [limit for limit, _rate in slots.history[:4]] == [2, 3, 4, 5]  # one step at a time
    assert min(limit for limit, _rate in slots.history) >= 2


def test_without_waiting_builds_the_limit_does_not_move():
    clock = Clock()
    slots = BuildSlots(ceiling=16, start=3, clock=clock)
    run_burst(slots, clock, 100, backlog=False)
    assert slots.limit == 3 and slots.history == []


def test_slots_are_bounded_by_the_limit_and_by_the_ceiling():
    slots = BuildSlots(ceiling=2, start=8)
    assert slots.limit == 2
    assert slots.try_acquire() and slots.try_acquire() and not slots.try_acquire()
    slots.release(built=False)
    assert slots.try_acquire()
