"""File sources: video files and folders of images, handed over in order, optionally paced."""

from __future__ import annotations

import dataclasses
import logging
import math
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from crowdwatch.config import CameraConfig
from crowdwatch.errors import SourceError
from crowdwatch.native_log import decode_errors
from crowdwatch.sources.base import FrameSource
from crowdwatch.sources.capture import CaptureFactory, CaptureLike, Image
from crowdwatch.sources.urls import redact
from crowdwatch.types import Frame

log = logging.getLogger("crowdwatch.sources")

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
# An image folder has no frame rate of its own and the config has no option for one.
FOLDER_FPS = 10.0
# Used when a container reports no usable frame rate (0, NaN, negative).
FALLBACK_FPS = 10.0
# Decoding may run this many frames ahead of the consumer of a file source.
FILE_QUEUE_SIZE = 4
# How long close() waits for a reader thread; a read blocked in the network is not waited out.
JOIN_TIMEOUT_S = 2.0
# Undecodable frames in a row a video file may have before the rest counts as cut off: one
# corrupt region costs one failed read per damaged frame, so the bound only matters when the
# container does not tell how many frames it holds.
MAX_BAD_FRAMES_UNKNOWN_LENGTH = 25
_END = object()


def _usable_fps(value: float) -> float:
    return value if math.isfinite(value) and value > 0 else FALLBACK_FPS


class _FileSource(FrameSource):
    """Shared reader thread, queue and pacing of video files and image folders."""

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
        # and position jump over them, so they keep naming the frame's position in the file.
        self._gap = 0
        self._current_file: str | None = None  # the image file being handed over (folders)
        # Wall-clock (monotonic) time at which position 0 is due in realtime mode.
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
                images = self._images(first)
                while True:
                    started = time.perf_counter()
                    image = next(images, None)
                    if image is None:
                        break
                    decode_s = time.perf_counter() - started
                    index += self._gap
                    self._gap = 0
                    frame = Frame(image, index, index / self._fps, time.time(), decode_s,
                                  self._current_file)
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
            late = max(time.monotonic() - (self._anchor + self._position(frame)), 0.0)
            frame = dataclasses.replace(frame, captured_at=time.time() - late)
        self._pending = None
        return frame

    def _until_due(self, frame: Frame) -> float:
        now = time.monotonic()
        position = self._position(frame)
        if self._anchor is None:
            self._anchor = now - position
        due = self._anchor + position
        if now - due > 1.0 / self._fps:
            # The consumer is behind: restart the clock here rather than burst to catch up.
            self._anchor = now - position
            return 0.0
        return due - now

    @staticmethod
    def _position(frame: Frame) -> float:
        return frame.position_s or 0.0

    @property
    def fps(self) -> float:  # type: ignore[override]
        """The frame rate the file declares (FALLBACK_FPS or FOLDER_FPS when it has none)."""
        return self._fps

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

    def reader_stuck(self) -> bool:
        return self._thread.is_alive()

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
        # PyAVCapture (decode.py) skips what did not decode whole itself and says how much.
        knows_damage = hasattr(capture, "lost")
        while not self._stop.is_set():
            if knows_damage:
                ok, image = capture.read()
                lost, capture.lost = capture.lost, 0  # type: ignore[attr-defined]
                skipped += lost
                self.frames_skipped += lost
                self._gap += lost
                if not ok or image is None:
                    break
                count += 1
                yield image
                continue
            errors_before = decode_errors()
            ok, image = capture.read()
            if ok and errors_before is not None and decode_errors() != errors_before:
                # FFmpeg concealed damage in this frame: a smeared picture, not the scene.
                ok, image = False, None
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
            log.warning("%s: skipped %d undecodable frame(s); the file is damaged%s", self.name,
                        skipped, " (frames after damage are skipped up to the next keyframe)"
                        if knows_damage else "")
        if first and self._expected > 0 and count + skipped < self._expected - 1:
            log.warning("%s: ended after %d of %d frames; the file may be truncated",
                        self.name, count + skipped, int(self._expected))

    @property
    def expected_frames(self) -> int | None:  # type: ignore[override]
        return int(self._expected) if self._expected > 0 and not self._loop else None

    def _bad_frames_allowed(self, seen: int) -> float:
        """Failed reads in a row that may still be followed by good frames."""
        if self._expected > 0:
            return self._expected - 1 - seen
        return MAX_BAD_FRAMES_UNKNOWN_LENGTH

    def _release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


# How a complete file of each format ends: a cut-off file decodes into a half-grey image
# (libjpeg only prints "Premature end of JPEG file") whose people are not all there.
_COMPLETE_END = {".jpg": (b"\xff\xd9", 64), ".jpeg": (b"\xff\xd9", 64),
                 ".png": (b"IEND\xaeB`\x82", 64)}


def read_whole_image(path: Path) -> tuple[Image | None, str]:
    """The decoded image, or None and why: unreadable, cut off before its end, undecodable.

    Decoded from the bytes already checked, so a truncated file never reaches the decoder
    (nor its stderr)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        return None, f"unreadable ({error.strerror})"
    end = _COMPLETE_END.get(path.suffix.lower())
    # JPEG writers may pad after the end marker; look for it near the end.
    if end is not None and end[0] not in data[-end[1]:]:
        return None, f"truncated ({len(data)} bytes, no end marker)"
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None, "not an image the decoder reads"
    return image, ""


class ImageFolderSource(_FileSource):
    """The images of a folder sorted by file name, at FOLDER_FPS; unreadable ones skipped."""

    # A folder may hold unrelated images: not smoothed over time unless configured.
    sequence = False

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

    @property
    def expected_frames(self) -> int | None:  # type: ignore[override]
        return None if self._loop else len(self._files)

    def _images(self, first: bool) -> Iterator[Image]:
        for path in self._files:
            if self._stop.is_set():
                return
            image, problem = read_whole_image(path)
            if image is None:
                self.frames_skipped += 1
                self._gap += 1  # its frame number stays unused, as for a damaged video frame
                # Warn once per file; looping would repeat the same warning forever.
                if first:
                    log.warning("%s: cannot decode image, skipped (not counted): %s", path,
                                problem)
                continue
            self._current_file = str(path)
            yield image
