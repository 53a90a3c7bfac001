"""A fresh machine: no CROWDWATCH_* variables, no ./models folder, no ../shared.

`crowdwatch run --config configs/pets.yaml` must count people with the model shipped in the
package, and the default path (OpenVINO) must never import torch or ultralytics.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Longer than the suite's default timeout (pyproject.toml): a whole run in a clean environment.
pytestmark = pytest.mark.timeout(900)

# Runs the CLI in-process, then reports which heavy modules it imported.
DRIVER = """
import json, sys
from crowdwatch.cli import main
sys.argv = ["crowdwatch", *sys.argv[1:]]
try:
    main()
except SystemExit as exit:
    code = exit.code or 0
else:
    code = 0
heavy = sorted(m for m in ("torch", "ultralytics", "torchvision") if m in sys.modules)
sys.stderr.write("HEAVY " + json.dumps(heavy) + "\\n")
sys.exit(code)
"""


@pytest.fixture(scope="module")
def fresh_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess,
                                                                 list[dict]]:
    work = tmp_path_factory.mktemp("fresh")
    (work / "configs").mkdir()
    (work / "samples").mkdir()
    (work / "configs" / "pets.yaml").write_bytes((REPO / "configs" / "pets.yaml").read_bytes())
    (work / "samples" / "vtest_h264.mp4").symlink_to(REPO / "samples" / "vtest_h264.mp4")
    assert not (work / "models").exists()
    # A clean environment: only what Python needs to run and to find this checkout's code.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work / "home"),
           "PYTHONPATH": str(REPO / "src"), "LANG": "C.UTF-8"}
    events = work / "events.jsonl"
    process = subprocess.run(
        [sys.executable, "-c", DRIVER, "run", "--config", "configs/pets.yaml",
         "--max-frames", "20", "--no-metrics", "--events", str(events)],
        cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False)
    lines = events.read_text().splitlines() if events.exists() else []
    return process, [json.loads(line) for line in lines]


def test_pets_config_counts_people_with_the_embedded_model(
        fresh_run: tuple[subprocess.CompletedProcess, list[dict]]) -> None:
    process, events = fresh_run
    assert process.returncode == 0, process.stderr
    assert [e["frame"] for e in events] == list(range(20))
    # 2-8 people are in view throughout the sample (configs/pets.yaml); a run that loads no
    # model, or a broken one, counts none.
    assert all(e["people_raw"] >= 2 for e in events), [e["people_raw"] for e in events]


def test_default_path_imports_neither_torch_nor_ultralytics(
        fresh_run: tuple[subprocess.CompletedProcess, list[dict]]) -> None:
    process, _ = fresh_run
    assert "HEAVY []" in process.stderr.splitlines(), process.stderr


def test_a_file_run_ends_with_a_per_zone_summary(
        fresh_run: tuple[subprocess.CompletedProcess, list[dict]]) -> None:
    process, events = fresh_run
    rows = {line.split()[1]: line.split()[2:] for line in process.stderr.splitlines()
            if line.startswith("crowdwatch:   ") and "frames" not in line}
    assert set(rows) == {"(whole", "west_walkway", "plaza", "east_road"}
    plaza = [e["zones"]["plaza"]["people"] for e in events]
    assert rows["plaza"][:3] == ["20", f"{sum(plaza) / 20:.2f}", str(max(plaza))]
