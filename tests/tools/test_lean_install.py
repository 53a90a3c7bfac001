"""README's eval and bench commands on the lean install (no ultralytics, no torch, no
motmetrics): they run, and say in one line what the missing extra would add."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _lean(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    blocker = tmp_path / "lean"
    blocker.mkdir(exist_ok=True)
    # Imports of the extras fail as on a lean install, in this process and in its children.
    (blocker / "sitecustomize.py").write_text(
        "import sys\nfor name in ('ultralytics', 'torch', 'torchvision', 'motmetrics'):\n"
        "    sys.modules[name] = None\n")
    env = {k: v for k, v in os.environ.items() if k != "CROWDWATCH_MODEL"}
    env["PYTHONPATH"] = f"{blocker}{os.pathsep}{REPO / 'src'}"
    return subprocess.run([sys.executable, "-m", "crowdwatch", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.model
def test_eval_runs_without_the_extras(tmp_path: Path, pets_dir: Path) -> None:
    result = _lean(tmp_path, "eval", "-c", "configs/pets.yaml", "--video",
                   "samples/vtest_h264.mp4", "--gt", str(pets_dir / "gt" / "PETS2009-S2L1.xml"),
                   "--max-frames", "10")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert 'baseline left out: raw YOLO runs through ultralytics' in result.stderr
    assert "crowdwatch      " in result.stdout and "baseline" not in result.stdout.split(
        "precision/recall")[1]
    assert "tracking: not scored (IDF1 and MOTA need motmetrics" in result.stdout


@pytest.mark.model
def test_bench_single_runs_without_the_extras(tmp_path: Path) -> None:
    result = _lean(tmp_path, "bench", "--scenario", "single", "--runs", "1", "--frames", "4",
                   "--clip", "samples/vtest_h264.mp4", "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    assert "ultralytics loop left out: not installed" in result.stderr
    assert "| 768x576 | crowdwatch |" in result.stdout
