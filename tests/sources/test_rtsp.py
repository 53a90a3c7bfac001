"""Real RTSP faults: crowdwatch against GStreamer's RTSP server on loopback, with the real model.

The server (crowdwatch.tools.rtsp_server, through tests/rtsp_server.py) serves the sample clip
in a loop at its 10 fps. It is killed (connections reset, port refused) and stalled (SIGSTOP:
sockets open, no data), and crowdwatch must mark the camera down within seconds, keep serving,
never report the outage as empty zones, reconnect by itself and count again, cycle after cycle.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from crowdwatch_process import Crowdwatch, free_port, wait_for
from rtsp_server import RtspServer, probe
from test_pipeline import FakeAsyncDetect

from crowdwatch.build import build_pipeline
from crowdwatch.config import parse_config
from crowdwatch.health import HealthState
from crowdwatch.pipeline import PIPELINE_DEPTH

SECRET = "s3cret-Pa55"
CREDENTIALS = f"viewer:{SECRET}"
# Small timeouts keep a fault cycle short: down within READ_TIMEOUT_S of a stall, retries at
# most MAX_BACKOFF_S apart. The open timeout equals the read timeout and must cover FFmpeg's
# probing of the stream (0.5 s since issue 23, 2.4 s of a 10 fps stream before).
READ_TIMEOUT_S = 3.0
MAX_BACKOFF_S = 1.0
STREAM_FPS = 10.0
PLAZA = [[305, 178], [560, 172], [560, 445], [305, 318]]
WHOLE = [[0, 0], [1, 0], [1, 1], [0, 1]]
# kill: the server dies, connections reset. stall: SIGSTOP, sockets stay open, no data.
FAULTS = ("kill", "stall", "kill", "stall", "kill")
# Seconds from the fault until source_up reads 0, and from the repair until frames flow again.
DETECT_LIMIT_S = {"kill": 3.0, "stall": READ_TIMEOUT_S + 3.0}
RECOVER_LIMIT_S = 15.0
OUTAGE_S = 1.5


@pytest.fixture(scope="module")
def gstreamer() -> None:
    why = probe()
    if why is not None:
        message = (f"{why}; install python3-gi gir1.2-gst-rtsp-server-1.0 "
                   "gstreamer1.0-plugins-good (see .ci/run)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def server(gstreamer: None, sample_clip: Path, tmp_path: Path) -> Iterator[RtspServer]:
    with RtspServer(sample_clip, log=tmp_path / "rtsp-server.log") as running:
        yield running


def camera(cid: str, source: str, **extra: Any) -> dict[str, Any]:
    return {"id": cid, "source": source, "read_timeout_s": READ_TIMEOUT_S,
            "max_backoff_s": MAX_BACKOFF_S,
            "zones": [{"name": "plaza", "polygon": PLAZA},
                      {"name": "all", "polygon": WHOLE, "normalized": True}], **extra}


Snapshot = dict[str, float | None]


def snapshot(cw: Crowdwatch, cid: str) -> Snapshot:
    samples = cw.scrape()
    c = (("camera", cid),)
    # Count series appear with a camera's first frame: None until then.
    out = {name: samples.get((f"crowdwatch_{name}", c)) for name in (
        "frames_processed_total", "source_up", "source_reconnects_total", "camera_people",
        "last_frame_timestamp_seconds")}
    for zone in ("plaza", "all"):
        out[f"zone {zone}"] = samples.get(("crowdwatch_zone_people", (*c, ("zone", zone))))
    out["open_fds"] = samples[("process_open_fds", ())]
    return out


def last_event(cw: Crowdwatch) -> dict[str, Any]:
    lines = cw.events.read_text().splitlines()
    return json.loads(lines[-1])


def assert_secret_never_shown(cw: Crowdwatch) -> None:
    exposed = {"log": cw.text(), "events": cw.events.read_text()}
    if cw.alive():
        for path in ("/metrics", "/healthz", "/readyz"):
            exposed[path] = cw.get(path)[2].decode()
    for where, text in exposed.items():
        assert SECRET not in text, f"the RTSP password shows in {where}"


def test_fault_cycles_over_rtsp(server: RtspServer, model_path: Path, tmp_path: Path) -> None:
    config = {"cameras": [camera("street", server.url(CREDENTIALS))]}
    with Crowdwatch(tmp_path, config, model_path) as cw:
        # Counting works over RTSP.
        healthy = wait_for(lambda: (s := snapshot(cw, "street"))["frames_processed_total"] >= 20
                           and s, 60, "20 frames analysed over RTSP")
        assert healthy["source_up"] == 1
        assert healthy["camera_people"] > 0  # 2-8 people are in view throughout the clip
        assert cw.health("/readyz") == (200, {"ok": True, "cameras": {"street": {
            "state": "up", "seconds_since_loop": pytest.approx(0, abs=2)}}})
        baseline_fds, baseline_threads = healthy["open_fds"], cw.threads()
        report = []
        for cycle, fault in enumerate(FAULTS, 1):
            before = snapshot(cw, "street")
            started = time.monotonic()
            server.kill() if fault == "kill" else server.stall()
            down = wait_for(lambda: (s := snapshot(cw, "street"))["source_up"] == 0 and s,
                            DETECT_LIMIT_S[fault] + 2, f"source_up 0 after {fault} #{cycle}")
            detected = time.monotonic() - started
            assert detected < DETECT_LIMIT_S[fault], f"{fault} #{cycle}: down after {detected:.1f} s"
            status, body = cw.health("/readyz")
            assert (status, body["cameras"]["street"]["state"]) == (503, "down")
            assert cw.health("/healthz")[0] == 200  # alive: the loop turns while the source is down
            time.sleep(0.5)  # a frame already in the detector may still finish
            settled = snapshot(cw, "street")
            time.sleep(OUTAGE_S)
            during = snapshot(cw, "street")
            # Nothing analysed during the outage, and the zones keep their last real counts:
            # an outage never reads as "0 people".
            assert during["frames_processed_total"] == settled["frames_processed_total"]
            # Only frames already in the detector when the source went down may finish.
            assert during["frames_processed_total"] - down["frames_processed_total"] <= PIPELINE_DEPTH
            event = last_event(cw)
            assert during["camera_people"] == event["people"] > 0
            for zone in ("plaza", "all"):
                assert during[f"zone {zone}"] == event["zones"][zone]["people"]
                assert during[f"zone {zone}"] is not None
            assert during["source_up"] == 0 and cw.alive()
            repaired = time.monotonic()
            server.start() if fault == "kill" else server.resume()
            resumed_at = during["frames_processed_total"] + 10
            after = wait_for(
                lambda: (s := snapshot(cw, "street"))["source_up"] == 1
                and s["frames_processed_total"] >= resumed_at and s,  # noqa: B023 (called here)
                RECOVER_LIMIT_S + 5, f"frames again after {fault} #{cycle} was repaired")
            recovered = time.monotonic() - repaired
            assert recovered < RECOVER_LIMIT_S
            assert after["source_reconnects_total"] > before["source_reconnects_total"]
            assert cw.health("/readyz")[0] == 200
            report.append(f"{fault}: down in {detected:.1f} s, counting {recovered:.1f} s "
                          "after the repair")
        final = snapshot(cw, "street")
        assert final["source_reconnects_total"] >= len(FAULTS)
        # Reconnecting leaks nothing: descriptors and threads are back where they were.
        assert final["open_fds"] <= baseline_fds + 2, (baseline_fds, final["open_fds"])
        assert cw.threads() <= baseline_threads + 1
        assert_secret_never_shown(cw)
        # SIGTERM while the stream is stalled (the reader is blocked in a read): still prompt.
        server.stall()
        wait_for(lambda: snapshot(cw, "street")["source_up"] == 0, READ_TIMEOUT_S + 3,
                 "source_up 0 before SIGTERM")
        seconds = cw.terminate()
        server.resume()
        assert cw.process is not None and cw.process.returncode == 0, cw.text()[-3000:]
        assert seconds < 5.0
        assert "Traceback" not in cw.text()
        assert_secret_never_shown(cw)
        json.loads(cw.events.read_text().splitlines()[-1])  # flushed, whole
    print("\n".join(report))


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never answers: a camera hung at the network."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


def test_dead_cameras_do_not_slow_the_others(server: RtspServer, silent_port: int,
                                             model_path: Path, tmp_path: Path) -> None:
    live = ("gate-a", "gate-b")
    # Three cameras hung in the network: SIGTERM must not wait for them one after another.
    dead = {"refused": f"rtsp://{CREDENTIALS}@127.0.0.1:{free_port()}/stream",
            **{f"silent-{i}": f"rtsp://{CREDENTIALS}@127.0.0.1:{silent_port}/stream{i}"
               for i in (1, 2, 3)}}
    cameras = [camera(cid, server.url(CREDENTIALS)) for cid in live]
    cameras += [camera(cid, url) for cid, url in dead.items()]
    # A small model input leaves CPU to spare on a busy CI machine: the rates measure the
    # sources, and two cameras at 10 fps must not depend on the detector's speed.
    config = {"cameras": cameras, "detector": {"imgsz": 320}}
    with Crowdwatch(tmp_path, config, model_path) as cw:
        wait_for(lambda: all(snapshot(cw, c)["frames_processed_total"] >= 10 for c in live),
                 60, "both live cameras analysing frames")
        window = 5.0
        first = {c: snapshot(cw, c)["frames_processed_total"] for c in live}
        time.sleep(window)
        rates = {c: (snapshot(cw, c)["frames_processed_total"] - first[c]) / window
                 for c in live}
        # The rates are a figure on a shared machine (printed, not asserted): what must hold
        # is that both live cameras keep analysing while four dead ones hang.
        print(f"live cameras analysed {rates} frames/s (stream: {STREAM_FPS} fps)")
        for cid in live:
            assert rates[cid] > 0, rates
            assert snapshot(cw, cid)["source_up"] == 1
        for cid in dead:
            s = snapshot(cw, cid)
            assert (s["source_up"], s["frames_processed_total"]) == (0, 0)
            assert s["camera_people"] is None  # no data: no series, never a made-up 0 or NaN
        status, body = cw.health("/readyz")
        assert status == 503
        assert {c: v["state"] for c, v in body["cameras"].items()} == {
            **dict.fromkeys(live, "up"), **dict.fromkeys(dead, "down")}
        assert cw.health("/healthz")[0] == 200
        seconds = cw.terminate()
        assert cw.process is not None and cw.process.returncode == 0, cw.text()[-3000:]
        assert seconds < 5.0
        assert "Traceback" not in cw.text()
        assert_secret_never_shown(cw)
        print(f"live camera rates beside four dead cameras: {rates}")


@pytest.fixture(scope="module")
def streaming(gstreamer: None, sample_clip: Path, model_path: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crowdwatch]:
    """crowdwatch analysing an RTSP stream opened with credentials."""
    folder = tmp_path_factory.mktemp("streaming")
    with RtspServer(sample_clip) as rtsp:
        cw = Crowdwatch(folder, {"cameras": [camera("cam0", rtsp.url(CREDENTIALS))]},
                        model_path)
        with cw:
            wait_for(lambda: snapshot(cw, "cam0")["frames_processed_total"] >= 5, 60,
                     "frames analysed")
            yield cw


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz", "/", "/frame.jpg",
                                  "/snapshot", "/video", "/stream.mjpg", "/cameras/cam0/image"])
def test_endpoints_serve_no_images(streaming: Crowdwatch, path: str) -> None:
    status, content_type, body = streaming.get(path)
    assert not content_type.startswith(("image/", "video/", "multipart/")), content_type
    for magic in (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"RIFF", b"\x00\x00\x00"):
        assert not body.startswith(magic)
    if path in ("/healthz", "/readyz"):
        assert content_type == "application/json"
        assert status in (200, 503)
    else:
        # Any other path is Prometheus' text exposition: a frame endpoint added later must
        # be a deliberate change here (off by default, bound to localhost, see RELIABILITY.md).
        assert (status, content_type.split(";")[0]) == (200, "text/plain")
        assert b"crowdwatch_frames_processed_total" in body
    assert SECRET.encode() not in body


def test_rtsp_labels_name_the_camera_never_the_url(streaming: Crowdwatch) -> None:
    labels = {value for (_name, pairs) in streaming.scrape() for _key, value in pairs}
    assert "cam0" in labels
    assert not [v for v in labels if "rtsp" in v or "127.0.0.1" in v or SECRET in v]
    assert "rtsp://***@127.0.0.1" in streaming.text()  # the log names the stream, redacted
    assert SECRET not in streaming.text()


# --- many live cameras at once (issue 23) ----------------------------------------------------
# OpenCV opens one capture at a time in a process; FFmpeg's default probing read 2.4 s of each
# 10 frames/s stream inside that lock, so the sixth camera connected 12 s after the first and
# the last of 16 after 40 s: in any measurement window the late cameras looked starved. The
# real pipeline, fair share and live readers run over real captures, one server per camera;
# times are counted in the streams' own frames (the server paces them), not as wall-clock
# limits.

MANY_CAMERAS = 6
# While the others connect, the first camera may receive this many frames per later camera
# (0.63 s of stream each with the fix, 2.4 s without: 6 and 24 frames).
LEAD_PER_CAMERA = 15
# Frames of the first camera's stream over which every camera's share is compared.
WINDOW_FRAMES = 100
GIVE_UP_S = 120.0  # only so a broken setup fails instead of hanging


@pytest.fixture
def many_servers(gstreamer: None, sample_clip: Path, tmp_path: Path) -> Iterator[list[RtspServer]]:
    started: list[RtspServer] = []
    try:
        for i in range(MANY_CAMERAS):
            server = RtspServer(sample_clip, log=tmp_path / f"rtsp-{i}.log")
            server.start()
            started.append(server)
        yield started
    finally:
        for server in started:
            server.kill()


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + GIVE_UP_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.05)


def test_many_live_cameras_connect_together_and_share_the_analysis(
        many_servers: list[RtspServer]) -> None:
    cameras = [f"cam{i}" for i in range(MANY_CAMERAS)]
    cfg = parse_config({
        "cameras": [{"id": c, "source": s.url(), "read_timeout_s": 30, "min_analysis_fps": None}
                    for c, s in zip(cameras, many_servers, strict=True)],
        "detector": {"tiling": {"mode": "off"}}})
    health = HealthState(cameras)
    # The real pipeline over real LiveSources; the detector is a fake that is always done, so
    # what is measured is receiving and scheduling, not inference speed.
    pipeline = build_pipeline(cfg, FakeAsyncDetect(ready=True), [], health)
    runner = threading.Thread(target=pipeline.run, daemon=True)
    runner.start()

    def received() -> dict[str, int]:
        return {c: s.frames_received for c, s in health.sources().items()}

    def analysed() -> dict[str, int]:
        return dict(pipeline.processed)

    try:
        _wait(lambda: all(received().values()), "every camera's first frame")
        lead = max(received().values())
        # The first camera's stream ran on while the others connected, one after another.
        assert lead < LEAD_PER_CAMERA * (MANY_CAMERAS - 1), (
            f"the first camera had received {lead} frames when the last one connected: "
            f"cameras open too slowly one after another ({received()})")
        got_before, done_before = received(), analysed()
        start = max(got_before.values())
        _wait(lambda: max(received().values()) >= start + WINDOW_FRAMES, "the window")
        got = {c: n - got_before[c] for c, n in received().items()}
        done = {c: n - done_before[c] for c, n in analysed().items()}
    finally:
        pipeline.stop()
        runner.join(30)
    window = max(got.values())
    # Every camera receives what its stream sends (8 of 10 frames at least) ...
    assert min(got.values()) >= 0.8 * window, got
    # ... and is analysed as often as the others.
    assert min(done.values()) >= 0.8 * statistics.median(done.values()), done
    assert all(s.stream_fps == STREAM_FPS for s in health.sources().values())
