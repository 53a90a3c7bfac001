"""The outputs by name: each is a factory that takes the run's OutputContext and returns a
Sink, or None when the config (or the command line) does not ask for it.

Adding an output (MQTT, a webhook...) is one module in outputs/ with its Sink and one
registration here whose factory imports that module lazily, so a run without it loads none
of its libraries. build_app builds every registered output in registration order; the
Prometheus sink (tied to the HTTP server) and the live page's preview hub are built by the
app itself.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from crowdwatch.config import AppConfig
from crowdwatch.errors import CrowdwatchError
from crowdwatch.health import HealthState
from crowdwatch.outputs.base import Sink
from crowdwatch.registry import Registry

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

    from crowdwatch.analytics.scene import CameraScene
    from crowdwatch.integrations import Integrations
    from crowdwatch.outputs.heatmap import HeatmapRenderer


@dataclass
class OutputContext:
    """What an output's factory may read: the config, the command line's additions, each
    camera's geometry (resolved once, shared with the analytics) and the health state."""

    config: AppConfig
    health: HealthState
    scenes: Mapping[str, CameraScene]
    # --events: a JSON Lines file, '-' for stdout; None: no events.
    events: str | None = None
    # Prometheus collectors an output adds for /metrics (e.g. the recorder's own counters).
    collectors: list[Collector] = field(default_factory=list)
    # The restored state and the sites (crowdwatch.integrations); None: none of them.
    integrations: Integrations | None = None
    # The heatmaps (config heatmap:) when the page or a recording overlay uses them.
    heatmap: HeatmapRenderer | None = None


SinkFactory = Callable[[OutputContext], Sink | None]
SINKS: Registry[SinkFactory] = Registry("output")


def build_sinks(context: OutputContext) -> list[Sink]:
    """Every configured output, in registration order; closes those built if one fails."""
    sinks: list[Sink] = []
    try:
        for make in SINKS.entries():
            sink = make(context)
            if sink is not None:
                sinks.append(sink)
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks


@SINKS.register("events")
def _events(context: OutputContext) -> Sink | None:
    if context.events is None:
        return None
    from crowdwatch.outputs.events import EventWriter

    writer = EventWriter(context.events)
    context.collectors.append(writer)  # crowdwatch_events_lost_total
    return writer


@SINKS.register("recording")
def _recording(context: OutputContext) -> Sink | None:
    rec = context.config.recording
    if not rec.enabled:
        return None
    from crowdwatch.outputs.annotate import CameraRenderer, blur_only
    from crowdwatch.outputs.video import RecordingSink, Render, VideoRecorder, recording_path

    try:
        import av  # noqa: F401 (checked now: a missing encoder fails before anything runs)
    except ImportError:
        raise CrowdwatchError("recording needs PyAV: pip install av") from None
    try:
        Path(rec.directory).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=rec.directory):  # writable: found now, not later
            pass
    except OSError as error:
        raise CrowdwatchError(f"cannot write to the recording folder {rec.directory} "
                              f"({error.strerror}); pick another with --save-video") from None

    def recorder_for(camera: str) -> VideoRecorder:
        render: Render | None = None
        if rec.annotate:
            render = CameraRenderer(context.scenes[camera], blur=rec.blur_people)
        elif rec.blur_people:
            render = blur_only
        if context.heatmap is not None and context.config.heatmap.overlay_recording:
            from crowdwatch.outputs.heatmap import with_overlay

            render = with_overlay(render, context.heatmap.overlay)
        return VideoRecorder(recording_path(rec.directory, camera), fps=rec.fps, crf=rec.crf,
                             preset=rec.preset, width=rec.width, queue_size=rec.queue,
                             render=render)

    sink = RecordingSink(recorder_for)
    context.collectors.append(sink)
    return sink


@SINKS.register("state")
def _state(context: OutputContext) -> Sink | None:
    state, out = context.config.state, context.integrations
    if state.path is None or out is None:
        return None
    from crowdwatch.state import StateStore

    store = StateStore(state.path, state.interval_s, out.saved,
                       out.sites.saved if out.sites is not None else None)
    out.state = store
    return store


@SINKS.register("webhooks")
def _webhooks(context: OutputContext) -> Sink | None:
    if not context.config.webhooks:
        return None
    from crowdwatch.outputs.webhooks import WebhookSink

    sink = WebhookSink.from_config(context.config.webhooks)
    context.collectors.append(sink)
    return sink


@SINKS.register("mqtt")
def _mqtt(context: OutputContext) -> Sink | None:
    config = context.config
    if config.mqtt is None:
        return None
    from crowdwatch.outputs.mqtt import MqttSink

    saved = context.integrations.saved.lines if context.integrations is not None else None
    sink = MqttSink(config.mqtt, config.cameras, config.sites, saved)
    context.collectors.append(sink)
    return sink
