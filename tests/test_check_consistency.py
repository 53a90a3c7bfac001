"""`crowdwatch check` refuses what `crowdwatch run` refuses: remote page without a token, a
line or a zone outside the frame, a probed camera that gives no frame."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "samples" / "vtest_h264.mp4"
ZONE = {"name": "all", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]], "normalized": True}


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "CROWDWATCH_TOKEN"}
    environ["PYTHONPATH"] = str(REPO / "src")
    return subprocess.run([sys.executable, "-m", "crowdwatch", *args], cwd=REPO,
                          env={**environ, **(env or {})}, capture_output=True, text=True,
                          timeout=300)


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = [ln for ln in result.stderr.splitlines() if ln.startswith("crowdwatch: error:")]
    return line


def _config(tmp_path: Path, **camera: object) -> Path:
    data = {"cameras": [{"id": "cam", "source": str(CLIP), "zones": [ZONE], **camera}],
            "metrics": {"host": "127.0.0.1", "port": 0}}
    web = camera.pop("web", None)
    if web is not None:
        data["cameras"][0].pop("web")
        data["web"] = web
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(("camera", "fragment"), [
    ({"web": {"enabled": True, "allow_remote": True}}, "web.allow_remote needs an access token"),
    ({"lines": [{"name": "far", "points": [[5000, 10], [6000, 10]]}]},
     "cameras[0].lines[0] (far): the line lies outside the 768x576 frame"),
    ({"zones": [{"name": "far", "polygon": [[5000, 0], [6000, 0], [6000, 50]]}]},
     "cameras[0].zones[0] (far): the zone lies outside the 768x576 frame"),
])
def test_check_and_run_refuse_the_same_config(tmp_path: Path, camera: dict,
                                              fragment: str) -> None:
    path = _config(tmp_path, **camera)
    check = _error_line(_cli("check", str(path)))
    run = _error_line(_cli("run", "-c", str(path), "--max-frames", "3"))
    assert fragment in check and fragment in run


def test_check_probe_fails_on_a_refused_camera(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = _config(tmp_path, source=f"rtsp://127.0.0.1:{port}/stream", read_timeout_s=2)
    line = _error_line(_cli("check", "--probe", str(path)))
    assert "camera cam: no frame within 2 s" in line and "refused" in line
