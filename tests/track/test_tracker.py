"""The tracker adapters on synthetic people walking with uneven capture timestamps."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from crowdwatch.config.flow import TrackerConfig
from crowdwatch.errors import ConfigError
from crowdwatch.track import TRACKERS, Tracker, build_tracker
from crowdwatch.types import Detections

# Three people 50 x 120 px walking at 80 px/s in different directions.
STARTS = np.array([[100, 100], [400, 150], [250, 400]], np.float64)
VELOCITY = np.array([[80, 0], [-80, 10], [0, -60]], np.float64)


def boxes(t: float, people: list[int]) -> Detections:
    xy = STARTS[people] + VELOCITY[people] * t
    xyxy = np.concatenate([xy, xy + np.array([50, 120])], axis=1).astype(np.float32)
    return Detections(xyxy, np.full(len(people), 0.8, np.float32))


ALL = [0, 1, 2]
# (timestamp, people detected): uneven gaps, and frames where someone is missed.
SCHEDULES = {
    "steady 10 fps": [(i / 10, ALL) for i in range(12)],
    "uneven gaps": [(t, ALL) for t in (0, 0.03, 0.1, 0.35, 0.4, 0.5, 0.9, 0.95, 1.0, 1.3)],
    "one frame missed for everyone": [(i / 10, [] if i == 5 else ALL) for i in range(12)],
    "one person missed twice": [(i / 10, [0, 2] if i in (5, 6) else ALL) for i in range(12)],
    "long gap (0.6 s)": [(t, ALL) for t in (0, 0.1, 0.2, 0.3, 0.9, 1.0, 1.1)],
}


def track_ids(tracker: Tracker, schedule) -> list[dict[int, int]]:
    """Per frame: {person: tracker id} for the people detected."""
    out = []
    for t, people in schedule:
        result = tracker.update(boxes(t, people), t)
        assert result.tracker_id is not None
        out.append(dict(zip(people, result.tracker_id.tolist(), strict=True)))
    return out


@pytest.mark.parametrize("name", ["bytetrack", "sort"])
@pytest.mark.parametrize("schedule", list(SCHEDULES), ids=list(SCHEDULES))
def test_ids_persist(name: str, schedule: str) -> None:
    ids = track_ids(build_tracker(TrackerConfig(name=name, confirm_frames=3)), SCHEDULES[schedule])
    # Unconfirmed for the first two detections, then one id per person for the rest.
    assert all(i == -1 for frame in ids[:2] for i in frame.values())
    confirmed = ids[2:]
    for person in ALL:
        seen = {frame[person] for frame in confirmed if person in frame}
        assert len(seen) == 1 and min(seen) >= 0, (person, seen)
    assert len({frame[p] for frame in confirmed for p in frame}) == 3


@pytest.mark.parametrize("schedule", list(SCHEDULES), ids=list(SCHEDULES))
def test_ocsort_never_switches_ids(schedule: str) -> None:
    # OC-SORT may leave a resumed track unconfirmed for a frame or two, but not renumber it.
    ids = track_ids(build_tracker(TrackerConfig(name="ocsort")), SCHEDULES[schedule])
    for person in ALL:
        seen = {frame[person] for frame in ids if frame.get(person, -1) >= 0}
        assert len(seen) == 1


def test_output_keeps_input_boxes_and_order() -> None:
    tracker = build_tracker(TrackerConfig())
    for t in (0.0, 0.1, 0.2, 0.3):
        detections = boxes(t, [2, 0, 1])
        result = tracker.update(detections, t)
    assert np.array_equal(result.xyxy, detections.xyxy)
    assert np.array_equal(result.confidence, detections.confidence)
    assert result.tracker_id is not None and len(set(result.tracker_id.tolist())) == 3


@pytest.mark.parametrize("name", ["bytetrack", "sort", "ocsort"])
def test_each_id_lands_on_its_own_box_whatever_the_input_order(name: str) -> None:
    tracker = build_tracker(TrackerConfig(name=name))
    for t in (0.0, 0.1, 0.2, 0.3):
        confirmed = tracker.update(boxes(t, ALL), t)
    assert confirmed.tracker_id is not None
    ids = dict(zip(ALL, confirmed.tracker_id.tolist(), strict=True))
    assert min(ids.values()) >= 0 and len(set(ids.values())) == 3
    # A newcomer (not confirmed: -1) first, then the three people in another order: the
    # library returns fewer boxes than it got, in its own order.
    newcomer = Detections(np.array([[600, 20, 650, 140]], np.float32),
                          np.array([0.9], np.float32))
    people = boxes(0.4, [2, 0, 1])
    result = tracker.update(Detections(np.concatenate([newcomer.xyxy, people.xyxy]),
                                       np.concatenate([newcomer.confidence,
                                                       people.confidence])), 0.4)
    assert result.tracker_id is not None
    assert result.tracker_id.tolist() == [-1, ids[2], ids[0], ids[1]]


def test_low_confidence_box_keeps_a_track_but_cannot_start_one() -> None:
    tracker = build_tracker(TrackerConfig(high_confidence=0.4, activation_confidence=0.45))
    for t in (0.0, 0.1, 0.2):
        tracker.update(boxes(t, [0]), t)
    weak = boxes(0.3, [0, 1])
    weak = Detections(weak.xyxy, np.array([0.2, 0.2], np.float32))
    result = tracker.update(weak, 0.3)
    assert result.tracker_id is not None
    # Person 0 keeps its track through a 0.2 box; person 1's 0.2 box starts nothing.
    assert result.tracker_id[0] >= 0 and result.tracker_id[1] == -1


def test_predict_moves_tracks_without_changing_state() -> None:
    tracker = build_tracker(TrackerConfig())
    for t in (0.0, 0.1, 0.2, 0.3, 0.4):
        last = tracker.update(boxes(t, ALL), t)
    predicted = tracker.predict(0.6)
    assert predicted.tracker_id is not None
    order = np.argsort(predicted.tracker_id)
    assert np.array_equal(predicted.tracker_id[order], np.sort(last.tracker_id))
    # 0.2 s later the boxes have moved about 0.2 * velocity (Kalman estimate, within 3 px).
    expected = boxes(0.6, ALL).xyxy[np.argsort(last.tracker_id)]
    assert np.abs(predicted.xyxy[order] - expected).max() < 3
    again = tracker.predict(0.6)
    assert np.array_equal(again.xyxy, predicted.xyxy)
    result = tracker.update(boxes(0.5, ALL), 0.5)
    assert np.array_equal(result.tracker_id, last.tracker_id)


def test_empty_frames_and_reset() -> None:
    tracker = build_tracker(TrackerConfig())
    assert tracker.predict(0.0).xyxy.shape == (0, 4)
    result = tracker.update(Detections.empty(), 0.0)
    assert result.tracker_id is not None and result.tracker_id.shape == (0,)
    for t in (0.1, 0.2, 0.3):
        tracker.update(boxes(t, [0]), t)
    tracker.reset()
    assert tracker.predict(0.4).xyxy.shape == (0, 4)
    tracker.update(boxes(0.0, [0]), 0.0)  # time may restart after a reset


def test_timestamps_must_not_go_back() -> None:
    tracker = build_tracker(TrackerConfig())
    tracker.update(boxes(1.0, ALL), 1.0)
    tracker.update(boxes(1.0, ALL), 1.0)  # a repeated timestamp is fine
    with pytest.raises(ValueError, match="earlier than the previous"):
        tracker.update(boxes(0.5, ALL), 0.5)


def test_registry_names() -> None:
    assert set(TRACKERS) == {"bytetrack", "sort", "ocsort"}
    with pytest.raises(ConfigError, match=r"^unknown tracker 'deepsort'; valid: bytetrack, "
                       r"ocsort, sort$"):
        build_tracker(TrackerConfig.model_construct(name="deepsort"))


def test_tracking_does_not_import_torch() -> None:
    code = ("import sys, numpy as np\n"
            "from crowdwatch.track import build_tracker\n"
            "from crowdwatch.config.flow import TrackerConfig\n"
            "from crowdwatch.types import Detections\n"
            "t = build_tracker(TrackerConfig())\n"
            "t.update(Detections(np.zeros((1, 4), np.float32) + [0, 0, 9, 9], "
            "np.ones(1, np.float32)), 0.0)\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_detections_tracker_id_shape_is_checked() -> None:
    xyxy = np.zeros((2, 4), np.float32)
    confidence = np.ones(2, np.float32)
    assert Detections(xyxy, confidence).tracker_id is None
    with pytest.raises(ValueError, match="tracker_id must have one value per box"):
        Detections(xyxy, confidence, np.zeros(3, np.int64))
