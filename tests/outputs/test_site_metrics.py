"""crowdwatch_site_* series from the SiteTracker."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from crowdwatch.analytics.sites import SavedSite, SiteTracker
from crowdwatch.config.integrations import SiteConfig
from crowdwatch.config.zones import LevelThresholds
from crowdwatch.outputs.site_metrics import SiteCollector
from crowdwatch.types import LineTotals, ZoneStats


def scrape(tracker: SiteTracker) -> dict[tuple[str, str], float]:
    registry = CollectorRegistry()
    registry.register(SiteCollector(tracker))
    text = generate_latest(registry).decode()
    return {(s.name, s.labels["site"]): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_site_series() -> None:
    hall = SiteConfig.model_validate({
        "name": "hall", "capacity": 10,
        "entrances": [{"camera": "gate", "line": "door"}],
        "zones": [{"camera": "gate", "zone": "lobby"}]})
    lawn = SiteConfig.model_validate({"name": "lawn",
                                      "zones": [{"camera": "gate", "zone": "lawn"}]})
    tracker = SiteTracker([hall, lawn], LevelThresholds(clear_frames=1),
                          saved={"hall": SavedSite(4, 2)})
    before = scrape(tracker)
    # Restored at once; no people series before a zone was seen, lawn has no occupancy.
    assert before == {
        ("crowdwatch_site_occupancy", "hall"): 4.0,
        ("crowdwatch_site_occupancy_ratio", "hall"): 0.4,
        ("crowdwatch_site_capacity_people", "hall"): 10.0,
        ("crowdwatch_site_level", "hall"): 0.0,
        ("crowdwatch_site_occupancy_drift_total", "hall"): 2.0}
    tracker.update("gate", {"lobby": ZoneStats(6), "lawn": ZoneStats(1)},
                   {"door": LineTotals(0, 0, 5, 0)})
    after = scrape(tracker)
    assert after[("crowdwatch_site_occupancy", "hall")] == 9
    assert after[("crowdwatch_site_level", "hall")] == 1  # 0.9: warning
    assert after[("crowdwatch_site_people", "hall")] == 6
    assert after[("crowdwatch_site_people", "lawn")] == 1


def test_with_a_state_file_the_drift_counter_is_exported_as_saved() -> None:
    hall = SiteConfig.model_validate({"name": "hall",
                                      "entrances": [{"camera": "gate", "line": "door"}]})
    tracker = SiteTracker([hall], LevelThresholds())
    saved = {"hall": SavedSite(0, 2)}
    registry = CollectorRegistry()
    registry.register(SiteCollector(tracker, lambda: saved))
    tracker.update("gate", {}, {"door": LineTotals(0, 0, 0, 5)})  # 5 clamped, not saved yet

    def drift() -> float:
        text = generate_latest(registry).decode()
        return next(s.value for f in text_string_to_metric_families(text) for s in f.samples
                    if s.name == "crowdwatch_site_occupancy_drift_total")

    assert drift() == 2
    saved["hall"] = SavedSite(0, 5)
    assert drift() == 5
