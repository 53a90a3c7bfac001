"""MQTT output against a real broker (Debian's mosquitto, tests/mqtt_broker.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jinja2
import paho.mqtt.client as paho
import pytest
from mqtt_broker import Mosquitto, Subscriber

from crowdwatch.config import CameraConfig
from crowdwatch.config.integrations import MqttConfig, SiteConfig
from crowdwatch.outputs.mqtt import MqttSink, discovery_messages, object_id, topic_level
from crowdwatch.types import FlowResult, FrameResult, Level, LineTotals, SiteStats, ZoneStats

REPO = Path(__file__).resolve().parents[2]
CAMERAS = [
    CameraConfig.model_validate({
        "id": "pets", "source": "a.mp4",
        "zones": [{"name": "plaza", "polygon": [[0, 0], [1, 0], [1, 1]], "normalized": True,
                   "capacity": 10},
                  {"name": "Café / bar", "polygon": [[0, 0], [1, 0], [1, 1]],
                   "normalized": True}],
        "lines": [{"name": "west", "points": [[0.1, 0], [0.1, 1]], "normalized": True}]}),
    CameraConfig.model_validate({"id": "gate2", "source": "b.mp4"}),
]
SITES = [SiteConfig.model_validate({
    "name": "campus", "capacity": 40, "entrances": [{"camera": "pets", "line": "west"}],
    "zones": [{"camera": "pets", "zone": "plaza"}]})]


def mqtt_config(broker: Mosquitto, **extra: Any) -> MqttConfig:
    return MqttConfig.model_validate({"url": f"mqtt://127.0.0.1:{broker.port}",
                                      "min_interval_s": 0, "keepalive_s": 5, **extra})


def frame(people: int = 3, plaza: int = 3, line: tuple[int, int] = (0, 0),
          site: SiteStats | None = None, captured_at: float = 1000.0) -> FrameResult:
    return FrameResult(
        "pets", 0, None, captured_at, people, people,
        zones={"plaza": ZoneStats(plaza, plaza, None, plaza / 10, Level.OK),
               "Café / bar": ZoneStats(1, 1)},
        flow=FlowResult({"west": LineTotals(*line)}),
        sites={"campus": site} if site else {})


def connected(sink: MqttSink) -> MqttSink:
    deadline = time.monotonic() + 10
    while not sink._connected:
        assert time.monotonic() < deadline, "the sink did not connect"
        time.sleep(0.02)
    return sink


def payload(latest: dict[str, bytes], topic: str) -> dict[str, Any]:
    return json.loads(latest[topic])


def test_values_lines_sites_and_availability_arrive(mosquitto: Mosquitto) -> None:
    listener = Subscriber(mosquitto.port, "crowdwatch/#")
    sink = connected(MqttSink(mqtt_config(mosquitto, home_assistant=False), CAMERAS, SITES))
    site = SiteStats(people=3, occupancy=5, ratio=0.125, level=Level.OK, drift=1)
    zone = "crowdwatch/cameras/pets/zones/plaza"
    sink.write(frame(line=(4, 1), site=site))
    listener.wait(lambda m: zone in m)
    sink.write(frame(line=(6, 1), site=site, captured_at=1001.0))
    got = listener.wait(lambda m: json.loads(
        m["crowdwatch/cameras/pets/lines/west"])["in"] == 6)
    crossings = [json.loads(m.payload) for m in listener.messages if m.topic.endswith("/crossings")]
    assert crossings == [{"in": 4, "out": 1, "time": 1000.0}, {"in": 2, "out": 0, "time": 1001.0}]
    assert payload(got, zone) == {"people": 3, "occupancy": 0.3, "level": "ok", "time": 1000.0}
    assert payload(got, "crowdwatch/cameras/pets/zones/Café _ bar") == {
        "people": 1, "occupancy": None, "level": None, "time": 1000.0}
    assert payload(got, "crowdwatch/cameras/pets/lines/west") == {
        "in": 6, "out": 1, "time": 1001.0}
    assert payload(got, "crowdwatch/cameras/pets/lines/west/crossings") == {
        "in": 2, "out": 0, "time": 1001.0}
    assert payload(got, "crowdwatch/cameras/pets/people") == {"people": 3, "time": 1000.0}
    assert payload(got, "crowdwatch/sites/campus") == {
        "people": 3, "occupancy": 5, "occupancy_ratio": 0.125, "level": "ok", "drift": 1,
        "time": 1000.0}
    assert got["crowdwatch/status"] == b"online"
    assert got["crowdwatch/cameras/pets/availability"] == b"online"
    # An unchanged zone is not published again (only its line moved on the second frame).
    assert [m.topic for m in listener.messages].count(zone) == 1
    sink.close()
    got = listener.wait(lambda m: m.get("crowdwatch/status") == b"offline")
    assert got["crowdwatch/cameras/pets/availability"] == b"offline"
    assert got["crowdwatch/cameras/gate2/availability"] == b"offline"
    listener.close()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_topic_is_published_at_most_every_min_interval_and_its_latest_value_follows(
        mosquitto: Mosquitto) -> None:
    listener = Subscriber(mosquitto.port, "crowdwatch/cameras/pets/zones/plaza")
    clock = Clock()
    sink = connected(MqttSink(mqtt_config(mosquitto, home_assistant=False,
                                          min_interval_s=5), CAMERAS, clock=clock))
    sink.write(frame(plaza=1))
    listener.wait(lambda m: m)
    for people in (2, 3, 4):  # flickers within the interval: held back
        clock.now += 1
        sink.write(frame(plaza=people))
    time.sleep(0.5)
    assert [json.loads(m.payload)["people"] for m in listener.messages] == [1]
    clock.now = 5.0  # the interval has passed: the latest value goes out once
    listener.wait(lambda m: json.loads(m["crowdwatch/cameras/pets/zones/plaza"])["people"] == 4)
    clock.now = 20.0
    sink.write(frame(plaza=4))
    time.sleep(0.5)
    assert [json.loads(m.payload)["people"] for m in listener.messages] == [1, 4]
    sink.close()
    listener.close()


def test_home_assistant_discovery_configs_are_valid(mosquitto: Mosquitto) -> None:
    listener = Subscriber(mosquitto.port, "homeassistant/#", "crowdwatch/#")
    sink = connected(MqttSink(mqtt_config(mosquitto), CAMERAS, SITES))
    sink.write(frame(line=(2, 1), site=SiteStats(3, 5, 0.125, Level.WARNING, 1)))
    expected = dict(discovery_messages(sink.config, CAMERAS, SITES))
    got = listener.wait(lambda m: set(expected) <= set(m)
                        and "crowdwatch/sites/campus" in m)
    configs = {topic: json.loads(got[topic]) for topic in expected}
    # Every zone, line and site value of the config is a sensor (2 + 3 + 1 + 2 + 5).
    assert len(configs) == 13
    unique_ids = [c["unique_id"] for c in configs.values()]
    assert len(set(unique_ids)) == len(unique_ids)
    env = jinja2.Environment()
    for topic, config in configs.items():
        # homeassistant/sensor/<node_id>/<object_id>/config, ids of [a-zA-Z0-9_-]
        parts = topic.split("/")
        assert parts[:2] == ["homeassistant", "sensor"] and parts[-1] == "config"
        assert all(p.replace("_", "").replace("-", "").isalnum() for p in parts[2:4])
        assert {"name", "unique_id", "state_topic", "value_template", "device",
                "availability"} <= set(config)
        assert config["device"]["identifiers"] and config["device"]["manufacturer"]
        assert config["default_entity_id"] == f"sensor.{config['unique_id']}"
        for availability in config["availability"]:
            # gate2 has delivered no frame: offline, the others online.
            assert got[availability["topic"]] == (
                b"offline" if "gate2" in availability["topic"] else b"online")
        # The state topic carries a payload the template turns into the sensor's state.
        if "gate2" in config["state_topic"]:
            continue  # no frame yet, no state
        value = env.from_string(config["value_template"]).render(
            value_json=json.loads(got[config["state_topic"]]))
        if config.get("device_class") == "enum":
            assert value in config["options"] and "unit_of_measurement" not in config
        else:
            assert config["unit_of_measurement"] in ("people", "%")
            float(value)
    devices = {c["device"]["name"]: c["device"]["identifiers"][0] for c in configs.values()}
    assert devices == {"crowdwatch pets": "crowdwatch_camera_" + object_id("pets"),
                       "crowdwatch gate2": "crowdwatch_camera_" + object_id("gate2"),
                       "crowdwatch site campus": "crowdwatch_site_" + object_id("site",
                                                                                 "campus")}
    levels = {c["name"]: env.from_string(c["value_template"]).render(
        value_json=json.loads(got[c["state_topic"]]))
        for c in configs.values() if c.get("device_class") == "enum"}
    assert levels == {"plaza level": "ok", "campus level": "warning"}
    assert "sensor.crowdwatch_pets_zone_plaza_level" in {
        c["default_entity_id"] for c in configs.values()}  # README's example
    sink.close()
    listener.close()


def test_a_broker_restart_loses_no_retained_state_and_writes_never_wait(
        mosquitto: Mosquitto) -> None:
    sink = connected(MqttSink(mqtt_config(mosquitto), CAMERAS, SITES))
    sink.write(frame(plaza=2, line=(1, 0)))
    first = Subscriber(mosquitto.port, "#")
    before = first.wait(lambda m: "crowdwatch/cameras/pets/zones/plaza" in m
                        and len(m) >= 13 + 7)
    first.close()
    mosquitto.stop()  # no persistence: every retained message is gone with it
    deadline = time.monotonic() + 10
    while sink._connected:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # Counting goes on while the broker is away: 2000 frames, each write returns at once.
    for i in range(2000):
        sink.write(frame(plaza=5, line=(3, 1), captured_at=2000.0 + i))
    time.sleep(0.5)  # the publisher tried and dropped them
    dropped = sink.stats.dropped
    assert dropped > 0
    mosquitto.start()
    connected(sink)
    after = Subscriber(mosquitto.port, "#")
    want = set(before) - {"crowdwatch/cameras/pets/lines/west/crossings"}
    got = after.wait(lambda m: want <= set(m)
                     and json.loads(m["crowdwatch/cameras/pets/zones/plaza"])["people"] == 5)
    after.close()
    # A newcomer gets all of it from the new broker's retained store.
    after = Subscriber(mosquitto.port, "#")
    got = after.wait(lambda m: want <= set(m))
    assert all(m.retain for m in after.messages)
    assert payload(got, "crowdwatch/cameras/pets/lines/west")["in"] == 3
    assert got["crowdwatch/status"] == b"online"
    assert got["crowdwatch/cameras/pets/availability"] == b"online"
    for topic in want:
        if topic.startswith("homeassistant/"):
            assert got[topic] == before[topic]
    metrics = {m.name: m.samples[0].value for m in sink.collect()}
    assert metrics["crowdwatch_mqtt_reconnects"] == 1
    assert metrics["crowdwatch_mqtt_messages_dropped"] >= dropped
    assert metrics["crowdwatch_mqtt_connected"] == 1
    sink.close()
    after.close()


KILLED = """
import sys, time
from crowdwatch.config.integrations import MqttConfig
from crowdwatch.config import CameraConfig
from crowdwatch.outputs.mqtt import MqttSink
sink = MqttSink(MqttConfig(url=sys.argv[1], keepalive_s=5, home_assistant=False),
                [CameraConfig(id="pets", source="a.mp4")])
while not sink._connected:
    time.sleep(0.02)
print("connected", flush=True)
time.sleep(60)
"""


def test_a_killed_crowdwatch_reads_offline_through_the_last_will(mosquitto: Mosquitto) -> None:
    listener = Subscriber(mosquitto.port, "crowdwatch/status")
    child = subprocess.Popen([sys.executable, "-c", KILLED, f"mqtt://127.0.0.1:{mosquitto.port}"],
                             stdout=subprocess.PIPE, cwd=REPO)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"connected\n"
        listener.wait(lambda m: m.get("crowdwatch/status") == b"online")
        child.kill()  # SIGKILL: no goodbye, the broker publishes the will
        listener.wait(lambda m: m.get("crowdwatch/status") == b"offline")
    finally:
        child.kill()
        child.wait(5)
        listener.close()


@pytest.mark.parametrize(("name", "level"), [("plaza", "plaza"), ("a/b", "a_b"),
                                              ("+#", "__"), ("Café", "Café")])
def test_topic_levels(name: str, level: str) -> None:
    assert topic_level(name) == level


def test_object_ids_are_readable_and_unique_for_names_a_slug_would_merge() -> None:
    assert object_id("zone", "plaza") == "zone_plaza"
    ids = {object_id(name) for name in ("Zone A", "zone-a", "zone_a", "ZONE A")}
    assert len(ids) == 4 and "zone_a" in ids
    assert object_id("Zone A").startswith("zone_a_")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def test_tls_and_credentials_from_the_environment(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """mqtts:// with a private CA, and a broker that refuses anonymous clients: the config's
    ${VAR} credentials get in, and nothing is published without them."""
    from mqtt_broker import need_mosquitto

    if shutil.which("openssl") is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("openssl and mosquitto_passwd make the test's certificates and users")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.crt", "-days", "1", "-subj", "/CN=crowdwatch test CA", cwd=tmp_path)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out",
            "server.csr", "-subj", "/CN=127.0.0.1", cwd=tmp_path)
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "1", "-extfile", "san.ext",
            cwd=tmp_path)
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(tmp_path / "passwords"), "cw",
                    "s3cret"], check=True, capture_output=True)
    broker = Mosquitto(need_mosquitto(), tmp_path, extra=(
        f"cafile {tmp_path / 'ca.crt'}\ncertfile {tmp_path / 'server.crt'}\n"
        f"keyfile {tmp_path / 'server.key'}\nallow_anonymous false\n"
        f"password_file {tmp_path / 'passwords'}\n"))
    broker.start()
    try:
        path = tmp_path / "c.yaml"
        path.write_text(
            "cameras: [{id: pets, source: a.mp4}]\n"
            f"mqtt: {{url: 'mqtts://127.0.0.1:{broker.port}', ca_file: '{tmp_path}/ca.crt',"
            " username: '${MQTT_USER}', password: '${MQTT_PASSWORD}', home_assistant: false,"
            " min_interval_s: 0}\n")
        monkeypatch.setenv("MQTT_USER", "cw")
        monkeypatch.setenv("MQTT_PASSWORD", "s3cret")
        from crowdwatch.config import load_config

        config = load_config(path)
        assert config.mqtt is not None
        sink = connected(MqttSink(config.mqtt, config.cameras))
        sink.write(frame())
        # Read it back over TLS with the same user.
        seen: list[bytes] = []
        reader = paho.Client(paho.CallbackAPIVersion.VERSION2)
        reader.tls_set(ca_certs=str(tmp_path / "ca.crt"))
        reader.username_pw_set("cw", "s3cret")
        reader.on_message = lambda c, u, m: seen.append(m.payload)
        reader.connect("127.0.0.1", broker.port)
        reader.subscribe("crowdwatch/cameras/pets/people")
        reader.loop_start()
        deadline = time.monotonic() + 10
        while not seen:
            assert time.monotonic() < deadline, "nothing arrived over TLS"
            time.sleep(0.02)
        assert json.loads(seen[0])["people"] == 3
        reader.loop_stop()
        reader.disconnect()
        sink.close()
        # A wrong password is refused: the sink never connects, nothing is published.
        monkeypatch.setenv("MQTT_PASSWORD", "wrong")
        refused = MqttSink(load_config(path).mqtt, config.cameras)  # type: ignore[arg-type]
        time.sleep(1.0)
        assert not refused._connected
        refused.write(frame())
        time.sleep(0.3)
        assert refused.stats.published == 0 and refused.stats.dropped > 0
        refused.close()
    finally:
        broker.stop()
