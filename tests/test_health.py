"""HealthState with an injected clock: states, loop ages and running totals, exactly."""

from __future__ import annotations

import pytest

from crowdwatch.health import HealthState, SourceStatus


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_beat_keeps_the_running_totals() -> None:
    health = HealthState(["a"], clock=Clock())
    health.report("a", SourceStatus(up=True, frames_dropped=3, frames_skipped=2, reconnects=1,
                                    frames_received=40, stream_fps=25.0))
    health.beat("a", up=False)
    assert health.sources()["a"] == SourceStatus(False, 3, 2, 1, frames_received=40,
                                                 stream_fps=25.0)


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
    health.beat("a", up=True)
    clock.now += elapsed
    cameras = health.cameras()
    assert cameras["a"] == {"state": state, "seconds_since_loop": age}
    assert cameras["b"] == {"state": "starting", "seconds_since_loop": None}
    assert health.alive() is (state != "stalled")


def test_a_camera_first_seen_by_beat_starts_from_zero_totals() -> None:
    health = HealthState([], clock=Clock())
    health.beat("late", up=True)
    assert health.sources() == {"late": SourceStatus(True, 0, 0, 0)}
