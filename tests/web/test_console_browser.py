"""The live console in a real browser (issue 22): camera states, occupancy, trends, lines,
sites, alerts, layout, and recovery after a server restart.

The page is served by the real routes (web/ui.py, web/events.py) over a console, a preview
hub and the Prometheus sink fed the same synthetic results, the way the app attaches them.
CROWDWATCH_SCREENSHOT=docs/live.png saves the README's screenshot (else it goes to tmp).
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from crowdwatch.config import AppConfig, parse_config
from crowdwatch.health import HealthState, SourceStatus
from crowdwatch.outputs.metrics import MetricsSink
from crowdwatch.types import FlowResult, FrameResult, Level, LineTotals, SiteStats, ZoneStats
from crowdwatch.web.console import ConsoleState
from crowdwatch.web.http import StreamSlots
from crowdwatch.web.preview import PreviewHub
from crowdwatch.web.server import make_app
from crowdwatch.web.ui import AccessGuard, WebServer, WebUI, make_web_app

SQUARE = [[0, 0], [383, 0], [383, 575], [0, 575]]
RIGHT = [[384, 0], [767, 0], [767, 575], [384, 575]]


def _config(cameras: list[str], sites: bool = True, min_fps: float = 1.0) -> AppConfig:
    data: dict[str, Any] = {"cameras": [
        {"id": c, "source": f"rtsp://127.0.0.1:9/{c}", "min_analysis_fps": min_fps,
         "zones": [{"name": "queue", "polygon": SQUARE, "capacity": 10, "area_m2": 5.0},
                   {"name": "hall", "polygon": RIGHT, "capacity": 40}],
         "lines": [{"name": "door", "points": [[0, 500], [767, 500]]}]} for c in cameras]}
    if sites:
        data["sites"] = [{"name": "plaza", "capacity": 20,
                          "entrances": [{"camera": cameras[0], "line": "door"}]}]
    return parse_config(data)


def _image(people: int, seed: int) -> np.ndarray:
    image = np.zeros((576, 768, 3), np.uint8)
    image[:] = np.linspace(50, 120, 768, dtype=np.uint8)[None, :, None]
    rng = np.random.default_rng(seed)
    for x, y in zip(rng.uniform(40, 700, people), rng.uniform(80, 460, people), strict=True):
        cv2.rectangle(image, (int(x), int(y)), (int(x) + 28, int(y) + 76), (190, 180, 170), -1)
    return image


def _clip_frames(count: int) -> list[np.ndarray]:
    """Frames spread over the sample clip (for the screenshot), or synthetic ones without it."""
    capture = cv2.VideoCapture(str(Path(__file__).parents[2] / "samples" / "vtest_h264.mp4"))
    frames = []
    for i in range(200):  # read on: seeking an H.264 file lands on keyframes
        ok, frame = capture.read()
        if not ok:
            break
        if i % 40 == 20 and len(frames) < count:
            frames.append(frame)
    capture.release()
    return frames + [_image(5, i) for i in range(count - len(frames))]


def _shrink_png(path: str) -> None:
    """256 colours (a quarter of the bytes for the README), when Pillow is installed."""
    try:
        from PIL import Image
    except ImportError:
        return
    with Image.open(path) as shot:
        small = shot.convert("RGB").quantize(256, Image.Quantize.MEDIANCUT,
                                             dither=Image.Dither.NONE)
    small.save(path, optimize=True)


def _level(ratio: float) -> Level:
    return Level.CRITICAL if ratio >= 1 else Level.WARNING if ratio >= 0.8 else Level.OK


class Rig:
    """Health, preview hub, console and metrics fed like the app feeds them; one server."""

    def __init__(self, config: AppConfig, port: int = 0,
                 clock: Callable[[], float] = time.time) -> None:
        self.cameras = [c.id for c in config.cameras]
        self.health = HealthState(self.cameras)
        self.hub = PreviewHub(self.cameras, fps=5)
        self.console = ConsoleState.from_config(config, self.health, clock)
        self.metrics = MetricsSink(config, self.health)
        self.totals: dict[str, list[int]] = {c: [0, 0] for c in self.cameras}
        self.received = dict.fromkeys(self.cameras, 0)
        self.stream_fps = 5.0
        self.web = WebUI(AccessGuard(None), self.hub, health=self.health, console=self.console)
        self.server = WebServer(make_web_app(make_app(self.health, self.metrics.registry),
                                             self.web), port=port)
        self.url = self.server.url

    def frame(self, camera: str, people: int, index: int, crossings: tuple[int, int] = (0, 0),
              hall: int = 3, site: int | None = None, image: np.ndarray | bool = True,
              received: int = 1) -> None:
        totals = self.totals[camera]
        totals[0] += crossings[0]
        totals[1] += crossings[1]
        zones = {"queue": ZoneStats(people, density=people / 5.0, occupancy=people / 10,
                                    level=_level(people / 10)),
                 "hall": ZoneStats(hall, occupancy=hall / 40, level=_level(hall / 40))}
        flow = FlowResult({"door": LineTotals(totals[0], totals[1], *crossings)})
        sites = {} if site is None else {"plaza": SiteStats(site + 2, site, site / 20,
                                                            _level(site / 20))}
        result = FrameResult(camera, index, None, time.time(), people + hall, people + hall,
                             zones, flow=flow, sites=sites,
                             image=image if isinstance(image, np.ndarray) else
                             _image(people + hall, index % 7) if image else None)
        self.received[camera] += received
        self.health.report(camera, SourceStatus(True, frames_received=self.received[camera],
                                                stream_fps=self.stream_fps))
        if result.image is not None:
            self.hub.offer(camera, result.image, result)
        self.console.write(result)
        self.metrics.write(result)

    def close(self) -> None:
        self.console.close()
        self.hub.close()
        self.server.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _refused_reason() -> str:
    """What a live source on a refused RTSP port reports (the pipeline's `reason`)."""
    from crowdwatch.sources import open_source
    from crowdwatch.sources.live import Backoff

    camera = parse_config({"cameras": [{"id": "down", "source":
                                        f"rtsp://127.0.0.1:{_closed_port()}/x"}]}).cameras[0]
    source = open_source(camera, backoff=Backoff(0.05, 0.1))
    try:
        deadline = time.monotonic() + 20
        while "refused" not in source.why and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not source.up
        return source.why
    finally:
        source.close()


def _metric(url: str, line: str, direction: str) -> int:
    text = urllib.request.urlopen(url + "/metrics", timeout=5).read().decode()
    series = f'crowdwatch_line_crossings_total{{camera="live",direction="{direction}",' \
        f'line="{line}"}} '
    match = re.search(re.escape(series) + r"([0-9.e+]+)", text)
    assert match, text[:2000]
    return int(float(match.group(1)))


@pytest.fixture
def rig() -> Iterator[Rig]:
    rig = Rig(_config(["live", "ended", "down", "slow"]))
    yield rig
    rig.close()


def test_console_shows_states_occupancy_trends_lines_sites_and_alerts(browser: Any,
                                                                      rig: Rig) -> None:
    rig.frame("ended", 2, 0)
    rig.health.report("ended", SourceStatus(False))
    rig.health.finish("ended")
    rig.health.report("down", SourceStatus(False, reason=_refused_reason()))
    scene = {"people": 3, "crossings": True, "stop": False}

    def feed() -> None:
        index = 0
        while not scene["stop"]:
            crossings = (index % 3 == 0, index % 5 == 0) if scene["crossings"] else (0, 0)
            rig.frame("live", scene["people"], index, (int(crossings[0]), int(crossings[1])),
                      site=5)
            if index % 20 == 0:  # 0.5 analysed frames/s: below its min_analysis_fps of 1
                rig.frame("slow", 1, index // 20)
            index += 1
            time.sleep(0.1)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(rig.url + "/", wait_until="domcontentloaded")
        page.wait_for_selector("#camera-live .count[data-people='6']")  # 3 queue + 3 hall
        page.wait_for_selector("#conn[data-state='live']")  # server-sent events, not polling
        # State words: live, ended (the file finished), down with the refused port's reason.
        assert page.locator("#camera-live .state").inner_text() == "live"
        assert page.locator("#camera-ended").get_attribute("data-state") == "ended"
        assert page.locator("#camera-ended .state").inner_text().startswith(
            "ended: file finished")
        down = page.locator("#camera-down .state").inner_text()
        assert down.startswith("down (refused): cannot open: connection refused"), down
        assert "not-live" in (page.locator("#camera-down").get_attribute("class") or "")
        # Occupancy: text, bar width, density, method.
        queue = page.locator("#camera-live li.zone[data-zone='queue']")
        assert queue.locator(".zone-people").inner_text() == "3 / 10"
        assert _bar(page, "live", "queue") == pytest.approx(0.3, abs=0.01)
        assert "0.60 people/m²" in queue.locator(".zone-meta").inner_text()
        assert "counted by boxes" in queue.locator(".zone-meta").inner_text()
        assert page.locator("#camera-live li.zone[data-zone='hall'] .zone-people").inner_text() \
            == "3 / 40"
        # A camera analysed below its minimum is flagged.
        page.wait_for_selector("#camera-slow .rates[data-behind='1']", timeout=15_000)
        assert "below 1/s" in page.locator("#camera-slow .rates").inner_text()
        assert page.locator("#camera-live .rates").get_attribute("data-behind") == "0"
        # The sparkline gains points (one a second).
        spark = "#camera-live li.zone[data-zone='queue'] canvas.spark"
        before = int(page.locator(spark).get_attribute("data-points") or 0)
        page.wait_for_function(f"Number(document.querySelector(\"{spark}\").dataset.points) "
                               f">= {before + 2}", timeout=10_000)
        # Critical: text, full bar, and the banner with the time it happened.
        scene["people"] = 10
        changed = time.time()
        page.wait_for_selector("#camera-live li.zone[data-zone='queue'][data-level='critical']")
        assert queue.locator(".zone-people").inner_text() == "10 / 10"
        assert queue.locator(".zone-level").inner_text().lower() == "critical"
        assert _bar(page, "live", "queue") == pytest.approx(1.0, abs=0.01)
        banner = page.locator(".alert[data-zone='live/queue']")
        banner.wait_for()
        assert banner.get_attribute("data-level") == "critical"
        shown = re.search(r"since (\d\d):(\d\d):(\d\d)", banner.inner_text())
        assert shown, banner.inner_text()
        local = time.localtime(changed)
        seconds = [int(g) * m for g, m in zip(shown.groups(), (3600, 60, 1), strict=True)]
        assert abs(sum(seconds) - (local.tm_hour * 3600 + local.tm_min * 60 + local.tm_sec)) <= 2
        # Line totals match /metrics once the crossings stop.
        scene["crossings"] = False
        time.sleep(0.3)
        expected = (_metric(rig.url, "door", "in"), _metric(rig.url, "door", "out"))
        assert expected[0] > 0 and expected[1] > 0
        line = "#camera-live li.line[data-line='door']"
        page.wait_for_selector(f"{line}[data-in='{expected[0]}'][data-out='{expected[1]}']")
        assert page.locator(f"{line} .totals").inner_text() == \
            f"in {expected[0]} · out {expected[1]}"
        page.wait_for_function(f"document.querySelector(\"{line} .rate\").textContent"
                               ".includes('in/min')")  # once 5 s of samples are in
        # The site's occupancy against its capacity.
        assert page.locator(".site[data-site='plaza'] .site-occupancy").inner_text() == "5 / 20"
        # Back to ok: the banner clears.
        scene["people"] = 2
        page.wait_for_selector(".alert[data-zone='live/queue']", state="detached")
        assert page.locator(".alert").count() == 0
    finally:
        scene["stop"] = True
        feeder.join(2)
        page.close()


def _bar(page: Any, camera: str, zone: str) -> float:
    """The occupancy bar's drawn width as a fraction of its track (after its transition)."""
    return float(page.evaluate(
        "([c, z]) => { const li = document.querySelector(`#camera-${c} li.zone[data-zone=${z}]`);"
        " return li.querySelector('.fill').getBoundingClientRect().width /"
        " li.querySelector('.bar').getBoundingClientRect().width; }", [camera, zone]))


def test_console_recovers_after_the_server_restarts(browser: Any) -> None:
    config = _config(["live"], sites=False)
    first = Rig(config)
    port = first.server.port
    first.frame("live", 4, 0)
    page = browser.new_page()
    second = None
    try:
        page.goto(first.url + "/", wait_until="domcontentloaded")
        page.wait_for_selector("#camera-live .count[data-people='7']")
        page.wait_for_selector("#conn[data-state='live']")
        first.close()  # the console ends its event streams, the listener closes
        page.wait_for_selector("#conn[data-state='lost']", timeout=10_000)
        assert "connection lost" in page.locator("#conn").inner_text()
        second = Rig(config, port=port)
        second.frame("live", 8, 0)
        page.wait_for_selector("#camera-live .count[data-people='11']", timeout=15_000)
        page.wait_for_selector("#conn[data-state='live']", timeout=10_000)
    finally:
        page.close()
        first.close()
        if second is not None:
            second.close()


def test_without_a_free_stream_slot_the_page_polls(browser: Any) -> None:
    rig = Rig(_config(["live"], sites=False))
    rig.web.streams = StreamSlots(0)  # every event stream refused (503)
    rig.frame("live", 2, 0)
    page = browser.new_page()
    try:
        page.goto(rig.url + "/", wait_until="domcontentloaded")
        page.wait_for_selector("#conn[data-state='polling']")
        page.wait_for_selector("#camera-live .count[data-people='5']")
        rig.frame("live", 6, 1)
        page.wait_for_selector("#camera-live .count[data-people='9']")
        assert page.locator("#conn").inner_text() == "updates by polling"
    finally:
        page.close()
        rig.close()


def test_six_cameras_fit_a_full_hd_screen_and_compact_mode_drops_previews(
        browser: Any, tmp_path: Path) -> None:
    cameras = ["entrance", "lobby", "stage", "bar", "exit", "garden"]
    fake = {"t": time.time() - 600.0}
    rig = Rig(_config(cameras),
              clock=lambda: fake["t"] if fake["t"] else time.time())
    try:
        # Ten minutes of history into the trend buffers (injected clock, ending now), the
        # last 12 s at 5 analysed of 10 received frames/s, like a live camera.
        rig.stream_fps = 10.0
        for index, second in enumerate([*range(0, 588, 2), *np.arange(588, 600, 0.2)]):
            fake["t"] = time.time() - 600.0 + second
            for i, camera in enumerate(cameras[:4]):
                wave = 0.5 + 0.5 * np.sin(second / 90 + i)
                rig.frame(camera, int(2 + (6 + i) * wave * second / 600), index,
                          (int(index % 7 == 0), int(index % 11 == 0)),
                          hall=int(10 + 20 * wave), site=11, image=False,
                          received=20 if second < 588 else 2)
        fake["t"] = 0.0
        frames = _clip_frames(5)
        for i, camera in enumerate(cameras[:4]):
            rig.frame(camera, [3, 8, 10, 5][i], 1000, hall=[12, 20, 33, 6][i], site=11,
                      image=frames[i])
        rig.frame("exit", 1, 0, image=frames[4])
        rig.health.report("exit", SourceStatus(False, frames_received=rig.received["exit"]))
        rig.health.finish("exit")
        rig.health.report("garden", SourceStatus(False, reason="cannot open: connection "
                                                 "refused by 127.0.0.1:8554; check the port"))
        page = browser.new_page(viewport={"width": 1920, "height": 1080})
        try:
            page.goto(rig.url + "/", wait_until="domcontentloaded")
            page.wait_for_selector("#camera-garden[data-state='down']")
            page.wait_for_function("[...document.querySelectorAll('img.preview')]"
                                   ".filter(i => i.naturalWidth > 0).length === 5")
            for camera in cameras:
                box = page.locator(f"#camera-{camera}").bounding_box()
                assert box["y"] + box["height"] <= 1080, (camera, box)
            path = os.environ.get("CROWDWATCH_SCREENSHOT") or str(tmp_path / "live.png")
            page.screenshot(path=path)
            _shrink_png(path)
            page.click("#compact")
            page.wait_for_function("document.querySelectorAll('img.preview').length === 0")
            assert page.locator("#camera-stage .zone-people").first.inner_text() == "10 / 10"
        finally:
            page.close()
    finally:
        rig.close()
