"""Runs every camera through source → detector → analytics → sinks, one thread per camera.

Each camera keeps up to PIPELINE_DEPTH frames in flight in the detector (Detector.submit
returns at once for asynchronous backends): while frames are inferred, the next one is
decoded and letterboxed. All cameras submit to one shared detector. With several cameras
they submit through a FairShare (detect/fair.py, `detector.fair_share`): a bounded number of
frames is in the detector at once, and a free slot goes to the waiting camera with the fewest
frames there, so no camera falls behind the others; no camera waits for another camera's
source and a dead camera holds nothing but its own idle thread.

The pipeline knows no output: it hands each FrameResult to its sinks and reports each
source's state to a HealthState.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import shapely

from crowdwatch.analytics.flow import PeopleFlow, move_to_predicted
from crowdwatch.analytics.ignore import camera_ignore, drop_ignored
from crowdwatch.analytics.smoothing import counting_smoother
from crowdwatch.analytics.zones import ZoneMapper, zone_frame_problems
from crowdwatch.config import AppConfig, CameraConfig
from crowdwatch.detect.base import Detector, Pending
from crowdwatch.detect.fair import FairShare, fair_share
from crowdwatch.detect.tiling import tiled
from crowdwatch.errors import ConfigError
from crowdwatch.health import HealthState, SourceStatus
from crowdwatch.outputs.base import Sink
from crowdwatch.sources import FrameSource, close_all, open_source
from crowdwatch.track import Tracker, build_tracker
from crowdwatch.types import DETECT_STAGES, Detections, Frame, FrameResult

log = logging.getLogger("crowdwatch.pipeline")

SourceOpener = Callable[[CameraConfig], FrameSource]
READ_TIMEOUT_S = 0.5
# While frames are in the detector, the source is read in slices this long, so a finished
# frame is handed on within this time even if the next frame is slow to come.
POLL_S = 0.002
# Frames of one camera in the detector at once. OpenVINO runs one request per core (two
# here); a third waits queued, so no core idles while the camera's thread collects a result
# and letterboxes the next frame (14% more frames/s than two, measured). Results are
# collected as soon as they are ready, so a live camera's frames do not wait for the next.
PIPELINE_DEPTH = 3


@dataclass
class _InFlight:
    frame: Frame
    decode_s: float
    # None for a frame that reuses the previous frame's people (detector.detect_every).
    pending: Pending | None
    # Zoomed tiles its detection runs on besides the whole frame (FrameResult.tiles).
    tiles: int = 0

    def done(self) -> bool:
        return self.pending is None or self.pending.done()


def nominal_fps(source: FrameSource) -> float | None:
    """The source's own frame rate if it tells (the tracker's Kalman step); None: unknown.

    File and folder sources tell; live sources do not (a camera's declared rate is often
    wrong): their tracker takes tracker.frame_rate, or 10 frames/s, as its unit of time and
    still steps by the frames' own timestamps.
    """
    fps = getattr(source, "fps", None)
    return float(fps) if isinstance(fps, int | float) and fps > 0 else None


def _timestamp(frame: Frame) -> float:
    """Seconds into a file, Unix capture time for live sources."""
    return frame.captured_at if frame.position_s is None else frame.position_s


class CameraWorker:
    """Reads one camera and analyses its frames until the source ends or stop is set."""

    def __init__(self, camera: CameraConfig, config: AppConfig, source: FrameSource,
                 detector: Detector, sinks: list[Sink], health: HealthState,
                 stop: threading.Event, errors: list[BaseException],
                 max_frames: int | None = None) -> None:
        self.camera = camera
        self.config = config
        self.source = source
        # Where errors found at the first frame point in the config file.
        self._key_path = f"cameras[{[c.id for c in config.cameras].index(camera.id)}]"
        # Tiling wraps the shared detector per camera: in auto mode each camera's own
        # whole-frame passes decide whether it shows a crowd of people small enough for tiles.
        tiling = config.detector.tiling
        self._tiler = (None if tiling.mode == "off"
                       else tiled(detector, tiling, config.detector.imgsz))
        self.detector: Detector = self._tiler or detector
        # Shared with the Pipeline: sinks attached after the sources opened are seen here.
        self.sinks = sinks
        self.health = health
        self.stop = stop
        self.errors = errors
        self.max_frames = max_frames
        self.processed = 0
        self._every = config.detector.detect_every
        # Frames that reuse people ride along, so PIPELINE_DEPTH detections stay in flight.
        self.depth = PIPELINE_DEPTH * self._every
        self._started = 0
        self._last = Detections.empty()
        self._mapper: ZoneMapper | None = None
        # An image folder (sequence False) may hold unrelated pictures and has no real frame
        # times: smoothing it as one video would carry people from one picture into the next.
        # The smoothers update on every frame, detected or not (detector.detect_every), so
        # their window is sized by the rate of all analysed frames.
        timed = bool(getattr(source, "sequence", True))
        # One filter for the zones' counts and the whole frame's (the last element): the
        # strategies work element by element, and the frame rate is measured once.
        self._smoother = counting_smoother(config.counting, timed)
        self._frame_size: tuple[int, int] | None = None
        # Lines and dwell need identities: tracker, flow analytics (built at the first frame).
        self._tracker: Tracker | None = (
            build_tracker(config.tracker, nominal_fps(source)) if config.tracks(camera) else None)
        self._flow: PeopleFlow | None = None
        self._last_ts: float | None = None
        self._ignore: shapely.Geometry | None = None
        self._ignore_size: tuple[int, int] | None = None
        self.thread = threading.Thread(target=self._run, name=f"camera-{camera.id}", daemon=True)

    def _mapper_for(self, frame: Frame) -> ZoneMapper:
        size = (frame.width, frame.height)
        if self._mapper is None or size != self._frame_size:
            try:
                self._mapper = ZoneMapper.for_camera(self.camera, self.config.levels, *size)
            except ConfigError as error:  # normalised zones meet the ground plane only now
                raise ConfigError(f"{self._key_path}.{error}") from None
            for problem in zone_frame_problems(self.camera, *size):
                log.warning("%s", problem)
            self._frame_size = size
            if self._tracker is not None:
                self._flow = PeopleFlow(self.camera, self.config, self._key_path, *size)
        return self._mapper

    def _ignore_for(self, frame: Frame) -> shapely.Geometry | None:
        size = (frame.width, frame.height)
        if size != self._ignore_size:
            self._ignore = camera_ignore(self.camera, *size)
            self._ignore_size = size
        return self._ignore

    def _report_source(self) -> None:
        s = self.source
        self.health.report(self.camera.id, SourceStatus(s.up, s.frames_dropped,
                                                         s.frames_skipped, s.reconnects))

    def _report_ended(self) -> None:
        """The source ended (end of file, or max_frames reached): it delivers no more frames
        (source_up 0) and is no longer expected to (/readyz: finished), the same either way."""
        s = self.source
        self.health.report(self.camera.id, SourceStatus(False, s.frames_dropped,
                                                         s.frames_skipped, s.reconnects))
        self.health.finish(self.camera.id)

    def _run(self) -> None:
        in_flight: deque[_InFlight] = deque()
        try:
            while not self.stop.is_set():
                if in_flight and (len(in_flight) >= self.depth or in_flight[0].done()):
                    self._finish(in_flight.popleft())
                    continue
                if self.max_frames is not None and self._started >= self.max_frames:
                    break
                started = time.perf_counter()
                frame = self.source.read(POLL_S if in_flight else READ_TIMEOUT_S)
                if frame is not None:
                    self._report_source()
                    in_flight.append(self._start(frame, time.perf_counter() - started))
                elif in_flight:
                    if self.source.finished:  # nothing more to read: wait for the results
                        self._finish(in_flight.popleft())
                else:
                    self._report_source()
                    if self.source.finished:
                        break
                    # A live source is down: its zone series stay as they were.
            while in_flight:
                self._finish(in_flight.popleft())
            if not self.stop.is_set():
                self._report_ended()
        except BaseException as error:  # handed to the main thread, which reports it
            self.errors.append(error)
            self.stop.set()

    def _start(self, frame: Frame, decode_s: float) -> _InFlight:
        detect_now = self._started % self._every == 0
        self._started += 1
        pending = self.detector.submit(frame.image) if detect_now else None
        # Read right after the submit, which may have closed an auto block and chosen anew:
        # nothing else changes the choice before this frame's result is collected.
        height, width = frame.image.shape[:2]
        tiles = self._tiler.tiles_in_use(width, height) if self._tiler is not None else 0
        return _InFlight(frame, decode_s, pending, tiles)

    def _finish(self, item: _InFlight) -> None:
        frame = item.frame
        # wait: the camera loop blocked on the source (a live camera's next frame, or a file's
        # reader behind); decode: the source thread's time in the decoder for this frame.
        stage_seconds = {"wait": item.decode_s, "decode": frame.decode_s}
        mapper = self._mapper_for(frame)
        tracker, flow = self._tracker, self._flow
        timestamp = _timestamp(frame)
        if tracker is not None and self._last_ts is not None and timestamp < self._last_ts:
            # A looping file starts over: old tracks would jump; totals stay.
            tracker.reset()
            if flow is not None:
                flow.forget_tracks()
        self._last_ts = timestamp
        detected = item.pending is not None
        if item.pending is not None:
            # People in ignore regions are gone before anything counts or sees them.
            self._last = drop_ignored(item.pending.result(), self._ignore_for(frame))
            stage_seconds.update(item.pending.stage_seconds)
            if "detect" not in stage_seconds:
                stage_seconds["detect"] = sum(stage_seconds.get(s, 0.0) for s in DETECT_STAGES)
        t0 = time.perf_counter()
        if tracker is not None:
            if detected:
                self._last = tracker.update(self._last, timestamp)
                detections = self._last
            else:
                # Skipped frame: tracked people where the tracker expects them now.
                detections = move_to_predicted(self._last, tracker.predict(timestamp))
            stage_seconds["track"] = time.perf_counter() - t0
        else:
            detections = self._last
        t1 = time.perf_counter()
        membership = mapper.membership(detections)
        raw = membership.sum(axis=1)
        smoothed = self._smoother.update(np.append(raw, len(detections)), timestamp)
        counts, people = smoothed[:-1], int(smoothed[-1])
        zones = mapper.update(counts, raw)
        flow_result = None
        if flow is not None:
            if detected:
                flow.update(detections, membership, timestamp)
                flow_result = flow.result()
            else:
                flow_result = flow.carried()
        t2 = time.perf_counter()
        stage_seconds["zones"] = t2 - t1
        result = FrameResult(
            camera=self.camera.id,
            frame_index=frame.index,
            position_s=frame.position_s,
            captured_at=frame.captured_at,
            people=people,
            people_raw=len(detections),
            zones=zones,
            detections=detections,
            flow=flow_result,
            stage_seconds=stage_seconds,
            analysed_at=t2,
            tiles=item.tiles,
            image=frame.image,
            source_file=frame.source_file,
        )
        for sink in self.sinks:
            sink.write(result)
        self.processed += 1


class Pipeline:
    """Opens every camera's source up front (so bad paths fail fast), then runs them."""

    def __init__(self, config: AppConfig, detector: Detector, sinks: Sequence[Sink] = (),
                 health: HealthState | None = None, max_frames: int | None = None,
                 source_opener: SourceOpener = open_source) -> None:
        self.config = config
        self.sinks = list(sinks)
        self.health = health or HealthState(c.id for c in config.cameras)
        self.errors: list[BaseException] = []
        self.stop_event = threading.Event()
        self.workers: list[CameraWorker] = []
        # One camera has the detector to itself: no admission, no overhead.
        self.fair: FairShare | None = (
            fair_share(detector) if len(config.cameras) > 1 and config.detector.fair_share
            else None)
        try:
            for camera in config.cameras:
                source = source_opener(camera)
                lane = detector if self.fair is None else self.fair.lane(camera.id)
                self.workers.append(CameraWorker(camera, config, source, lane, self.sinks,
                                                 self.health, self.stop_event, self.errors,
                                                 max_frames))
        except BaseException:
            self.close()
            raise

    def attach(self, sink: Sink) -> None:
        """Add an output before run(); sources open first, so outputs can come after."""
        self.sinks.append(sink)

    def stop(self) -> None:
        self.stop_event.set()

    def run(self) -> None:
        """Run until every source ends, max_frames is reached or stop() is called."""
        try:
            for worker in self.workers:
                worker.thread.start()
            for worker in self.workers:
                # Short joins keep the main thread free to handle signals.
                while worker.thread.is_alive():
                    worker.thread.join(0.2)
        finally:
            self.stop_event.set()
            for worker in self.workers:
                if worker.thread.is_alive():
                    worker.thread.join(5.0)
            self.close()
        if self.errors:
            raise self.errors[0]

    def close(self) -> None:
        close_all(w.source for w in self.workers)

    @property
    def processed(self) -> dict[str, int]:
        return {w.camera.id: w.processed for w in self.workers}
