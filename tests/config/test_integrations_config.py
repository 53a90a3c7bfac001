"""mqtt:, webhooks:, sites: and state: sections (issue 21)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crowdwatch.config import load_config, parse_config
from crowdwatch.errors import ConfigError

CAMERAS: list[dict[str, Any]] = [
    {"id": "pets", "source": "a.mp4",
     "zones": [{"name": "plaza", "polygon": [[0, 0], [1, 0], [1, 1]], "normalized": True}],
     "lines": [{"name": "west", "points": [[0.1, 0], [0.1, 1]], "normalized": True}]},
    {"id": "gate2", "source": "b.mp4",
     "lines": [{"name": "door", "points": [[0.5, 0], [0.5, 1]], "normalized": True}]},
]
SITE = {"name": "campus", "capacity": 40, "reset_at": "04:00",
        "entrances": [{"camera": "pets", "line": "west"},
                      {"camera": "gate2", "line": "door", "invert": True}],
        "zones": [{"camera": "pets", "zone": "plaza"}]}


def config(**sections: Any) -> dict[str, Any]:
    return {"cameras": CAMERAS, **sections}


def test_the_issues_example_is_valid() -> None:
    app = parse_config(config(
        mqtt={"url": "mqtt://127.0.0.1:1883", "topic_prefix": "crowdwatch",
              "home_assistant": True},
        webhooks=[{"url": "https://ops.example/hooks/crowd",
                   "secret_env": "CROWDWATCH_HOOK_SECRET",
                   "events": ["zone_level", "site_level"], "min_interval_s": 60}],
        sites=[SITE]))
    assert app.mqtt is not None and (app.mqtt.host, app.mqtt.port, app.mqtt.tls) == (
        "127.0.0.1", 1883, False)
    assert app.sites[0].entrances[1].invert and app.sites[0].reset_minutes == 240
    assert app.webhooks[0].min_interval_s == 60
    assert app.state.path is None


@pytest.mark.parametrize(("url", "port", "tls"), [
    ("mqtts://broker.example", 8883, True),
    ("mqtt://broker.example", 1883, False),
    ("mqtts://broker.example:9000", 9000, True),
])
def test_mqtt_ports_and_tls(url: str, port: int, tls: bool) -> None:
    mqtt = parse_config(config(mqtt={"url": url})).mqtt
    assert mqtt is not None and (mqtt.port, mqtt.tls) == (port, tls)


@pytest.mark.parametrize(("sections", "message"), [
    ({"mqtt": {"url": "http://x"}}, "mqtt.url: must start with mqtt:// or mqtts://"),
    ({"mqtt": {"url": "mqtt://u:p@x"}}, "mqtt.url: must not hold credentials"),
    ({"mqtt": {"url": "mqtt://x", "topic_prefix": "a/b"}}, "mqtt.topic_prefix"),
    ({"webhooks": [{"url": "ftp://x"}]}, "webhooks[0].url: must be an http"),
    ({"webhooks": [{"url": "http://x", "events": ["zone_moved"]}]}, "webhooks[0].events[0]"),
    ({"sites": [{"name": "s"}]}, "a site needs entrances, zones or both"),
    ({"sites": [{**SITE, "reset_at": "4am"}]}, "sites[0].reset_at: must be HH:MM"),
    ({"sites": [{"name": "s", "entrances": [{"camera": "gate9", "line": "door"}]}]},
     "sites: [0] (s) entrances[0]: no camera 'gate9'; cameras: pets, gate2"),
    ({"sites": [{"name": "s", "entrances": [{"camera": "gate2", "line": "west"}]}]},
     "sites: [0] (s) entrances[0]: camera gate2 has no line 'west'; its lines: door"),
    ({"sites": [{"name": "s", "zones": [{"camera": "gate2", "zone": "plaza"}]}]},
     "sites: [0] (s) zones[0]: camera gate2 has no zone 'plaza'; its zones: none"),
    ({"sites": [SITE, SITE]}, "site names must be unique, repeated: campus"),
])
def test_mistakes_are_one_line_naming_the_key(sections: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(config(**sections))
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_credentials_come_from_the_environment(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("cameras: [{id: a, source: a.mp4}]\n"
                    "mqtt: {url: 'mqtt://127.0.0.1', username: '${MQTT_USER}', "
                    "password: hunter2}\n")
    with pytest.raises(ConfigError, match=r"mqtt.password: write it as \$\{VAR\}"):
        load_config(path)
    path.write_text("cameras: [{id: a, source: a.mp4}]\nstate: {path: state/cw.json}\n"
                    "mqtt: {url: 'mqtt://127.0.0.1', username: '${MQTT_USER}', "
                    "password: '${MQTT_PASSWORD}'}\n")
    monkeypatch.setenv("MQTT_USER", "cw")
    monkeypatch.setenv("MQTT_PASSWORD", "s3cret")
    app = load_config(path)
    assert app.mqtt is not None and (app.mqtt.username, app.mqtt.password) == ("cw", "s3cret")
    assert app.state.path == str(tmp_path / "state/cw.json")
