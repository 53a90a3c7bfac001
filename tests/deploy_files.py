"""Paths and readers of the deployment files under deploy/, shared by the deploy tests."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERTS_TEST = DEPLOY / "prometheus" / "alerts_test.yml"
PROMETHEUS_COMPOSE = DEPLOY / "prometheus" / "prometheus.yml"
PROMETHEUS_KUBERNETES = DEPLOY / "prometheus" / "prometheus-kubernetes.yml"
DASHBOARD_JSON = DEPLOY / "grafana" / "dashboards" / "crowdwatch.json"
DASHBOARD_PY = DEPLOY / "grafana" / "dashboard.py"
COMPOSE = DEPLOY / "docker-compose.yml"
KUBERNETES = DEPLOY / "kubernetes"


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_JSON.read_text(encoding="utf-8"))


def dashboard_targets() -> list[tuple[str, dict[str, Any]]]:
    """(panel title, target) of every query of every panel."""
    return [(panel["title"], target) for panel in dashboard()["panels"]
            for target in panel.get("targets", [])]


def dashboard_generator() -> ModuleType:
    """deploy/grafana/dashboard.py, imported by path (deploy/ is no package)."""
    spec = importlib.util.spec_from_file_location("crowdwatch_dashboard", DASHBOARD_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def kubernetes_documents() -> list[dict[str, Any]]:
    return [doc for path in sorted(KUBERNETES.glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def sanitize_label_name(name: str) -> str:
    """A Kubernetes label or annotation key as Prometheus' __meta_kubernetes_* names spell it."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def pod_meta_labels(deployment: dict[str, Any], pod: str) -> dict[str, str]:
    """The __meta_kubernetes_* labels Prometheus' pod discovery gives this Deployment's pod."""
    template = deployment["spec"]["template"]
    container = template["spec"]["containers"][0]
    port = container["ports"][0]
    labels = {
        "__meta_kubernetes_namespace": deployment["metadata"]["namespace"],
        "__meta_kubernetes_pod_name": pod,
        "__meta_kubernetes_pod_container_name": container["name"],
        "__meta_kubernetes_pod_container_port_name": port["name"],
        "__meta_kubernetes_pod_container_port_number": str(port["containerPort"]),
    }
    for key, value in template["metadata"]["labels"].items():
        labels[f"__meta_kubernetes_pod_label_{sanitize_label_name(key)}"] = value
    for key, value in template["metadata"].get("annotations", {}).items():
        labels[f"__meta_kubernetes_pod_annotation_{sanitize_label_name(key)}"] = value
    return labels
