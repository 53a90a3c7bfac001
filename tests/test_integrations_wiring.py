"""How the integrations meet the metrics: line counters as of the state file."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Counter

from crowdwatch.build import camera_scenes
from crowdwatch.config import parse_config
from crowdwatch.health import HealthState
from crowdwatch.integrations import LineCountersFromState, build_integrations, site_collector
from crowdwatch.outputs.registry import OutputContext, build_sinks
from crowdwatch.state import SavedState


def value(counter: Counter, *labels: str) -> float:
    return counter.labels(*labels)._value.get()  # type: ignore[attr-defined]


def test_line_counters_start_from_the_restored_totals_and_follow_the_saves() -> None:
    counter = Counter("crowdwatch_line_crossings", "", ["camera", "line", "direction"],
                      registry=CollectorRegistry())
    saved = SavedState({"pets": {"west": (40, 12), "gone": (7, 7)}})
    export = LineCountersFromState(counter, saved, [("pets", "west"), ("pets", "east")])
    assert (value(counter, "pets", "west", "in"), value(counter, "pets", "west", "out")) == (
        40, 12)
    export({"lines": {"pets": {"west": {"in": 43, "out": 12}, "east": {"in": 1, "out": 0},
                               "gone": {"in": 9, "out": 9}}}})
    assert value(counter, "pets", "west", "in") == 43
    assert value(counter, "pets", "east", "in") == 1
    # A line no longer configured is kept in the file but gets no series.
    lines = {s.labels["line"] for m in counter.collect() for s in m.samples}
    assert lines == {"west", "east"}


def test_the_registry_builds_the_integration_outputs_from_the_config(tmp_path: Path) -> None:
    config = parse_config({
        "cameras": [{"id": "pets", "source": "a.mp4",
                     "lines": [{"name": "west", "points": [[0, 0], [0, 1]]}]}],
        "state": {"path": str(tmp_path / "state.json")},
        "sites": [{"name": "campus", "entrances": [{"camera": "pets", "line": "west"}]}],
        "webhooks": [{"url": "http://127.0.0.1:9/hook"}],
        "mqtt": {"url": "mqtt://127.0.0.1:9"}})
    integrations = build_integrations(config)
    context = OutputContext(config, HealthState(["pets"]), camera_scenes(config),
                            integrations=integrations)
    sinks = build_sinks(context)
    try:
        # In registration order.
        assert [type(s).__name__ for s in sinks] == ["StateStore", "WebhookSink", "MqttSink"]
        assert integrations.state is sinks[0]
        assert len(context.collectors) == 2  # MQTT and webhook series
        assert site_collector(integrations) is not None
    finally:
        for sink in sinks:
            sink.close()
