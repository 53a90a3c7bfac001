"""Runs every camera through source → detector → zones → outputs, one thread per camera."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from crowdwatch.config import AppConfig, CameraConfig
from crowdwatch.detector import PersonDetector
from crowdwatch.events import EventWriter
from crowdwatch.metrics import MetricsExporter
from crowdwatch.smoothing import make_smoother
from crowdwatch.sources import FrameSource, open_source
from crowdwatch.types import Detections, Frame, FrameResult
from crowdwatch.zones import ZoneMapper

log = logging.getLogger("crowdwatch.pipeline")

Detect = Callable[[Frame], Detections]
SourceOpener = Callable[[CameraConfig], FrameSource]
READ_TIMEOUT_S = 0.5


@dataclass
class Outputs:
    """Where results go; each part is optional."""

    metrics: MetricsExporter | None = None
    events: EventWriter | None = None
    on_frame: Callable[[FrameResult], None] | None = None
    on_error: list[BaseException] = field(default_factory=list)


class CameraWorker:
    """Reads one camera and analyses its frames until the source ends or stop is set."""

    def __init__(self, camera: CameraConfig, config: AppConfig, source: FrameSource,
                 detect: Detect, outputs: Outputs, stop: threading.Event,
                 max_frames: int | None = None) -> None:
        self.camera = camera
        self.config = config
        self.source = source
        self.detect = detect
        self.outputs = outputs
        self.stop = stop
        self.max_frames = max_frames
        self.processed = 0
        self._mapper: ZoneMapper | None = None
        self._smoother = make_smoother(config.counting.smoothing, config.counting.window)
        self._frame_size: tuple[int, int] | None = None
        self.thread = threading.Thread(target=self._run, name=f"camera-{camera.id}", daemon=True)

    def _mapper_for(self, frame: Frame) -> ZoneMapper:
        size = (frame.width, frame.height)
        if self._mapper is None or size != self._frame_size:
            self._mapper = ZoneMapper.for_camera(self.camera, self.config.levels, *size)
            self._frame_size = size
        return self._mapper

    def _publish_health(self) -> None:
        if self.outputs.metrics is not None:
            s = self.source
            self.outputs.metrics.record_source(self.camera.id, s.up, s.frames_dropped,
                                               s.reconnects)

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                if self.max_frames is not None and self.processed >= self.max_frames:
                    break
                started = time.perf_counter()
                frame = self.source.read(READ_TIMEOUT_S)
                self._publish_health()
                if frame is None:
                    if self.source.finished:
                        break
                    continue  # a live source is down: its zone series stay as they were
                self._analyse(frame, time.perf_counter() - started)
        except BaseException as error:  # handed to the main thread, which reports it
            self.outputs.on_error.append(error)
            self.stop.set()

    def _analyse(self, frame: Frame, decode_s: float) -> None:
        t0 = time.perf_counter()
        detections = self.detect(frame)
        t1 = time.perf_counter()
        mapper = self._mapper_for(frame)
        raw = np.append(mapper.count(detections), len(detections))
        counts = self._smoother.update(raw)
        zones = mapper.update(counts[:-1], raw[:-1])
        t2 = time.perf_counter()
        result = FrameResult(
            camera=self.camera.id,
            frame_index=frame.index,
            timestamp=frame.timestamp,
            captured_at=frame.captured_at,
            people=int(counts[-1]),
            people_raw=len(detections),
            zones=zones,
            detections=detections,
            stage_seconds={"decode": decode_s, "detect": t1 - t0, "zones": t2 - t1},
        )
        outputs = self.outputs
        if outputs.events is not None:
            outputs.events.write(result)
        if outputs.metrics is not None:
            outputs.metrics.record_frame(result)
            t3 = time.perf_counter()
            outputs.metrics.stage_seconds.labels(self.camera.id, "export").observe(t3 - t2)
            outputs.metrics.record_frame_age(self.camera.id, time.time() - frame.captured_at)
        if outputs.on_frame is not None:
            outputs.on_frame(result)
        self.processed += 1


class Pipeline:
    """Opens every camera's source up front (so bad paths fail fast), then runs them."""

    def __init__(self, config: AppConfig, detect: Detect, outputs: Outputs,
                 max_frames: int | None = None,
                 source_opener: SourceOpener = open_source) -> None:
        self.config = config
        self.outputs = outputs
        self.stop_event = threading.Event()
        self.workers: list[CameraWorker] = []
        try:
            for camera in config.cameras:
                source = source_opener(camera)
                self.workers.append(CameraWorker(camera, config, source, detect, outputs,
                                                 self.stop_event, max_frames))
        except BaseException:
            self.close()
            raise

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
        if self.outputs.on_error:
            raise self.outputs.on_error[0]

    def close(self) -> None:
        for worker in self.workers:
            worker.source.close()

    @property
    def processed(self) -> dict[str, int]:
        return {w.camera.id: w.processed for w in self.workers}


def detector_function(detector: PersonDetector) -> Detect:
    return lambda frame: detector.detect(frame.image)
