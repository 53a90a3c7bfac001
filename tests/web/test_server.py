from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, Gauge

from crowdwatch.health import HealthState, SourceStatus
from crowdwatch.web.server import Server


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class Clock:
    """An injected monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


CLOCK = Clock()


@pytest.fixture
def served() -> tuple[HealthState, int]:
    registry = CollectorRegistry()
    Gauge("crowdwatch_test_value", "a test gauge", registry=registry).set(3)
    health = HealthState(["a", "b"], stale_after_s=30.0, clock=CLOCK)
    server = Server(health, "127.0.0.1", 0, registry)
    yield health, server.port
    server.close()


def test_metrics_path_serves_the_registry(served: tuple[HealthState, int]) -> None:
    _health, port = served
    status, body = get(port, "/metrics")
    assert status == 200
    assert "crowdwatch_test_value 3.0" in body


def test_readiness_follows_every_camera(served: tuple[HealthState, int]) -> None:
    health, port = served
    status, body = get(port, "/readyz")
    assert status == 503
    assert json.loads(body)["cameras"]["a"]["state"] == "starting"
    health.report("a", SourceStatus(up=True))
    health.report("b", SourceStatus(up=False))
    status, body = get(port, "/readyz")
    assert (status, json.loads(body)["cameras"]["b"]["state"]) == (503, "down")
    health.report("b", SourceStatus(up=True))
    assert get(port, "/readyz")[0] == 200
    health.finish("b")
    assert json.loads(get(port, "/readyz")[1])["cameras"]["b"]["state"] == "finished"
    assert get(port, "/readyz")[0] == 200


def test_liveness_fails_only_when_a_loop_is_stuck(served: tuple[HealthState, int]) -> None:
    health, port = served
    health.report("a", SourceStatus(up=False))  # a down source still turns its loop: alive
    health.report("b", SourceStatus(up=True))
    CLOCK.now += 30.0  # exactly at the limit: still alive
    assert get(port, "/healthz")[0] == 200
    CLOCK.now += 0.001
    health.report("b", SourceStatus(up=True))
    status, body = get(port, "/healthz")
    assert status == 503
    assert json.loads(body)["cameras"]["a"]["state"] == "stalled"


def test_health_is_served_without_metrics() -> None:
    health = HealthState(["a"])
    server = Server(health, "127.0.0.1", 0)
    try:
        health.report("a", SourceStatus(up=True))
        assert get(server.port, "/readyz")[0] == 200
        assert get(server.port, "/metrics")[0] == 404
    finally:
        server.close()
