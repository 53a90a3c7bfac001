"""How the integrations meet the metrics: line counters as of the state file."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from crowdwatch.integrations import LineCountersFromState
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
