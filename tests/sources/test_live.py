"""LiveSource's counters and timestamps, with a capture the test steps frame by frame.

The capture's read() blocks until the test hands it a frame, so the order of publishes and
reads is exact and frames_dropped is known by hand: a published frame is dropped when the
next one replaces it before the consumer took it.
"""

from __future__ import annotations

import itertools
import queue
import time
from collections.abc import Iterator

import numpy as np
import pytest

from crowdwatch.config import CameraConfig
from crowdwatch.sources.live import Backoff, LiveSource

END = None


class SteppedCapture:
    """read() returns the next image the test put, or a failed read at END."""

    def __init__(self) -> None:
        self.images: queue.Queue[np.ndarray | None] = queue.Queue()

    def isOpened(self) -> bool:
        return True

    def read(self) -> tuple[bool, np.ndarray | None]:
        image = self.images.get(timeout=10)
        return (image is not None), image

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        pass


class Stepper:
    """A LiveSource over a SteppedCapture, with an injected capture clock."""

    def __init__(self, clock_start: float = 1000.0) -> None:
        self.capture = SteppedCapture()
        self.published = 0
        times = itertools.count(clock_start, 0.5)  # 1000.0, 1000.5, 1001.0 ...
        # read_timeout_s is long so a test waiting between steps is never a stall.
        camera = CameraConfig(id="cam", source="rtsp://cam.local/s", read_timeout_s=60)
        self.source = LiveSource("rtsp://cam.local/s", "cam", camera, lambda _t: self.capture,
                                 Backoff(0.01, 0.01), clock=lambda: next(times))

    def publish(self, frames: int) -> None:
        for _ in range(frames):
            self.capture.images.put(np.full((2, 2, 3), self.published % 256, np.uint8))
            self.published += 1
        deadline = time.monotonic() + 10
        while self.source._produced < self.published:
            assert time.monotonic() < deadline, "the reader never published the frame"
            time.sleep(0.001)

    def close(self) -> None:
        self.capture.images.put(END)
        self.source.close()


@pytest.fixture
def stepper() -> Iterator[Stepper]:
    running = Stepper()
    yield running
    running.close()


# Steps: a number publishes that many frames, "r" reads one (expected index after the colon).
@pytest.mark.parametrize(("steps", "indices", "dropped"), [
    # A consumer as fast as the camera drops nothing.
    (["1", "r", "1", "r", "1", "r"], [0, 1, 2], 0),
    # Three frames before a read: the first two are replaced unseen.
    (["3", "r"], [2], 2),
    (["1", "r", "3", "r", "1", "r"], [0, 3, 4], 2),
    (["2", "r", "2", "r", "4", "r"], [1, 3, 7], 1 + 1 + 3),
    # A frame waiting when nothing reads is not dropped until a newer one replaces it.
    (["1"], [], 0),
    (["1", "1"], [], 1),
])
def test_frames_dropped_counts_exactly_the_replaced_frames(
        stepper: Stepper, steps: list[str], indices: list[int], dropped: int) -> None:
    seen = []
    for step in steps:
        if step == "r":
            frame = stepper.source.read(5.0)
            assert frame is not None
            seen.append(frame.index)
        else:
            stepper.publish(int(step))
    assert seen == indices
    assert stepper.source.frames_dropped == dropped
    # Nothing new: a read times out with None and counts nothing.
    if steps[-1] == "r":
        assert stepper.source.read(0.01) is None
        assert stepper.source.frames_dropped == dropped


def test_captured_at_is_the_clock_when_the_frame_left_the_capture(stepper: Stepper) -> None:
    stepper.publish(1)
    first = stepper.source.read(5.0)
    stepper.publish(3)
    last = stepper.source.read(5.0)
    assert first is not None and last is not None
    assert (first.index, first.captured_at, first.position_s) == (0, 1000.0, None)
    assert (last.index, last.captured_at) == (3, 1001.5)
    assert int(last.image[0, 0, 0]) == 3
