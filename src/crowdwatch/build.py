"""The one place that builds a camera's chain: source, tiler, fair-share lane, count filter,
tracker and the camera's geometry, resolved once and shared with the sinks that draw.

`crowdwatch run` (app.py), `crowdwatch eval` and `crowdwatch bench` all build through here,
with their own sources (a replay, a clip) and their own extra sinks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from crowdwatch.analytics.camera import CameraAnalysis
from crowdwatch.analytics.counting import PeopleCounter
from crowdwatch.analytics.flow import PeopleFlow
from crowdwatch.analytics.scene import CameraScene, SceneGeometry
from crowdwatch.config import AppConfig, CameraConfig
from crowdwatch.density.tiles import density_tiles
from crowdwatch.detect.base import Detector
from crowdwatch.detect.fair import FairShare, fair_share
from crowdwatch.detect.tiling import tiled
from crowdwatch.health import HealthState
from crowdwatch.outputs.base import Sink
from crowdwatch.pipeline import CameraChain, Pipeline
from crowdwatch.rates import RateMonitor
from crowdwatch.sources import FrameSource, close_all, open_source
from crowdwatch.track import build_tracker

if TYPE_CHECKING:
    from crowdwatch.integrations import Integrations

SourceOpener = Callable[[CameraConfig], FrameSource]


def camera_scenes(config: AppConfig) -> dict[str, CameraScene]:
    """Each camera's geometry resolver, named by camera id (cameras[N] in its errors)."""
    return {c.id: CameraScene(c, f"cameras[{i}]") for i, c in enumerate(config.cameras)}


def build_chain(camera: CameraConfig, config: AppConfig, source: FrameSource,
                detector: Detector, scene: CameraScene,
                integrations: Integrations | None = None) -> CameraChain:
    """One camera's chain over `detector` (the shared one, or the camera's FairShare lane);
    with integrations, its line totals start from the state file and it feeds the sites."""
    # Tiling wraps the shared detector per camera: in auto mode each camera's own whole-frame
    # passes decide whether it shows a crowd of people small enough for tiles.
    tiling = config.detector.tiling
    tiler = None if tiling.mode == "off" else tiled(detector, tiling, config.detector.imgsz)
    # An image folder (sequence False) may hold unrelated pictures and has no real frame
    # times: smoothing it as one video would carry people from one picture into the next.
    counter = PeopleCounter(camera, config.counting, config.levels, source.sequence)
    tracker = flow = None
    blurs = config.web.preview.blur_people or config.recording.blur_people
    if tiler is not None and tiling.skip_for_density and not config.tracks(camera) \
            and not blurs:
        # Tiles only add boxes, which a camera counting from density uses only to track and
        # to blur people.
        tiler.tiles_wanted = lambda: counter.last_method != "density"
    if config.tracks(camera):  # lines and dwell need identities
        # The source's own frame rate, when it tells (files), is the Kalman filter's step.
        tracker = build_tracker(config.tracker, source.fps or None)

        restored = integrations.saved.lines.get(camera.id, {}) if integrations else {}

        def flow(geometry: SceneGeometry) -> PeopleFlow:
            made = PeopleFlow(camera, geometry.lines, config.tracker.relink, config.dwell)
            made.resume(restored)
            return made

    sites = integrations.sites if integrations is not None else None
    analysis = CameraAnalysis(camera.id, scene, counter, tracker, flow, sites)
    # Files are read as fast as they are analysed: a slow rate there is no camera behind.
    monitor = (RateMonitor(camera.id, camera.min_analysis_fps, camera.min_received_ratio)
               if source.live else None)
    # Very dense frames: their density counted again on tiles, through the detector below the
    # box tiler (tiles are not tiled again).
    dense = density_tiles(config.counting, detector.submit)
    return CameraChain(camera.id, source, tiler or detector, analysis, tiler,
                       config.detector.detect_every, camera.analysis_fps, monitor, dense,
                       density_input_size(config, counter))


def density_input_size(config: AppConfig, counter: PeopleCounter) -> Callable[[], int | None]:
    """The input size of a camera's next pass: counting.density_imgsz while it counts from
    density (read when the frame is submitted: a switch applies from the frames after the
    one that made it), else the detector's own (None)."""
    size = config.counting.density_imgsz
    if size is None or size == config.detector.imgsz or config.counting.method == "boxes":
        return lambda: None
    return lambda: size if counter.last_method == "density" else None


def build_chains(config: AppConfig, detector: Detector,
                 source_opener: SourceOpener = open_source,
                 scenes: Mapping[str, CameraScene] | None = None,
                 integrations: Integrations | None = None) -> list[CameraChain]:
    """Open every camera's source (in config order: a bad path fails before anything runs)
    and build its chain; with several cameras they share the detector through a FairShare."""
    scenes = scenes or camera_scenes(config)
    # One camera has the detector to itself: no admission, no overhead.
    share: FairShare | None = (
        fair_share(detector) if len(config.cameras) > 1 and config.detector.fair_share
        else None)
    chains: list[CameraChain] = []
    try:
        for camera in config.cameras:
            source = source_opener(camera)
            try:
                lane = detector if share is None else share.lane(camera.id)
                chains.append(build_chain(camera, config, source, lane, scenes[camera.id],
                                          integrations))
            except BaseException:
                close_all([source])
                raise
    except BaseException:
        close_all(c.source for c in chains)
        raise
    return chains


def build_pipeline(config: AppConfig, detector: Detector, sinks: Sequence[Sink] = (),
                   health: HealthState | None = None, max_frames: int | None = None,
                   source_opener: SourceOpener = open_source) -> Pipeline:
    """The chains of every camera in a Pipeline with these sinks."""
    chains = build_chains(config, detector, source_opener)
    return Pipeline(chains, sinks, health or HealthState(c.id for c in config.cameras),
                    max_frames)
