"""Configuration of the integrations (issue 21): MQTT, webhooks, sites across cameras and the
state file that keeps line totals and site occupancy across a restart.

Secrets never sit in the file: MQTT credentials are `${VAR}` references (the loader expands
them), a webhook names the environment variable that holds its signing secret.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from crowdwatch.config.base import NAME_PATTERN, Strict, check_label, require_unique
from crowdwatch.config.zones import LevelThresholds

if TYPE_CHECKING:
    from crowdwatch.config.camera import CameraConfig

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_RESET_AT = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
# MQTT wildcards and the level separator cannot appear in a topic level.
_TOPIC_LEVEL = r"^[^/+#\s]+$"


class MqttConfig(Strict):
    """An MQTT broker that receives counts, levels, line totals and site values."""

    url: str = Field(description="mqtt://host:port, or mqtts://host:port for TLS (port "
                     "defaults: 1883, 8883); no credentials in the URL")
    username: str | None = Field(None, description="write it as ${VAR}: read from the "
                                 "environment, never stored in the file")
    password: str | None = Field(None, description="write it as ${VAR}, like username")
    topic_prefix: str = Field("crowdwatch", min_length=1, max_length=64, pattern=_TOPIC_LEVEL,
                              description="first topic level of every message")
    home_assistant: bool = Field(True, description="publish Home Assistant discovery configs")
    discovery_prefix: str = Field("homeassistant", min_length=1, max_length=64,
                                  pattern=_TOPIC_LEVEL, description="Home Assistant's "
                                  "discovery prefix")
    client_id: str | None = Field(None, max_length=64, description="MQTT client id; default "
                                  "crowdwatch-<topic_prefix>")
    min_interval_s: float = Field(1.0, ge=0, le=3600, description="a zone, line or site "
                                  "value is published at most this often (its latest value "
                                  "goes out once the interval has passed)")
    queue: int = Field(1000, ge=10, le=1_000_000, description="messages held for the broker "
                       "at most; more are dropped and counted (crowdwatch_mqtt_messages_"
                       "dropped_total); retained state is sent again after a reconnect")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive; a dead broker "
                             "is noticed within about 1.5x this")
    max_backoff_s: float = Field(2.0, ge=1, le=3600, description="longest wait between "
                                 "reconnect attempts (doubling from 1 s): the retained state "
                                 "is right again at most this long after the broker returns")
    ca_file: str | None = Field(None, description="CA bundle for mqtts:// (default: the "
                                "system's)")
    camera_timeout_s: float = Field(10.0, gt=0, le=3600, description="a camera with no "
                                    "analysed frame this long reads offline")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            raise ValueError(f"must start with mqtt:// or mqtts://, got {url!r}")
        if not parts.hostname:
            raise ValueError(f"has no host: {url!r}")
        if parts.username or parts.password:
            raise ValueError("must not hold credentials; set username and password to "
                             "${VAR} references instead")
        try:
            parts.port  # noqa: B018 (raises on a bad port)
        except ValueError:
            raise ValueError(f"has an invalid port: {url!r}") from None
        return url

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (8883 if self.tls else 1883)


WebhookEvent = Literal["zone_level", "site_level"]


class WebhookConfig(Strict):
    """An HTTP endpoint that receives a signed JSON POST when a zone's or site's level
    changes."""

    url: str = Field(description="http:// or https:// URL the events are POSTed to")
    secret_env: str | None = Field(None, pattern=_ENV_NAME, description="environment "
                                   "variable holding the secret; the body's HMAC-SHA256 goes "
                                   "in X-Crowdwatch-Signature (unsigned when unset)")
    events: list[WebhookEvent] = Field(["zone_level", "site_level"], min_length=1,
                                       description="which level changes to send")
    min_interval_s: float = Field(60.0, ge=0, le=86_400, description="per zone or site: at "
                                  "most one event this often; a level that changed back "
                                  "meanwhile sends nothing, a newer one is sent once the "
                                  "interval has passed")
    timeout_s: float = Field(5.0, gt=0, le=120, description="seconds one attempt may take")
    retries: int = Field(3, ge=0, le=20, description="attempts after the first that failed "
                         "(timeout, connection error, 5xx, 408, 429)")
    backoff_s: float = Field(1.0, ge=0, le=600, description="wait before the first retry; "
                             "doubles after each")
    queue: int = Field(100, ge=1, le=100_000, description="events waiting for delivery at "
                       "most; more are dropped and counted")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http:// or https:// URL, got {url!r}")
        return url

    @field_validator("events")
    @classmethod
    def _unique_events(cls, events: list[str]) -> list[str]:
        require_unique("events", events)
        return events


class SiteEntrance(Strict):
    """A counting line at a door of the site: its `in` crossings enter the site."""

    camera: str = Field(pattern=NAME_PATTERN, description="camera id")
    line: str = Field(description="a line of that camera")
    invert: bool = Field(False, description="the line's `out` direction enters the site")


class SiteZone(Strict):
    """A zone whose people count towards the site's people."""

    camera: str = Field(pattern=NAME_PATTERN, description="camera id")
    zone: str = Field(description="a zone of that camera")


class SiteConfig(Strict):
    """A place seen by several cameras: occupancy from its doors, people from its zones."""

    name: str = Field(min_length=1, max_length=64, pattern=NAME_PATTERN,
                      description="label value in metrics; letters, digits, _ . : -")
    entrances: list[SiteEntrance] = Field(default_factory=list, max_length=256,
                                          description="occupancy = people in - people out "
                                          "over these lines, never below 0")
    zones: list[SiteZone] = Field(default_factory=list, max_length=256,
                                  description="people = the sum of these zones' counts")
    capacity: int | None = Field(None, ge=1, le=10_000_000, description="people the site "
                                 "holds; enables its occupancy ratio and level (from the "
                                 "occupancy when it has entrances, else from its people)")
    levels: LevelThresholds | None = Field(None, description="overrides the global levels")
    reset_at: str | None = Field(None, description="HH:MM local time: the occupancy is set "
                                 "to 0 once a day (a hall empty at night)")

    @field_validator("reset_at")
    @classmethod
    def _reset_at(cls, value: str | None) -> str | None:
        if value is not None and not _RESET_AT.match(value):
            raise ValueError(f"must be HH:MM (00:00-23:59), got {value!r}")
        return value

    @model_validator(mode="after")
    def _something_to_count(self) -> SiteConfig:
        if not self.entrances and not self.zones:
            raise ValueError("a site needs entrances, zones or both")
        require_unique("entrances", [f"{e.camera}/{e.line}" for e in self.entrances])
        require_unique("zones", [f"{z.camera}/{z.zone}" for z in self.zones])
        for zone in self.zones:
            check_label(zone.zone)
        return self

    @property
    def reset_minutes(self) -> int | None:
        """reset_at as minutes after midnight."""
        if self.reset_at is None:
            return None
        hours, minutes = self.reset_at.split(":")
        return int(hours) * 60 + int(minutes)


class StateConfig(Strict):
    """The state file: line totals and site occupancy survive a restart or a kill."""

    path: str | None = Field(None, description="JSON file written atomically (unset: "
                             "nothing is kept across a restart)")
    interval_s: float = Field(2.0, gt=0, le=3600, description="the file is at most this old "
                              "(seconds) while counts change")


def check_sites(sites: list[SiteConfig], cameras: list[CameraConfig]) -> None:
    """ValueError naming the site entry whose camera, line or zone does not exist."""
    require_unique("site names", [s.name for s in sites])
    by_id = {c.id: c for c in cameras}
    for i, site in enumerate(sites):
        for j, entrance in enumerate(site.entrances):
            camera = _camera(by_id, entrance.camera, f"[{i}] ({site.name}) entrances[{j}]")
            names = [line.name for line in camera.lines]
            if entrance.line not in names:
                raise ValueError(f"[{i}] ({site.name}) entrances[{j}]: camera {camera.id} has "
                                 f"no line {entrance.line!r}; its lines: "
                                 f"{', '.join(names) or 'none'}")
        for j, zone in enumerate(site.zones):
            camera = _camera(by_id, zone.camera, f"[{i}] ({site.name}) zones[{j}]")
            names = [z.name for z in camera.zones]
            if zone.zone not in names:
                raise ValueError(f"[{i}] ({site.name}) zones[{j}]: camera {camera.id} has no zone "
                                 f"{zone.zone!r}; its zones: {', '.join(names) or 'none'}")


def _camera(by_id: dict[str, CameraConfig], camera: str, where: str) -> CameraConfig:
    if camera not in by_id:
        raise ValueError(f"{where}: no camera {camera!r}; cameras: {', '.join(by_id)}")
    return by_id[camera]


def check_secrets_from_environment(data: object) -> str | None:
    """The problem with raw (unexpanded) YAML data that writes an MQTT credential in the
    file instead of a ${VAR} reference; None when there is none."""
    mqtt = data.get("mqtt") if isinstance(data, dict) else None
    if not isinstance(mqtt, dict):
        return None
    for key in ("username", "password"):
        value = mqtt.get(key)
        if isinstance(value, str) and not re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}", value):
            return (f"mqtt.{key}: write it as ${{VAR}} and export VAR (credentials are read "
                    "from the environment, never stored in the config file)")
    return None
