"""Builds a running crowdwatch from a config: detector, sinks, health, server, pipeline."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from crowdwatch.config import AppConfig
from crowdwatch.detect.base import Detector
from crowdwatch.errors import CrowdwatchError
from crowdwatch.outputs.base import Sink
from crowdwatch.pipeline import Pipeline
from crowdwatch.types import FrameResult
from crowdwatch.web.health import HealthState

log = logging.getLogger("crowdwatch")


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What the command line adds to a config."""

    max_frames: int | None = None
    events: str | None = None
    metrics_port: int | None = None
    serve: bool = True


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

    def close(self) -> None:
        """Close sinks (flushing events), then the server."""
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
        url = None
        if options.serve and config.metrics.enabled:
            from crowdwatch.outputs.metrics import MetricsSink
            from crowdwatch.web.server import Server

            metrics = MetricsSink(config, health)
            # Last, so that its export stage covers every other output.
            sinks.append(metrics)
            host = config.metrics.host
            port = config.metrics.port if options.metrics_port is None else options.metrics_port
            try:
                server = Server(health, host, port, metrics.registry)
            except OSError as error:
                raise CrowdwatchError(
                    f"cannot serve metrics on {host}:{port} ({error.strerror}); "
                    "pick another port with --metrics-port"
                ) from None
            url = f"http://{host}:{server.port}/metrics"
    except BaseException:
        pipeline.close()
        for sink in sinks:
            sink.close()
        raise
    for sink in sinks:
        pipeline.attach(sink)
    return App(config, pipeline, health, sinks, url, server)
