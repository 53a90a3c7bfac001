"""Issue 23's reproduction: N live cameras, a loopback RTSP server each, received and analysed
frames/s per camera over a window opened a fixed time after start (docs/PERFORMANCE.md,
"Many cameras: connecting in turn").

    PYTHONPATH=src python benchmarks/many_cameras.py -n 16 --warm 12 --seconds 30 --detect
    OPENCV_FFMPEG_CAPTURE_OPTIONS='rtsp_transport;tcp' PYTHONPATH=src \\
        python benchmarks/many_cameras.py -n 16 --warm 12 --seconds 30 --detect  # main's probing

The real LiveSource readers over the real OpenCV captures; with --detect every camera keeps up
to three frames in the default OpenVINO detector through its FairShare lane (the pipeline's
loop without analytics). TOP=1 prints `top -H` of the process mid-window (per-thread CPU).
Needs Debian's python3-gi and gst-rtsp-server (tools/rtsp_server.py).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import threading
import time
from collections import deque
from pathlib import Path

from crowdwatch.config import CameraConfig, DetectorConfig
from crowdwatch.detect.base import Pending
from crowdwatch.sources.capture import configure_opencv, default_factory
from crowdwatch.sources.live import LiveSource
from crowdwatch.tools.rtsp_server import RtspServer

CLIP = Path(__file__).resolve().parents[1] / "samples" / "vtest_h264.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=16, help="cameras (and servers)")
    parser.add_argument("--warm", type=float, default=12.0, help="seconds before the window")
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds measured")
    parser.add_argument("--detect", action="store_true", help="analyse with the detector")
    args = parser.parse_args()
    servers = [RtspServer(CLIP) for _ in range(args.n)]
    for server in servers:
        server.start()
    sources: list[LiveSource] = []
    stop = threading.Event()
    analysed = [0] * args.n
    try:
        configure_opencv()
        print("OPENCV_FFMPEG_CAPTURE_OPTIONS", os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"])
        for i, server in enumerate(servers):
            camera = CameraConfig(id=f"c{i}", source=server.url())
            sources.append(LiveSource(server.url(), f"c{i}", camera, default_factory(5.0)))
        submit = None
        if args.detect:
            from crowdwatch.detect import create_detector
            from crowdwatch.detect.fair import fair_share

            share = fair_share(create_detector(DetectorConfig()))
            lanes = [share.lane(f"c{i}") for i in range(args.n)]
            submit = [lane.submit for lane in lanes]

        def loop(i: int) -> None:
            queued: deque[Pending] = deque()
            while not stop.is_set():
                if queued and (len(queued) >= 3 or queued[0].done()):
                    queued.popleft().result()
                    analysed[i] += 1
                    continue
                frame = sources[i].read(0.002 if queued else 0.5)
                if frame is None:
                    continue
                if submit is None:
                    analysed[i] += 1
                else:
                    queued.append(submit[i](frame.image))

        for i in range(args.n):
            threading.Thread(target=loop, args=(i,), daemon=True).start()
        time.sleep(args.warm)
        # Received = published by the reader (read or replaced by a newer frame).
        got_before = [s._produced for s in sources]
        done_before = list(analysed)
        if os.environ.get("TOP"):
            time.sleep(args.seconds / 2)
            top = subprocess.run(["top", "-H", "-b", "-n1", "-p", str(os.getpid())],
                                 capture_output=True, text=True).stdout
            print("\n".join(top.splitlines()[:40]))
            time.sleep(args.seconds / 2)
        else:
            time.sleep(args.seconds)
        received = [(s._produced - b) / args.seconds for s, b in zip(sources, got_before,
                                                                      strict=True)]
        done = [(a - b) / args.seconds for a, b in zip(analysed, done_before, strict=True)]
        print("received", " ".join(f"{x:.1f}" for x in received))
        print("analysed", " ".join(f"{x:.2f}" for x in done))
        median = statistics.median(done)
        print(f"received lowest {min(received):.1f} median {statistics.median(received):.1f}; "
              f"analysed lowest {min(done):.2f} median {median:.2f} "
              f"lowest/median {min(done) / median if median else 0:.2f}; "
              f"load {os.getloadavg()[0]:.1f}")
    finally:
        stop.set()
        for source in sources:
            source.close()
        for server in servers:
            server.kill()


if __name__ == "__main__":
    main()
