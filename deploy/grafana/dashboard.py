"""Builds the crowdwatch Grafana dashboard with grafana-foundation-sdk.

The JSON that Grafana provisions, deploy/grafana/dashboards/crowdwatch.json, is this
script's output; the tests fail when the two differ. After changing a panel:

    python deploy/grafana/dashboard.py            # rewrites the JSON
    python deploy/grafana/dashboard.py --check    # exit 1 if the JSON is stale

Every panel query is run against a real Prometheus by tests/test_prometheus_stack.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import bargauge, stat, statetimeline, timeseries
from grafana_foundation_sdk.builders.common import (
    GraphThresholdsStyleConfig,
    ReduceDataOptions,
    VizLegendOptions,
    VizTooltipOptions,
)
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    DatasourceVariable,
    QueryVariable,
    Row,
    ThresholdsConfig,
)
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

# Any panel builder (they share no base class beyond the SDK's generic Builder).
Panel = timeseries.Panel | stat.Panel | statetimeline.Panel | bargauge.Panel

OUTPUT = Path(__file__).resolve().parent / "dashboards" / "crowdwatch.json"
UID = "crowdwatch"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
CAMERA = 'camera=~"$camera"'
ZONE = 'camera=~"$camera", zone=~"$zone"'

# The level thresholds of configs/example.yaml's defaults (warning 0.8, critical 1.0).
WARNING_RATIO = 0.8
CRITICAL_RATIO = 1.0
# The long-wait alert's dwell p90 (deploy/prometheus/alerts.yml), seconds.
LONG_WAIT_S = 600
# Seconds without a fresh frame before the camera-down alert counts a camera as down.
STALE_S = 30


def _query(expr: str, legend: str, ref: str = "A", instant: bool = False) -> Dataquery:
    query = Dataquery().expr(expr).legend_format(legend).ref_id(ref)
    return query.instant() if instant else query.range()


def _steps(*steps: tuple[float | None, str]) -> ThresholdsConfig:
    return ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(
        [model.Threshold(value=value, color=color) for value, color in steps])


def _legend() -> VizLegendOptions:
    return (VizLegendOptions().display_mode(common.LegendDisplayMode.LIST)
            .placement(common.LegendPlacement.BOTTOM).show_legend(True))


def _graph(title: str, description: str, unit: str, *queries: Dataquery) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).description(description).datasource(DATASOURCE)
             .unit(unit).legend(_legend()).span(12).height(8).min(0)
             .tooltip(VizTooltipOptions().mode(common.TooltipDisplayMode.MULTI)
                      .sort(common.SortOrder.DESCENDING)))
    for query in queries:
        panel = panel.with_target(query)
    return panel


def _levels_mapping() -> list[model.ValueMapping]:
    return [model.ValueMap(options={
        "0": model.ValueMappingResult(text="ok", color="green", index=0),
        "1": model.ValueMappingResult(text="warning", color="orange", index=1),
        "2": model.ValueMappingResult(text="critical", color="red", index=2),
    })]


def _up_mapping() -> list[model.ValueMapping]:
    return [model.ValueMap(options={
        "0": model.ValueMappingResult(text="down", color="red", index=0),
        "1": model.ValueMappingResult(text="up", color="green", index=1),
    })]


def zone_panels() -> list[Panel]:
    occupancy_steps = _steps((None, "green"), (WARNING_RATIO, "orange"),
                             (CRITICAL_RATIO, "red"))
    return [
        _graph("People per zone",
               "Temporally smoothed count of people whose feet are in the zone.", "short",
               _query(f"crowdwatch_zone_people{{{ZONE}}}", "{{camera}} / {{zone}}")),
        _graph("Density", "People per square metre of ground, for zones with a known area.",
               "suffix: people/m²",
               _query(f"crowdwatch_zone_density_people_per_square_meter{{{ZONE}}}",
                      "{{camera}} / {{zone}}")),
        _graph("Occupancy against capacity",
               "People divided by the zone's capacity; dashed lines at the warning and "
               "critical ratios.", "percentunit",
               _query(f"crowdwatch_zone_occupancy_ratio{{{ZONE}}}", "{{camera}} / {{zone}}"))
        .thresholds(occupancy_steps)
        .thresholds_style(GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED)),
        bargauge.Panel().title("Occupancy now").datasource(DATASOURCE)
        .description("Current people / capacity of each zone with a capacity.")
        .unit("percentunit").min(0).max(1.2).span(12).height(8)
        .thresholds(occupancy_steps)
        .display_mode(common.BarGaugeDisplayMode.LCD)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .with_target(_query(f"crowdwatch_zone_occupancy_ratio{{{ZONE}}}",
                            "{{camera}} / {{zone}}", instant=True)),
        stat.Panel().title("Level now").datasource(DATASOURCE)
        .description("ok / warning / critical, with the hysteresis of the config's levels.")
        .mappings(_levels_mapping())
        .thresholds(_steps((None, "green"), (1, "orange"), (2, "red")))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(8).height(6)
        .with_target(_query(f"crowdwatch_zone_level{{{ZONE}}}", "{{camera}} / {{zone}}",
                            instant=True)),
        statetimeline.Panel().title("Level history").datasource(DATASOURCE)
        .description("When each zone was ok, warning or critical.")
        .mappings(_levels_mapping())
        .thresholds(_steps((None, "green"), (1, "orange"), (2, "red")))
        .legend(_legend().show_legend(False))
        .span(16).height(6)
        .with_target(_query(f"crowdwatch_zone_level{{{ZONE}}}", "{{camera}} / {{zone}}")),
    ]


def camera_panels() -> list[Panel]:
    return [
        statetimeline.Panel().title("Source up").datasource(DATASOURCE)
        .description("1 while the camera delivers frames. A down camera's zone counts freeze: "
                     "they do not drop to 0.")
        .mappings(_up_mapping())
        .thresholds(_steps((None, "red"), (1, "green")))
        .legend(_legend().show_legend(False))
        .span(12).height(6)
        .with_target(_query(f"crowdwatch_source_up{{{CAMERA}}}", "{{camera}}")),
        stat.Panel().title("Seconds since the last frame").datasource(DATASOURCE)
        .description(f"Age of the newest analysed frame; the camera-down alert fires past "
                     f"{STALE_S} s.")
        .unit("s").decimals(1)
        .thresholds(_steps((None, "green"), (10, "orange"), (STALE_S, "red")))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(6).height(6)
        .with_target(_query(f"time() - crowdwatch_last_frame_timestamp_seconds{{{CAMERA}}}",
                            "{{camera}}", instant=True)),
        _graph("Reconnects", "Successful reopenings of a failed source.", "short",
               _query(f"increase(crowdwatch_source_reconnects_total{{{CAMERA}}}"
                      "[$__rate_interval])", "{{camera}}"))
        .draw_style(common.GraphDrawStyle.BARS).span(6).height(6),
        _graph("People in the frame", "Everyone the detector sees, in a zone or not.", "short",
               _query(f"crowdwatch_camera_people{{{CAMERA}}}", "{{camera}}")).span(24),
    ]


def flow_panels() -> list[Panel]:
    def dwell(quantile: float) -> str:
        return (f"histogram_quantile({quantile}, sum by (camera, zone, le) "
                f"(rate(crowdwatch_zone_dwell_seconds_bucket{{{ZONE}}}[5m])))")

    return [
        _graph("Line crossings per minute",
               "People crossing each counting line per minute, in (negative to positive "
               "side) and out; README: Lines.", "short",
               _query("60 * sum by (camera, line, direction) "
                      f"(rate(crowdwatch_line_crossings_total{{{CAMERA}}}[$__rate_interval]))",
                      "{{camera}} / {{line}} {{direction}}")),
        _graph("Dwell time (p50, p90)",
               "Visit durations that ended in the last 5 minutes, for zones with dwell: true; "
               f"the long-wait alert fires while p90 stays above {LONG_WAIT_S} s.", "s",
               _query(dwell(0.5), "{{camera}} / {{zone}} p50"),
               _query(dwell(0.9), "{{camera}} / {{zone}} p90", ref="B"))
        .thresholds(_steps((None, "green"), (LONG_WAIT_S, "red")))
        .thresholds_style(GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED)),
        _graph("Longest current stay",
               "The longest stay of a tracked person now inside the zone (0: nobody).", "s",
               _query(f"crowdwatch_zone_longest_stay_seconds{{{ZONE}}}", "{{camera}} / {{zone}}"))
        .span(24),
    ]


def site_panels() -> list[Panel]:
    """Sites across cameras (config sites:): every site, whatever the camera filter."""
    occupancy_steps = _steps((None, "green"), (WARNING_RATIO, "orange"),
                             (CRITICAL_RATIO, "red"))
    return [
        _graph("Site occupancy",
               "People inside each site: in minus out over its entrance lines (restored "
               "across restarts, never below 0), and people seen in its zones.", "short",
               _query("crowdwatch_site_occupancy", "{{site}} inside"),
               _query("crowdwatch_site_people", "{{site}} in zones", ref="B")),
        _graph("Site occupancy against capacity",
               "Occupancy divided by the site's capacity; the site-over-capacity alert fires "
               "while its level stays critical.", "percentunit",
               _query("crowdwatch_site_occupancy_ratio", "{{site}}"))
        .thresholds(occupancy_steps)
        .thresholds_style(GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED)),
        stat.Panel().title("Site level now").datasource(DATASOURCE)
        .description("ok / warning / critical of each site with a capacity, with the "
                     "hysteresis of the config's levels.")
        .mappings(_levels_mapping())
        .thresholds(_steps((None, "green"), (1, "orange"), (2, "red")))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(12).height(6)
        .with_target(_query("crowdwatch_site_level", "{{site}}", instant=True)),
        _graph("Site occupancy drift",
               "People the occupancy had to be clamped by to stay at 0: more people left "
               "than entered, so crossings were missed at a door.", "short",
               _query("increase(crowdwatch_site_occupancy_drift_total[$__rate_interval])",
                      "{{site}}"))
        .draw_style(common.GraphDrawStyle.BARS).span(12).height(6),
    ]


def processing_panels() -> list[Panel]:
    dropped = f"rate(crowdwatch_frames_dropped_total{{{CAMERA}}}[$__rate_interval])"
    processed = f"rate(crowdwatch_frames_processed_total{{{CAMERA}}}[$__rate_interval])"
    return [
        _graph("Frames per second",
               "Frames analysed, and live frames dropped because a newer one arrived before "
               "the detector was free.", "fps",
               _query(processed, "{{camera}} analysed"),
               _query(dropped, "{{camera}} dropped", ref="B")),
        _graph("Share of frames dropped",
               "dropped / (analysed + dropped): above 0 the detector is slower than the "
               "camera; the processing-behind alert fires above 10 %.", "percentunit",
               _query(f"{dropped} / ({processed} + {dropped})", "{{camera}}"))
        .max(1).thresholds(_steps((None, "green"), (0.1, "red")))
        .thresholds_style(GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED)),
        _graph("Received and analysed vs the stream's rate",
               "Per camera, frames received and analysed per second as a share of the "
               "frame rate its stream declares: received well below 1 means decoding or the "
               "network falls behind; analysed is what the detector keeps up with (or "
               "analysis_fps). The camera-behind alert fires when received stays below 80 %.",
               "percentunit",
               _query(f"rate(crowdwatch_source_frames_received_total{{{CAMERA}}}"
                      f"[$__rate_interval]) / crowdwatch_source_nominal_frames_per_second"
                      f"{{{CAMERA}}}", "{{camera}} received"),
               _query(f"{processed} / crowdwatch_source_nominal_frames_per_second{{{CAMERA}}}",
                      "{{camera}} analysed", ref="B"))
        .min(0).thresholds(_steps((None, "red"), (0.8, "green")))
        .thresholds_style(GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.DASHED)),
        _graph("Stage latency (p95)", "95th percentile time per frame in each pipeline stage.",
               "s",
               _query("histogram_quantile(0.95, sum by (camera, stage, le) "
                      f"(rate(crowdwatch_stage_duration_seconds_bucket{{{CAMERA}}}"
                      "[$__rate_interval])))", "{{camera}} {{stage}}")),
        _graph("Frame age at export (p95)",
               "Capture-to-metrics delay of a frame, 95th percentile.", "s",
               _query("histogram_quantile(0.95, sum by (camera, le) "
                      f"(rate(crowdwatch_frame_age_seconds_bucket{{{CAMERA}}}"
                      "[$__rate_interval])))", "{{camera}}")),
    ]


def build() -> Dashboard:
    """The whole dashboard."""
    camera = (QueryVariable("camera").label("Camera").datasource(DATASOURCE)
              .query("label_values(crowdwatch_source_up, camera)")
              .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
              .sort(model.VariableSort.ALPHABETICAL_ASC).multi(True).include_all(True))
    zone = (QueryVariable("zone").label("Zone").datasource(DATASOURCE)
            .query('label_values(crowdwatch_zone_people{camera=~"$camera"}, zone)')
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC).multi(True).include_all(True))
    dashboard = (
        Dashboard("crowdwatch").uid(UID)
        .description("People per zone, occupancy and levels, camera health and processing "
                     "rate from crowdwatch's /metrics.")
        .tags(["crowdwatch"]).refresh("10s").time("now-30m", "now").timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(camera)
        .with_variable(zone)
    )
    # Rows are markers: an expanded row's panels follow it at the top level.
    for title, panels in (("Zones", zone_panels()), ("Sites", site_panels()),
                          ("Flow", flow_panels()),
                          ("Cameras", camera_panels()), ("Processing", processing_panels())):
        dashboard = dashboard.with_row(Row(title))
        for panel in panels:
            dashboard = dashboard.with_panel(panel)
    return dashboard


def render() -> str:
    """The dashboard as the JSON text Grafana provisions (ids numbered, stable order)."""
    built = build().build()
    # Grafana wants unique panel ids; the SDK leaves them unset.
    for panel_id, panel in enumerate(built.panels or [], start=1):
        panel.id_val = panel_id
    return JSONEncoder(sort_keys=True, indent=2).encode(built) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the JSON is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else ""
        if current != text:
            print(f"{OUTPUT} is stale: run python {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
