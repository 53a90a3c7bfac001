"""Builds the integrations of a config (issue 21): the restored state, the sites across
cameras, and the outputs that reach other systems (state file, MQTT, webhooks).

The pipeline feeds the sites (each camera updates the sites it feeds and puts them in its
FrameResult) and starts its line counters from the restored totals; the sinks here are
attached like any other output.
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
from crowdwatch.outputs.base import Sink
from crowdwatch.state import SavedState, StateStore, load_state

log = logging.getLogger("crowdwatch")


@dataclass
class Integrations:
    """What a config's integrations add to a run."""

    saved: SavedState = field(default_factory=SavedState)
    sites: SiteTracker | None = None
    state: StateStore | None = None
    sinks: list[Sink] = field(default_factory=list)
    # Series for the metrics registry (sites, MQTT, webhooks), read at scrape time.
    collectors: list[Collector] = field(default_factory=list)

    def close(self) -> None:
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as error:  # one failing output must not keep the others open
                log.error("closing an output failed: %s", error)


def build_integrations(config: AppConfig) -> Integrations:
    """The restored state and the sites built from it (no thread, no connection yet: the
    pipeline takes both when it is built; start_sinks adds the outputs after it)."""
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


def start_sinks(out: Integrations, config: AppConfig) -> None:
    """The state file, webhooks and MQTT outputs; CrowdwatchError for a mistake the user can
    fix (an unset webhook secret, an unwritable state folder)."""
    try:
        store = None
        if config.state.path is not None:
            sites = out.sites
            store = StateStore(config.state.path, config.state.interval_s, out.saved,
                               sites.saved if sites is not None else None)
            out.state = store
            out.sinks.append(store)
        if out.sites is not None:
            from crowdwatch.outputs.site_metrics import SiteCollector

            # The drift counter as of the file, for the same reason as the line counters.
            out.collectors.append(SiteCollector(
                out.sites, store.saved_sites if store is not None else None))
        if config.webhooks:
            from crowdwatch.outputs.webhooks import WebhookSink

            hooks = WebhookSink.from_config(config.webhooks)
            out.sinks.append(hooks)
            out.collectors.append(hooks)  # type: ignore[arg-type]
        if config.mqtt is not None:
            from crowdwatch.outputs.mqtt import MqttSink

            mqtt = MqttSink(config.mqtt, config.cameras, config.sites, out.saved.lines)
            out.sinks.append(mqtt)
            out.collectors.append(mqtt)  # type: ignore[arg-type]
    except BaseException:
        out.close()
        raise


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
