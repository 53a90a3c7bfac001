"""Builds a running crowdwatch from a config: detector, sinks, health, server, pipeline."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from crowdwatch.config import AppConfig
from crowdwatch.detect.base import Detector
from crowdwatch.errors import CrowdwatchError
from crowdwatch.health import HealthState
from crowdwatch.outputs.base import Sink
from crowdwatch.pipeline import Pipeline
from crowdwatch.types import FrameResult

if TYPE_CHECKING:  # the visual outputs import OpenCV, PyAV and ruamel only when turned on
    from crowdwatch.outputs.video import RecordingSink
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

    def finish_recordings(self) -> None:
        """Finish the MP4 files now (sources ended) while the server keeps serving."""
        from crowdwatch.outputs.video import RecordingSink

        for sink in self.sinks:
            if isinstance(sink, RecordingSink):
                sink.close()

    def close(self) -> None:
        """Close sinks (flushing events, finishing recordings, ending preview streams), then
        the server."""
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
    from crowdwatch.detect import create_detector

    check_geometry(config)
    detector = detector or create_detector(config.detector)
    health = HealthState(c.id for c in config.cameras)
    pipeline = Pipeline(config, detector, (), health, options.max_frames)
    sinks: list[Sink] = []
    server = None
    try:
        if options.events is not None:
            from crowdwatch.outputs.events import EventWriter

            sinks.append(EventWriter(options.events))
        sinks.extend(extra_sinks)
        hub = _preview_hub(config) if options.serve and config.web.enabled else None
        if hub is not None:
            sinks.append(hub)
        recording = _recording(config) if config.recording.enabled else None
        if recording is not None:
            sinks.append(recording)
        url = web_url = None
        if options.serve and (config.metrics.enabled or hub is not None):
            from crowdwatch.web.server import Server

            registry = None
            if config.metrics.enabled:
                from crowdwatch.outputs.metrics import MetricsSink

                metrics = MetricsSink(config, health)
                if recording is not None:
                    metrics.registry.register(recording)
                registry = metrics.registry
                # Last, so that its export stage covers every other output.
                sinks.append(metrics)
                host = config.metrics.host
            else:  # the page alone: this machine only unless the config lets others in
                host = "0.0.0.0" if config.web.allow_remote else "127.0.0.1"
            web = _web_ui(config, hub, options.config_path) if hub is not None else None
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


def _preview_hub(config: AppConfig) -> PreviewHub:
    from crowdwatch.outputs.annotate import CameraRenderer, blur_only
    from crowdwatch.web.preview import PreviewHub, Render

    preview = config.web.preview
    render: dict[str, Render] = {}
    if preview.annotate:
        render = {c.id: CameraRenderer(c, blur=preview.blur_people) for c in config.cameras}
    elif preview.blur_people:
        render = dict.fromkeys((c.id for c in config.cameras), blur_only)
    return PreviewHub([c.id for c in config.cameras], width=preview.width, fps=preview.fps,
                      quality=preview.quality, render=render)


def _recording(config: AppConfig) -> RecordingSink:
    from crowdwatch.outputs.annotate import CameraRenderer, blur_only
    from crowdwatch.outputs.video import RecordingSink, VideoRecorder, recording_path

    try:
        import av  # noqa: F401 (checked now: a missing encoder fails before anything runs)
    except ImportError:
        raise CrowdwatchError("recording needs PyAV: pip install av") from None
    rec = config.recording
    cameras = {c.id: c for c in config.cameras}
    try:
        Path(rec.directory).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CrowdwatchError(f"cannot create the recording folder {rec.directory} "
                              f"({error.strerror}); pick another with --save-video") from None

    def recorder_for(camera: str) -> VideoRecorder:
        render = None
        if rec.annotate:
            render = CameraRenderer(cameras[camera], blur=rec.blur_people)
        elif rec.blur_people:
            render = blur_only
        return VideoRecorder(recording_path(rec.directory, camera), fps=rec.fps, crf=rec.crf,
                             preset=rec.preset, width=rec.width, queue_size=rec.queue,
                             render=render)

    return RecordingSink(recorder_for)


def _web_ui(config: AppConfig, hub: PreviewHub, config_path: str | None) -> WebUI:
    import os

    from crowdwatch.web.editor import ConfigEditor
    from crowdwatch.web.ui import web_ui_from_config

    web = config.web
    if web.allow_remote and not (web.token_env and os.environ.get(web.token_env)):
        raise CrowdwatchError(
            f"web.allow_remote needs an access token: set ${web.token_env or 'CROWDWATCH_TOKEN'}"
            " (and web.token_env) or turn allow_remote off")
    editor = None
    if web.editor:
        if config_path is None:
            log.warning("the zone editor needs a config file (--config); not serving /editor")
        else:
            editor = ConfigEditor(config_path, hub.latest_image)
    return web_ui_from_config(web, hub, editor)
