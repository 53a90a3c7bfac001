"""/metrics rendered once per scrape burst: the same bytes within the window, fresh values
after it, one render for concurrent scrapes, and prometheus_client's negotiation kept."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from crowdwatch.web.exposition import MAX_VARIANTS, CachedExposition

OPENMETRICS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.now


def scrape(app: Any, **headers: str) -> tuple[str, dict[str, str], bytes]:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": "",
               **headers}
    got: list[Any] = []
    body = b"".join(app(environ, lambda status, hdrs, *_: got.extend([status, dict(hdrs)])))
    return got[0], got[1], body


def test_within_the_window_the_same_bytes_after_it_fresh_values() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("crowdwatch_test_people", "a test gauge", registry=registry)
    clock = Clock()
    app = CachedExposition(registry, max_age_s=0.5, clock=clock)
    gauge.set(3)
    first = scrape(app)
    gauge.set(7)
    clock.now += 0.499  # still within the window: the rendered bytes, not the new value
    assert scrape(app) == first
    assert b"crowdwatch_test_people 3.0" in first[2]
    clock.now += 0.001  # the window is over: rendered again
    assert b"crowdwatch_test_people 7.0" in scrape(app)[2]
    assert app.renders == 2


class Arrivals(Clock):
    """A clock that counts its readings: every scrape reads it once as it arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def __call__(self) -> float:
        with self.changed:
            self.changed.notify_all()
            return super().__call__()


class Blocking(Collector):
    """Once armed, collect() waits until `expected` clock readings have happened: until every
    concurrent scrape has arrived while this render runs."""

    def __init__(self, clock: Arrivals) -> None:
        self.clock, self.collects, self.expected = clock, 0, 0

    def collect(self) -> Iterator[Metric]:
        self.collects += 1
        with self.clock.changed:
            # The timeout only keeps a broken cache from hanging the test.
            self.clock.changed.wait_for(lambda: self.clock.calls >= self.expected, timeout=10)
        yield GaugeMetricFamily("crowdwatch_test_value", "a value", value=self.collects)


def test_concurrent_scrapes_render_once() -> None:
    clock = Arrivals()
    registry = CollectorRegistry()
    blocking = Blocking(clock)
    registry.register(blocking)
    app = CachedExposition(registry, max_age_s=0.5, clock=clock)
    scrape(app)  # rendered once; then the window ends
    clock.now += 1.0
    blocking.collects = 0
    threads = 8
    blocking.expected = clock.calls + threads  # each arrival reads the clock once
    bodies: list[bytes] = []
    workers = [threading.Thread(target=lambda: bodies.append(scrape(app)[2]))
               for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(15)
    # All 8 arrived while one of them rendered: one render, the same bytes for all.
    assert blocking.collects == 1
    assert app.renders == 2
    assert len(bodies) == threads and len(set(bodies)) == 1


def test_negotiation_and_methods_are_prometheus_clients() -> None:
    registry = CollectorRegistry()
    Gauge("crowdwatch_test_people", "a test gauge", registry=registry).set(3)
    app = CachedExposition(registry, clock=Clock())
    plain = make_wsgi_app(registry)
    for headers in ({}, {"HTTP_ACCEPT": OPENMETRICS},
                    {"HTTP_ACCEPT_ENCODING": "gzip"}, {"QUERY_STRING": "name[]=other"},
                    {"REQUEST_METHOD": "POST"}, {"PATH_INFO": "/favicon.ico"}):
        status, hdrs, body = scrape(app, **headers)
        assert (status, hdrs) == scrape(plain, **headers)[:2]
        expected = scrape(plain, **headers)[2]
        if hdrs.get("Content-Encoding") == "gzip":
            body, expected = gzip.decompress(body), gzip.decompress(expected)
        assert body == expected, headers
    assert b"# EOF" in scrape(app, HTTP_ACCEPT=OPENMETRICS)[2]  # OpenMetrics, not cached text


def test_variants_kept_are_bounded() -> None:
    registry = CollectorRegistry()
    app = CachedExposition(registry, clock=Clock())
    for n in range(5 * MAX_VARIANTS):  # headers a client makes up
        scrape(app, HTTP_ACCEPT=f"text/plain;x={n}")
    assert len(app._responses) <= MAX_VARIANTS
