"""The live console's state (web/console.py) and its HTTP routes (web/events.py): counts,
trends, rates, alerts with an injected clock; the event stream behind the access checks,
bounded, with heartbeats, ending on shutdown."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from crowdwatch.config import parse_config
from crowdwatch.health import HealthState, SourceStatus
from crowdwatch.types import FlowResult, FrameResult, Level, LineTotals, SiteStats, ZoneStats
from crowdwatch.web.console import CameraInfo, ConsoleState, ZoneInfo
from crowdwatch.web.events import sse_stream
from crowdwatch.web.http import StreamSlots
from crowdwatch.web.preview import PreviewHub
from crowdwatch.web.ui import AccessGuard, WebServer, WebUI, make_web_app


class Clock:
    def __init__(self, t: float = 1_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _result(people: int, level: Level = Level.OK, lines: tuple[int, int] | None = None,
            camera: str = "cam") -> FrameResult:
    flow = None if lines is None else FlowResult({"door": LineTotals(*lines)})
    zones = {"queue": ZoneStats(people, density=people / 4, occupancy=people / 8, level=level)}
    return FrameResult(camera, 0, None, 0.0, people, people, zones, flow=flow)


def _console(clock: Clock, health: HealthState | None = None) -> ConsoleState:
    return ConsoleState({"cam": CameraInfo({"queue": ZoneInfo(8, 4.0)}, ("door",),
                                           min_analysis_fps=2.0, min_received_ratio=0.8)},
                        {"plaza": 30}, health, clock)


def test_snapshot_has_counts_capacity_density_and_a_trend_of_one_point_per_second() -> None:
    clock = Clock()
    console = _console(clock)
    for i in range(50):  # 10 frames a second for 5 s; people rise 0..4, one per second
        clock.t = 1_000.0 + i / 10
        console.write(_result(i // 10))
    (camera,) = console.snapshot()["cameras"]
    (zone,) = camera["zones"]
    assert (zone["people"], zone["capacity"], zone["area_m2"], zone["density"]) == (4, 8, 4.0,
                                                                                    1.0)
    assert [v for _, v in zone["trend"]] == [0, 1, 2, 3, 4]
    assert camera["method"] == "boxes" and camera["people"] == 4
    # A later snapshot sends only the newest points (plus a little overlap).
    clock.t = 1_010.0
    console.write(_result(6))
    (zone,) = console.snapshot(since=1_009.0)["cameras"][0]["zones"]
    assert [v for _, v in zone["trend"]] == [6]


def test_trend_points_older_than_ten_minutes_are_not_sent() -> None:
    clock = Clock()
    console = _console(clock)
    for second in range(700):
        clock.t = 1_000.0 + second
        console.write(_result(second % 9))
    (zone,) = console.snapshot()["cameras"][0]["zones"]
    # Times in seconds before the snapshot's `now` (1699): the oldest kept is 1100.
    assert len(zone["trend"]) == 600 and zone["trend"][0][0] == pytest.approx(-599.0)


def test_alerts_carry_the_time_a_zone_entered_its_level_and_clear() -> None:
    clock = Clock()
    console = _console(clock)
    console.write(_result(3))
    clock.t = 1_005.0
    console.write(_result(7, Level.WARNING))
    clock.t = 1_006.0
    console.write(_result(7, Level.WARNING))
    assert console.snapshot()["alerts"] == [{"camera": "cam", "zone": "queue",
                                             "level": "warning", "since": 1_005.0}]
    clock.t = 1_009.0
    console.write(_result(9, Level.CRITICAL))
    assert console.snapshot()["alerts"][0]["level"] == "critical"
    assert console.snapshot()["alerts"][0]["since"] == 1_009.0
    clock.t = 1_020.0
    console.write(_result(2, Level.OK))
    assert console.snapshot()["alerts"] == []


def test_line_totals_and_their_rate_over_the_last_minute() -> None:
    clock = Clock()
    console = _console(clock)
    for second in range(121):  # in: +1 every 2 s; out: +1 every 4 s
        clock.t = 1_000.0 + second
        console.write(_result(1, lines=(second // 2, second // 4)))
    (line,) = console.snapshot()["cameras"][0]["lines"]
    assert (line["in"], line["out"]) == (60, 30)
    assert line["in_per_min"] == pytest.approx(30.0) and line["out_per_min"] == pytest.approx(
        15.0)


def test_a_camera_analysed_or_received_below_its_minimum_is_flagged_while_live() -> None:
    clock = Clock()
    health = HealthState(["cam"], clock=clock)
    console = _console(clock, health)
    for second in range(12):  # analysed 1/s (minimum 2), received 5 of 10 frames/s
        clock.t = 1_000.0 + second
        health.report("cam", SourceStatus(True, frames_received=5 * second, stream_fps=10.0))
        console.write(_result(1))
    rates = console.snapshot()["cameras"][0]["rates"]
    assert (rates["analysed_fps"], rates["received_fps"], rates["stream_fps"]) == (1.0, 5.0,
                                                                                   10.0)
    assert rates["behind"] and "below 2/s" in rates["why"] and "receives 5.0" in rates["why"]
    health.finish("cam")  # an ended file is not "behind": its state says it ended
    assert console.snapshot()["cameras"][0]["state"] == "ended"
    assert not console.snapshot()["cameras"][0]["rates"]["behind"]


def test_sites_show_occupancy_against_capacity() -> None:
    console = _console(Clock())
    assert console.snapshot()["sites"] == [{"name": "plaza", "capacity": 30, "people": None,
                                            "occupancy": None, "ratio": None, "level": None}]
    result = _result(1)
    result = FrameResult("cam", 0, None, 0.0, 1, 1, result.zones,
                         sites={"plaza": SiteStats(14, 12, 0.4, Level.OK)})
    console.write(result)
    assert console.snapshot()["sites"][0] == {"name": "plaza", "capacity": 30, "people": 14,
                                              "occupancy": 12, "ratio": 0.4, "level": "ok"}


def test_from_config_takes_zones_lines_and_sites() -> None:
    config = parse_config({"cameras": [{"id": "a", "source": "x.mp4", "zones": [
        {"name": "z", "polygon": [[0, 0], [9, 0], [9, 9]], "capacity": 5, "area_m2": 2.5}],
        "lines": [{"name": "l", "points": [[0, 0], [9, 9]]}]}],
        "sites": [{"name": "s", "capacity": 9, "zones": [{"camera": "a", "zone": "z"}]}]})
    snapshot = ConsoleState.from_config(config).snapshot()
    (camera,) = snapshot["cameras"]
    assert camera["zones"][0]["capacity"] == 5 and camera["zones"][0]["area_m2"] == 2.5
    assert camera["lines"][0]["name"] == "l" and camera["state"] == "waiting"
    assert snapshot["sites"][0]["capacity"] == 9


def _events(chunks: Iterator[bytes], count: int) -> list[dict[str, Any]]:
    events = []
    for chunk in chunks:
        if chunk.startswith(b"event: state\n"):
            events.append(json.loads(chunk.split(b"data: ", 1)[1]))
            if len(events) == count:
                break
    return events


def test_the_event_stream_sends_changes_and_heartbeats_and_ends_on_close() -> None:
    clock = Clock()
    console = _console(clock)
    stream = sse_stream(console, {"preview": False}, interval_s=0.01, heartbeat_s=0.05)
    assert next(stream) == b"retry: 2000\n\n"
    console.write(_result(3))
    first, beat = _events(stream, 2)  # the state, then the unchanged state again
    assert first["cameras"][0]["people"] == 3 and first["preview"] is False
    assert beat["cameras"][0]["people"] == 3
    assert len(first["cameras"][0]["zones"][0]["trend"]) == 1
    clock.t += 5
    _events(stream, 1)  # a heartbeat at 1005: the page has every point up to then
    clock.t += 5
    console.write(_result(4))
    (changed,) = _events(stream, 1)
    # Only points the page does not have yet (the overlap covers a folding second).
    assert [v for _, v in changed["cameras"][0]["zones"][0]["trend"]] == [4]
    console.close()
    assert list(stream) == []  # the generator ends: the server frees the worker


@pytest.fixture
def served() -> Iterator[tuple[str, WebUI]]:
    hub = PreviewHub(["cam"])
    console = _console(Clock())
    web = WebUI(AccessGuard("tok-console-1"), hub, console=console)
    server = WebServer(make_web_app(lambda e, s: [], web))
    yield server.url, web
    console.close()
    server.close()


def _get(url: str, token: str | None = None, host: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if host:
        headers["Host"] = host
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5)


def test_the_event_stream_needs_the_token_and_an_allowed_host(
        served: tuple[str, WebUI]) -> None:
    url, _ = served
    for path in ("/api/events", "/api/console"):
        with pytest.raises(urllib.error.HTTPError) as caught:
            _get(url + path)
        assert caught.value.code == 401
        with pytest.raises(urllib.error.HTTPError) as caught:
            _get(url + path, "tok-console-1", host="evil.example:80")
        assert caught.value.code == 421
    with _get(url + "/api/events", "tok-console-1") as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        assert "no-store" in response.headers["Cache-Control"]
        assert response.readline() == b"retry: 2000\n"
        response.readline()
        assert response.readline() == b"event: state\n"
        assert json.loads(response.readline()[6:])["cameras"][0]["id"] == "cam"
    with _get(url + "/api/console?since=nan", "tok-console-1") as response:
        assert json.load(response)["cameras"][0]["id"] == "cam"


def test_event_streams_share_the_bounded_stream_slots(served: tuple[str, WebUI]) -> None:
    url, web = served
    web.streams = StreamSlots(1)
    with _get(url + "/api/events", "tok-console-1") as first:
        first.readline()
        with pytest.raises(urllib.error.HTTPError) as caught:  # the page polls instead
            _get(url + "/api/events", "tok-console-1")
        assert caught.value.code == 503
        with _get(url + "/api/console", "tok-console-1") as polled:  # never starved
            assert polled.status == 200


def test_closing_the_console_ends_open_streams() -> None:
    console = _console(Clock())
    web = WebUI(AccessGuard(None), PreviewHub(["cam"]), console=console)
    server = WebServer(make_web_app(lambda e, s: [], web))
    try:
        with _get(server.url + "/api/events") as response:
            response.readline()
            closer = threading.Timer(0.2, console.close)
            closer.start()
            rest = response.read()  # returns once the server ends the stream
            assert rest.count(b"event: state") >= 1
            closer.join()
    finally:
        server.close()


def test_rates_wait_for_half_a_window_before_flagging_a_camera() -> None:
    clock = Clock()
    health = HealthState(["cam"], clock=clock)
    console = _console(clock, health)
    for second in range(4):  # analysed 1/s, below its minimum of 2, but only 3 s seen
        clock.t = 1_000.0 + second
        health.report("cam", SourceStatus(True, frames_received=second, stream_fps=10.0))
        console.write(_result(1, lines=(second, 0)))
    camera = console.snapshot()["cameras"][0]
    assert camera["rates"]["analysed_fps"] is None and not camera["rates"]["behind"]
    assert camera["lines"][0]["in"] == 3 and camera["lines"][0]["in_per_min"] is None
