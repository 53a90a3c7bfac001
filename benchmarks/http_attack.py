"""The HTTP listener under attack from loopback: docs/RELIABILITY.md, "Attacks on the web surface".

    PYTHONPATH=src python benchmarks/http_attack.py [--seconds 20] [--src OTHER/src]

Runs `crowdwatch run` on the bundled sample clip (looping, the page and previews on), then
three phases of equal length, measuring the counting frame rate (crowdwatch_frames_processed_total),
the resident memory of the process and the latency of /metrics scraped every 0.2 s (and of
/healthz asked right after it: the floor without rendering):

1. quiet: nothing but the scraper;
2. attack: 200 slow sockets (a request line, then one header byte every 2 s) and 30
   connections each sending big-header requests (99 headers x 65 KB with Host, the attack
   of issue 19) in a bounded loop;
3. after: the attackers gone.

`--src` runs another checkout's code (e.g. the previous commit's, for a before/after in the
same run). Loopback only; every loop is bounded by --seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = """\
cameras:
  - id: cam0
    source: {clip}
    loop: true
    zones:
      - name: all
        polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]
        normalized: true
metrics:
  host: 127.0.0.1
  port: {port}
web:
  enabled: true
  preview:
    enabled: true
"""
SLOW_SOCKETS = 200
BIG_HEADER_CONNECTIONS = 30
BIG_HEADERS = b"".join(b"X-Big-%d: %s\r\n" % (i, b"a" * 65_000) for i in range(98))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _frames(text: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("crowdwatch_frames_processed_total{"))


class Probe:
    """Scrapes /metrics every 0.2 s: latencies, frame counter, peak memory. Right after each
    scrape it asks /healthz (a small JSON answer, nothing rendered): the same listener,
    workers and interpreter, so its latency is the floor that the machine and the process's
    other threads set."""

    def __init__(self, port: int, pid: int) -> None:
        self.url = f"http://127.0.0.1:{port}/metrics"
        self.control_url = f"http://127.0.0.1:{port}/healthz"
        self.pid = pid
        self.latencies: list[float] = []
        self.control: list[float] = []
        self.failures = 0
        self.frames: list[tuple[float, float]] = []
        self.peak_rss = 0.0

    def run(self, seconds: float) -> None:
        self.latencies, self.failures, self.frames, self.peak_rss = [], 0, [], 0.0
        self.control = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            started = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=5) as response:
                    text = response.read().decode()
                self.latencies.append(time.monotonic() - started)
                self.frames.append((time.monotonic(), _frames(text)))
            except OSError:
                self.failures += 1
                self.latencies.append(5.0)
            control = time.monotonic()
            try:
                with urllib.request.urlopen(self.control_url, timeout=5) as response:
                    response.read()
            except OSError:  # 503 while a camera is not up is an answer too
                pass
            self.control.append(time.monotonic() - control)
            self.peak_rss = max(self.peak_rss, _rss_mb(self.pid))
            time.sleep(max(0.0, 0.2 - (time.monotonic() - started)))

    def fps(self) -> float:
        (t0, f0), (t1, f1) = self.frames[0], self.frames[-1]
        return (f1 - f0) / max(t1 - t0, 1e-9)

    def p99_ms(self, control: bool = False) -> float:
        ordered = sorted(self.control if control else self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]

    def row(self, name: str) -> tuple[str, float, float, float, int, float, float, float]:
        return (name, self.fps(), self.p99_ms(), statistics.median(self.latencies) * 1000,
                self.failures, self.peak_rss, self.p99_ms(control=True),
                statistics.median(self.control) * 1000)


def _slow_socket(port: int, until: float, closed: list[int]) -> None:
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        while time.monotonic() < until:
            time.sleep(2)
            sock.sendall(b"a")
        sock.close()
    except OSError:
        closed.append(1)  # the server closed it (or never took it)


def _big_headers(port: int, until: float, answers: list[str]) -> None:
    for _ in range(10):  # bounded: at most 10 requests per connection
        if time.monotonic() >= until:
            return
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + BIG_HEADERS + b"\r\n")
                answers.append(sock.recv(64).split(b"\r\n")[0].decode() or "closed")
        except OSError as error:
            answers.append(type(error).__name__)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--src", type=Path, default=REPO / "src")
    args = parser.parse_args()
    port = _free_port()
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "attack.yaml"
        config.write_text(CONFIG.format(clip=REPO / "samples" / "vtest_h264.mp4", port=port))
        env = {**os.environ, "PYTHONPATH": str(args.src.resolve())}
        env.pop("CROWDWATCH_TOKEN", None)
        process = subprocess.Popen([sys.executable, "-m", "crowdwatch", "run", "-c",
                                    str(config)], env=env, stderr=subprocess.DEVNULL)
        try:
            _measure(port, process.pid, args.seconds)
        finally:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(15)
            if process.poll() is None:
                process.kill()


def _measure(port: int, pid: int, seconds: float) -> None:
    probe = Probe(port, pid)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # up and counting
        with (contextlib.suppress(OSError),
              urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r):
            if _frames(r.read().decode()) > 0:
                break
        time.sleep(0.5)
    time.sleep(3)  # the detector warmed up
    rows = []
    probe.run(seconds)
    rows.append(probe.row("quiet"))
    baseline_rss = probe.peak_rss
    until = time.monotonic() + seconds
    closed: list[int] = []
    answers: list[str] = []
    attackers = [threading.Thread(target=_slow_socket, args=(port, until, closed), daemon=True)
                 for _ in range(SLOW_SOCKETS)]
    attackers += [threading.Thread(target=_big_headers, args=(port, until, answers), daemon=True)
                  for _ in range(BIG_HEADER_CONNECTIONS)]
    for thread in attackers:
        thread.start()
    probe.run(seconds)
    rows.append(probe.row("attack"))
    for thread in attackers:
        thread.join(30)
    probe.run(seconds)
    rows.append(probe.row("after"))
    print(f"{'phase':8} {'frames/s':>9} {'metrics p99 ms':>15} {'median ms':>10} "
          f"{'failed':>7} {'peak RSS MB':>12} {'healthz p99 ms':>15} {'median ms':>10}")
    for name, fps, p99, median, failed, rss, control_p99, control_median in rows:
        print(f"{name:8} {fps:9.2f} {p99:15.1f} {median:10.1f} {failed:7d} {rss:12.0f} "
              f"{control_p99:15.1f} {control_median:10.1f}")
    quiet, attack = rows[0], rows[1]
    print(f"attack vs quiet: frame rate {attack[1] / quiet[1]:.1%}, resident memory "
          f"{attack[5] - baseline_rss:+.0f} MB")
    statuses = sorted({a for a in answers})
    print(f"big-header requests: {len(answers)} sent, answers {statuses}; slow sockets closed "
          f"by the server before the phase ended: {len(closed)} of {SLOW_SOCKETS}")


if __name__ == "__main__":
    main()
