"""Runs every camera through source → detector → analytics → sinks, one thread per camera.

Each camera keeps up to PIPELINE_DEPTH frames in flight in the detector (Detector.submit
returns at once for asynchronous backends): while frames are inferred, the next one is
decoded and letterboxed. All cameras submit to one shared detector. With several cameras
they submit through a FairShare (detect/fair.py, `detector.fair_share`): a bounded number of
frames is in the detector at once, and a free slot goes to the waiting camera with the fewest
frames there, so no camera falls behind the others; no camera waits for another camera's
source and a dead camera holds nothing but its own idle thread.

The pipeline only runs loops: crowdwatch.build makes each camera's chain (a CameraChain) and
the pipeline knows no output: it hands each FrameResult to its sinks and reports each
source's state to a HealthState.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from crowdwatch.analytics.camera import CameraAnalysis
from crowdwatch.detect.base import Detector, Pending, submit_at
from crowdwatch.detect.densitymap import DensityMap
from crowdwatch.detect.tiling import TiledDetector
from crowdwatch.health import HealthState, SourceStatus
from crowdwatch.outputs.base import Sink
from crowdwatch.rates import RateGate, RateMonitor
from crowdwatch.sources.base import FrameSource, close_all
from crowdwatch.types import DETECT_STAGES, Frame, Image

log = logging.getLogger("crowdwatch.pipeline")

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
    # Submitted during the tiler's first auto probe (its tiles may be chosen later).
    probed: bool = False

    def done(self) -> bool:
        return self.pending is None or self.pending.done()


@dataclass
class CameraChain:
    """One camera's chain as crowdwatch.build makes it: what its loop reads, submits to and
    analyses with."""

    camera_id: str
    source: FrameSource
    # What frames are submitted to: the camera's tiler, over its lane of the FairShare, over
    # the shared detector (each only where configured).
    detector: Detector
    analysis: CameraAnalysis
    # The tiler, to read the tiles each frame ran on (FrameResult.tiles); None when off.
    tiler: TiledDetector | None = None
    # Run the detector on every k-th analysed frame; the others reuse its people.
    detect_every: int = 1
    # Analyse at most this many frames a second (camera.analysis_fps); None: every frame.
    analysis_fps: float | None = None
    # Warns while the camera is analysed or receives too little (None: no warning).
    monitor: RateMonitor | None = None
    # (frame, its density map) -> the map to count from: density/tiles.py's TiledDensity
    # recounts very dense frames on tiles; None: the map as the detector gave it.
    refine_density: Callable[[Image, DensityMap], DensityMap] | None = None
    # The input long side of the next frame's pass when it differs from detector.imgsz
    # (counting.density_imgsz while the camera counts from density); None: the detector's.
    input_size: Callable[[], int | None] = lambda: None


@dataclass
class RunState:
    """What every camera loop of one run shares."""

    sinks: list[Sink]
    health: HealthState
    max_frames: int | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)
    # Monotonic seconds for the rate monitors; tests inject one.
    clock: Callable[[], float] = time.monotonic


class CameraWorker:
    """Reads one camera and analyses its frames until the source ends or stop is set."""

    def __init__(self, chain: CameraChain, run: RunState) -> None:
        self.chain = chain
        self.camera_id = chain.camera_id
        self.source = chain.source
        self.run = run
        self.processed = 0
        self.received = 0  # frames read from the source, analysed or not
        self.gated = 0  # frames skipped before the detector by analysis_fps
        self.gate = RateGate(chain.analysis_fps) if chain.analysis_fps else None
        # Frames that reuse people ride along, so PIPELINE_DEPTH detections stay in flight.
        self.depth = PIPELINE_DEPTH * chain.detect_every
        self._started = 0
        self.thread = threading.Thread(target=self._run, name=f"camera-{chain.camera_id}",
                                       daemon=True)

    def _status(self, up: bool, reason: str = "") -> SourceStatus:
        s = self.source
        # Received: frames read here plus those the source replaced by newer ones unread.
        return SourceStatus(up, s.frames_dropped, s.frames_skipped, s.reconnects,
                            reason=reason, frames_received=self.received + s.frames_dropped,
                            stream_fps=s.stream_fps)

    def _report_source(self) -> None:
        status = self._status(self.source.up, self.source.why)
        self.run.health.report(self.camera_id, status)
        monitor = self.chain.monitor
        if monitor is not None:
            if status.up:
                monitor.observe(self.run.clock(), status.frames_received, self.processed,
                                status.stream_fps)
            else:
                monitor.reset()

    def _report_ended(self) -> None:
        """The source ended (end of file, or max_frames reached): it delivers no more frames
        (source_up 0) and is no longer expected to (/readyz: finished), the same either way."""
        self.run.health.report(self.camera_id, self._status(False))
        self.run.health.finish(self.camera_id)

    def _wanted(self, frame: Frame) -> bool:
        """analysis_fps: whether this frame is analysed, by its own time (position in a
        file, capture time of a live frame)."""
        self.received += 1
        if self.gate is None:
            return True
        t = frame.position_s if frame.position_s is not None else frame.captured_at
        if self.gate.admit(t):
            return True
        self.gated += 1
        return False

    def _run(self) -> None:
        in_flight: deque[_InFlight] = deque()
        stop, max_frames = self.run.stop, self.run.max_frames
        try:
            while not stop.is_set():
                limit = max_frames is not None and self._started >= max_frames
                if in_flight and (len(in_flight) >= self.depth or in_flight[0].done()):
                    if limit or self.source.finished or not self._held(in_flight[0]):
                        self._finish(in_flight.popleft())
                        continue
                    # Held for the tiler's probe: their whole-frame passes are collected (the
                    # detector holds no more than before), the frames wait for the choice.
                    for item in in_flight:
                        if self._held(item):
                            item.pending.whole_result()  # type: ignore[union-attr]
                if limit:
                    break
                started = time.perf_counter()
                frame = self.source.read(POLL_S if in_flight else READ_TIMEOUT_S)
                if frame is not None:
                    wanted = self._wanted(frame)
                    self._report_source()
                    if wanted:
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
            if not stop.is_set():
                self._report_ended()
        except BaseException as error:  # handed to the main thread, which reports it
            self.run.errors.append(error)
            stop.set()

    def _start(self, frame: Frame, decode_s: float) -> _InFlight:
        chain = self.chain
        detect_now = self._started % chain.detect_every == 0
        self._started += 1
        pending = (submit_at(chain.detector.submit, frame.image, chain.input_size())
                   if detect_now else None)
        # Read right after the submit, which may have closed an auto block and chosen anew:
        # nothing else changes the choice before this frame's result is collected.
        height, width = frame.image.shape[:2]
        tiles = chain.tiler.tiles_in_use(width, height) if chain.tiler is not None else 0
        # A file or folder only: a live camera's counts do not wait for the probe.
        probed = (not self.source.live and chain.tiler is not None
                  and chain.tiler.probing(pending))
        return _InFlight(frame, decode_s, pending, tiles, probed)

    def _held(self, item: _InFlight) -> bool:
        """tiling auto, files and folders: frames of the first probe wait for its choice (the
        block's end, or the source's: TiledDetector.end_probe), so a source shorter than the
        probe gets it too."""
        tiler = self.chain.tiler
        return item.probed and tiler is not None and tiler.probing(item.pending)

    def _finish(self, item: _InFlight) -> None:
        tiler = self.chain.tiler
        if item.probed and tiler is not None:
            # A no-op unless the source ended (or max_frames) inside the first probe.
            height, width = item.frame.image.shape[:2]
            tiler.end_probe(width, height)
            item.tiles = tiler.tiles_of(item.pending)
        frame = item.frame
        # wait: the camera loop blocked on the source (a live camera's next frame, or a file's
        # reader behind); decode: the source thread's time in the decoder for this frame.
        stage_seconds = {"wait": item.decode_s, "decode": frame.decode_s}
        detected = density = None
        if item.pending is not None:
            detected = item.pending.result()
            # Backends serving density (and the wrappers over them) carry the frame's map.
            density = getattr(item.pending, "density", None)
            stage_seconds.update(item.pending.stage_seconds)
            if "detect" not in stage_seconds:
                stage_seconds["detect"] = sum(stage_seconds.get(s, 0.0) for s in DETECT_STAGES)
            if density is not None and self.chain.refine_density is not None:
                started = time.perf_counter()
                density = self.chain.refine_density(frame.image, density)
                # Tiles of a very dense frame are detection time too.
                stage_seconds["detect"] += time.perf_counter() - started
            if density is not None:
                # The sinks may keep the result a while: not the crowd head's inputs with it.
                density = density.without_crowd()
        result = self.chain.analysis.analyse(frame, detected, stage_seconds, item.tiles,
                                             density)
        for sink in self.run.sinks:
            sink.write(result)
        self.processed += 1


class Pipeline:
    """Runs every camera's chain on its own thread; the sources are already open (so bad
    paths failed before anything was served or written)."""

    def __init__(self, chains: Sequence[CameraChain], sinks: Sequence[Sink] = (),
                 health: HealthState | None = None, max_frames: int | None = None) -> None:
        self.chains = list(chains)
        self.health = health or HealthState(c.camera_id for c in self.chains)
        # Shared with the workers: sinks attached after the sources opened are seen there.
        self.state = RunState(list(sinks), self.health, max_frames)
        self.sinks = self.state.sinks
        self.stop_event = self.state.stop
        self.errors = self.state.errors
        self.workers = [CameraWorker(chain, self.state) for chain in self.chains]

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

    def readers_stuck(self) -> bool:
        """A source's reader is still blocked in a native read after close()."""
        return any(w.source.reader_stuck() for w in self.workers)

    @property
    def processed(self) -> dict[str, int]:
        return {w.camera_id: w.processed for w in self.workers}
