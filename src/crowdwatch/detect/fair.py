"""Fair sharing of one detector between cameras.

A shared asynchronous backend runs requests first come, first served. With several cameras
each keeping frames queued there, a camera whose thread is a little slower to hand in its
next frame (its decoder got less CPU, it lost the GIL more often) keeps fewer frames queued
and gets fewer analysed (once measured on 12 live cameras: the slowest 4.3 frames/s, the
median 9.2; the capacity bench has not reproduced it since, docs/PERFORMANCE.md).
`FairShare` wraps the detector: each camera submits through its own `lane`; submit() returns
at once, but the frame reaches the backend only when fewer than `capacity`
frames are in it, and a free slot goes to the held frame of the camera with the fewest frames
in the backend, then the fewest frames granted so far, then the oldest. A camera that is
slow to submit is served first when it does, so every camera that asks for the same rate
gets the same rate.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING

from crowdwatch.detect.base import Detector, Image, Pending, submit_at
from crowdwatch.types import Detections

if TYPE_CHECKING:
    from crowdwatch.detect.densitymap import DensityMap

# A camera waiting for a held frame's result looks this often for finished requests whose
# cameras have not collected them yet (a finished request frees its slot).
POLL_S = 0.002
# Slots per parallel inference stream: one running and a few queued, so no stream idles while
# cameras collect results and letterbox the next frames (2 cost 5-12 % of the frames/s of 12
# and 16 cameras against first come first served, measured: docs/PERFORMANCE.md).
SLOTS_PER_STREAM = 4


class AdmissionQueue:
    """Which held frame goes to the detector next: FairShare's bookkeeping, no threads."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self.in_flight: Counter[str] = Counter()
        self.granted: Counter[str] = Counter()
        self.total = 0
        self._waiting: dict[int, str] = {}
        self._tickets = 0

    def arrive(self, camera: str) -> int:
        """camera has a frame for the detector; returns the frame's ticket."""
        if not self.in_flight[camera] and camera not in self._waiting.values():
            # A camera back from idle (an outage, a late start) does not get a burst of
            # turns for the frames it did not ask for: it starts level with the busy ones.
            busy = {c for c in self._waiting.values()} | {c for c, n in
                                                          self.in_flight.items() if n}
            if busy:
                self.granted[camera] = max(self.granted[camera],
                                           min(self.granted[c] for c in busy))
        ticket = self._tickets
        self._tickets += 1
        self._waiting[ticket] = camera
        return ticket

    def next_grant(self) -> int | None:
        """The ticket that may go to the detector now, or None (no slot, nobody waiting)."""
        if self.total >= self.capacity or not self._waiting:
            return None
        return min(self._waiting, key=lambda t: (self.in_flight[self._waiting[t]],
                                                 self.granted[self._waiting[t]], t))

    def grant(self, ticket: int) -> str:
        """The ticket's frame goes to the detector; returns its camera."""
        camera = self._waiting.pop(ticket)
        self.in_flight[camera] += 1
        self.granted[camera] += 1
        self.total += 1
        return camera

    def release(self, camera: str) -> None:
        """One of camera's frames left the detector."""
        if self.in_flight[camera] <= 0:
            raise ValueError(f"{camera} has no detection in flight")
        self.in_flight[camera] -= 1
        self.total -= 1


class _FairPending:
    """A frame held by FairShare, then in the backend holding a slot until it finishes."""

    def __init__(self, share: FairShare, camera: str, image: Image,
                 input_size: int | None = None) -> None:
        self._share = share
        self.camera = camera
        self.image: Image | None = image
        self.input_size = input_size
        self.inner: Pending | None = None
        self.error: BaseException | None = None
        self.released = False
        self.collecting = False
        # Set when the frame reached the backend (or failed to): only its camera waits on it.
        self.dispatched = threading.Event()

    @property
    def stage_seconds(self) -> dict[str, float]:
        return self.inner.stage_seconds if self.inner is not None else {}

    @property
    def density(self) -> DensityMap | None:
        """The backend's density map of this frame, if it gives one (after result())."""
        return getattr(self.inner, "density", None)

    def done(self) -> bool:
        if self.error is not None:
            return True
        if self.inner is None:
            self._share.dispatch()
            if self.inner is None:
                return False
        if not self.inner.done():
            return False
        self._share.release(self)
        return True

    def result(self) -> Detections:
        while self.inner is None and self.error is None:
            self._share.wait_dispatched(self)
        if self.error is not None:
            raise self.error
        assert self.inner is not None
        self.collecting = True
        try:
            return self.inner.result()
        finally:
            self._share.release(self)


class FairShare:
    """One detector shared by several cameras, each getting its turn (see the module doc)."""

    def __init__(self, detector: Detector, capacity: int, poll_s: float = POLL_S) -> None:
        self.detector = detector
        self.name = detector.name
        self._queue = AdmissionQueue(capacity)
        self._poll_s = poll_s
        self._lock = threading.Lock()
        self._held: dict[int, _FairPending] = {}
        self._active: list[_FairPending] = []

    @property
    def capacity(self) -> int:
        return self._queue.capacity

    def lane(self, camera: str) -> FairLane:
        """The Detector one camera submits through."""
        return FairLane(self, camera)

    def prepare(self, width: int, height: int) -> None:
        self.detector.prepare(width, height)

    def in_flight(self) -> int:
        """Frames in the backend now."""
        with self._lock:
            return self._queue.total

    def submit(self, camera: str, image: Image, input_size: int | None = None) -> Pending:
        pending = _FairPending(self, camera, image, input_size)
        with self._lock:
            self._held[self._queue.arrive(camera)] = pending
        self.dispatch()
        return pending

    def dispatch(self) -> None:
        """Hand held frames to the backend while slots are free, the fairest first."""
        while True:
            with self._lock:
                if not self._held:  # nothing waits for a slot: leave finished ones be
                    return
                self._sweep()
                ticket = self._queue.next_grant()
                if ticket is None:
                    return
                self._queue.grant(ticket)
                pending = self._held.pop(ticket)
            image, pending.image = pending.image, None
            try:
                # Outside the lock: cameras letterbox their frames in parallel.
                inner = submit_at(self.detector.submit, image,  # type: ignore[arg-type]
                                  pending.input_size)
            except BaseException as error:  # the frame's own camera raises it from result()
                with self._lock:
                    pending.error = error
                    self._release_locked(pending)
                pending.dispatched.set()
                continue
            with self._lock:
                pending.inner = inner
                self._active.append(pending)
            pending.dispatched.set()

    def wait_dispatched(self, pending: _FairPending) -> None:
        """Wait a little for a held frame to reach the backend, dispatching meanwhile."""
        self.dispatch()
        # Woken by its own frame's dispatch only, not by every other camera's.
        pending.dispatched.wait(self._poll_s)

    def release(self, pending: _FairPending) -> None:
        with self._lock:
            self._release_locked(pending)
        self.dispatch()

    def _sweep(self) -> None:
        """Free the slots of finished frames their cameras have not collected yet."""
        for pending in list(self._active):
            if not pending.collecting and pending.inner is not None and pending.inner.done():
                self._release_locked(pending)

    def _release_locked(self, pending: _FairPending) -> None:
        if pending.released:
            return
        pending.released = True
        self._queue.release(pending.camera)
        if pending in self._active:
            self._active.remove(pending)


class FairLane(Detector):
    """One camera's Detector on a FairShare."""

    def __init__(self, share: FairShare, camera: str) -> None:
        self.share = share
        self.camera = camera
        self.name = share.name

    def submit(self, image: Image, input_size: int | None = None) -> Pending:
        return self.share.submit(self.camera, image, input_size)

    def prepare(self, width: int, height: int) -> None:
        self.share.prepare(width, height)


def parallel_streams(detector: Detector) -> int:
    """Requests the backend runs at once (its `parallel_streams`, else the CPU cores)."""
    from crowdwatch.detect.base import available_cores

    streams = detector.parallel_streams
    return streams if streams is not None and streams > 0 else available_cores()


def fair_share(detector: Detector, slots_per_stream: int = SLOTS_PER_STREAM) -> FairShare:
    """A FairShare of detector with slots_per_stream slots per parallel stream."""
    return FairShare(detector, slots_per_stream * parallel_streams(detector))
