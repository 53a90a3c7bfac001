"""HealthState with an injected clock: states, loop ages and running totals, exactly."""

from __future__ import annotations

import pytest

from crowdwatch.health import HealthState, SourceStatus


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(("elapsed", "age", "state"), [
    (0.0, 0.0, "up"),
    (1.23456, 1.235, "up"),  # rounded to the millisecond
    (30.0, 30.0, "up"),  # exactly at the limit: still alive
    (30.0004, 30.0, "stalled"),
])
def test_seconds_since_loop_is_the_clock_since_the_last_report(elapsed: float, age: float,
                                                               state: str) -> None:
    clock = Clock()
    health = HealthState(["a", "b"], stale_after_s=30.0, clock=clock)
    health.report("a", SourceStatus(up=True))
    clock.now += elapsed
    cameras = health.cameras()
    assert cameras["a"] == {"state": state, "seconds_since_loop": age}
    assert cameras["b"] == {"state": "starting", "seconds_since_loop": None}
    assert health.alive() is (state != "stalled")


def test_a_camera_not_declared_at_start_is_reported_too() -> None:
    health = HealthState([], clock=Clock())
    health.report("late", SourceStatus(up=True, frames_received=5))
    assert health.sources() == {"late": SourceStatus(True, frames_received=5)}
    assert health.cameras() == {"late": {"state": "up", "seconds_since_loop": 0.0}}
