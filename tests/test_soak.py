"""The soak script (benchmarks/soak.py): its verdict on made-up series, and its short variant
against the real pipeline (the documented soak runs 10 minutes; CI runs 30 seconds)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

# Longer than the suite's default timeout (pyproject.toml): a long run on purpose.
pytestmark = pytest.mark.timeout(1800)

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "soak.py"
_spec = importlib.util.spec_from_file_location("soak", SCRIPT)
assert _spec is not None and _spec.loader is not None
soak = importlib.util.module_from_spec(_spec)
sys.modules["soak"] = soak  # dataclasses look their module up by name
_spec.loader.exec_module(soak)


def series(seconds: int = 60, rss: float = 300.0, fps: float = 10.0, rss_per_s: float = 0.0,
           fps_after: float | None = None, fds_after: int = 7) -> list[soak.Sample]:
    """One sample a second; from second 40 on, the rate and descriptors may change."""
    samples, frames = [], 0.0
    for t in range(seconds + 1):
        late = t >= 40
        samples.append(soak.Sample(t, rss + rss_per_s * t, fds_after if late else 7, 13,
                                   frames))
        frames += fps_after if late and fps_after is not None else fps
    return samples


@pytest.mark.parametrize(("samples", "failures"), [
    (series(), []),
    (series(rss_per_s=0.2), []),  # +8 MB from the first window to the last: +2.6 %
    (series(rss_per_s=0.5), ["resident memory grew +6.5% after warm-up (limit 5%)"]),
    (series(fps_after=9.5), []),
    (series(fps_after=8.0), ["frame rate dropped 20.0% (limit 10%)"]),
    (series(fps_after=0.0), ["frame rate dropped 100.0% (limit 10%)"]),
    (series(fds_after=9), ["open file descriptors grew by 2"]),
    (series(fps=0.0), ["no frames analysed after warm-up"]),
    (series(seconds=15), ["too short: need warm-up 10 s plus two windows of 10 s, ran 15 s"]),
], ids=["steady", "small-growth", "leak", "small-dip", "slowdown", "stalled", "fd-leak",
        "no-frames", "too-short"])
def test_verdict(samples: list[soak.Sample], failures: list[str]) -> None:
    verdict = soak.judge(samples, warmup=10, window=10, max_memory_growth=0.05,
                         max_rate_drop=0.10)
    assert verdict.failures == failures


def test_short_soak(model_path: Path, tmp_path: Path) -> None:
    report_path = tmp_path / "soak.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--duration", "30", "--warmup", "10", "--window", "5",
         "--interval", "1", "--model", str(model_path), "--report", str(report_path)],
        cwd=REPO, capture_output=True, text=True, timeout=180)
    report = json.loads(report_path.read_text())
    verdict = report["verdict"]
    # Memory, descriptors and a stall are correctness; a frame-rate dip on a shared 2-core
    # machine is a figure, printed (the full soak, benchmarks/soak.py, judges it).
    rate_dips = [f for f in verdict["failures"] if f.startswith("frame rate dropped")]
    assert [f for f in verdict["failures"] if f not in rate_dips] == [], (
        result.stdout[-3000:] + result.stderr[-3000:])
    # The script exits 1 exactly when its verdict has a failure.
    assert result.returncode == (1 if rate_dips else 0), result.stderr[-3000:]
    if rate_dips:
        print(f"soak figure: {rate_dips}")
    assert len(report["samples"]) >= 25
    # Rates and the stop time are figures on a shared machine, printed, not asserted; the
    # verdict above already fails a rate that drops from the first window to the last.
    assert verdict["rate_first"] > 0 and verdict["rate_last"] > 0
    assert report["events"] >= report["frames"] > 0
    print(f"soak: {verdict['rate_first']:.1f} -> {verdict['rate_last']:.1f} frames/s "
          f"(the clip paces 10), {report['frames']} frames, stopped in "
          f"{report['stop_seconds']:.1f} s")
    print(result.stdout.splitlines()[-1])
