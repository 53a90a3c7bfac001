"""Cost and robustness of the integrations (issue 21), with a real broker and receiver.

configs/pets.yaml (tracked: lines and dwell) on the sample clip, plus a site over its west and
east lines and its plaza, through the real pipeline and detector. Settings, interleaved per
run: `plain` (no integrations), `sites` (sites + state file) and `all` (sites, state file,
MQTT to Debian's mosquitto with min_interval_s 0 so every change is published, and a webhook
to a local receiver with min_interval_s 0). The broker, the receiver and the MQTT subscriber
run in other processes, so the process CPU time measured is crowdwatch's own.

1. CPU per frame (process CPU time / frames, medians of --runs) and the ratios.
2. Frame to broker latency on a paced source (realtime: true, like a live camera): a
   subscriber in another process takes arrival time - the payload's capture time, p50/p95.
3. Broker and receiver down for --outage seconds in a paced, looping run: frames/s before,
   during and after, the process's peak RSS, dropped messages, and how long after the broker
   is back a newcomer reads the current retained state.

Prints, asserts nothing:

    PYTHONPATH=src python benchmarks/integrations_cost.py [--runs 3] [--frames 200] \\
        [--outage 60]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from crowdwatch.app import CallbackSink, RunOptions, build_app
from crowdwatch.config import AppConfig, parse_config
from crowdwatch.detect import create_detector
from crowdwatch.detect.base import Detector

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from mqtt_broker import Mosquitto, free_port, need_mosquitto  # noqa: E402

RECEIVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204); self.end_headers()
    def log_message(self, *a): pass
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""

# Records (payload time, arrival) of every camera, zone and site message until stdin closes.
SUBSCRIBER = """
import json, sys, time, threading
import paho.mqtt.client as paho
arrivals = []
def on_message(c, u, m):
    now = time.time()
    try:
        arrivals.append((json.loads(m.payload)["time"], now))
    except (ValueError, KeyError, TypeError):
        pass
c = paho.Client(paho.CallbackAPIVersion.VERSION2)
c.on_message = on_message
c.connect("127.0.0.1", int(sys.argv[1]))
c.subscribe([("crowdwatch/cameras/+/people", 0), ("crowdwatch/cameras/+/zones/+", 0),
             ("crowdwatch/sites/+", 0)])
c.loop_start()
print("ready", flush=True)
sys.stdin.read()
c.loop_stop()
print(json.dumps(arrivals), flush=True)
"""

# Time until a newcomer reads the retained zone state: subscribes in a loop until it does.
NEWCOMER = """
import sys, time
import paho.mqtt.client as paho
got = []
def on_message(c, u, m):
    got.append(m.retain)
while True:
    c = paho.Client(paho.CallbackAPIVersion.VERSION2)
    c.on_message = on_message
    try:
        c.connect("127.0.0.1", int(sys.argv[1]))
    except OSError:
        time.sleep(0.05); continue
    c.subscribe("crowdwatch/cameras/pets/zones/plaza")
    c.loop_start()
    time.sleep(0.1)
    c.loop_stop(); c.disconnect()
    if got:
        print(time.time(), flush=True)
        break
"""


def config(folder: Path, setting: str, broker_port: int, hook_port: int, *,
           paced: bool = False, loop: bool = False) -> AppConfig:
    data = yaml.safe_load((REPO / "configs" / "pets.yaml").read_text())
    data["cameras"][0].update(source=str(REPO / "samples" / "vtest_h264.mp4"),
                              realtime=paced, loop=loop)
    data["metrics"] = {"host": "127.0.0.1", "port": 0}
    if setting in ("sites", "all"):
        data["sites"] = [{"name": "campus", "capacity": 4,
                          "entrances": [{"camera": "pets", "line": "west"},
                                        {"camera": "pets", "line": "east", "invert": True}],
                          "zones": [{"camera": "pets", "zone": "plaza"}]}]
        data["state"] = {"path": str(folder / f"state-{setting}.json"), "interval_s": 2}
    if setting == "all":
        data["mqtt"] = {"url": f"mqtt://127.0.0.1:{broker_port}", "min_interval_s": 0}
        data["webhooks"] = [{"url": f"http://127.0.0.1:{hook_port}/hook",
                             "secret_env": "BENCH_HOOK_SECRET", "min_interval_s": 0,
                             "timeout_s": 1, "retries": 2, "backoff_s": 0.2}]
    return parse_config(data)


def receiver(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)])
    time.sleep(0.5)
    return process


def run(app_config: AppConfig, detector: Detector, frames: int | None,
        on_frame: Any = None) -> tuple[int, float, float]:
    """(frames, wall seconds, process CPU seconds) of one run."""
    app = build_app(app_config, RunOptions(max_frames=frames, metrics_port=0),
                    detector=detector)
    if on_frame is not None:
        app.pipeline.attach(CallbackSink(on_frame))
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        app.pipeline.run()
    finally:
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        app.close()
    return sum(app.pipeline.processed.values()), wall, cpu


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Helpers:
    """The broker and the webhook receiver, restartable."""

    def __init__(self, folder: Path) -> None:
        self.broker = Mosquitto(need_mosquitto(), folder)
        self.broker.start()
        self.hook_port = free_port()
        self.hook = receiver(self.hook_port)

    def stop(self) -> None:
        self.broker.stop()
        self.hook.kill()
        self.hook.wait(5)

    def start(self) -> None:
        self.broker.start()
        self.hook = receiver(self.hook_port)


def cpu_cost(args: argparse.Namespace, folder: Path, helpers: Helpers,
             detector: Detector) -> None:
    settings = ("plain", "sites", "all")
    cpu_ms: dict[str, list[float]] = {s: [] for s in settings}
    fps: dict[str, list[float]] = {s: [] for s in settings}
    for _ in range(args.runs):
        for setting in settings:
            done, wall, cpu = run(config(folder, setting, helpers.broker.port,
                                         helpers.hook_port), detector, args.frames)
            cpu_ms[setting].append(cpu * 1000 / done)
            fps[setting].append(done / wall)
    print(f"1. CPU per frame: {args.frames} frames x {args.runs} runs, interleaved, medians")
    plain = statistics.median(cpu_ms["plain"])
    sites = statistics.median(cpu_ms["sites"])
    for setting in settings:
        c = statistics.median(cpu_ms[setting])
        print(f"   {setting:<6} {c:7.2f} ms CPU/frame  {statistics.median(fps[setting]):6.2f}"
              f" frames/s  x{c / plain:.3f} vs plain  x{c / sites:.3f} vs sites"
              f"  (runs: {', '.join(f'{v:.1f}' for v in cpu_ms[setting])})")


def percentiles(values: list[float]) -> str:
    values = sorted(values)
    p50 = values[len(values) // 2] * 1000
    p95 = values[min(int(len(values) * 0.95), len(values) - 1)] * 1000
    return f"p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {values[-1] * 1000:.0f} ms"


def latency(args: argparse.Namespace, folder: Path, helpers: Helpers,
            detector: Detector) -> None:
    """Capture to broker, split at the sinks: the pipeline's own frame age when the frame
    reaches the outputs, and the MQTT path from there to a subscriber of the broker."""
    subscriber = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, str(helpers.broker.port)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert subscriber.stdout is not None and subscriber.stdin is not None
    subscriber.stdout.readline()
    at_sinks: dict[float, float] = {}

    def on_frame(result: Any) -> None:
        at_sinks[round(result.captured_at, 3)] = time.time()

    done, wall, _ = run(config(folder, "all", helpers.broker.port, helpers.hook_port,
                               paced=True), detector, args.frames, on_frame)
    time.sleep(0.5)
    subscriber.stdin.close()
    arrivals = json.loads(subscriber.stdout.readline())
    subscriber.wait(10)
    # The first frame pays the pipeline's start (tracker, zone masks): left out.
    first = min(at_sinks)
    total = [arrived - t for t, arrived in arrivals if t > first]
    age = [at - t for t, at in at_sinks.items() if t > first]
    own = [arrived - at_sinks[t] for t, arrived in arrivals if t > first and t in at_sinks]
    print(f"2. paced source ({done} frames at {done / wall:.1f} frames/s), "
          f"{len(total)} messages:")
    print(f"   capture -> broker subscriber: {percentiles(total)}")
    print(f"   capture -> outputs (the pipeline's frame age): {percentiles(age)}")
    print(f"   outputs -> broker subscriber (MQTT's own): {percentiles(own)}")


def outage(args: argparse.Namespace, folder: Path, helpers: Helpers,
           detector: Detector) -> None:
    """Broker and receiver down for --outage seconds in a paced, looping run."""
    times: list[float] = []
    rss: list[float] = []
    before_s, outage_s, after_s = 20.0, args.outage, 30.0
    total = before_s + outage_s + after_s
    marks: dict[str, float] = {}
    app = build_app(config(folder, "all", helpers.broker.port, helpers.hook_port, paced=True,
                           loop=True), RunOptions(metrics_port=0), detector=detector)
    start = time.monotonic()

    def on_frame(_result: object) -> None:
        times.append(time.monotonic() - start)

    def chaos() -> None:
        time.sleep(before_s)
        rss.append(rss_mib())
        helpers.stop()
        marks["down"] = time.monotonic() - start
        while time.monotonic() - start < before_s + outage_s:
            rss.append(rss_mib())
            time.sleep(1)
        helpers.start()
        back = time.time()
        marks["up"] = time.monotonic() - start
        newcomer = subprocess.run([sys.executable, "-c", NEWCOMER, str(helpers.broker.port)],
                                  capture_output=True, text=True, timeout=60)
        marks["state_right_s"] = float(newcomer.stdout.strip()) - back

    app.pipeline.attach(CallbackSink(on_frame))
    thread = threading.Thread(target=chaos)
    thread.start()
    threading.Timer(total, app.pipeline.stop).start()
    try:
        app.pipeline.run()
    finally:
        thread.join()
        mqtt: Any = next(s for s in app.sinks if type(s).__name__ == "MqttSink")
        hooks: Any = next(s for s in app.sinks if type(s).__name__ == "WebhookSink")
        sender = hooks.senders[0]
        app.close()
    down, up = marks["down"], marks["up"]

    def rate(lo: float, hi: float) -> float:
        return sum(lo <= t < hi for t in times) / (hi - lo)

    windows = " ".join(f"{rate(t, t + 5):.1f}" for t in range(0, int(total) - 4, 5))
    print(f"3. broker and receiver down {outage_s:.0f} s (from {down:.0f} s to {up:.0f} s of "
          f"a {total:.0f} s paced run):")
    print(f"   frames/s before {rate(5, down):.2f}, during {rate(down, up):.2f}, after "
          f"{rate(up, total):.2f}; per 5 s: {windows}")
    print(f"   RSS {rss[0]:.0f} MiB when it went down, at most {max(rss):.0f} MiB during, "
          f"{rss[-1]:.0f} MiB at its end")
    print(f"   MQTT: dropped {mqtt.stats.dropped}, reconnects {mqtt.stats.reconnects}; a "
          f"newcomer read the retained zone state {marks['state_right_s']:.2f} s after the "
          "broker was back")
    print(f"   webhook: delivered {sender.delivered}, failed {sender.failed}, dropped "
          f"{sender.dropped}")


def replay_cost(args: argparse.Namespace, folder: Path, helpers: Helpers,
                detector: Detector) -> None:
    """The integrations' own CPU per frame, without the detector's noise: the FrameResults
    of one real run (sites filled in) replayed 10 times, 3 ms apart, through the state file,
    webhook and MQTT sinks, the publisher and worker threads' CPU included (the process CPU
    time until they are idle), against the same replay through no sink."""
    from dataclasses import replace

    from crowdwatch.integrations import build_integrations
    from crowdwatch.outputs.registry import OutputContext, build_sinks

    app_config = config(folder, "all", helpers.broker.port, helpers.hook_port)
    results: list[Any] = []
    run(config(folder, "sites", helpers.broker.port, helpers.hook_port), detector,
        args.frames, results.append)
    from crowdwatch.build import camera_scenes
    from crowdwatch.health import HealthState

    frames = [replace(r, image=None, captured_at=time.time() + i * 0.1, sites=r.sites)
              for i, r in enumerate(results * 10)]
    costs: dict[str, list[float]] = {"none": [], "integrations": []}
    for _ in range(args.runs):
        for setting in costs:
            integrations = build_integrations(app_config)
            context = OutputContext(app_config, HealthState(["pets"]), camera_scenes(app_config),
                                    integrations=integrations)
            sinks = build_sinks(context) if setting == "integrations" else []
            time.sleep(1.0)  # connected, idle
            cpu = time.process_time()
            for result in frames:
                for sink in sinks:
                    sink.write(result)
                # A pause like the next frame's: the publisher sees every frame instead of
                # only the newest of a burst (process CPU time does not count sleeping).
                time.sleep(0.003)
            time.sleep(0.5)  # the publisher and worker threads catch up
            spent = time.process_time() - cpu
            for sink in sinks:
                sink.close()
            costs[setting].append(spent * 1000 / len(frames))
    added = statistics.median(costs["integrations"]) - statistics.median(costs["none"])
    print(f"4. replay of {len(frames)} analysed frames through the state file, webhook and "
          f"MQTT (min_interval_s 0), medians of {args.runs}: "
          f"{statistics.median(costs['integrations']):.3f} ms CPU/frame vs "
          f"{statistics.median(costs['none']):.3f} without: {added:.3f} ms added per frame")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--outage", type=float, default=60.0)
    parser.add_argument("--parts", default="1234", help="which parts to run, e.g. 13")
    args = parser.parse_args()
    os.environ["BENCH_HOOK_SECRET"] = "bench"
    for name in ("http_proxy", "HTTP_PROXY"):
        os.environ.pop(name, None)
    folder = Path(tempfile.mkdtemp(prefix="crowdwatch-integrations-"))
    helpers = Helpers(folder)
    try:
        base = config(folder, "plain", helpers.broker.port, helpers.hook_port)
        detector = create_detector(base.detector)
        run(base, detector, 20)  # warm up the detector
        if "1" in args.parts:
            cpu_cost(args, folder, helpers, detector)
        if "2" in args.parts:
            latency(args, folder, helpers, detector)
        if "3" in args.parts:
            outage(args, folder, helpers, detector)
        if "4" in args.parts:
            replay_cost(args, folder, helpers, detector)
    finally:
        helpers.stop()


if __name__ == "__main__":
    main()
