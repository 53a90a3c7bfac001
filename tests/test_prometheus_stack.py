"""A real Prometheus scrapes a real crowdwatch run, and the dashboard and alerts are checked
through Prometheus' HTTP API.

The camera is an MJPEG stream of the sample clip that this test serves on 127.0.0.1, faster
than the detector keeps up with, so live-source behaviour is real: frames are dropped (the
processing-behind alert) and stopping the stream takes the source down (the camera-down
alert). The run's config is configs/pets.yaml with the plaza's capacity cut to 1 (the
over-capacity alert). Prometheus loads deploy/prometheus/prometheus.yml and alerts.yml with
1 s intervals and `for:` cut to seconds, plus the Kubernetes job of prometheus-kubernetes.yml
fed from a file with the labels that pod discovery would give (Debian's Prometheus has no
Kubernetes discovery).

The tests share one stack and run in file order: the last two stop the stream, then
crowdwatch. Everything listens on 127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import cv2
import pytest
import yaml
from deploy_files import (
    ALERTS,
    PROMETHEUS_COMPOSE,
    PROMETHEUS_KUBERNETES,
    REPO,
    alert_rules,
    dashboard,
    dashboard_targets,
    kubernetes_documents,
    load_yaml,
    pod_meta_labels,
)

# Longer than the suite's default timeout (pyproject.toml): crowdwatch scraped by Prometheus.
pytestmark = pytest.mark.timeout(900)

STREAM_FPS = 200  # well above what the detector analyses on a CPU (~80/s): frames get dropped
TEST_FOR = "2s"  # every alert's `for:` in the test copy of the rules
RATE_INTERVAL = "4s"  # Grafana's $__rate_interval for a 1 s scrape interval (4 x scrape)
WAIT_S = 60.0
CAMERA = "pets"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, check: Callable[[], Any], timeout: float = WAIT_S) -> Any:
    """Poll check() until it returns something truthy; fail naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except (OSError, ValueError, KeyError, AssertionError) as error:
            last_error = error
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}"
                + (f" (last error: {last_error})" if last_error else ""))


class MjpegCamera:
    """The sample clip as an endless HTTP MJPEG stream on 127.0.0.1, until stop()."""

    def __init__(self, clip: Path, fps: float) -> None:
        capture = cv2.VideoCapture(str(clip))
        frames = []
        while True:
            ok, image = capture.read()
            if not ok:
                break
            frames.append(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
        capture.release()
        assert frames, f"no frames in {clip}"
        stopped = self._stopped = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                due = time.monotonic()
                index = 0
                try:
                    while not stopped.is_set():
                        jpeg = frames[index % len(frames)]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n"
                                         b"Content-Length: %d\r\n\r\n%b\r\n" % (len(jpeg), jpeg))
                        index += 1
                        due += 1.0 / fps
                        stopped.wait(max(0.0, due - time.monotonic()))
                except OSError:
                    pass  # the client went away

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/stream.mjpg"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End every stream and refuse new connections: the camera is gone."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@contextlib.contextmanager
def process(args: list[str], log: Path, **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    """A child process with its output in `log`, terminated (then killed) on exit."""
    with log.open("wb") as out:
        child = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **kwargs)
        try:
            yield child
        finally:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(15)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()


class PrometheusAPI:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:  # a bad query answers 400 with the reason
            body = json.loads(error.read())
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.get("/api/v1/query", query=expr)["result"]

    def query_range(self, expr: str, seconds: float) -> list[dict[str, Any]]:
        end = time.time()
        return self.get("/api/v1/query_range", query=expr, start=str(end - seconds),
                        end=str(end), step="1")["result"]

    def alerts(self, name: str, state: str = "firing") -> list[dict[str, str]]:
        return [alert["labels"] for alert in self.get("/api/v1/alerts")["alerts"]
                if alert["labels"]["alertname"] == name and alert["state"] == state]


@dataclass
class Stack:
    camera: MjpegCamera
    crowdwatch: subprocess.Popen[bytes]
    crowdwatch_port: int
    crowdwatch_log: Path
    prometheus: PrometheusAPI

    def crowdwatch_status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.crowdwatch_port}{path}",
                                        timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)


def crowdwatch_config(path: Path, source: str, port: int) -> None:
    """configs/pets.yaml on the live stream, with a plaza that 1 person fills."""
    config = load_yaml(REPO / "configs" / "pets.yaml")
    (camera,) = config["cameras"]
    assert camera["id"] == CAMERA
    camera.update(source=source, read_timeout_s=2.0, max_backoff_s=1.0)
    for zone in camera["zones"]:
        if zone["name"] == "plaza":  # 1-5 people all through the clip
            zone["capacity"] = 1
    # The stream runs at 20x the clip's pace: stays last fractions of a (wall) second, so
    # visits start and end at once and the dwell panels get data within the test's wait.
    config["dwell"] = {"enter_s": 0, "leave_s": 0}
    # A site over the west line and the plaza, for the dashboard's Sites row.
    config["sites"] = [{"name": "campus", "capacity": 1,
                        "entrances": [{"camera": CAMERA, "line": "west"}],
                        "zones": [{"camera": CAMERA, "zone": "plaza"}]}]
    config["metrics"] = {"host": "127.0.0.1", "port": port}
    path.write_text(yaml.safe_dump(config))


def prometheus_config(folder: Path, crowdwatch_port: int) -> Path:
    """The deploy/ configs with 1 s intervals, this run's target and seconds-long `for:`."""
    rules = load_yaml(ALERTS)
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = TEST_FOR
    (folder / "alerts.yml").write_text(yaml.safe_dump(rules))

    config = load_yaml(PROMETHEUS_COMPOSE)
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s",
                        "evaluation_interval": "1s"}
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{crowdwatch_port}"]}]

    # The Kubernetes job, discovering two "pods" of the site-a Deployment from a file: one
    # with the manifest's labels and annotations (its prometheus.io/port points at this
    # run), and one whose port is not the metrics port, which relabelling must drop.
    (kubernetes,) = load_yaml(PROMETHEUS_KUBERNETES)["scrape_configs"]
    kubernetes["job_name"] = "crowdwatch-kubernetes"
    del kubernetes["kubernetes_sd_configs"]
    kubernetes["file_sd_configs"] = [{"files": [str(folder / "pods.json")]}]
    deployment = next(d for d in kubernetes_documents() if d["kind"] == "Deployment"
                      and d["metadata"]["name"] == "crowdwatch-site-a-gates")
    pod = pod_meta_labels(deployment, "crowdwatch-site-a-gates-7d9f8-x2x4q")
    pod["__meta_kubernetes_pod_annotation_prometheus_io_port"] = str(crowdwatch_port)
    other = {**pod, "__meta_kubernetes_pod_container_port_name": "debug",
             "__meta_kubernetes_pod_name": "crowdwatch-site-a-gates-other"}
    port = pod["__meta_kubernetes_pod_container_port_number"]
    (folder / "pods.json").write_text(json.dumps(
        [{"targets": [f"127.0.0.1:{port}"], "labels": labels} for labels in (pod, other)]))
    config["scrape_configs"].append(kubernetes)
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, model_path: Path, sample_clip: Path,
          prometheus_server: Path) -> Iterator[Stack]:
    folder = tmp_path_factory.mktemp("prometheus-stack")
    camera = MjpegCamera(sample_clip, STREAM_FPS)
    crowdwatch_port = free_port()
    config = folder / "crowdwatch.yaml"
    crowdwatch_config(config, camera.url, crowdwatch_port)
    prometheus_port = free_port()
    env = {**os.environ, "CROWDWATCH_MODEL": str(model_path)}
    try:
        with process([sys.executable, "-m", "crowdwatch", "run", "--config", str(config)],
                     folder / "crowdwatch.log", cwd=REPO, env=env) as crowdwatch, \
             process([str(prometheus_server), f"--config.file={prometheus_config(folder, crowdwatch_port)}",
                      f"--storage.tsdb.path={folder / 'data'}",
                      f"--web.listen-address=127.0.0.1:{prometheus_port}", "--log.level=warn"],
                     folder / "prometheus.log", cwd=folder) as prometheus:
            api = PrometheusAPI(prometheus_port)

            def scraped_enough() -> bool:
                for child, log in ((crowdwatch, "crowdwatch.log"), (prometheus, "prometheus.log")):
                    if child.poll() is not None:  # fail now, not after the timeout
                        pytest.fail(f"{log.split('.')[0]} exited with {child.returncode}:\n"
                                    + (folder / log).read_text())
                # Enough samples for every rate() window of the dashboard.
                samples = api.query(
                    f'count_over_time(crowdwatch_frames_processed_total{{job="crowdwatch"}}[{RATE_INTERVAL}])')
                # The zone series appear with the first analysed frame, which a loaded machine
                # delays past the first scrapes of the (declared) frame counter.
                zones = api.query(f'crowdwatch_zone_people{{job="crowdwatch",camera="{CAMERA}"}}')
                return bool(samples) and float(samples[0]["value"][1]) >= 3 and len(zones) == 3

            wait_for("Prometheus to scrape a few seconds of the run", scraped_enough)
            yield Stack(camera, crowdwatch, crowdwatch_port, folder / "crowdwatch.log", api)
    finally:
        camera.stop()


def substitute(expr: str, variables: dict[str, list[str]]) -> str:
    """Grafana's interpolation: multi-value variables as a regex alternation."""
    for name, values in variables.items():
        expr = expr.replace(f"${name}", "(" + "|".join(values) + ")")
    expr = expr.replace("$__rate_interval", RATE_INTERVAL)
    assert "$" not in expr, f"uninterpolated variable in {expr}"
    return expr


def dashboard_variables(api: PrometheusAPI) -> dict[str, list[str]]:
    """The camera and zone variables resolved as Grafana would (label_values, "All")."""
    queries = {v["name"]: v["query"] for v in dashboard()["templating"]["list"]
               if v["type"] == "query"}
    assert queries["camera"] == "label_values(crowdwatch_source_up, camera)"
    cameras = api.get("/api/v1/label/camera/values", **{"match[]": "crowdwatch_source_up"})
    zone_selector = queries["zone"].removeprefix("label_values(").removesuffix(", zone)")
    zone_selector = zone_selector.replace("$camera", "(" + "|".join(cameras) + ")")
    zones = api.get("/api/v1/label/zone/values", **{"match[]": zone_selector})
    return {"camera": cameras, "zone": zones}


def has_finite_value(result: list[dict[str, Any]]) -> bool:
    values = [v for series in result for _t, v in series.get("values", [series.get("value")])]
    return any(math.isfinite(float(v)) for v in values)


def test_dashboard_variables_resolve(stack: Stack) -> None:
    variables = dashboard_variables(stack.prometheus)
    assert variables["camera"] == [CAMERA]
    assert sorted(variables["zone"]) == ["east_road", "plaza", "west_walkway"]


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    api = stack.prometheus
    variables = dashboard_variables(api)
    targets = dashboard_targets()
    assert len(targets) >= 10

    def empty_panels() -> list[str]:
        empty = []
        for title, target in targets:
            expr = substitute(target["expr"], variables)
            result = api.query(expr) if target.get("instant") else api.query_range(expr, 10)
            if not has_finite_value(result):
                empty.append(f"{title}: {expr}")
        return empty

    # Rate windows fill within seconds; give them a little time before calling a panel empty.
    deadline = time.monotonic() + 20
    while (empty := empty_panels()) and time.monotonic() < deadline:
        time.sleep(1)
    assert not empty, "panels without data:\n" + "\n".join(empty)


def test_every_alert_rule_evaluates(stack: Stack) -> None:
    api = stack.prometheus
    for rule in alert_rules():
        api.query(rule["expr"])  # raises with Prometheus' error on a bad expression

    def evaluated() -> dict[str, dict[str, Any]]:
        loaded = {rule["name"]: rule for group in api.get("/api/v1/rules")["groups"]
                  for rule in group["rules"]}
        if all(r["lastEvaluation"] > "0001-01-01T00:00:00Z" for r in loaded.values()):
            return loaded
        return {}

    loaded = wait_for("every rule to be evaluated", evaluated)
    assert set(loaded) == {rule["alert"] for rule in alert_rules()}
    for name, rule in loaded.items():
        assert rule["health"] == "ok", f"{name}: {rule.get('lastError')}"


def test_kubernetes_relabelling_labels_pods_by_site(stack: Stack) -> None:
    api = stack.prometheus
    targets = api.get("/api/v1/targets")
    (pod,) = [t for t in targets["activeTargets"] if t["labels"]["job"] == "crowdwatch-kubernetes"]
    assert pod["labels"]["site"] == "site-a" and pod["labels"]["camera_group"] == "gates"
    assert pod["labels"]["namespace"] == "crowdwatch"
    assert pod["labels"]["pod"] == "crowdwatch-site-a-gates-7d9f8-x2x4q"
    assert pod["scrapeUrl"] == f"http://127.0.0.1:{stack.crowdwatch_port}/metrics"
    dropped = [t["discoveredLabels"]["__meta_kubernetes_pod_name"]
               for t in targets["droppedTargets"]
               if t["discoveredLabels"].get("job") == "crowdwatch-kubernetes"]
    assert dropped == ["crowdwatch-site-a-gates-other"]
    # README's aggregation across pods: people per zone and site.
    by_site = wait_for("the pod's series", lambda: api.query(
        'sum by (site, zone) (crowdwatch_zone_people{job="crowdwatch-kubernetes"})'))
    assert {(s["metric"]["site"], s["metric"]["zone"]) for s in by_site} == {
        ("site-a", "west_walkway"), ("site-a", "plaza"), ("site-a", "east_road")}


def test_over_capacity_and_processing_behind_fire(stack: Stack) -> None:
    api = stack.prometheus
    # Other zones, or the same series scraped by another job, may fire first: wait for the
    # plaza's alert from the crowdwatch job itself.
    over = wait_for("CrowdwatchZoneOverCapacity to fire for the plaza", lambda: [
        a for a in api.alerts("CrowdwatchZoneOverCapacity")
        if a.get("zone") == "plaza" and a.get("job") == "crowdwatch"])
    assert {(a["camera"], a["zone"]) for a in over if a["job"] == "crowdwatch"} >= {
        (CAMERA, "plaza")}
    assert all(a["severity"] == "critical" for a in over)
    behind = wait_for("CrowdwatchProcessingBehind to fire",
                      lambda: api.alerts("CrowdwatchProcessingBehind"))
    assert CAMERA in {a["camera"] for a in behind}
    # The stream is up and frames are fresh: the camera is not down.
    assert api.alerts("CrowdwatchCameraDown") == []
    assert api.alerts("CrowdwatchCameraDown", state="pending") == []
    assert stack.crowdwatch_status("/readyz") == 200


def test_camera_down_fires_when_the_stream_stops(stack: Stack) -> None:
    api = stack.prometheus
    stack.camera.stop()
    # Well within the rule's 30 s staleness arm: this is the `crowdwatch_source_up == 0` arm
    # (source down after read_timeout_s = 2 s, then `for:`); promtool's unit tests cover both.
    down = wait_for("CrowdwatchCameraDown to fire", lambda: [
        a for a in api.alerts("CrowdwatchCameraDown") if a["job"] == "crowdwatch"], timeout=20)
    assert [a["camera"] for a in down] == [CAMERA]
    # The source is down, but the loop turns: not ready, still alive (no restart).
    assert stack.crowdwatch_status("/readyz") == 503
    assert stack.crowdwatch_status("/healthz") == 200
    (up,) = api.query(f'crowdwatch_source_up{{job="crowdwatch", camera="{CAMERA}"}}')
    assert up["value"][1] == "0"


def test_exporter_down_fires_when_crowdwatch_stops(stack: Stack) -> None:
    api = stack.prometheus
    assert api.alerts("CrowdwatchExporterDown") == []
    stack.crowdwatch.send_signal(signal.SIGTERM)
    assert stack.crowdwatch.wait(30) == 0, stack.crowdwatch_log.read_text()
    down = wait_for("CrowdwatchExporterDown to fire", lambda: api.alerts("CrowdwatchExporterDown"))
    assert [a["instance"] for a in down] == [f"127.0.0.1:{stack.crowdwatch_port}"]
    assert api.alerts("CrowdwatchExporterAbsent") == []
