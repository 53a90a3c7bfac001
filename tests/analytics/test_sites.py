"""Sites across cameras: occupancy over doors, people over zones, level, drift, reset."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from crowdwatch.analytics.sites import SavedSite, SiteTracker, next_reset_after
from crowdwatch.config.integrations import SiteConfig
from crowdwatch.config.zones import LevelThresholds
from crowdwatch.types import Level, LineTotals, ZoneStats

# 2026-12-02 00:00:00 UTC
MIDNIGHT = 1_796_169_600.0


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def site(**extra: object) -> SiteConfig:
    return SiteConfig.model_validate({
        "name": "campus",
        "entrances": [{"camera": "pets", "line": "west"},
                      {"camera": "gate2", "line": "door", "invert": True}],
        "zones": [{"camera": "pets", "zone": "plaza"}, {"camera": "gate2", "zone": "hall"}],
        **extra})


def crossing(new_in: int = 0, new_out: int = 0) -> LineTotals:
    return LineTotals(0, 0, new_in, new_out)


def test_occupancy_is_in_minus_out_over_every_door_inverted_doors_reversed() -> None:
    tracker = SiteTracker([site()], LevelThresholds())
    tracker.update("pets", {}, {"west": crossing(new_in=5, new_out=1)})   # +4
    got = tracker.update("gate2", {}, {"door": crossing(new_in=1, new_out=3)})  # inverted: +2
    assert got["campus"].occupancy == 6
    # A camera that feeds no site costs nothing and changes nothing.
    assert tracker.update("elsewhere", {}, {"west": crossing(new_in=9)}) == {}
    assert tracker.snapshot()["campus"].occupancy == 6


def test_people_are_the_sum_of_the_latest_zone_counts_of_all_cameras() -> None:
    tracker = SiteTracker([site()], LevelThresholds())
    assert tracker.snapshot()["campus"].people is None  # nothing seen yet: no fake 0
    tracker.update("pets", {"plaza": ZoneStats(3), "other": ZoneStats(50)}, {})
    tracker.update("gate2", {"hall": ZoneStats(4)}, {})
    assert tracker.update("pets", {"plaza": ZoneStats(2)}, {})["campus"].people == 6


def test_occupancy_is_clamped_at_zero_and_the_clamped_people_are_drift() -> None:
    tracker = SiteTracker([site()], LevelThresholds())
    tracker.update("pets", {}, {"west": crossing(new_in=2)})
    got = tracker.update("pets", {}, {"west": crossing(new_out=5)})
    assert (got["campus"].occupancy, got["campus"].drift) == (0, 3)
    got = tracker.update("pets", {}, {"west": crossing(new_in=1)})
    assert (got["campus"].occupancy, got["campus"].drift) == (1, 3)


def test_level_follows_the_zone_thresholds_with_hysteresis_and_clear_delay() -> None:
    levels = LevelThresholds(warning=0.8, critical=1.0, hysteresis=0.1, clear_frames=2)
    tracker = SiteTracker([site(capacity=10)], levels)

    def walk(delta: int) -> tuple[float | None, Level | None]:
        got = tracker.update("pets", {}, {"west": crossing(new_in=max(delta, 0),
                                                           new_out=max(-delta, 0))})["campus"]
        return got.ratio, got.level

    assert walk(7) == (0.7, Level.OK)
    assert walk(1) == (0.8, Level.WARNING)
    assert walk(-1) == (0.7, Level.WARNING)   # 0.7 is not below 0.8 - 0.1
    assert walk(-1) == (0.6, Level.WARNING)   # below the band: 1st frame of clear_frames
    assert walk(0) == (0.6, Level.OK)         # 2nd
    assert walk(4) == (1.0, Level.CRITICAL)


def test_without_entrances_the_level_comes_from_the_people() -> None:
    zones_only = SiteConfig(name="hall", zones=site().zones, capacity=4)
    tracker = SiteTracker([zones_only], LevelThresholds(clear_frames=1))
    got = tracker.update("pets", {"plaza": ZoneStats(4)}, {})["hall"]
    assert (got.occupancy, got.ratio, got.level) == (None, 1.0, Level.CRITICAL)


def test_reset_at_empties_the_site_once_a_day_local_time() -> None:
    clock = Clock(MIDNIGHT + 3 * 3600)  # 03:00
    tracker = SiteTracker([site(reset_at="04:00")], LevelThresholds(), clock=clock)
    tracker.update("pets", {}, {"west": crossing(new_in=8)})
    clock.now = MIDNIGHT + 4 * 3600 - 1
    assert tracker.update("pets", {}, {})["campus"].occupancy == 8
    clock.now = MIDNIGHT + 4 * 3600 + 5
    assert tracker.update("pets", {}, {"west": crossing(new_in=1)})["campus"].occupancy == 1
    clock.now = MIDNIGHT + 20 * 3600  # later that day: no second reset
    assert tracker.update("pets", {}, {})["campus"].occupancy == 1
    # The next day's reset shows at a scrape even while no camera delivers frames.
    clock.now = MIDNIGHT + 28 * 3600 + 1
    assert tracker.snapshot()["campus"].occupancy == 0


@pytest.mark.parametrize(("now", "expected"), [
    (MIDNIGHT + 3 * 3600, MIDNIGHT + 4 * 3600),
    (MIDNIGHT + 4 * 3600, MIDNIGHT + 28 * 3600),
    (MIDNIGHT + 23 * 3600, MIDNIGHT + 28 * 3600),
])
def test_next_reset(now: float, expected: float) -> None:
    assert next_reset_after(now, 4 * 60) == expected


def test_restored_occupancy_and_drift_and_a_reset_missed_while_down() -> None:
    saved = {"campus": SavedSite(occupancy=17, drift=2)}
    clock = Clock(MIDNIGHT + 3 * 3600)
    tracker = SiteTracker([site(reset_at="04:00")], LevelThresholds(), saved,
                          saved_at=MIDNIGHT + 2 * 3600, clock=clock)
    assert (tracker.snapshot()["campus"].occupancy, tracker.snapshot()["campus"].drift) == (17, 2)
    assert tracker.saved() == saved
    # Saved at 02:00, started again at 05:00: the 04:00 reset happened while down.
    clock.now = MIDNIGHT + 5 * 3600
    late = SiteTracker([site(reset_at="04:00")], LevelThresholds(), saved,
                       saved_at=MIDNIGHT + 2 * 3600, clock=clock)
    assert (late.snapshot()["campus"].occupancy, late.snapshot()["campus"].drift) == (0, 2)


def test_camera_threads_update_one_site_without_losing_a_crossing() -> None:
    tracker = SiteTracker([site()], LevelThresholds())
    per_thread = 2000

    def feed(camera: str, line: str, in_: int, out: int) -> None:
        for _ in range(per_thread):
            tracker.update(camera, {}, {line: crossing(new_in=in_, new_out=out)})

    threads = [threading.Thread(target=feed, args=("pets", "west", 1, 0)),
               threading.Thread(target=feed, args=("gate2", "door", 0, 1)),  # inverted: +1
               threading.Thread(target=feed, args=("pets", "west", 1, 0))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tracker.snapshot()["campus"].occupancy == 3 * per_thread
