"""A real run with mqtt, webhooks, sites and a state file (issue 21): crowdwatch on the
sample clip publishing to Debian's mosquitto and POSTing to a local receiver; then kill -9
and a restart that goes on from the state file."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from crowdwatch_process import REPO, Crowdwatch, wait_for
from mqtt_broker import Mosquitto, Subscriber

SECRET = "integration-secret"
STATE_INTERVAL_S = 0.5


class Receiver:
    """Records every POST (headers, raw body) on 127.0.0.1."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROWDWATCH_HOOK_SECRET", SECRET)
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)


def pets_config(folder: Path, broker: Mosquitto | None, hook: str | None, **camera: Any,
                ) -> dict[str, Any]:
    """configs/pets.yaml with a site over its west and east lines and its plaza."""
    config = yaml.safe_load((REPO / "configs" / "pets.yaml").read_text())
    config["cameras"][0].update(source=str(REPO / "samples" / "vtest_h264.mp4"), **camera)
    config["sites"] = [{"name": "campus", "capacity": 4,
                        "entrances": [{"camera": "pets", "line": "west"},
                                      {"camera": "pets", "line": "east", "invert": True}],
                        "zones": [{"camera": "pets", "zone": "plaza"}]}]
    config["state"] = {"path": str(folder / "state" / "crowdwatch.json"),
                       "interval_s": STATE_INTERVAL_S}
    if broker is not None:
        config["mqtt"] = {"url": f"mqtt://127.0.0.1:{broker.port}", "min_interval_s": 0.2}
    if hook is not None:
        config["webhooks"] = [{"url": hook, "secret_env": "CROWDWATCH_HOOK_SECRET",
                               "min_interval_s": 0}]
    return config


def events(cw: Crowdwatch) -> list[dict[str, Any]]:
    return [json.loads(line) for line in cw.events.read_text().splitlines()]


def test_a_run_publishes_to_mosquitto_posts_signed_webhooks_and_counts_the_site(
        tmp_path: Path, model_path: Path, mosquitto: Mosquitto, receiver: Receiver) -> None:
    listener = Subscriber(mosquitto.port, "crowdwatch/#", "homeassistant/#")
    config = pets_config(tmp_path, mosquitto, receiver.url)
    with Crowdwatch(tmp_path, config, model_path, "--keep-serving") as cw:
        wait_for(lambda: "still serving" in cw.text(), 240, "the clip to end")
        last = events(cw)[-1]
        final = {("crowdwatch_line_crossings_total", (("camera", "pets"), ("direction", d),
                                                      ("line", name))): float(t[d])
                 for name, t in last["lines"].items() for d in ("in", "out")}

        def counters_caught_up() -> dict[Any, float] | None:
            # The counters move with the state file's saves (every 0.5 s here).
            scraped = cw.scrape()
            return scraped if all(scraped[k] == v for k, v in final.items()) else None

        metrics = wait_for(counters_caught_up, 10, "the line counters to reach the totals")

        def hooks_caught_up() -> bool:
            # Each zone's newest level is delivered, also one held while another was in flight.
            newest = {z: v["level"] for z, v in last["zones"].items() if v.get("level")}
            posted_last: dict[str, str] = {}
            for _, body in receiver.requests:
                hook = json.loads(body)
                if hook["event"] == "zone_level":
                    posted_last[hook["zone"]] = hook["level"]
            return all(posted_last.get(z, "ok") == level for z, level in newest.items())

        wait_for(hooks_caught_up, 20, "each zone's newest level to be posted")
        cw.terminate()
    state = json.loads((tmp_path / "state" / "crowdwatch.json").read_text())
    got = listener.wait(lambda m: m.get("crowdwatch/status") == b"offline")
    listener.close()

    # Line totals agree everywhere: events, MQTT, the state file and the counters.
    lines = last["lines"]
    assert sum(t["in"] + t["out"] for t in lines.values()) > 0, "PETS has crossings"
    for name, totals in lines.items():
        assert json.loads(got[f"crowdwatch/cameras/pets/lines/{name}"])["in"] == totals["in"]
        assert state["lines"]["pets"][name] == totals
        for direction in ("in", "out"):
            key = ("crowdwatch_line_crossings_total",
                   (("camera", "pets"), ("direction", direction), ("line", name)))
            assert metrics[key] == totals[direction]
    # The site: occupancy from the two doors, worked out from the events' own crossings.
    site = last["sites"]["campus"]
    moved = lines["west"]["in"] - lines["west"]["out"] - (lines["east"]["in"]
                                                          - lines["east"]["out"])
    assert site["occupancy"] - site["drift"] == moved
    assert metrics[("crowdwatch_site_occupancy", (("site", "campus"),))] == site["occupancy"]
    assert metrics[("crowdwatch_site_people", (("site", "campus"),))] == site["people"]
    assert json.loads(got["crowdwatch/sites/campus"])["occupancy"] == site["occupancy"]
    assert state["sites"]["campus"] == {"occupancy": site["occupancy"], "drift": site["drift"]}
    # MQTT: zone values, discovery, availability at the end.
    plaza = json.loads(got["crowdwatch/cameras/pets/zones/plaza"])
    assert plaza["people"] == last["zones"]["plaza"]["people"]
    assert plaza["level"] == last["zones"]["plaza"]["level"]
    assert any(t.startswith("homeassistant/sensor/crowdwatch_pets/") for t in got)
    assert got["crowdwatch/cameras/pets/availability"] == b"offline"
    # Webhooks: every zone level change of the events, signed.
    assert receiver.requests, "pets.yaml's small capacities change levels"
    for headers, body in receiver.requests:
        expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers["X-Crowdwatch-Signature"] == f"sha256={expected}"
    changes: list[tuple[str, str]] = []
    previous: dict[str, str] = {}
    for event in events(cw):
        for zone, values in event["zones"].items():
            level = values.get("level")
            if level is not None and level != previous.get(zone, "ok"):
                changes.append((zone, level))
            if level is not None:
                previous[zone] = level
    posted = [(json.loads(b)["zone"], json.loads(b)["level"]) for _, b in receiver.requests
              if json.loads(b)["event"] == "zone_level"]
    # Per zone, in order: a change may be folded into a newer one while a delivery is in
    # flight (no floods), never reordered or invented; different zones may interleave.
    for zone in {zone for zone, _ in changes} | {zone for zone, _ in posted}:
        sent = iter(level for z, level in changes if z == zone)
        assert all(level in sent for z, level in posted if z == zone), zone


def test_kill_9_then_restart_goes_on_from_the_state_file(tmp_path: Path,
                                                         model_path: Path) -> None:
    state_path = tmp_path / "state" / "crowdwatch.json"
    config = pets_config(tmp_path, None, None, loop=True, realtime=True)

    def saved_crossings() -> dict[str, Any] | None:
        if not state_path.exists():
            return None
        saved = json.loads(state_path.read_text())
        lines = saved["lines"].get("pets", {})
        moved = sum(t["in"] + t["out"] for t in lines.values())
        return saved if moved >= 2 else None

    first = tmp_path / "first"
    first.mkdir()
    with Crowdwatch(first, config, model_path) as cw:
        wait_for(saved_crossings, 120, "crossings in the state file")
        time.sleep(3 * STATE_INTERVAL_S)
        exported = cw.scrape()
        os.kill(cw.pid, signal.SIGKILL)
        assert cw.process is not None
        cw.process.wait(10)
        before = events(cw)
    saved = json.loads(state_path.read_text())
    # The counters never ran ahead of the file: a restart cannot make them go back.
    for name, totals in saved["lines"]["pets"].items():
        for direction in ("in", "out"):
            key = ("crowdwatch_line_crossings_total",
                   (("camera", "pets"), ("direction", direction), ("line", name)))
            assert exported[key] <= totals[direction]
    # The file is at most one save interval (and a frame) behind the last analysed frame.
    last = before[-1]
    recent = [e for e in before
              if e["timestamp"] >= last["timestamp"] - STATE_INTERVAL_S - 0.5]
    assert any(e["lines"] == saved["lines"]["pets"]
               and e["sites"]["campus"]["occupancy"] == saved["sites"]["campus"]["occupancy"]
               for e in recent), "the state file is older than one save interval"

    second = tmp_path / "second"
    second.mkdir()
    with Crowdwatch(second, config, model_path) as cw:
        wait_for(lambda: cw.events.exists() and cw.events.read_text().count("\n") >= 1, 60,
                 "the restarted run's first frame")
        metrics = cw.scrape()
        after = events(cw)
        assert "restored" in cw.text()
    # The first frame of the restarted run (no track is old enough to cross yet) carries
    # exactly the saved totals and occupancy, and the counters went on from them.
    assert after[0]["lines"] == saved["lines"]["pets"]
    assert after[0]["sites"]["campus"]["occupancy"] == saved["sites"]["campus"]["occupancy"]
    assert after[0]["sites"]["campus"]["drift"] == saved["sites"]["campus"]["drift"]
    for name, totals in saved["lines"]["pets"].items():
        for direction in ("in", "out"):
            key = ("crowdwatch_line_crossings_total",
                   (("camera", "pets"), ("direction", direction), ("line", name)))
            assert metrics[key] >= totals[direction]


def test_a_damaged_state_file_is_set_aside_and_the_run_goes_on(tmp_path: Path,
                                                               model_path: Path) -> None:
    config = pets_config(tmp_path, None, None)
    state_path = tmp_path / "state" / "crowdwatch.json"
    state_path.parent.mkdir()
    state_path.write_bytes(b'{"version": 1, "saved_at": 1, "lines": {"pets": {"west": {"in"')
    with Crowdwatch(tmp_path, config, model_path, "--max-frames", "20") as cw:
        assert cw.process is not None
        assert cw.process.wait(120) == 0, cw.text()[-2000:]
    assert "is damaged" in cw.text() and "Traceback" not in cw.text()
    assert len(list(state_path.parent.glob("crowdwatch.json.damaged-*"))) == 1
    assert json.loads(state_path.read_text())["version"] == 1  # a good file again
