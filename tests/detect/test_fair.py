"""Fair sharing of one detector: every camera gets its turn, whoever is quick to submit."""

from __future__ import annotations

import statistics
import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import pytest

from crowdwatch.detect.base import Detector
from crowdwatch.detect.fair import AdmissionQueue, FairShare, fair_share, parallel_streams
from crowdwatch.types import Detections

# --- the admission order, by hand --------------------------------------------------------


def test_a_camera_with_nothing_in_flight_goes_before_one_that_asked_first() -> None:
    queue = AdmissionQueue(capacity=2)
    a1 = queue.arrive("a")
    queue.grant(a1)
    a2 = queue.arrive("a")  # a has one in flight and asks again, first in line
    b1 = queue.arrive("b")  # b has none
    assert queue.next_grant() == b1
    queue.grant(b1)
    assert queue.next_grant() is None  # both slots taken
    queue.release("a")
    assert queue.next_grant() == a2


@pytest.mark.parametrize(("arrivals", "order"), [
    # One slot, released after each grant. a hands in three frames before b's one: after a's
    # first, b (granted none yet) goes before a's older frames.
    (["a", "a", "a", "b"], ["a", "b", "a", "a"]),
    (["b", "a", "a", "a"], ["b", "a", "a", "a"]),
    # Equal turns while both are waiting: alternate, the older frame first on a tie.
    (["a", "a", "b", "b"], ["a", "b", "a", "b"]),
    (["b", "b", "a", "a"], ["b", "a", "b", "a"]),
])
def test_fewest_granted_then_oldest_goes_first(arrivals: list[str], order: list[str]) -> None:
    queue = AdmissionQueue(capacity=1)
    for camera in arrivals:
        queue.arrive(camera)
    granted = []
    while (ticket := queue.next_grant()) is not None:
        camera = queue.grant(ticket)
        granted.append(camera)
        queue.release(camera)
    assert granted == order


def test_a_camera_back_from_idle_starts_level_with_the_busy_ones() -> None:
    queue = AdmissionQueue(capacity=1)
    for _ in range(10):  # a runs alone for ten frames while b is down
        queue.grant(queue.arrive("a"))
        queue.release("a")
    a = queue.arrive("a")
    b = queue.arrive("b")  # b returns: lifted to a's 10 granted, not 10 turns in a row
    assert queue.granted["b"] == 10
    assert queue.next_grant() == a  # tie on granted: the older frame
    queue.release(queue.grant(a))
    assert queue.next_grant() == b


def test_a_camera_back_from_idle_is_levelled_to_the_least_served_busy_camera() -> None:
    queue = AdmissionQueue(capacity=10)
    # a and c each keep one frame in the detector (busy all along) while b is down.
    queue.grant(queue.arrive("a"))
    queue.grant(queue.arrive("c"))
    for camera, turns in (("a", 9), ("c", 2)):
        for _ in range(turns):
            queue.release(queue.grant(queue.arrive(camera)))
    assert (queue.granted["a"], queue.granted["c"]) == (10, 4)
    b = queue.arrive("b")  # back: level with c, the lowest busy count, not with a's 10
    assert queue.granted["b"] == 4
    assert queue.next_grant() == b  # nothing in flight: first
    queue.grant(b)
    queue.arrive("a")
    b = queue.arrive("b")
    # One frame in flight each: b (5 granted) goes before a (10), though a asked first.
    assert queue.next_grant() == b


def test_capacity_must_be_positive_and_release_needs_a_frame_in_flight() -> None:
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        AdmissionQueue(0)
    with pytest.raises(ValueError, match="has no detection in flight"):
        AdmissionQueue(1).release("a")


# --- fairness on a simulated detector ------------------------------------------------------
#
# Time in ticks. The detector runs requests in submission order, STREAMS per tick. Each camera
# keeps up to DEPTH frames of its own (held or in the detector), collects them in order, and
# after collecting needs `delay` ticks before it submits again: a camera thread that gets less
# CPU (its decoder starved, the GIL lost) is slow to come back. First come, first served gives
# such a camera fewer frames; the fair share must not (each camera within 90 % of the median).

STREAMS = 2
DEPTH = 3
TICKS = 2000


def simulate(delays: list[int], fair: bool, capacity: int = 2 * STREAMS) -> list[int]:
    """Frames analysed per camera in TICKS ticks."""
    detector: deque[tuple[int, int]] = deque()  # (camera, request) in submission order
    finished: set[int] = set()
    own: list[deque[int]] = [deque() for _ in delays]
    ready_at = [0] * len(delays)
    analysed = [0] * len(delays)
    admission = AdmissionQueue(capacity)
    held: dict[int, tuple[int, int]] = {}  # ticket -> (camera, request)
    requests = 0

    def dispatch() -> None:
        while (ticket := admission.next_grant()) is not None:
            admission.grant(ticket)
            detector.append(held.pop(ticket))

    for tick in range(TICKS):
        for _ in range(min(STREAMS, len(detector))):
            camera, request = detector.popleft()
            finished.add(request)
            if fair:
                admission.release(str(camera))
        if fair:
            dispatch()
        for camera, frames in enumerate(own):
            while frames and frames[0] in finished:
                frames.popleft()
                analysed[camera] += 1
                ready_at[camera] = tick + delays[camera]
        for camera in range(len(delays)):
            if len(own[camera]) >= DEPTH or tick < ready_at[camera]:
                continue
            own[camera].append(requests)
            if fair:
                held[admission.arrive(str(camera))] = (camera, requests)
            else:
                detector.append((camera, requests))
            requests += 1
        if fair:
            dispatch()
    return analysed


CAMERA_DELAYS = [
    pytest.param([0] * 11 + [3], id="12 cameras, one slow"),
    pytest.param([0] * 11 + [5], id="12 cameras, one slower"),
    pytest.param([0] * 7 + [2], id="8 cameras, one slow"),
    pytest.param([0, 0, 1, 1, 2, 2, 3, 3, 0, 0, 1, 2], id="12 cameras, mixed"),
    pytest.param([0] * 15 + [6], id="16 cameras, one slow"),
]


@pytest.mark.parametrize("delays", CAMERA_DELAYS)
def test_first_come_first_served_leaves_the_slow_camera_behind(delays: list[int]) -> None:
    # The scenario reproduces the problem: without the fair share it fails the requirement.
    analysed = simulate(delays, fair=False)
    assert min(analysed) < 0.9 * statistics.median(analysed)


@pytest.mark.parametrize("slots_per_stream", [2, 4])
@pytest.mark.parametrize("delays", CAMERA_DELAYS)
def test_fair_share_keeps_every_camera_within_90_percent_of_the_median(
        delays: list[int], slots_per_stream: int) -> None:
    analysed = simulate(delays, fair=True, capacity=slots_per_stream * STREAMS)
    assert min(analysed) >= 0.9 * statistics.median(analysed)
    # Nothing lost to fairness: the detector stays busy (STREAMS results per tick, less the
    # few ticks before the first results).
    assert sum(analysed) >= STREAMS * TICKS - STREAMS * 5


# --- the real wrapper, with a detector the test finishes request by request ---------------


@dataclass
class _Request:
    image: np.ndarray
    finished: threading.Event = field(default_factory=threading.Event)

    @property
    def stage_seconds(self) -> dict[str, float]:
        return {"inference": 0.0}

    def done(self) -> bool:
        return self.finished.is_set()

    def result(self) -> Detections:
        self.finished.wait()
        return Detections.empty()


class _ManualDetector(Detector):
    """Requests finish when the test says so, oldest first."""

    name = "manual"
    parallel_streams = 2

    def __init__(self) -> None:
        self.requests: list[_Request] = []
        self.prepared: list[tuple[int, int]] = []

    def submit(self, image: np.ndarray) -> _Request:
        request = _Request(image)
        self.requests.append(request)
        return request

    def prepare(self, width: int, height: int) -> None:
        self.prepared.append((width, height))

    def finish_oldest(self) -> None:
        next(r for r in self.requests if not r.done()).finished.set()


def _frame(camera: int) -> np.ndarray:
    return np.full((2, 2, 3), camera, np.uint8)


def test_frames_beyond_the_capacity_are_held_and_go_in_fair_order() -> None:
    backend = _ManualDetector()
    share = FairShare(backend, capacity=2)
    a, b = share.lane("a"), share.lane("b")
    first = [a.submit(_frame(1)) for _ in range(3)]  # a is quick: three frames at once
    late = b.submit(_frame(2))  # b comes after them
    # Two slots: a's first two frames are in the backend, a's third and b's frame are held.
    assert [int(r.image[0, 0, 0]) for r in backend.requests] == [1, 1]
    assert not first[2].done() and not late.done()
    backend.finish_oldest()
    # A slot frees: b (nothing in the backend) goes before a's older third frame.
    assert late.done() is False  # dispatched, not finished
    assert [int(r.image[0, 0, 0]) for r in backend.requests] == [1, 1, 2]
    assert share.in_flight() == 2
    assert first[0].result() is not None
    backend.finish_oldest()
    assert first[1].done()
    assert [int(r.image[0, 0, 0]) for r in backend.requests] == [1, 1, 2, 1]


def test_a_held_frame_result_waits_until_a_slot_frees() -> None:
    backend = _ManualDetector()
    share = FairShare(backend, capacity=1, poll_s=0.001)
    lane = share.lane("a")
    first, second = lane.submit(_frame(1)), lane.submit(_frame(1))
    got: list[Detections] = []
    waiter = threading.Thread(target=lambda: got.append(second.result()))
    waiter.start()
    assert len(backend.requests) == 1  # the second frame is held
    backend.finish_oldest()  # the first finishes but is not collected: its slot frees anyway
    for _ in range(500):  # bounded: a regression fails here instead of hanging
        if len(backend.requests) >= 2:
            break
        waiter.join(0.01)
    assert len(backend.requests) == 2, "the held frame never reached the backend"
    backend.finish_oldest()
    waiter.join(5)
    assert got and first.done()
    assert share.in_flight() == 0


def test_a_backend_error_is_raised_by_the_frame_it_belongs_to() -> None:
    class Failing(_ManualDetector):
        def submit(self, image: np.ndarray) -> _Request:
            raise RuntimeError("inference failed")

    share = FairShare(Failing(), capacity=1)
    pending = share.lane("a").submit(_frame(1))
    assert pending.done()
    with pytest.raises(RuntimeError, match="inference failed"):
        pending.result()
    assert share.in_flight() == 0  # its slot is free again


def test_capacity_is_four_slots_per_parallel_stream_and_prepare_passes_through() -> None:
    backend = _ManualDetector()
    share = fair_share(backend)
    assert parallel_streams(backend) == 2 and share.capacity == 8
    share.lane("a").prepare(640, 480)
    assert backend.prepared == [(640, 480)] and share.lane("a").name == "manual"
