"""The integrations of a config (issue 21) that come before the outputs: the state restored
from the state file and the sites across cameras built from it, and the metrics that must
follow the state file.

Each camera's chain starts its line counters from the restored totals and feeds the sites
(crowdwatch.build); the outputs that reach other systems (state file, webhooks, MQTT) are
registered in outputs/registry.py like any other.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter
from prometheus_client.registry import Collector

from crowdwatch.analytics.sites import SiteTracker
from crowdwatch.config import AppConfig
from crowdwatch.state import SavedState, StateStore, load_state

log = logging.getLogger("crowdwatch")


@dataclass
class Integrations:
    """What a config's integrations add to a run before its outputs: the restored state and
    the sites built from it. The cameras' chains take both (crowdwatch.build); the outputs
    (state file, webhooks, MQTT) are registered in outputs/registry.py and read them from
    their OutputContext."""

    saved: SavedState = field(default_factory=SavedState)
    sites: SiteTracker | None = None
    # Set by the state file's output once built: the metrics follow its saves.
    state: StateStore | None = None


def build_integrations(config: AppConfig) -> Integrations:
    """The restored state (a damaged file is logged and set aside) and the sites."""
    out = Integrations()
    if config.state.path is not None:
        out.saved = load_state(config.state.path)
        restored = sum(len(lines) for lines in out.saved.lines.values()) + len(out.saved.sites)
        if restored:
            log.info("restored %d line total(s) and site occupancies from %s (saved at %s)",
                     restored, config.state.path, out.saved.saved_at)
    if config.sites:
        out.sites = SiteTracker(config.sites, config.levels, out.saved.sites,
                                out.saved.saved_at)
    return out


def site_collector(out: Integrations) -> Collector | None:
    """The crowdwatch_site_* series; the drift counter as of the state file when there is
    one (for the same reason as LineCountersFromState)."""
    if out.sites is None:
        return None
    from crowdwatch.outputs.site_metrics import SiteCollector

    return SiteCollector(out.sites, out.state.saved_sites if out.state is not None else None)


class LineCountersFromState:
    """crowdwatch_line_crossings_total as of the state file: it starts from the restored
    totals and moves on with each save (at most state.interval_s behind the frames), so it
    never runs ahead of what a restart resumes from and stays monotonic across a restart or
    a kill (a counter that went back would read to Prometheus as a reset, and rate() would
    count the whole total again). Without a state file a restart is an ordinary reset."""

    def __init__(self, counter: Counter, saved: SavedState,
                 lines: Iterable[tuple[str, str]]) -> None:
        self._counter = counter
        self._lines = frozenset(lines)
        self._exported: dict[tuple[str, str, str], int] = {}
        self({"lines": {camera: {line: {"in": i, "out": o} for line, (i, o) in totals.items()}
                        for camera, totals in saved.lines.items()}})

    def __call__(self, content: dict[str, Any]) -> None:
        for camera, totals in content["lines"].items():
            for line, values in totals.items():
                if (camera, line) not in self._lines:
                    continue  # kept in the file for a later config, not exported
                for direction in ("in", "out"):
                    key = (camera, line, direction)
                    delta = values[direction] - self._exported.get(key, 0)
                    if delta > 0:
                        self._counter.labels(camera, line, direction).inc(delta)
                        self._exported[key] = values[direction]
