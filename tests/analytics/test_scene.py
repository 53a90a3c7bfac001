"""CameraScene: a camera's geometry resolved once per frame size, errors naming the key."""

from __future__ import annotations

import pytest

from crowdwatch.analytics.scene import CameraScene
from crowdwatch.config import CameraConfig
from crowdwatch.errors import ConfigError


def _camera(**extra: object) -> CameraConfig:
    return CameraConfig.model_validate({
        "id": "cam0", "source": "x.mp4",
        "zones": [{"name": "left", "polygon": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]],
                   "normalized": True}],
        "lines": [{"name": "door", "points": [[0, 0.5], [1, 0.5]], "normalized": True}],
        "ignore": [{"polygon": [[0.9, 0.9], [1, 0.9], [1, 1]], "normalized": True}],
        **extra})


def test_geometry_is_resolved_once_per_frame_size() -> None:
    scene = CameraScene(_camera(), "cameras[0]")
    first = scene.at(200, 100)
    assert scene.at(200, 100) is first
    assert [z.polygon.bounds for z in first.zones] == [(0.0, 0.0, 100.0, 100.0)]
    assert [(line.start, line.end) for line in first.lines] == [((0.0, 50.0), (200.0, 50.0))]
    assert first.ignore_regions[0].tolist() == [[180.0, 90.0], [200.0, 90.0], [200.0, 100.0]]
    assert first.ignore is not None
    other = scene.at(400, 200)
    assert other is not first and other.lines[0].end == (400.0, 100.0)


def test_a_line_outside_the_frame_names_its_key() -> None:
    camera = _camera(lines=[{"name": "far", "points": [[500, 10], [600, 10]]}])
    with pytest.raises(ConfigError, match=r"cameras\[3\]\.lines\[0\] \(far\): the line lies "
                                          r"outside the 200x100 frame"):
        CameraScene(camera, "cameras[3]").at(200, 100)
