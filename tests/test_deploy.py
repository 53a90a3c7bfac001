"""The deployment files, checked offline: promtool on the Prometheus configs and rules (with
its unit tests of every alert), the Grafana dashboard against its generator, the compose file
against the Compose schema, and the Kubernetes manifests against the Kubernetes schemas.

What these files do against a running Prometheus is tested in test_prometheus_stack.py.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploy_files import (
    ALERTS,
    ALERTS_TEST,
    COMPOSE,
    DEPLOY,
    PROMETHEUS_COMPOSE,
    PROMETHEUS_KUBERNETES,
    REPO,
    alert_rules,
    dashboard,
    dashboard_generator,
    dashboard_targets,
    kubernetes_documents,
    load_yaml,
    sanitize_label_name,
)

from crowdwatch.config import load_config, parse_config

KUBERNETES_VERSION = "1.30"  # oldest Kubernetes minor the manifests are checked against


def run(*args: str | Path, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


# --- Prometheus -------------------------------------------------------------------------


def test_promtool_accepts_the_alert_rules(promtool: Path) -> None:
    result = run(promtool, "check", "rules", ALERTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


def test_alert_rules_pass_their_promtool_unit_tests(promtool: Path) -> None:
    result = run(promtool, "test", "rules", ALERTS_TEST.name, cwd=ALERTS_TEST.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test_where_it_fires_and_one_where_it_does_not() -> None:
    cases: dict[str, list[bool]] = {}
    for test in load_yaml(ALERTS_TEST)["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], []).append(bool(case.get("exp_alerts")))
    for rule in alert_rules():
        assert set(cases.get(rule["alert"], [])) == {True, False}, rule["alert"]


def test_alert_rules_are_labelled_and_explained() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names))
    assert set(names) >= {"CrowdwatchZoneOverCapacity", "CrowdwatchCameraDown",
                          "CrowdwatchProcessingBehind", "CrowdwatchExporterDown",
                          "CrowdwatchExporterAbsent"}
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert f"`{rule['alert']}`" in readme, f"README.md does not explain {rule['alert']}"


def test_promtool_accepts_the_compose_prometheus_config(promtool: Path) -> None:
    result = run(promtool, "check", "config", PROMETHEUS_COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_kubernetes_prometheus_config(promtool: Path,
                                                           tmp_path: Path) -> None:
    # Debian's Prometheus is built without Kubernetes discovery, so its promtool rejects
    # kubernetes_sd_configs. Check that block's shape here, and everything else (globals,
    # relabelling, rule files) with promtool on a copy that discovers from a file instead.
    config = load_yaml(PROMETHEUS_KUBERNETES)
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "crowdwatch"
    (discovery,) = job.pop("kubernetes_sd_configs")
    namespaces = {d["metadata"]["namespace"] for d in kubernetes_documents()
                  if d["kind"] == "Deployment"}
    assert discovery == {"role": "pod", "namespaces": {"names": sorted(namespaces)}}
    job["file_sd_configs"] = [{"files": ["pods.json"]}]
    (tmp_path / "alerts.yml").write_text(ALERTS.read_text())
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    result = run(promtool, "check", "config", copy)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_scrape_config_reads_labels_the_pods_have() -> None:
    deployments = [d for d in kubernetes_documents() if d["kind"] == "Deployment"]
    (job,) = load_yaml(PROMETHEUS_KUBERNETES)["scrape_configs"]
    used = {label for rule in job["relabel_configs"] for label in rule.get("source_labels", [])}
    assert used, "no relabelling"
    for deployment in deployments:
        metadata = deployment["spec"]["template"]["metadata"]
        have = {f"__meta_kubernetes_pod_label_{sanitize_label_name(k)}" for k in metadata["labels"]}
        have |= {f"__meta_kubernetes_pod_annotation_{sanitize_label_name(k)}"
                 for k in metadata["annotations"]}
        for label in used:
            if label.startswith(("__meta_kubernetes_pod_label_",
                                 "__meta_kubernetes_pod_annotation_")):
                assert label in have, f"{deployment['metadata']['name']} has no {label}"
    targets = {rule.get("target_label") for rule in job["relabel_configs"]}
    assert {"site", "camera_group", "pod", "namespace"} <= targets


# --- Grafana ----------------------------------------------------------------------------


def test_dashboard_json_is_the_generators_output() -> None:
    generator = dashboard_generator()
    assert generator.OUTPUT.read_text(encoding="utf-8") == generator.render(), (
        "deploy/grafana/dashboards/crowdwatch.json is stale: run "
        "python deploy/grafana/dashboard.py")


def test_dashboard_layout_and_variables() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["camera"]["query"] == "label_values(crowdwatch_source_up, camera)"
    assert "$camera" in variables["zone"]["query"]
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])}
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], panel["title"]
    exprs = " ".join(target["expr"] for _title, target in dashboard_targets())
    # The list: people per zone, density, occupancy, levels, source health and
    # reconnects, frames/s, stage latency.
    for metric in ("crowdwatch_zone_people", "crowdwatch_zone_density_people_per_square_meter",
                   "crowdwatch_zone_occupancy_ratio", "crowdwatch_zone_level",
                   "crowdwatch_source_up", "crowdwatch_source_reconnects_total",
                   "crowdwatch_last_frame_timestamp_seconds",
                   "crowdwatch_frames_processed_total", "crowdwatch_frames_dropped_total",
                   "crowdwatch_stage_duration_seconds_bucket",
                   # issue 21: the Sites row
                   "crowdwatch_site_occupancy", "crowdwatch_site_people",
                   "crowdwatch_site_occupancy_ratio", "crowdwatch_site_level",
                   "crowdwatch_site_occupancy_drift_total"):
        assert metric in exprs, metric
    rows = [panel["title"] for panel in board["panels"] if panel["type"] == "row"]
    assert "Sites" in rows


def test_dashboard_thresholds_match_the_alerts() -> None:
    generator = dashboard_generator()
    rules = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    assert f"> {generator.STALE_S})" in rules["CrowdwatchCameraDown"]
    assert "> 0.1" in rules["CrowdwatchProcessingBehind"]
    shares = [t["expr"] for title, t in dashboard_targets() if title == "Share of frames dropped"]
    # The panel plots exactly what the alert thresholds (with Grafana's window).
    rule = re.sub(r"\s+", " ", rules["CrowdwatchProcessingBehind"]).strip()
    assert shares == [rule.removesuffix(" > 0.1").replace("[5m]", '{camera=~"$camera"}'
                                                         "[$__rate_interval]")]


# --- Compose ----------------------------------------------------------------------------


def compose_volumes(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path (relative to deploy/) of a service's bind mounts."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        # ${VAR:-default} is the default when VAR is unset.
        source = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", source)
        if source.startswith((".", "/")):
            out[target] = source
    return out


def test_compose_file_follows_the_compose_spec() -> None:
    result = run(sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                 "vendor.compose-spec", COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_mounts_exist_and_fit_together() -> None:
    services = load_yaml(COMPOSE)["services"]
    for name, service in services.items():
        for target, source in compose_volumes(service).items():
            assert (COMPOSE.parent / source).exists(), f"{name}: {source} -> {target} is missing"
    build = services["crowdwatch"]["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == (
        REPO / "Dockerfile")

    # crowdwatch: the image's default config path, the clip looped like a camera.
    mounts = compose_volumes(services["crowdwatch"])
    config = load_config(COMPOSE.parent / mounts["/config/crowdwatch.yaml"])
    (camera,) = config.cameras
    assert camera.loop and camera.realtime
    source = Path(str(camera.source))
    host_dir = next(COMPOSE.parent / host for target, host in mounts.items()
                    if source.is_relative_to(target))
    assert (host_dir / source.name).is_file()
    assert (config.metrics.host, config.metrics.port) == ("0.0.0.0", 9108)
    assert "127.0.0.1:9108:9108" in services["crowdwatch"]["ports"]
    pets = load_config(REPO / "configs" / "pets.yaml").cameras[0]
    assert camera.ground_plane == pets.ground_plane
    # The same zones; only the capacities may differ (the demo's plaza fills up).
    shape = lambda zone: zone.model_copy(update={"capacity": None})  # noqa: E731
    assert [shape(z) for z in camera.zones] == [shape(z) for z in pets.zones]

    # Prometheus scrapes that service and loads the rules beside its config.
    prometheus = compose_volumes(services["prometheus"])
    assert Path(prometheus["/etc/prometheus/prometheus.yml"]).name == PROMETHEUS_COMPOSE.name
    assert Path(prometheus["/etc/prometheus/alerts.yml"]).name == ALERTS.name
    scrape = load_yaml(PROMETHEUS_COMPOSE)
    assert scrape["rule_files"] == ["alerts.yml"]
    (job,) = scrape["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["crowdwatch:9108"]}]

    # Grafana: the provisioned datasource is that Prometheus, the dashboards folder is mounted.
    grafana = compose_volumes(services["grafana"])
    provisioning = DEPLOY / "grafana" / "provisioning"
    (datasource,) = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["jsonData"]["timeInterval"] == scrape["global"]["scrape_interval"]
    (provider,) = load_yaml(provisioning / "dashboards" / "crowdwatch.yml")["providers"]
    dashboards = COMPOSE.parent / grafana[provider["options"]["path"]]
    assert (dashboards / "crowdwatch.json").is_file()
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/crowdwatch.json"
    for folder in ("datasources", "dashboards"):
        assert grafana[f"/etc/grafana/provisioning/{folder}"] == f"./grafana/provisioning/{folder}"


# --- Kubernetes -------------------------------------------------------------------------


@pytest.mark.parametrize("document", kubernetes_documents(),
                         ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_kubernetes_manifest_matches_the_kubernetes_schema(document: dict[str, Any]) -> None:
    # strict: unknown fields (a misspelt key) are errors too.
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_kubernetes_schema_check_catches_a_mistake() -> None:
    deployment = next(d for d in kubernetes_documents() if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["livenessProbe"]["httpGet"]["pathh"] = container["livenessProbe"]["httpGet"].pop("path")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_kubernetes_camera_groups() -> None:
    documents = kubernetes_documents()
    by_kind: dict[str, dict[str, dict[str, Any]]] = {}
    for doc in documents:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    deployments = by_kind["Deployment"]
    assert len(deployments) >= 2, "the example shows more than one camera group"
    cameras: list[str] = []
    for name, deployment in deployments.items():
        spec = deployment["spec"]
        # One pod per group, never two at once: a second one would count the cameras twice.
        assert spec["replicas"] == 1 and spec["strategy"]["type"] == "Recreate", name
        template = spec["template"]
        assert template["metadata"]["labels"]["app.kubernetes.io/name"] == "crowdwatch"
        assert {"crowdwatch.io/site", "crowdwatch.io/camera-group"} <= set(
            template["metadata"]["labels"])
        (container,) = template["spec"]["containers"]
        (port,) = container["ports"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(port["containerPort"])
        assert annotations["prometheus.io/path"] == "/metrics"
        assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}

        # Its cameras come from its own ConfigMap, mounted where --config points.
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        config_path = Path(container["args"][container["args"].index("--config") + 1])
        config_volume = volumes[mounts[str(config_path.parent)]]
        config_map = by_kind["ConfigMap"][config_volume["configMap"]["name"]]
        config = parse_config(yaml.safe_load(config_map["data"][config_path.name]), name)
        assert (config.metrics.host, config.metrics.port) == ("0.0.0.0", port["containerPort"])
        cameras += [camera.id for camera in config.cameras]
        models = volumes[mounts["/models"]]["persistentVolumeClaim"]["claimName"]
        assert models in by_kind["PersistentVolumeClaim"]
    assert len(cameras) == len(set(cameras)), f"camera ids repeat across groups: {cameras}"
    namespaces = {d["metadata"].get("namespace") for d in documents if d["kind"] != "Namespace"}
    assert namespaces == set(by_kind["Namespace"])
