"""The outputs registry: one registration builds an output from the config, or nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdwatch.app import RunOptions, build_app
from crowdwatch.build import camera_scenes
from crowdwatch.config import AppConfig, parse_config
from crowdwatch.detect.base import Detector, Done
from crowdwatch.health import HealthState
from crowdwatch.outputs import registry
from crowdwatch.outputs.events import EventWriter
from crowdwatch.outputs.registry import SINKS, OutputContext, build_sinks
from crowdwatch.registry import Registry
from crowdwatch.types import Detections, FrameResult, Image

CLIP = Path(__file__).resolve().parents[2] / "samples" / "vtest_h264.mp4"


def _config(**extra: object) -> AppConfig:
    return parse_config({"cameras": [{"id": "cam0", "source": str(CLIP)}],
                         "metrics": {"enabled": False}, **extra})


def _context(config: AppConfig, events: str | None = None) -> OutputContext:
    return OutputContext(config, HealthState(c.id for c in config.cameras),
                         camera_scenes(config), events=events)


def test_the_built_in_outputs_are_registered() -> None:
    assert SINKS.names() == ["events", "mqtt", "recording", "state", "webhooks"]


def test_nothing_is_built_unless_asked(tmp_path: Path) -> None:
    assert build_sinks(_context(_config())) == []
    sinks = build_sinks(_context(_config(), events=str(tmp_path / "e.jsonl")))
    assert [type(s) for s in sinks] == [EventWriter]
    for sink in sinks:
        sink.close()


class _Collecting:
    def __init__(self) -> None:
        self.results: list[FrameResult] = []
        self.closed = False

    def write(self, result: FrameResult) -> None:
        self.results.append(result)

    def close(self) -> None:
        self.closed = True


def test_a_registered_output_is_built_by_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    # What adding MQTT or a webhook takes: a factory under a name, reading the config.
    outputs: Registry = Registry("output")
    built: list[_Collecting] = []

    @outputs.register("collect")
    def _collect(context: OutputContext) -> _Collecting | None:
        if context.config.cameras[0].id != "cam0":
            return None
        built.append(_Collecting())
        return built[-1]

    @outputs.register("off")
    def _off(context: OutputContext) -> None:
        return None

    monkeypatch.setattr(registry, "SINKS", outputs)
    app = build_app(_config(), RunOptions(max_frames=3), detector=_Nobody())
    try:
        app.pipeline.run()
    finally:
        app.close()
    assert len(built) == 1 and built[0].closed
    assert [r.frame_index for r in built[0].results] == [0, 1, 2]


class _Nobody(Detector):
    name = "nobody"

    def submit(self, image: Image) -> Done:
        return Done(Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32)))


def test_the_recorder_draws_the_scene_the_analytics_resolved(tmp_path: Path) -> None:
    # Geometry is resolved once per camera: the renderer shares the analysis's CameraScene.
    from crowdwatch.outputs.annotate import CameraRenderer
    from crowdwatch.outputs.video import RecordingSink

    config = _config(recording={"enabled": True, "directory": str(tmp_path)})
    app = build_app(config, RunOptions(max_frames=2), detector=_Nobody())
    try:
        app.pipeline.run()
        recording = next(s for s in app.sinks if isinstance(s, RecordingSink))
        renderer = recording.recorders["cam0"]._render
        assert isinstance(renderer, CameraRenderer)
        assert renderer.scene is app.pipeline.chains[0].analysis.scene
    finally:
        app.close()
