"""Running eval's settings through the real pipeline, one detection pass per detector.

Settings with the same detector settings share one detection pass: the first decodes the clip
and runs the detector through the pipeline; the others replay the people it found through the
same chain (smoothing, zones, tracking), so every row measures what operators get, each
detection pass is paid once, and no per-frame logic is written twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from crowdwatch.config import AppConfig
from crowdwatch.config.app import DensityTilesConfig
from crowdwatch.config.detector import TilingConfig
from crowdwatch.detect.base import Detector, Done, Pending
from crowdwatch.sources.base import FrameSource
from crowdwatch.tools.settings import Setting
from crowdwatch.types import Detections, Frame, FrameResult, Image

if TYPE_CHECKING:
    from crowdwatch.detect.densitymap import DensityMap

NO_TILES = TilingConfig(mode="off")
NO_DENSITY_TILES = DensityTilesConfig(mode="off")
DetectFactory = Callable[[AppConfig], Detector]


@dataclass(frozen=True)
class FrameInfo:
    """What a replay needs to stand in for a decoded frame."""

    index: int
    position_s: float | None
    width: int
    height: int


class RecordingSource(FrameSource):
    """Wraps a file source: drops frames before `start` and notes each frame handed over."""

    def __init__(self, inner: FrameSource, start: int) -> None:
        self._inner = inner
        self._start = start
        self.frames: list[FrameInfo] = []
        self.name = inner.name
        self.live = inner.live
        self.fps = inner.fps
        self.sequence = inner.sequence
        self.expected_frames = inner.expected_frames

    @property
    def frames_dropped(self) -> int:  # type: ignore[override]
        return self._inner.frames_dropped

    @property
    def frames_skipped(self) -> int:  # type: ignore[override]
        return self._inner.frames_skipped

    @property
    def reconnects(self) -> int:  # type: ignore[override]
        return self._inner.reconnects

    def reader_stuck(self) -> bool:
        return self._inner.reader_stuck()

    def read(self, timeout: float) -> Frame | None:
        while True:
            frame = self._inner.read(timeout)
            if frame is None or frame.index >= self._start:
                break
        if frame is not None:
            self.frames.append(FrameInfo(frame.index, frame.position_s, frame.width, frame.height))
        return frame

    @property
    def finished(self) -> bool:
        return bool(self._inner.finished)

    @property
    def up(self) -> bool:
        return bool(self._inner.up)

    def close(self) -> None:
        self._inner.close()


class ReplaySource(FrameSource):
    """Hands out recorded frames again, as blank images of the recorded size (no decoding)."""

    live = False
    frames_dropped = 0
    frames_skipped = 0
    reconnects = 0

    def __init__(self, frames: Sequence[FrameInfo], name: str = "replay",
                 sequence: bool = True) -> None:
        self.name = name
        # As the recorded source: an image folder's replay is filtered as the folder was.
        self.sequence = sequence
        self._frames = list(frames)
        self._next = 0

    def read(self, timeout: float) -> Frame | None:
        del timeout
        if self._next >= len(self._frames):
            return None
        info = self._frames[self._next]
        self._next += 1
        # A broadcast view: the size is right and no image memory is allocated.
        blank = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (info.height, info.width, 3))
        return Frame(blank, info.index, info.position_s, time.time())

    @property
    def finished(self) -> bool:
        return self._next >= len(self._frames)

    @property
    def up(self) -> bool:
        return True

    def close(self) -> None:
        pass


@dataclass
class Pass:
    """The frames and results of one setting's run through the pipeline."""

    frames: list[FrameInfo]
    results: list[FrameResult]
    seconds: float
    replayed: bool
    # The frames show one scene at real times (not an image folder): see counting_smoother.
    sequence: bool = True


def run_pipeline(config: AppConfig, detector: Detector, source: FrameSource,
                 max_frames: int | None) -> list[FrameResult]:
    """The results of the config's one camera reading `source`, in frame order."""
    from crowdwatch.app import CallbackSink
    from crowdwatch.build import build_pipeline

    results: list[FrameResult] = []
    pipeline = build_pipeline(config, detector, [CallbackSink(results.append)],
                              max_frames=max_frames, source_opener=lambda _camera: source)
    pipeline.run()
    return sorted(results, key=lambda r: r.frame_index)


def real_detect(config: AppConfig) -> Detector:
    """The detector operators run, built from the config's detector settings."""
    from crowdwatch.density.serve import counting_detector

    return counting_detector(config)


def run_settings(settings: Sequence[Setting], start_frame: int = 0,
                 max_frames: int | None = None, detect_factory: DetectFactory | None = None,
                 log: Callable[[str], None] | None = None) -> dict[str, Pass]:
    """Run each setting's single camera through the pipeline; one detection pass per detector.

    detect_factory builds the detector of a setting (default: the real one, real_detect).
    """
    from crowdwatch.sources import open_source

    make_detect = detect_factory or real_detect

    passes: dict[str, Pass] = {}
    detected: dict[str, Pass] = {}
    for setting in settings:
        # Density maps come with the detector's pass only where counting.method asks for them.
        counting = setting.config.counting
        key = (setting.config.detector.model_dump_json()
               + (counting.method != "boxes")
               * f" density {counting.density_tiles.model_dump_json()} {counting.density_imgsz}")
        started = time.perf_counter()
        if key in detected:
            first = detected[key]
            # The same detector settings submit the same frames in the same order.
            every = setting.config.detector.detect_every
            recorded = [_Replayed(r.detections, density=r.density)
                        for r in first.results[::every]]
            # The recorded people are already merged from any tiles, the recorded maps already
            # stitched from any density tiles: replay them untiled.
            replay = setting.config.model_copy(update={
                "detector": setting.config.detector.model_copy(update={"tiling": NO_TILES}),
                "counting": counting.model_copy(update={"density_tiles": NO_DENSITY_TILES})})
            results = run_pipeline(replay, ReplayDetector(recorded),
                                    ReplaySource(first.frames, sequence=first.sequence), None)
            passes[setting.name] = Pass(first.frames, results,
                                        time.perf_counter() - started, True, first.sequence)
        else:
            camera = setting.config.cameras[0]
            detect = make_detect(setting.config)
            source = RecordingSource(open_source(camera), start_frame)
            results = run_pipeline(setting.config, detect, source, max_frames)
            passes[setting.name] = detected[key] = Pass(
                source.frames, results, time.perf_counter() - started, False,
                source.sequence)
        if log is not None:
            done = passes[setting.name]
            how = "replayed" if done.replayed else "detected"
            log(f"{setting.name}: {how} {len(done.results)} frames in {done.seconds:.1f} s")
    return passes


@dataclass
class _Replayed(Done):
    """Recorded people with the density map their pass gave (None: none)."""

    density: DensityMap | None = None


class ReplayDetector(Detector):
    """Hands back recorded detections in the order frames are submitted."""

    name = "replay"

    def __init__(self, recorded: Sequence[Detections | Done]) -> None:
        self._recorded = iter(recorded)

    def submit(self, image: Image, input_size: int | None = None) -> Pending:
        recorded = next(self._recorded)
        return recorded if isinstance(recorded, Done) else Done(recorded)

    def prepare(self, width: int, height: int) -> None:
        pass
