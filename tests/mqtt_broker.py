"""A real MQTT broker for the tests: Debian's mosquitto on a free loopback port, with a
subscriber that records every message (retained ones flagged)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need_mosquitto() -> Path:
    found = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if found:
        return Path(found)
    message = ("mosquitto not found: install Debian's mosquitto package "
               "(apt-get install mosquitto), as .ci/run does")
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


class Mosquitto:
    """mosquitto -c <conf> on 127.0.0.1:port, no persistence: a restart forgets every
    retained message, as a broker that lost its disk would."""

    def __init__(self, program: Path, folder: Path, extra: str = "") -> None:
        """extra: more listener settings (TLS files, allow_anonymous false, password_file)."""
        self.program = program
        self.port = free_port()
        self.conf = folder / "mosquitto.conf"
        self.log = folder / "mosquitto.log"
        # As root, mosquitto drops to its own user unless told not to; the test's files are
        # readable by root only.
        user = "user root\n" if os.geteuid() == 0 else ""
        anonymous = "" if "allow_anonymous" in extra else "allow_anonymous true\n"
        self.conf.write_text(f"{user}persistence false\nlistener {self.port} 127.0.0.1\n"
                             f"{anonymous}{extra}")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([str(self.program), "-c", str(self.conf)],
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"mosquitto did not listen: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
            self.process = None


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    received: float


class Subscriber:
    """Subscribes to topics and keeps every message."""

    def __init__(self, port: int, *topics: str) -> None:
        self.messages: list[Message] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe([(t, 0) for t in topics])
        assert self._subscribed.wait(5), "subscription not acknowledged"

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(Message(msg.topic, msg.payload, bool(msg.retain),
                                         time.time()))

    def latest(self) -> dict[str, bytes]:
        with self._lock:
            return {m.topic: m.payload for m in self.messages}

    def wait(self, condition: object, timeout: float = 10.0) -> dict[str, bytes]:
        """Poll until condition(latest) is true; the latest payload per topic."""
        deadline = time.monotonic() + timeout
        while True:
            latest = self.latest()
            if condition(latest):  # type: ignore[operator]
                return latest
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; topics so far: {sorted(latest)}")
            time.sleep(0.02)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
