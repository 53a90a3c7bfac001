"""Record a camera to an H.264 MP4 that browsers play, off the counting thread.

VideoRecorder.write() only puts the frame on a small bounded queue; a writer thread
renders (annotate / blur), encodes with PyAV's bundled libx264 and muxes. When the writer
falls behind, frames are skipped and counted instead of slowing the counting loop.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from prometheus_client.core import CounterMetricFamily, Metric

from crowdwatch.types import FrameResult, Image

log = logging.getLogger("crowdwatch.recording")

Render = Callable[[Image, FrameResult], Image]
# Milliseconds: fine enough for any frame rate, and pts from real timestamps stay exact.
TIME_BASE = Fraction(1, 1000)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


class Encoder(Protocol):
    """Writes BGR frames of one fixed size to a file."""

    def encode(self, image: Image, pts_ms: int) -> None: ...

    def close(self) -> None: ...


class PyAVEncoder:
    """H.264 (yuv420p, +faststart) in MP4 via PyAV: plays in every browser's <video>."""

    def __init__(self, path: str | Path, width: int, height: int, fps: float = 25.0,
                 crf: int = 26, preset: str = "veryfast") -> None:
        import av  # imported here: only recording needs it

        self._container: Any = av.open(str(path), "w", format="mp4",
                                              options={"movflags": "+faststart"})
        stream: Any = self._container.add_stream("libx264", rate=Fraction(fps).limit_denominator(
            1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = TIME_BASE
        stream.options = {"crf": str(crf), "preset": preset}
        self._stream = stream
        self._frame_type = av.VideoFrame

    def encode(self, image: Image, pts_ms: int) -> None:
        frame = self._frame_type.from_ndarray(image, format="bgr24")
        frame.pts = pts_ms
        frame.time_base = TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()


EncoderFactory = Callable[[Path, int, int], Encoder]


# After a write failure (disk full), a new file is tried this often; frames in between are
# skipped and counted.
RETRY_S = 5.0


def _next_part(path: Path) -> Path:
    """cam-20260101-120000.mp4 -> cam-20260101-120000-2.mp4 -> ...-3.mp4"""
    stem, _, number = path.stem.rpartition("-")
    if number.isdigit() and len(number) < 6 and stem:
        return path.with_name(f"{stem}-{int(number) + 1}{path.suffix}")
    return path.with_name(f"{path.stem}-2{path.suffix}")


def recording_path(directory: str | Path, camera: str, started: float | None = None) -> Path:
    """<directory>/<camera>-<YYYYmmdd-HHMMSS>.mp4 with unsafe characters replaced."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(started or time.time()))
    return Path(directory) / f"{_SAFE.sub('_', camera)}-{stamp}.mp4"


def media_time(result: FrameResult) -> float:
    """Seconds on the video's clock: the file position, or the capture time of a live frame."""
    return float(result.timestamp)


class VideoRecorder:
    """A sink writing one camera's frames to an MP4 on a background thread.

    The file is written as PATH.part and renamed to PATH by close(), so a crash leaves no
    half-written file that looks finished. Frames of another size than the first are resized.
    """

    def __init__(self, path: str | Path, *, fps: float = 25.0, crf: int = 26,
                 preset: str = "veryfast", width: int | None = None, queue_size: int = 8,
                 render: Render | None = None,
                 encoder_factory: EncoderFactory | None = None, retry_s: float = RETRY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = Path(path)
        self.retry_s = retry_s
        self._clock = clock
        self.frames_written = 0
        self.frames_skipped = 0
        self.error: BaseException | None = None
        self._width = width
        self._render = render
        self._factory = encoder_factory or (
            lambda p, w, h: PyAVEncoder(p, w, h, fps=fps, crf=crf, preset=preset))
        self._queue: queue.Queue[tuple[Image, FrameResult] | None] = queue.Queue(queue_size)
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"video-{self.path.stem}",
                                        daemon=True)
        self._thread.start()

    @property
    def part_path(self) -> Path:
        return self.path.with_name(self.path.name + ".part")

    def write(self, image: Image, result: FrameResult) -> bool:
        """Queue a frame without waiting; False when it was skipped (queue full or closed).

        The image is kept by reference: the caller must not modify it afterwards.
        """
        if self._closed:
            with self._lock:
                self.frames_skipped += 1
            return False
        try:
            self._queue.put_nowait((image, result))
        except queue.Full:
            with self._lock:
                self.frames_skipped += 1
            return False
        return True

    def close(self, timeout: float | None = 30.0) -> None:
        """Encode what is queued, finish the file and move it to its final name."""
        if self._closed:
            return
        self._closed = True
        # The writer may be mid-frame with a full queue: wait for room for the end marker.
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("recording %s: writer did not finish within %ss", self.path, timeout)
        if self.error is not None:
            raise RuntimeError(f"recording {self.path} failed: {self.error}") from self.error

    def _size(self, image: Image) -> tuple[int, int]:
        height, width = image.shape[:2]
        if self._width is not None and self._width < width:
            height = round(height * self._width / width)
            width = self._width
        # yuv420p needs even dimensions.
        return width - width % 2, height - height % 2

    def _run(self) -> None:
        encoder: Encoder | None = None
        size: tuple[int, int] | None = None
        last_pts = -1
        start: float | None = None
        retry_at = -math.inf  # after a failure, no new file before this time
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    break
                image, result = item
                if encoder is None and self._clock() < retry_at:
                    with self._lock:
                        self.frames_skipped += 1  # the disk is still full, say
                    continue
                try:
                    if self._render is not None:
                        image = self._render(image, result)
                    if encoder is None:
                        size = self._size(image)
                        self.path.parent.mkdir(parents=True, exist_ok=True)
                        encoder = self._factory(self.part_path, *size)
                        if self.error is not None:
                            log.warning("recording %s: writing again (into %s)", self.path.stem,
                                        self.path.name)
                    assert size is not None
                    if (image.shape[1], image.shape[0]) != size:
                        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
                    now = media_time(result)
                    start = now if start is None else start
                    # Strictly increasing pts even if the clock steps back (live wall clock).
                    pts = max(round((now - start) * 1000), last_pts + 1)
                    encoder.encode(np.ascontiguousarray(image), pts)
                    last_pts = pts
                    self.frames_written += 1
                except Exception as error:  # disk full, encoder error: counting carries on
                    with self._lock:
                        self.frames_skipped += 1
                    if self.error is None:
                        log.error("recording %s failed: %s; frames are skipped and counted, "
                                  "trying again every %g s", self.path, error, self.retry_s)
                    self.error = self.error or error
                    self._finish(encoder)  # what was written stays playable, or goes
                    encoder, start, last_pts = None, None, -1
                    retry_at = self._clock() + self.retry_s
                    self.path = _next_part(self.path)  # a new file after the gap
        except BaseException as error:  # reported by close(); the counting loop carries on
            log.error("recording %s failed: %s", self.path, error)
            self.error = error
            self._drain()
        finally:
            self._finish(encoder)

    def _finish(self, encoder: Encoder | None) -> None:
        """Close the encoder and give the file its final name; remove it if it cannot be
        closed (no unplayable .part is left behind)."""
        if encoder is None:
            return
        try:
            encoder.close()
            if self.part_path.exists():
                os.replace(self.part_path, self.path)
        except Exception as error:
            self.error = self.error or error
            with contextlib.suppress(OSError):
                self.part_path.unlink(missing_ok=True)

    def _drain(self) -> None:
        # After a failure: count what is still queued as skipped and let close() through.
        while True:
            try:
                item = self._queue.get(timeout=0.1 if not self._closed else 0)
            except queue.Empty:
                if self._closed:
                    return
                continue
            if item is None:
                return
            with self._lock:
                self.frames_skipped += 1


RecorderFactory = Callable[[str], VideoRecorder]


class RecordingSink:
    """A Sink recording every camera to its own MP4: one VideoRecorder per camera, opened on
    the camera's first frame. write() never waits: a frame the writer cannot take in time is
    skipped and counted (crowdwatch_recording_frames_skipped_total), counting goes on."""

    def __init__(self, recorder_for: RecorderFactory) -> None:
        self._recorder_for = recorder_for
        self.recorders: dict[str, VideoRecorder] = {}
        self._lock = threading.Lock()
        self._closed = False

    def _recorder(self, camera: str) -> VideoRecorder | None:
        recorder = self.recorders.get(camera)
        if recorder is None:
            with self._lock:
                if self._closed:
                    return None
                recorder = self.recorders.get(camera)
                if recorder is None:
                    recorder = self.recorders[camera] = self._recorder_for(camera)
        return recorder

    def write(self, result: FrameResult) -> None:
        if result.image is None:
            return
        recorder = self._recorder(result.camera)
        if recorder is not None:
            recorder.write(result.image, result)

    def close(self) -> None:
        """Finish every file; a writer's failure is logged, the other files still finish."""
        with self._lock:
            self._closed = True
            recorders = list(self.recorders.values())
        for recorder in recorders:
            try:
                recorder.close()
            except RuntimeError as error:
                log.error("%s", error)

    def collect(self) -> Iterator[Metric]:
        """Prometheus collector: frames written to and skipped from each camera's file."""
        written = CounterMetricFamily(
            "crowdwatch_recording_frames_written", "Frames encoded into the camera's recording",
            labels=["camera"])
        skipped = CounterMetricFamily(
            "crowdwatch_recording_frames_skipped",
            "Frames left out of the recording because the encoder fell behind (counting "
            "never waits for it)", labels=["camera"])
        for camera, recorder in sorted(self.recorders.items()):
            written.add_metric([camera], recorder.frames_written)
            skipped.add_metric([camera], recorder.frames_skipped)
        yield from (written, skipped)
