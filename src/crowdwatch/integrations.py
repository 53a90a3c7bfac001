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
        from crowdwatch.outputs.site_metrics import SiteCollector

        out.sites = SiteTracker(config.sites, config.levels, out.saved.sites,
                                out.saved.saved_at)
        out.collectors.append(SiteCollector(out.sites))
    return out


def start_sinks(out: Integrations, config: AppConfig) -> None:
    """The state file, webhooks and MQTT outputs; CrowdwatchError for a mistake the user can
    fix (an unset webhook secret, an unwritable state folder)."""
    try:
        if config.state.path is not None:
            sites = out.sites
            out.sinks.append(StateStore(config.state.path, config.state.interval_s, out.saved,
                                        sites.saved if sites is not None else None))
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


def resume_line_counters(counter: Counter, saved: SavedState,
                         lines: Iterable[tuple[str, str]]) -> None:
    """Start crowdwatch_line_crossings_total from the restored totals, so the counter stays
    monotonic across a restart (a restart without a state file is an ordinary counter reset,
    which rate() and increase() handle)."""
    for camera, line in lines:
        totals = saved.lines.get(camera, {}).get(line)
        if totals is None:
            continue
        for direction, value in zip(("in", "out"), totals, strict=True):
            if value:
                counter.labels(camera, line, direction).inc(value)
