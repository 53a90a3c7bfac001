"""A real RTSP server on loopback (for `crowdwatch bench`'s capacity scenario and the fault
tests), and the handle that drives it.

Run as a script (by Debian's /usr/bin/python3, which has PyGObject; the project's virtual
environment has not), it serves a clip through GStreamer's RTSP server (gst-rtsp-server) at
rtsp://127.0.0.1:PORT/stream, in an endless loop, paced at the clip's frame rate, without
re-encoding: the clip's H.264 access units are read once and pushed again and again with
timestamps that keep counting up across the loops. Each client gets its own pipeline starting
at frame 0.

Imported (by any Python), `RtspServer` starts that script, and kills, stalls
(SIGSTOP: the sockets stay open but no byte moves), resumes and restarts it on the same port.

Needs the Debian packages python3-gi, gir1.2-gst-rtsp-server-1.0 and
gstreamer1.0-plugins-good (qtdemux, rtph264pay); see .ci/run. Only the standard library is
imported at the top: the script runs where crowdwatch is not installed.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

GST_PYTHON = os.environ.get("CROWDWATCH_GST_PYTHON", "/usr/bin/python3")
MOUNT = "/stream"
# What the script imports and uses: checked before the tests start a server.
PROBE = """
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
missing = [e for e in ("filesrc", "qtdemux", "appsink", "appsrc", "rtph264pay")
           if Gst.ElementFactory.find(e) is None]
assert not missing, "missing GStreamer elements: " + ", ".join(missing)
"""


def probe() -> str | None:
    """None when a server can run here, else why not (for a skip or failure message)."""
    try:
        result = subprocess.run([GST_PYTHON, "-c", PROBE], capture_output=True, text=True,
                                timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"{GST_PYTHON}: {error}"
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines() or ["failed"]
        return f"{GST_PYTHON} cannot run GStreamer's RTSP server: {lines[-1]}"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspServer:
    """The server script as a child process, on a fixed loopback port across restarts."""

    def __init__(self, clip: Path, port: int | None = None, log: Path | None = None) -> None:
        self.clip = clip
        self.port = port or free_port()
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def url(self, credentials: str = "") -> str:
        userinfo = f"{credentials}@" if credentials else ""
        return f"rtsp://{userinfo}127.0.0.1:{self.port}{MOUNT}"

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and wait until it accepts connections."""
        assert self.process is None, "already running"
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                [GST_PYTHON, __file__, "--port", str(self.port), "--clip", str(self.clip)],
                stdout=out, stderr=out, stdin=subprocess.DEVNULL)
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"RTSP server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"RTSP server not listening on port {self.port} in {timeout} s")

    def kill(self) -> None:
        """SIGKILL: connections reset, the port refuses until start()."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a stopped process dies only when run
            self.process.kill()
        self.process.wait(10)
        self.process = None

    def stall(self) -> None:
        """SIGSTOP: sockets stay open and accept, but no data flows and nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def __enter__(self) -> RtspServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


# --- the server script (runs under /usr/bin/python3 with PyGObject) ----------------------

def _serve(port: int, clip: Path) -> None:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    # Read the clip's access units (H.264, avc) once, with their timestamps and key flags.
    reader = Gst.parse_launch(
        f'filesrc location="{clip}" ! qtdemux ! video/x-h264 ! appsink name=sink sync=false')
    sink = reader.get_by_name("sink")
    reader.set_state(Gst.State.PLAYING)
    # (data, pts, dts, flags) per access unit; each push wraps the bytes in a new buffer,
    # since the stored buffers must keep their original timestamps for the next client.
    units: list[tuple[GLib.Bytes, int, int, Gst.BufferFlags]] = []
    caps = None
    while True:
        sample = sink.emit("pull-sample")
        if sample is None:
            break
        caps = caps or sample.get_caps()
        buffer = sample.get_buffer()
        data = GLib.Bytes.new(buffer.extract_dup(0, buffer.get_size()))
        units.append((data, buffer.pts, buffer.dts,
                      buffer.get_flags() & Gst.BufferFlags.DELTA_UNIT))
    reader.set_state(Gst.State.NULL)
    if not units or caps is None:
        sys.exit(f"no H.264 frames in {clip}")
    structure = caps.get_structure(0)
    ok, num, den = structure.get_fraction("framerate")
    frame_ns = Gst.SECOND * den // num if ok and num > 0 else Gst.SECOND // 10
    clip_ns = frame_ns * len(units)

    def configure(_factory: object, media: GstRtspServer.RTSPMedia) -> None:
        source = media.get_element().get_by_name_recurse_up("src")
        source.set_property("caps", caps)
        source.set_property("format", Gst.Format.TIME)
        state = {"n": 0}

        def need_data(appsrc: Gst.Element, _length: int) -> None:
            n = state["n"]
            state["n"] = n + 1
            loop, unit = divmod(n, len(units))
            data, pts, dts, flags = units[unit]
            offset = loop * clip_ns
            buffer = Gst.Buffer.new_wrapped_bytes(data)
            # qtdemux's pts/dts keep B-frame order; each loop shifts them by the clip length.
            if pts != Gst.CLOCK_TIME_NONE:
                buffer.pts = pts + offset
            if dts != Gst.CLOCK_TIME_NONE:
                buffer.dts = dts + offset
            buffer.duration = frame_ns
            buffer.set_flags(flags)
            appsrc.emit("push-buffer", buffer)

        source.connect("need-data", need_data)

    factory = GstRtspServer.RTSPMediaFactory()
    # config-interval=-1 repeats SPS/PPS with every key frame: each loop starts cleanly.
    factory.set_launch("( appsrc name=src ! rtph264pay name=pay0 pt=96 config-interval=-1 )")
    factory.set_shared(False)
    factory.connect("media-configure", configure)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(port))
    server.get_mount_points().add_factory(MOUNT, factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print(f"serving {clip} ({len(units)} frames) at rtsp://127.0.0.1:{port}{MOUNT}", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--clip", type=Path, required=True)
    arguments = parser.parse_args()
    _serve(arguments.port, arguments.clip)
