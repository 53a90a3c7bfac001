"""Live sources: cameras and streams, newest frame only, reconnecting with backoff."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator

from crowdwatch.config import CameraConfig
from crowdwatch.sources.base import FrameSource
from crowdwatch.sources.capture import (
    CaptureFactory,
    CaptureLike,
    Image,
    device_hint,
    nominal_fps,
)
from crowdwatch.sources.files import JOIN_TIMEOUT_S
from crowdwatch.sources.urls import is_url, redact
from crowdwatch.types import Frame

log = logging.getLogger("crowdwatch.sources")

BACKOFF_BASE_S = 0.5


class Backoff:
    """Reconnect delays base, base*factor, base*factor^2 ... capped at cap, until reset()."""

    def __init__(self, base: float = BACKOFF_BASE_S, cap: float = 30.0, factor: float = 2.0):
        if base <= 0 or cap <= 0 or factor < 1:
            raise ValueError("Backoff needs base > 0, cap > 0 and factor >= 1")
        self.base = base
        self.cap = cap
        self.factor = factor
        self._next = base

    def next_delay(self) -> float:
        """The delay before the next attempt; each call doubles the following one."""
        delay = min(self._next, self.cap)
        # Stop growing at the cap so endless failures never overflow the float.
        self._next = min(self._next * self.factor, self.cap)
        return delay

    def reset(self) -> None:
        """Start again from the base delay (after a success)."""
        self._next = self.base


class LiveSource(FrameSource):
    """A camera or stream read on a daemon thread, keeping only the newest frame.

    The reader reconnects forever with exponential backoff; a watchdog thread marks the
    source down when a read blocks longer than camera.read_timeout_s.
    """

    live = True
    finished = False

    def __init__(self, target: str | int, name: str, camera: CameraConfig,
                 factory: CaptureFactory, backoff: Backoff | None = None,
                 clock: Callable[[], float] = time.time):
        self.name = name
        self.camera_id = camera.id
        self._clock = clock  # Frame.captured_at (Unix time); tests inject one
        self.frames_dropped = 0
        self.frames_skipped = 0
        self.reconnects = 0
        self._target = target
        self._factory = factory
        self._timeout = camera.read_timeout_s
        # Short: the reader asks the server why between attempts, and close() waits for it.
        self._diagnose_s = min(camera.read_timeout_s, 2.0)
        self._backoff = backoff or Backoff(BACKOFF_BASE_S, camera.max_backoff_s)
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._produced = 0  # frames published so far; also the next Frame.index
        self._taken = 0  # value of _produced when the consumer last took a frame
        self._connected = False
        # Monotonic time of the last sign of life: the last frame or a successful open.
        self._last_progress = time.monotonic()
        self._last_frame = -math.inf
        self._capture_open = False
        self._stall_logged = False
        self._why = ""  # the last failure, for the retry message
        self._decode_s = 0.0  # time in capture.read() of the frame being published
        self._reader = threading.Thread(target=self._run, name=f"source {name}", daemon=True)
        self._watchdog = threading.Thread(target=self._watch, name=f"watchdog {name}",
                                          daemon=True)
        self._reader.start()
        self._watchdog.start()

    def _run(self) -> None:
        failures = 0  # failed attempts since frames last flowed
        while not self._stop.is_set():
            capture = self._open()
            if capture is not None:
                got_frame = False
                try:
                    for image in self._frames(capture):
                        if not got_frame:
                            # A reopening counts once it delivers: a capture that opens
                            # but never yields a frame is no recovery.
                            got_frame = True
                            if failures:
                                self.reconnects += 1
                                log.info("%s: reconnected after %d failed attempt(s)",
                                         self.name, failures)
                            else:
                                log.info("%s: connected", self.name)
                            failures = 0
                        self._publish(image)
                finally:
                    self._capture_open = False
                    capture.release()
            self._connected = False
            if self._stop.is_set():
                break
            failures += 1
            delay = self._backoff.next_delay()
            log.warning("camera %s, %s: %s; retrying in %.1fs", self.camera_id, self.name,
                        self._why, delay)
            self._stop.wait(delay)

    def _open(self) -> CaptureLike | None:
        capture = None
        try:
            capture = self._factory(self._target)
            opened = capture.isOpened()
        except Exception as error:
            opened = False
            self._why = f"cannot open ({redact(str(error))})"
        else:
            hint = device_hint(self._target) if isinstance(self._target, int) else ""
            self._why = f"cannot open{hint}"
        if not opened:
            if capture is not None:
                capture.release()
            # OpenCV/FFmpeg only say the open failed; the server can say why. Factories
            # offer a `diagnose(url, timeout)` (the default one does; test fakes need not).
            diagnose = getattr(self._factory, "diagnose", None)
            if (diagnose is not None and isinstance(self._target, str) and is_url(self._target)
                    and not self._stop.is_set()):
                self._why = f"cannot open: {redact(diagnose(self._target, self._diagnose_s))}"
            return None
        self.stream_fps = nominal_fps(capture) or self.stream_fps
        with self._cond:
            self._last_progress = time.monotonic()
            self._stall_logged = False
            self._capture_open = True
        return capture

    def _frames(self, capture: CaptureLike) -> Iterator[Image]:
        """Frames until a read fails or stalls; the caller releases the capture."""
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                ok, image = capture.read()
            except Exception as error:
                # Any error ends this capture like a failed read; the thread must survive.
                ok, image = False, None
                self._why = f"read failed ({redact(str(error))})"
            else:
                self._why = "read failed"
            if self._stop.is_set():
                return
            with self._cond:
                stalled = time.monotonic() - self._last_progress > self._timeout
                already_logged = self._stall_logged
            if stalled:
                # A frame after a stall is dropped: the stream is reopened to get fresh ones.
                self._why = f"no frame for {self._timeout:g}s"
                if already_logged:
                    self._why += " (the blocked read has returned)"
                return
            if not ok or image is None:
                return
            self._backoff.reset()
            self._decode_s = time.perf_counter() - started
            yield image

    def _publish(self, image: Image) -> None:
        now = self._clock()
        with self._cond:
            if self._latest is not None and self._produced > self._taken:
                self.frames_dropped += 1
            self._latest = Frame(image, self._produced, None, now, self._decode_s)
            self._produced += 1
            self._last_progress = self._last_frame = time.monotonic()
            self._connected = True
            self._cond.notify_all()

    def _watch(self) -> None:
        # `up` turns False by itself once the last frame is too old; the watchdog makes the
        # stall visible in the log while the reader is still blocked. The reader cannot be
        # interrupted safely (releasing a capture during read() can crash OpenCV), so it
        # reconnects when its read returns.
        interval = min(1.0, self._timeout / 4)
        while not self._stop.wait(interval):
            with self._cond:
                stalled = (self._capture_open and not self._stall_logged
                           and time.monotonic() - self._last_progress > self._timeout)
                if stalled:
                    self._stall_logged = True
            if stalled:
                log.warning("%s: no frame for %gs; marked down, reconnecting when the "
                            "read returns", self.name, self._timeout)

    def read(self, timeout: float) -> Frame | None:
        """The newest frame not yet returned, waiting up to timeout seconds; else None."""
        with self._cond:
            if not self._cond.wait_for(
                    lambda: self._produced > self._taken or self._stop.is_set(),
                    max(timeout, 0.0)):
                return None
            if self._stop.is_set():
                return None
            self._taken = self._produced
            frame, self._latest = self._latest, None
            return frame

    @property
    def why(self) -> str:
        """The last failure ("cannot open: connection refused by ..."), "" while frames flow."""
        return self._why

    @property
    def up(self) -> bool:
        return self._connected and time.monotonic() - self._last_frame < self._timeout

    def close(self) -> None:
        """Stop both threads; a reader blocked inside read() releases its capture later."""
        self._stop.set()
        with self._cond:
            self._connected = False
            self._cond.notify_all()
        for thread in (self._reader, self._watchdog):
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(JOIN_TIMEOUT_S)
        if self._reader.is_alive():
            log.warning("%s: reader still blocked in the capture; it will exit when the "
                        "read returns", self.name)

    def reader_stuck(self) -> bool:
        return self._reader.is_alive()

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
