"""Frame sources: video files, image folders and live cameras behind one small interface.

Every source decodes on its own daemon thread so decoding overlaps inference. File sources
hand over every frame in order through a short queue; live sources keep only the newest
frame, so a slow consumer drops frames instead of falling behind the camera.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

import cv2
import numpy as np
import numpy.typing as npt

from crowdwatch.config import CameraConfig
from crowdwatch.errors import SourceError
from crowdwatch.types import Frame

log = logging.getLogger("crowdwatch.sources")

LIVE_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "http", "https"})
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
# An image folder has no frame rate of its own and the config has no option for one.
FOLDER_FPS = 10.0
# Used when a container reports no usable frame rate (0, NaN, negative).
FALLBACK_FPS = 10.0
BACKOFF_BASE_S = 0.5
# Decoding may run this many frames ahead of the consumer of a file source.
FILE_QUEUE_SIZE = 4
# How long close() waits for a reader thread; a read blocked in the network is not waited out.
JOIN_TIMEOUT_S = 2.0
# Undecodable frames in a row a video file may have before the rest counts as cut off: one
# corrupt region costs one failed read per damaged frame, so the bound only matters when the
# container does not tell how many frames it holds.
MAX_BAD_FRAMES_UNKNOWN_LENGTH = 25

# RTSP over TCP: no frame is lost to UDP packet loss or a firewall, and a server that dies
# resets the connection at once. An operator's own FFmpeg options (e.g. rtsp_transport;udp)
# win. Set here, at import, before any capture thread reads the environment.
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
if "OPENCV_LOG_LEVEL" not in os.environ:
    # OpenCV's own warnings repeat what crowdwatch logs (in one line, credentials redacted)
    # and dump C++ exceptions for a missing device; FFmpeg's errors still show.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
# Userinfo runs to the last '@' before the path, so an unescaped '@' in a password is covered.
_CREDENTIALS = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#]*@")
# How a camera URL looks, in words the credential redaction leaves alone.
URL_FORM = "expected e.g. rtsp://host:554/path, with user:password@ before the host if needed"
# A live scheme followed by one slash or none: "rtsp:/cam/1", "rtsp:cam".
_BROKEN_SCHEME = re.compile(r"^(rtsps?|rtmp|https?):(?!//)", re.IGNORECASE)
_END = object()

Image = npt.NDArray[np.uint8]


class CaptureLike(Protocol):
    """The part of cv2.VideoCapture that sources use."""

    def isOpened(self) -> bool: ...

    def read(self) -> tuple[bool, Image | None]: ...

    def get(self, prop: int) -> float: ...

    def release(self) -> None: ...


CaptureFactory = Callable[[str | int], CaptureLike]


@runtime_checkable
class FrameSource(Protocol):
    """What the pipeline reads frames from."""

    name: str
    live: bool
    frames_dropped: int
    frames_skipped: int
    reconnects: int

    def read(self, timeout: float) -> Frame | None:
        """The next frame, or None when none is ready within timeout seconds."""
        ...

    @property
    def finished(self) -> bool:
        """A file or folder source has handed over its last frame."""
        ...

    @property
    def up(self) -> bool:
        """Frames are arriving."""
        ...

    def close(self) -> None:
        """Stop threads and release captures; safe to call twice."""
        ...


def redact(text: str) -> str:
    """Replace the user:password part of every URL in text with ***."""
    return _CREDENTIALS.sub(r"\1***@", text)


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


def close_all(sources: Iterable[FrameSource]) -> None:
    """Close sources side by side: readers blocked in a dead network are waited for together,
    so stopping takes one JOIN_TIMEOUT_S however many cameras hang (SIGTERM within 5 s)."""
    closers = [threading.Thread(target=s.close, name=f"close {s.name}", daemon=True)
               for s in sources]
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join()


def _is_url(source: str) -> bool:
    return _SCHEME.match(source) is not None


def _check_url(source: str) -> None:
    """SourceError naming the fault if a live URL cannot be right (no host, bad port...)."""
    problem = None
    if any(c.isspace() or ord(c) < 32 for c in source):
        problem = "it contains a space or control character; percent-encode it (%20)"
    else:
        try:
            parts = urlsplit(source)
            port = parts.port  # ValueError: not a number or out of range
        except ValueError as error:
            problem = str(error).lower()
        else:
            if not parts.hostname:
                problem = "no host"
            elif port == 0:
                problem = "port 0"
    if problem:
        # Hide everything up to the last '@': a password with a space in it ends redact()'s
        # match early and would show.
        scheme, _, rest = source.partition("://")
        shown = f"{scheme}://***@{rest.rpartition('@')[2]}" if "@" in rest else source
        raise SourceError(f"{shown}: malformed URL ({problem}); {URL_FORM}")


def _device_hint(index: int) -> str:
    """Why device `index` may not open, where the system can tell (Linux: no /dev/videoN)."""
    if sys.platform.startswith("linux") and not Path(f"/dev/video{index}").exists():
        return f" (no /dev/video{index}: is the camera connected?)"
    return ""


def _default_factory(read_timeout_s: float) -> CaptureFactory:
    """cv2.VideoCapture, with FFmpeg open/read timeouts for URLs so a dead stream returns."""
    # Opening RTSP takes several round trips; below a second healthy cameras time out.
    timeout_ms = int(max(read_timeout_s, 1.0) * 1000)

    def factory(source: str | int) -> CaptureLike:
        if isinstance(source, str) and _is_url(source):
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms,
                      cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms]
            try:
                return cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)
            except (TypeError, cv2.error):
                # An OpenCV without the params overload: open without timeouts.
                return cv2.VideoCapture(source)
        return cv2.VideoCapture(source)

    return factory


def open_source(camera: CameraConfig, capture_factory: CaptureFactory | None = None, *,
                backoff: Backoff | None = None) -> FrameSource:
    """Open camera.source as a file, folder or live source; SourceError if it cannot be used.

    Live sources never raise for network problems: they connect in the background.
    backoff overrides the reconnect delays of a live source (tests use short ones).
    """
    factory = capture_factory or _default_factory(camera.read_timeout_s)
    source = camera.source
    if isinstance(source, int):
        return LiveSource(source, f"device {source}", camera, factory, backoff)
    match = _SCHEME.match(source)
    if match:
        scheme = match.group(1).lower()
        if scheme not in LIVE_SCHEMES:
            raise SourceError(f"{redact(source)}: unsupported URL scheme '{scheme}'; use "
                              "rtsp://, http(s)://, a file, a folder or a device index")
        _check_url(source)
        return LiveSource(source, redact(source), camera, factory, backoff)
    if _BROKEN_SCHEME.match(source) and not Path(source).expanduser().exists():
        raise SourceError(f"{redact(source)}: malformed URL (the scheme needs '://'); "
                          f"{URL_FORM}")
    path = Path(source).expanduser()
    if path.is_dir():
        return ImageFolderSource(path, camera)
    if path.is_file():
        return VideoFileSource(path, camera, factory)
    if path.exists():
        # A character device such as /dev/video0: a camera opened by path.
        return LiveSource(str(path), str(path), camera, factory, backoff)
    if re.fullmatch(r"[0-9]+", source.strip()):
        index = int(source)
        return LiveSource(index, f"device {index}", camera, factory, backoff)
    if "/" in source or "\\" in source or path.suffix:
        raise SourceError(f"{source}: file not found; check the camera's source path")
    raise SourceError(f"{source}: no such file or folder, and not a URL or device index")


def _usable_fps(value: float) -> float:
    return value if math.isfinite(value) and value > 0 else FALLBACK_FPS


class _FileSource:
    """Shared reader thread, queue and pacing of video files and image folders."""

    live = False

    def __init__(self, name: str, camera: CameraConfig, fps: float):
        self.name = name
        self.frames_dropped = 0
        self.frames_skipped = 0
        self.reconnects = 0
        self._fps = fps
        self._loop = camera.loop
        self._realtime = camera.realtime
        self._queue: queue.Queue[object] = queue.Queue(maxsize=FILE_QUEUE_SIZE)
        self._stop = threading.Event()
        self._finished = False
        self._failed = False
        self._pending: Frame | None = None
        # Frames skipped in the file since the last image handed over: the next frame's index
        # and timestamp jump over them, so they keep naming the frame's position in the file.
        self._gap = 0
        # Wall-clock (monotonic) time at which timestamp 0 is due in realtime mode.
        self._anchor: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"source {name}", daemon=True)

    # Subclasses yield the images of one pass over the file; first=True for the first pass.
    def _images(self, first: bool) -> Iterator[Image]:
        raise NotImplementedError

    def _release(self) -> None:
        """Free what the subclass holds; called on the reader thread when it stops."""

    def _run(self) -> None:
        index = 0
        first = True
        try:
            while not self._stop.is_set():
                produced = 0
                for image in self._images(first):
                    index += self._gap
                    self._gap = 0
                    frame = Frame(image, index, index / self._fps, time.time())
                    if not self._put(frame):
                        return
                    index += 1
                    produced += 1
                first = False
                # A pass with no frames would make loop mode spin forever.
                if not self._loop or produced == 0:
                    break
        except Exception as error:
            self._failed = True
            log.warning("%s: reading failed (%s); ending this source", self.name,
                        redact(str(error)))
        finally:
            self._release()
            self._put(_END)

    def _put(self, item: object) -> bool:
        # Poll the stop flag so close() never waits on a full queue.
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read(self, timeout: float) -> Frame | None:
        """The next frame in order; None if none is ready within timeout or at the end."""
        if self._finished or self._stop.is_set():
            return None
        deadline = time.monotonic() + max(timeout, 0.0)
        frame = self._pending
        if frame is None:
            try:
                item = self._queue.get(timeout=max(timeout, 0.0))
            except queue.Empty:
                return None
            if item is _END:
                self._finished = True
                return None
            assert isinstance(item, Frame)
            frame = item
        if self._realtime:
            wait = self._until_due(frame)
            remaining = deadline - time.monotonic()
            if wait > remaining:
                # Not due within this call: keep it for the next one.
                self._pending = frame
                self._stop.wait(max(remaining, 0.0))
                return None
            if wait > 0:
                self._stop.wait(wait)
            # Paced like a camera, a frame is captured when it is due, not when it was
            # decoded ahead into the queue: frame age counts from then.
            assert self._anchor is not None
            late = max(time.monotonic() - (self._anchor + frame.timestamp), 0.0)
            frame = dataclasses.replace(frame, captured_at=time.time() - late)
        self._pending = None
        return frame

    def _until_due(self, frame: Frame) -> float:
        now = time.monotonic()
        if self._anchor is None:
            self._anchor = now - frame.timestamp
        due = self._anchor + frame.timestamp
        if now - due > 1.0 / self._fps:
            # The consumer is behind: restart the clock here rather than burst to catch up.
            self._anchor = now - frame.timestamp
            return 0.0
        return due - now

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def up(self) -> bool:
        return not self._failed and not self._stop.is_set()

    def close(self) -> None:
        """Stop the reader thread and release the file."""
        self._stop.set()
        # Empty the queue so a reader blocked on put() sees the stop flag at once.
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(JOIN_TIMEOUT_S)

    def __enter__(self) -> _FileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoFileSource(_FileSource):
    """Every frame of a video file in order; loops or paces at its fps if configured."""

    def __init__(self, path: Path, camera: CameraConfig, factory: CaptureFactory):
        self._path = path
        self._factory = factory
        self._capture: CaptureLike | None = None
        capture, first = self._open_checked()
        super().__init__(str(path), camera, _usable_fps(capture.get(cv2.CAP_PROP_FPS)))
        self._capture = capture
        self._first: Image | None = first
        expected = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        # Frames the container promises; 0 when unknown (still images report nonsense).
        self._expected = expected if math.isfinite(expected) and 0 < expected < 1e9 else 0.0
        log.info("%s: opened video, %.3g fps%s", self.name, self._fps,
                 ", looping" if self._loop else "")
        self._thread.start()

    def _open_checked(self) -> tuple[CaptureLike, Image]:
        try:
            capture = self._factory(str(self._path))
        except Exception as error:
            raise SourceError(f"{self._path}: cannot decode video ({redact(str(error))}); "
                              "is it a video file?") from None
        reason = "no decoder could open it"
        if capture.isOpened():
            ok, image = capture.read()
            if ok and image is not None:
                return capture, image
            reason = "no frame could be decoded"
        capture.release()
        raise SourceError(f"{self._path}: cannot decode video ({reason}); is it a video file?")

    def _images(self, first: bool) -> Iterator[Image]:
        if first:
            capture = self._capture
            # Hand the first frame over and stop holding it for the rest of the run.
            image, self._first = self._first, None
            assert capture is not None and image is not None
            yield image
        else:
            self._release()
            capture = self._factory(str(self._path))
            self._capture = capture
            if not capture.isOpened():
                log.warning("%s: cannot reopen video to loop; ending this source", self.name)
                return
        count = 1 if first else 0
        skipped = 0
        bad = 0  # failed reads in a row
        while not self._stop.is_set():
            ok, image = capture.read()
            if ok and image is not None:
                if bad:
                    # Undecodable frames with good ones after them: corruption, skipped.
                    skipped += bad
                    self.frames_skipped += bad
                    self._gap += bad
                    bad = 0
                count += 1
                yield image
                continue
            # OpenCV reports the end and an undecodable frame alike. While the container
            # promises more frames, read on: the next read starts at the next packet.
            bad += 1
            if bad > self._bad_frames_allowed(count + skipped):
                break
        if self._stop.is_set():
            return
        if skipped and first:
            log.warning("%s: skipped %d undecodable frame(s); the file is damaged",
                        self.name, skipped)
        if first and self._expected > 0 and count + skipped < self._expected - 1:
            log.warning("%s: ended after %d of %d frames; the file may be truncated",
                        self.name, count + skipped, int(self._expected))

    def _bad_frames_allowed(self, seen: int) -> float:
        """Failed reads in a row that may still be followed by good frames."""
        if self._expected > 0:
            return self._expected - 1 - seen
        return MAX_BAD_FRAMES_UNKNOWN_LENGTH

    def _release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class ImageFolderSource(_FileSource):
    """The images of a folder sorted by file name, at FOLDER_FPS; unreadable ones skipped."""

    def __init__(self, folder: Path, camera: CameraConfig):
        files = sorted((p for p in folder.iterdir()
                        if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
                       key=lambda p: p.name)
        if not files:
            accepted = ", ".join(sorted(IMAGE_EXTENSIONS))
            raise SourceError(f"{folder}: no images in folder; accepted extensions: {accepted}")
        super().__init__(str(folder), camera, FOLDER_FPS)
        self._files = files
        log.info("%s: %d images%s", self.name, len(files), ", looping" if self._loop else "")
        self._thread.start()

    def _images(self, first: bool) -> Iterator[Image]:
        for path in self._files:
            if self._stop.is_set():
                return
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                self.frames_skipped += 1
                # Warn once per file; looping would repeat the same warning forever.
                if first:
                    log.warning("%s: cannot decode image, skipped", path)
                continue
            yield image


class LiveSource:
    """A camera or stream read on a daemon thread, keeping only the newest frame.

    The reader reconnects forever with exponential backoff; a watchdog thread marks the
    source down when a read blocks longer than camera.read_timeout_s.
    """

    live = True
    finished = False

    def __init__(self, target: str | int, name: str, camera: CameraConfig,
                 factory: CaptureFactory, backoff: Backoff | None = None):
        self.name = name
        self.frames_dropped = 0
        self.frames_skipped = 0
        self.reconnects = 0
        self._target = target
        self._factory = factory
        self._timeout = camera.read_timeout_s
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
            log.warning("%s: %s; retrying in %.1fs", self.name, self._why, delay)
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
            hint = _device_hint(self._target) if isinstance(self._target, int) else ""
            self._why = f"cannot open{hint}"
        if not opened:
            if capture is not None:
                capture.release()
            return None
        with self._cond:
            self._last_progress = time.monotonic()
            self._stall_logged = False
            self._capture_open = True
        return capture

    def _frames(self, capture: CaptureLike) -> Iterator[Image]:
        """Frames until a read fails or stalls; the caller releases the capture."""
        while not self._stop.is_set():
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
            yield image

    def _publish(self, image: Image) -> None:
        now = time.time()
        with self._cond:
            if self._latest is not None and self._produced > self._taken:
                self.frames_dropped += 1
            self._latest = Frame(image, self._produced, now, now)
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

    def __enter__(self) -> LiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
