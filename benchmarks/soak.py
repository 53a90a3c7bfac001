#!/usr/bin/env python3
"""Soak test: run crowdwatch on the sample clip looped as a camera and watch it for leaks.

    python benchmarks/soak.py                       # 10 minutes, the documented soak
    python benchmarks/soak.py --duration 30 --warmup 10 --window 5    # CI's short variant

It starts `crowdwatch run` (paced at the clip's 10 fps, looping, like a camera; --unpaced
runs flat out), samples the process every --interval seconds (resident memory, open file
descriptors and threads from /proc, frames analysed from /metrics), then stops it with
SIGTERM and checks:

- resident memory after warm-up grows by at most --max-memory-growth (5 %): the median of
  the last --window seconds against the median of the first --window seconds after warm-up;
- the frame rate over the last window is at most --max-rate-drop (10 %) below the first;
- open file descriptors and threads do not grow;
- every analysed frame has its event line (nothing lost), and SIGTERM stops within 5 s.

Prints one line per sample and a summary, writes --report as JSON, and exits 1 when a
check fails (2 when crowdwatch cannot be run). Linux only (/proc). Needs the detector
weights: --model, or CROWDWATCH_MODEL, as for the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO.parent / "shared" / "models" / "yolo11n_int8_openvino_model"
STOP_LIMIT_S = 5.0


@dataclass
class Sample:
    t: float  # seconds since start
    rss_mb: float
    fds: int
    threads: int
    frames: float  # frames analysed so far, all cameras


@dataclass
class Verdict:
    memory_growth: float | None = None
    rate_first: float | None = None
    rate_last: float | None = None
    rate_drop: float | None = None
    fds_growth: int | None = None
    threads_growth: int | None = None
    failures: list[str] = field(default_factory=list)


def _window(samples: list[Sample], start: float, end: float) -> list[Sample]:
    return [s for s in samples if start <= s.t <= end]


def _rate(samples: list[Sample]) -> float | None:
    if len(samples) < 2 or samples[-1].t <= samples[0].t:
        return None
    return (samples[-1].frames - samples[0].frames) / (samples[-1].t - samples[0].t)


def judge(samples: list[Sample], warmup: float, window: float, max_memory_growth: float,
          max_rate_drop: float) -> Verdict:
    """Compare the first window after warm-up with the last window of the run."""
    verdict = Verdict()
    if not samples:
        verdict.failures.append("no samples")
        return verdict
    end = samples[-1].t
    first = _window(samples, warmup, warmup + window)
    last = _window(samples, end - window, end)
    if len(first) < 2 or len(last) < 2 or first[-1].t > last[0].t:
        verdict.failures.append(f"too short: need warm-up {warmup:g} s plus two windows of "
                                f"{window:g} s, ran {end:.0f} s")
        return verdict
    base = statistics.median(s.rss_mb for s in first)
    verdict.memory_growth = statistics.median(s.rss_mb for s in last) / base - 1
    if verdict.memory_growth > max_memory_growth:
        verdict.failures.append(f"resident memory grew {verdict.memory_growth:+.1%} after "
                                f"warm-up (limit {max_memory_growth:.0%})")
    verdict.rate_first, verdict.rate_last = _rate(first), _rate(last)
    if not verdict.rate_first:
        verdict.failures.append("no frames analysed after warm-up")
    else:
        verdict.rate_drop = 1 - (verdict.rate_last or 0.0) / verdict.rate_first
        if verdict.rate_drop > max_rate_drop:
            verdict.failures.append(f"frame rate dropped {verdict.rate_drop:.1%} "
                                    f"(limit {max_rate_drop:.0%})")
    verdict.fds_growth = max(s.fds for s in last) - max(s.fds for s in first)
    verdict.threads_growth = max(s.threads for s in last) - max(s.threads for s in first)
    # One descriptor or thread of slack: a capture being reopened at the loop point.
    if verdict.fds_growth > 1:
        verdict.failures.append(f"open file descriptors grew by {verdict.fds_growth}")
    if verdict.threads_growth > 1:
        verdict.failures.append(f"threads grew by {verdict.threads_growth}")
    return verdict


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc(pid: int) -> tuple[float, int, int]:
    """(resident MB, open fds, threads) of a live process."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    rss_mb = int(fields["VmRSS"][0]) / 1024
    return rss_mb, len(os.listdir(f"/proc/{pid}/fd")), int(fields["Threads"][0])


def _frames(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("crowdwatch_frames_processed_total{"))


def soak(args: argparse.Namespace, folder: Path) -> tuple[list[Sample], Verdict, dict]:
    port = _free_port()
    cameras = [{"id": f"soak{i}", "source": str(args.clip.resolve()), "loop": True,
                "realtime": not args.unpaced,
                "zones": [{"name": "all", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]],
                           "normalized": True}]} for i in range(args.cameras)]
    config = {"cameras": cameras, "detector": {"model": str(args.model)},
              "metrics": {"host": "127.0.0.1", "port": port}}
    config_path = folder / "soak.json"  # JSON is YAML
    config_path.write_text(json.dumps(config))
    events, log_path = folder / "events.jsonl", folder / "crowdwatch.log"
    command = [sys.executable, "-m", "crowdwatch", "run", "--config", str(config_path),
               "--events", str(events)]
    samples: list[Sample] = []
    extra: dict = {}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=log,
                                   stdin=subprocess.DEVNULL)
    try:
        started = time.monotonic()
        # Serving starts before the model has analysed anything; wait for the endpoint.
        while True:
            try:
                _frames(port)
                break
            except OSError:
                if process.poll() is not None or time.monotonic() - started > 120:
                    raise RuntimeError("crowdwatch did not start:\n"
                                       + log_path.read_text(errors="replace")[-2000:]) from None
                time.sleep(0.2)
        started = time.monotonic()
        next_at = started
        while (now := time.monotonic()) - started <= args.duration:
            if process.poll() is not None:
                raise RuntimeError(f"crowdwatch exited with {process.returncode}:\n"
                                   + log_path.read_text(errors="replace")[-2000:])
            rss, fds, threads = _proc(process.pid)
            sample = Sample(round(now - started, 2), round(rss, 1), fds, threads,
                            _frames(port))
            samples.append(sample)
            rate = _rate(samples[-2:]) if len(samples) > 1 else None
            print(f"{sample.t:7.1f} s  rss {sample.rss_mb:7.1f} MB  fds {fds:3d}  "
                  f"threads {threads:3d}  frames {sample.frames:7.0f}"
                  + (f"  {rate:5.1f} fps" if rate is not None else ""), flush=True)
            next_at += args.interval
            time.sleep(max(next_at - time.monotonic(), 0.0))
        frames = _frames(port)
        stop_started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        process.wait(30)
        extra["stop_seconds"] = round(time.monotonic() - stop_started, 2)
        extra["exit_status"] = process.returncode
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    verdict = judge(samples, args.warmup, args.window, args.max_memory_growth,
                    args.max_rate_drop)
    lines = events.read_text().splitlines()
    extra["events"] = len(lines)
    extra["frames"] = frames
    json.loads(lines[-1])  # the last line is whole: flushed on SIGTERM
    # Frames finished between the last scrape and SIGTERM add events, never remove them.
    if len(lines) < frames:
        verdict.failures.append(f"{frames:.0f} frames analysed but {len(lines)} events")
    if extra["exit_status"] != 0:
        verdict.failures.append(f"exit status {extra['exit_status']} after SIGTERM")
    if extra["stop_seconds"] > STOP_LIMIT_S:
        verdict.failures.append(f"SIGTERM took {extra['stop_seconds']} s")
    log = log_path.read_text(errors="replace")
    if "Traceback" in log:
        verdict.failures.append("a traceback in the log")
    return samples, verdict, extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds (default 600)")
    parser.add_argument("--warmup", type=float, default=60,
                        help="seconds ignored at the start (default 60)")
    parser.add_argument("--window", type=float, default=60,
                        help="seconds compared at either end (default 60)")
    parser.add_argument("--interval", type=float, default=2, help="seconds between samples")
    parser.add_argument("--cameras", type=int, default=1, help="looped cameras (default 1)")
    parser.add_argument("--unpaced", action="store_true",
                        help="analyse as fast as possible instead of at the clip's frame rate")
    parser.add_argument("--clip", type=Path, default=REPO / "samples" / "vtest_h264.mp4")
    parser.add_argument("--model", type=Path,
                        default=Path(os.environ.get("CROWDWATCH_MODEL", DEFAULT_MODEL)))
    parser.add_argument("--max-memory-growth", type=float, default=0.05)
    parser.add_argument("--max-rate-drop", type=float, default=0.10)
    parser.add_argument("--report", type=Path, help="write the samples and verdict as JSON")
    args = parser.parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("soak: needs Linux (/proc)", file=sys.stderr)
        return 2
    if not args.model.exists():
        print(f"soak: model not found: {args.model} (--model or CROWDWATCH_MODEL)",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="crowdwatch-soak-") as tmp:
        try:
            samples, verdict, extra = soak(args, Path(tmp))
        except RuntimeError as error:
            print(f"soak: {error}", file=sys.stderr)
            return 2
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    report = {"settings": settings, "verdict": asdict(verdict), **extra,
              "samples": [asdict(s) for s in samples]}
    if args.report:
        args.report.write_text(json.dumps(report, indent=1))

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:+.1%}"

    change = None if verdict.rate_drop is None else -verdict.rate_drop
    print(f"soak: {samples[-1].t:.0f} s, {extra['frames']:.0f} frames; after warm-up: "
          f"memory {pct(verdict.memory_growth)}, rate {verdict.rate_first or 0:.1f} -> "
          f"{verdict.rate_last or 0:.1f} fps ({pct(change)}), open fds "
          f"{verdict.fds_growth or 0:+d}, threads {verdict.threads_growth or 0:+d}; "
          f"SIGTERM stopped it in {extra['stop_seconds']} s")
    for failure in verdict.failures:
        print(f"soak: FAIL: {failure}")
    return 1 if verdict.failures else 0


if __name__ == "__main__":
    sys.exit(main())
