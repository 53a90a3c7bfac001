"""PreviewHub: offering is cheap, encoding happens only for watchers, at most once a frame."""

from __future__ import annotations

import time

import cv2
import numpy as np

from crowdwatch.outputs.annotate import blur_only
from crowdwatch.types import Detections, FrameResult, Level, ZoneStats
from crowdwatch.web.preview import BOUNDARY, PreviewHub


def _result(camera: str, people: int, index: int = 0) -> FrameResult:
    boxes = np.array([[100, 100, 200, 300]], np.float32)
    return FrameResult(camera, index, 0.0, time.time(), people, people,
                       {"all": ZoneStats(people, level=Level.WARNING)},
                       Detections(boxes, np.ones(1, np.float32)))


def test_offer_does_not_encode() -> None:
    hub = PreviewHub(["cam0"])
    image = np.zeros((576, 768, 3), np.uint8)
    for i in range(100):
        hub.offer("cam0", image, _result("cam0", 3, i))
    assert hub.frames_encoded == 0
    assert not hub.watching("cam0")
    assert hub.latest_image("cam0") is image  # a reference, not a copy


def test_jpeg_is_downscaled_and_cached_per_frame() -> None:
    hub = PreviewHub(["cam0"], width=640)
    hub.offer("cam0", np.full((576, 768, 3), 128, np.uint8), _result("cam0", 2))
    first = hub.jpeg("cam0")
    assert first is not None
    decoded = cv2.imdecode(np.frombuffer(first[1], np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (480, 640, 3)
    assert hub.jpeg("cam0") == first and hub.frames_encoded == 1
    hub.offer("cam0", np.zeros((576, 768, 3), np.uint8), _result("cam0", 2, 1))
    assert hub.jpeg("cam0") != first and hub.frames_encoded == 2


def test_render_and_blur_run_only_when_encoding() -> None:
    calls = []

    def render(image: np.ndarray, result: FrameResult) -> np.ndarray:
        calls.append(result.frame_index)
        return image

    hub = PreviewHub(["cam0"], render={"cam0": render})
    hub.offer("cam0", np.zeros((100, 100, 3), np.uint8), _result("cam0", 1))
    assert calls == []
    hub.jpeg("cam0")
    assert calls == [0]
    hub.offer("cam0", np.zeros((100, 100, 3), np.uint8), _result("cam0", 1, 5), annotated=True)
    hub.jpeg("cam0")
    assert calls == [0]  # already annotated: not drawn twice


def test_blur_only_render() -> None:
    rng = np.random.default_rng(0)
    # Grey 16 px blocks: JPEG keeps them almost exactly, so only the blur changes pixels.
    blocks = rng.integers(0, 255, (25, 25), dtype=np.uint8)
    image = np.repeat(np.repeat(blocks, 16, 0), 16, 1)[:, :, None].repeat(3, 2)
    hub = PreviewHub(["cam0"], quality=100, render={"cam0": blur_only})
    hub.offer("cam0", image, _result("cam0", 1))
    encoded = hub.jpeg("cam0")
    assert encoded is not None
    out = cv2.imdecode(np.frombuffer(encoded[1], np.uint8), cv2.IMREAD_COLOR).astype(int)
    box = (slice(110, 290), slice(110, 190))
    assert np.abs(out[box] - image[box]).mean() > 20
    assert np.abs(out[0:90] - image[0:90]).mean() < 10


def test_stream_rate_capped_and_counts_watchers() -> None:
    hub = PreviewHub(["cam0"], fps=20)
    stream = hub.stream("cam0")
    hub.offer("cam0", np.zeros((100, 100, 3), np.uint8), _result("cam0", 1))
    part = next(stream)
    assert part.startswith(f"--{BOUNDARY}\r\nContent-Type: image/jpeg".encode())
    assert hub.watching("cam0")
    started = time.monotonic()
    hub.offer("cam0", np.zeros((100, 100, 3), np.uint8), _result("cam0", 1, 1))
    next(stream)
    assert time.monotonic() - started >= 0.03  # 20 fps: ~50 ms between parts
    stream.close()
    assert not hub.watching("cam0")


def test_status_lists_counts_and_levels() -> None:
    hub = PreviewHub(["cam0", "cam1"])
    hub.offer("cam0", np.zeros((10, 10, 3), np.uint8), _result("cam0", 4))
    status = hub.status()["cameras"]
    assert status[0]["people"] == 4
    assert status[0]["zones"] == [{"name": "all", "people": 4, "occupancy": None,
                                   "level": "warning"}]
    assert status[1]["people"] is None


def test_write_offers_the_results_image_by_reference() -> None:
    hub = PreviewHub(["cam0"])
    image = np.zeros((48, 64, 3), np.uint8)
    hub.write(FrameResult("cam0", 0, 0.0, 0.0, 2, 2, image=image))
    assert hub.latest_image("cam0") is image  # no copy on the counting thread
    # A result without an image keeps the last frame but updates the counts.
    hub.write(FrameResult("cam0", 1, 0.1, 0.0, 5, 5))
    assert hub.latest_image("cam0") is image
    assert hub.status()["cameras"][0]["people"] == 5
    assert hub.frames_encoded == 0
    hub.write(FrameResult("cam1", 0, 0.0, 0.0, 1, 1))  # no frame ever: nothing to show
    assert hub.latest_image("cam1") is None
