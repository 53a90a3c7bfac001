"""`crowdwatch run` as a child process, and what the tests read from it: /metrics, /healthz,
/readyz, its log and its events. Every request goes to 127.0.0.1 with a short timeout."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml
from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str, timeout: float = 5.0) -> tuple[int, str, bytes]:
    """(status, content type, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def wait_for(condition: Callable[[], T], timeout: float, what: str,
             interval: float = 0.2) -> T:
    """Poll condition until it returns something truthy; fail naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except OSError:  # the endpoint is not up yet, or refused this once
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class Crowdwatch:
    """One `crowdwatch -v run` with a config file, its log and events in a folder."""

    def __init__(self, folder: Path, config: dict[str, Any], model: Path,
                 *extra: str) -> None:
        self.folder = folder
        self.port = free_port()
        config = {**config, "detector": {**config.get("detector", {}), "model": str(model)},
                  "metrics": {"host": "127.0.0.1", "port": self.port}}
        self.config_path = folder / "crowdwatch.yaml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.events = folder / "events.jsonl"
        self.log = folder / "crowdwatch.log"
        self.args = [sys.executable, "-m", "crowdwatch", "-v", "run", "--config",
                     str(self.config_path), "--events", str(self.events), *extra]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Crowdwatch:
        # A file, not a pipe: a verbose log never blocks the process on a full pipe.
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(self.args, cwd=REPO, stdout=log, stderr=log,
                                            stdin=subprocess.DEVNULL, env={**os.environ})
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def text(self) -> str:
        """Everything the process wrote to stdout and stderr so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def get(self, path: str) -> tuple[int, str, bytes]:
        assert self.alive(), f"crowdwatch exited:\n{self.text()[-3000:]}"
        return get(self.port, path)

    def health(self, path: str) -> tuple[int, dict[str, Any]]:
        status, _type, body = self.get(path)
        return status, json.loads(body)

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, _type, body = self.get("/metrics")
        assert status == 200
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(body.decode())
                for s in family.samples}

    def value(self, name: str, camera: str, zone: str | None = None) -> float:
        labels = (("camera", camera),) if zone is None else (("camera", camera), ("zone", zone))
        return self.scrape()[(name, labels)]

    def threads(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
        raise AssertionError("no Threads line in /proc/PID/status")

    def terminate(self, timeout: float = 30.0) -> float:
        """SIGTERM; the seconds until the process exited."""
        assert self.process is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout)
        return time.monotonic() - started

    def close(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)

    def __enter__(self) -> Crowdwatch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
