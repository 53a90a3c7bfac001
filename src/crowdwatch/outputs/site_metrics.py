"""Prometheus series of the sites (config sites:), read from the SiteTracker at scrape time:
nothing runs per frame."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from crowdwatch.analytics.sites import SavedSite, SiteTracker


class SiteCollector(Collector):
    """crowdwatch_site_* series. A value a site does not have (people without zones,
    occupancy without entrances, ratio and level without capacity) has no series."""

    def __init__(self, sites: SiteTracker,
                 saved: Callable[[], Mapping[str, SavedSite]] | None = None) -> None:
        """saved: the sites as the state file holds them; the drift counter is exported
        from there, so it never runs ahead of what a restart resumes from."""
        self._sites = sites
        self._saved = saved

    def collect(self) -> Iterator[Metric]:
        label = ["site"]
        people = GaugeMetricFamily(
            "crowdwatch_site_people", "People in the site's zones, summed over its cameras",
            labels=label)
        occupancy = GaugeMetricFamily(
            "crowdwatch_site_occupancy", "People inside the site: in minus out over its "
            "entrance lines since start (restored across restarts), never below 0",
            labels=label)
        ratio = GaugeMetricFamily(
            "crowdwatch_site_occupancy_ratio", "The site's occupancy (its people without "
            "entrances) divided by its capacity", labels=label)
        capacity = GaugeMetricFamily("crowdwatch_site_capacity_people",
                                     "Configured capacity of the site", labels=label)
        level = GaugeMetricFamily("crowdwatch_site_level",
                                  "Site level: 0 ok, 1 warning, 2 critical", labels=label)
        drift = CounterMetricFamily(
            "crowdwatch_site_occupancy_drift", "People the occupancy was clamped by to stay "
            "at 0 (more out than in: crossings missed at a door)", labels=label)
        capacities = self._sites.capacities()
        saved = self._saved() if self._saved is not None else {}
        for name, stats in self._sites.snapshot().items():
            if stats.people is not None:
                people.add_metric([name], stats.people)
            if stats.occupancy is not None:
                occupancy.add_metric([name], stats.occupancy)
                kept = saved.get(name)
                drift.add_metric([name], kept.drift if kept is not None
                                 else 0 if self._saved is not None else stats.drift)
            if stats.ratio is not None:
                ratio.add_metric([name], stats.ratio)
            if stats.level is not None:
                level.add_metric([name], int(stats.level))
            if name in capacities:
                capacity.add_metric([name], capacities[name])
        yield from (people, occupancy, ratio, capacity, level, drift)
