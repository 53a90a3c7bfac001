"""Builds a running crowdwatch from a config (sources, detector, health, outputs, server,
pipeline) and runs it until its sources end or a signal stops it."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from crowdwatch.config import AppConfig
from crowdwatch.detect.base import Detector
from crowdwatch.errors import CrowdwatchError
from crowdwatch.health import HealthState
from crowdwatch.outputs.base import Sink
from crowdwatch.pipeline import Pipeline
from crowdwatch.types import FrameResult

if TYPE_CHECKING:  # the visual outputs import OpenCV, PyAV and ruamel only when turned on
    from crowdwatch.analytics.scene import CameraScene
    from crowdwatch.integrations import Integrations
    from crowdwatch.outputs.heatmap import HeatmapRenderer
    from crowdwatch.outputs.metrics import MetricsSink
    from crowdwatch.web.console import ConsoleState
    from crowdwatch.web.preview import PreviewHub
    from crowdwatch.web.ui import WebUI

log = logging.getLogger("crowdwatch")


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What the command line adds to a config."""

    max_frames: int | None = None
    events: str | None = None
    metrics_port: int | None = None
    serve: bool = True
    # The config file, for the zone editor of the web page (None in quick mode: no editor).
    config_path: str | None = None


class CallbackSink:
    """A Sink that calls a function per frame (progress bars, benchmarks, tests)."""

    def __init__(self, on_frame: Callable[[FrameResult], None]) -> None:
        self._on_frame = on_frame

    def write(self, result: FrameResult) -> None:
        self._on_frame(result)

    def close(self) -> None:
        pass


@dataclass
class App:
    """A pipeline with its sinks and server; close() releases all of it, once."""

    config: AppConfig
    pipeline: Pipeline
    health: HealthState
    sinks: list[Sink] = field(default_factory=list)
    url: str | None = None
    _server: object | None = None
    # The live page, when the config turns it on.
    web_url: str | None = None
    _closed_sinks: list[Sink] = field(default_factory=list)

    def finish_recordings(self) -> None:
        """Finish the MP4 files now (sources ended) while the server keeps serving."""
        from crowdwatch.outputs.video import RecordingSink

        for sink in self.sinks:
            if isinstance(sink, RecordingSink):
                sink.close()

    def losses(self) -> list[str]:
        """What outputs lost during the run, one sentence each (after close(): complete)."""
        from crowdwatch.outputs.events import EventWriter
        from crowdwatch.outputs.video import RecordingSink

        lost = []
        for sink in self._closed_sinks or self.sinks:
            if isinstance(sink, EventWriter) and sink.lines_lost:
                lost.append(f"{sink.lines_lost} event line(s) could not be written to "
                            f"{sink.target}")
            if isinstance(sink, RecordingSink):
                for camera, recorder in sink.recorders.items():
                    if recorder.error is not None:
                        lost.append(f"the recording of camera {camera} failed "
                                    f"({recorder.error}); {recorder.frames_skipped} frame(s) "
                                    "not recorded")
        return lost

    def close(self) -> None:
        """Close sinks (flushing events, finishing recordings, ending preview streams), then
        the server."""
        self._closed_sinks = list(self.sinks) or self._closed_sinks
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as error:  # one failing sink must not keep the others open
                log.error("closing an output failed: %s", error)
        self.sinks = []
        if self._server is not None:
            self._server.close()  # type: ignore[attr-defined]
            self._server = None


def build_app(config: AppConfig, options: RunOptions = RunOptions(),
              detector: Detector | None = None, extra_sinks: Sequence[Sink] = ()) -> App:
    """Open sources first (a wrong path fails before anything is served or written), then
    the outputs; CrowdwatchError for anything the user can fix."""
    from crowdwatch.analytics.zones import check_geometry
    from crowdwatch.build import build_chains, camera_scenes
    from crowdwatch.density.serve import counting_detector
    from crowdwatch.integrations import build_integrations, site_collector
    from crowdwatch.outputs.registry import OutputContext, build_sinks

    check_geometry(config)
    detector = detector or counting_detector(config)
    health = HealthState(c.id for c in config.cameras)
    scenes = camera_scenes(config)
    # The state file and the sites first: each camera's line totals and sites start there.
    integrations = build_integrations(config)
    pipeline = Pipeline(build_chains(config, detector, scenes=scenes,
                                     integrations=integrations), (), health, options.max_frames)
    sinks: list[Sink] = []
    server = None
    try:
        heatmap = _heatmap(config, options, scenes)
        if heatmap is not None:  # first: the overlays of this frame include it
            sinks.append(heatmap.heatmaps)
        context = OutputContext(config, health, scenes, events=options.events,
                                integrations=integrations, heatmap=heatmap)
        sinks.extend(build_sinks(context))
        sites = site_collector(integrations)
        if sites is not None:
            context.collectors.append(sites)
        sinks.extend(extra_sinks)
        hub = _preview_hub(config, scenes, heatmap) if options.serve and config.web.enabled \
            else None
        console = None
        if hub is not None:
            from crowdwatch.web.console import ConsoleState

            console = ConsoleState.from_config(config, health)
            sinks.extend((hub, console))
        url = web_url = None
        if options.serve and (config.metrics.enabled or hub is not None):
            from crowdwatch.web.server import Server

            registry = None
            if config.metrics.enabled:
                from crowdwatch.outputs.metrics import MetricsSink

                metrics = MetricsSink(config, health)
                for collector in context.collectors:
                    metrics.registry.register(collector)
                _follow_state_file(config, metrics, integrations)
                registry = metrics.registry
                # Last, so that its export stage covers every other output.
                sinks.append(metrics)
                host = config.metrics.host
            else:  # the page alone: this machine only unless the config lets others in
                host = "0.0.0.0" if config.web.allow_remote else "127.0.0.1"
            web = _web_ui(config, hub, options.config_path, health, heatmap,
                          console) if hub is not None else None
            port = config.metrics.port if options.metrics_port is None else options.metrics_port
            try:
                server = Server(health, host, port, registry, web)
            except OSError as error:
                raise CrowdwatchError(
                    f"cannot serve metrics on {host}:{port} ({error.strerror}); "
                    "pick another port with --metrics-port"
                ) from None
            shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            url = f"http://{host}:{server.port}/metrics" if registry is not None else None
            web_url = f"http://{shown}:{server.port}/" if web is not None else None
    except BaseException:
        pipeline.close()
        for sink in sinks:
            sink.close()
        raise
    for sink in sinks:
        pipeline.attach(sink)
    return App(config, pipeline, health, sinks, url, server, web_url)


def _follow_state_file(config: AppConfig, metrics: MetricsSink,
                       integrations: Integrations) -> None:
    """With a state file the line counters move with its saves (LineCountersFromState)."""
    from crowdwatch.integrations import LineCountersFromState

    if integrations.state is None:
        return
    metrics.count_lines = False
    integrations.state.on_saved.append(LineCountersFromState(
        metrics.line_crossings, integrations.saved,
        [(c.id, line.name) for c in config.cameras for line in c.lines]))


def _heatmap(config: AppConfig, options: RunOptions,
             scenes: dict[str, CameraScene]) -> HeatmapRenderer | None:
    """The heatmaps, where the page or a recording overlay shows them (else none is kept)."""
    wanted = (options.serve and config.web.enabled) or (
        config.recording.enabled and config.heatmap.overlay_recording)
    if not config.heatmap.enabled or not wanted:
        return None
    from crowdwatch.analytics.heatmap import Heatmaps
    from crowdwatch.outputs.heatmap import HeatmapRenderer

    return HeatmapRenderer(Heatmaps(config.heatmap, scenes), config.heatmap)


def _preview_hub(config: AppConfig, scenes: dict[str, CameraScene],
                 heatmap: HeatmapRenderer | None = None) -> PreviewHub:
    from crowdwatch.outputs.annotate import CameraRenderer, blur_only
    from crowdwatch.outputs.heatmap import with_overlay
    from crowdwatch.web.preview import PreviewHub, Render

    preview = config.web.preview
    render: dict[str, Render] = {}
    if preview.annotate:
        render = {c.id: CameraRenderer(scenes[c.id], blur=preview.blur_people)
                  for c in config.cameras}
    elif preview.blur_people:
        render = dict.fromkeys((c.id for c in config.cameras), blur_only)
    overlays: dict[str, Render] = {}
    if heatmap is not None:
        overlays["heatmap"] = heatmap.overlay
        if config.heatmap.overlay_preview:  # drawn on every preview: not twice when asked
            render = {c.id: with_overlay(render.get(c.id), heatmap.overlay)
                      for c in config.cameras}
            overlays["heatmap"] = lambda image, _result: image
    return PreviewHub([c.id for c in config.cameras], width=preview.width, fps=preview.fps,
                      quality=preview.quality, render=render, overlays=overlays)


def _web_ui(config: AppConfig, hub: PreviewHub, config_path: str | None,
            health: HealthState | None = None,
            heatmap: HeatmapRenderer | None = None,
            console: ConsoleState | None = None) -> WebUI:
    from crowdwatch.web.access import check_web_config
    from crowdwatch.web.editor import ConfigEditor
    from crowdwatch.web.ui import web_ui_from_config

    web = config.web
    check_web_config(web)  # the same refusal as `crowdwatch check`
    editor = None
    if web.editor:
        if config_path is None:
            log.warning("the zone editor needs a config file (--config); not serving /editor")
        else:
            editor = ConfigEditor(config_path, hub.latest_image)
    return web_ui_from_config(web, hub, editor, health,
                              None if heatmap is None else heatmap.png, console)


@dataclass
class RunReport:
    """What a finished run tells the operator."""

    frames: int
    seconds: float
    # Stopped by SIGINT / SIGTERM rather than by its sources ending.
    signalled: bool


def run_app(running: App, keep_serving: bool = False,
            on_finished: Callable[[RunReport], None] = lambda _report: None,
            say: Callable[[str], None] = log.info) -> RunReport:
    """Run until the sources end or SIGINT / SIGTERM arrives, then close everything.

    on_finished gets the report once the sources ended and the recordings are finished, while
    the server still serves; keep_serving then keeps /metrics up until a signal (say tells
    the operator so).
    """
    pipeline = running.pipeline
    signalled = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        log.warning("%s received: stopping", signal.Signals(signum).name)
        signalled.set()
        pipeline.stop()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    started = time.perf_counter()
    try:
        pipeline.run()
        elapsed = time.perf_counter() - started
        running.finish_recordings()
        report = RunReport(sum(pipeline.processed.values()), elapsed, signalled.is_set())
        on_finished(report)
        if keep_serving and running.url is not None and not signalled.is_set():
            say("sources ended; still serving /metrics until Ctrl-C")
            while not signalled.wait(0.5):
                pass
        return report
    finally:
        running.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
