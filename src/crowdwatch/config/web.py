"""Config models for the visual outputs: web page, live preview, recordings.

Everything here is off by default: images of people leave the process only when the
config turns them on. AppConfig holds them as `web:` and `recording:`.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from crowdwatch.config.base import Strict

# An environment variable name, never a token: tokens must not sit in config files.
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HOST_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}\.?)*$")


class PreviewConfig(Strict):
    """The live MJPEG preview and snapshots; encoded only while someone watches."""

    enabled: bool = Field(False, description="serve /cameras/{id}/preview.mjpg and snapshot.jpg")
    width: int = Field(640, ge=64, le=3840,
                       description="preview width in pixels; frames are downscaled to it")
    fps: float = Field(5.0, gt=0, le=30, description="most preview frames per second per client")
    quality: int = Field(70, ge=10, le=100, description="JPEG quality 10-100")
    annotate: bool = Field(True, description="draw boxes, zones, lines and a header")
    blur_people: bool = Field(False, description="blur every detected person (privacy)")


class RecordingConfig(Strict):
    """An H.264 MP4 per camera, written off the counting thread."""

    enabled: bool = Field(False, description="record an MP4 per camera")
    directory: str = Field("recordings", min_length=1,
                           description="folder for the files <camera>-<start time>.mp4")
    fps: float = Field(25.0, gt=0, le=120, description="nominal frame rate of the file")
    crf: int = Field(26, ge=0, le=51, description="x264 quality: lower is better and larger")
    preset: str = Field("veryfast", pattern=r"^(ultrafast|superfast|veryfast|faster|fast|"
                        r"medium|slow)$", description="x264 speed preset")
    width: int | None = Field(None, ge=64, le=7680,
                              description="downscale to this width; default: source width")
    queue: int = Field(8, ge=1, le=256, description="frames buffered for the writer thread; "
                       "when full, frames are skipped (and counted), never waited for")
    annotate: bool = Field(True, description="draw boxes, zones, lines and a header")
    blur_people: bool = Field(False, description="blur every detected person (privacy)")


class HeatmapConfig(Strict):
    """Where people have been: per camera, people x seconds on a coarse grid over the frame,
    fading with a half-life; served at /cameras/{id}/heatmap.png and drawable over previews
    and recordings."""

    enabled: bool = Field(True, description="accumulate a heatmap per camera (kept only "
                          "while the web page or a recording overlay uses it; a fraction of "
                          "a millisecond per frame)")
    half_life_s: float = Field(600.0, ge=1, le=7 * 86400, description="seconds after which "
                               "what was seen counts half (1 s - 7 days); the map holds about "
                               "the last 1.44 x half_life_s seconds")
    cells: int = Field(64, ge=8, le=256, description="grid cells along the frame's longer "
                       "side (8-256); the other side gets as many as keep cells square")
    max_step_s: float = Field(5.0, gt=0, le=600, description="the longest time one frame "
                              "stands for (seconds, up to 600): a camera that was down adds "
                              "nothing for its gap")
    alpha: float = Field(0.6, ge=0, le=1, description="opacity of the hottest colour over the "
                         "frame (0-1); colder cells are more transparent")
    width: int = Field(640, ge=64, le=3840, description="width of heatmap.png in pixels")
    overlay_preview: bool = Field(False, description="draw the heatmap over every live "
                                  "preview (any preview can ask with ?overlay=heatmap)")
    overlay_recording: bool = Field(False, description="draw the heatmap over recordings")


class WebConfig(Strict):
    """The web page with counts, previews and the zone editor."""

    enabled: bool = Field(False, description="serve the page at / on the metrics server")
    editor: bool = Field(False, description="serve the zone editor at /editor (writes the "
                         "config file; keeps a .bak of the previous one)")
    token_env: str | None = Field(
        "CROWDWATCH_TOKEN", description="name of the environment variable holding the access "
        "token; when it is set, every page but /metrics /healthz /readyz needs the token")
    allow_remote: bool = Field(False, description="answer clients other than this machine "
                               "(127.0.0.1, ::1); set a token of 16+ characters before turning "
                               "this on")
    hosts: list[str] = Field(default_factory=list, max_length=64, description="host names the "
                             "page answers to besides localhost and IP addresses (e.g. "
                             "cams.example.org); any other Host header is refused (DNS "
                             "rebinding)")
    preview: PreviewConfig = Field(default_factory=PreviewConfig)

    @field_validator("hosts")
    @classmethod
    def _host_names(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if not _HOST_NAME.fullmatch(host):
                raise ValueError(f"{host!r} is not a host name (letters, digits, '-' and '.'; "
                                 "no port, no scheme)")
        return hosts

    @field_validator("token_env")
    @classmethod
    def _env_name(cls, name: str | None) -> str | None:
        if name is not None and not _ENV_NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not an environment variable name (the token itself "
                             "belongs in the environment, not in the config)")
        return name
