"""heatmap.png in a real browser (the fixtures of test_browser.py): it loads, has its size,
and is hot where people stood."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from web.test_browser import _base

from crowdwatch.analytics.heatmap import Heatmaps
from crowdwatch.config import HeatmapConfig
from crowdwatch.outputs.heatmap import LEGEND_HEIGHT, HeatmapRenderer
from crowdwatch.types import Detections, FrameResult
from crowdwatch.web.preview import PreviewHub
from crowdwatch.web.ui import AccessGuard, WebServer, WebUI, make_web_app

# Draws the image on a canvas and reads pixels back (same origin: the canvas is not tainted).
READ = """async ([src, points]) => {
  const img = new Image();
  img.src = src;
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(img, 0, 0);
  return {width: img.naturalWidth, height: img.naturalHeight,
          pixels: points.map(([x, y]) => Array.from(context.getImageData(x, y, 1, 1).data))};
}"""


@pytest.fixture
def served() -> Iterator[str]:
    config = HeatmapConfig(width=640)
    heatmaps = Heatmaps(config)
    renderer = HeatmapRenderer(heatmaps, config)
    hub = PreviewHub(["cam0"], overlays={"heatmap": renderer.overlay})
    frame = np.full((576, 768, 3), 100, np.uint8)
    # Ten seconds of three people standing with their feet near (606, 450) of a 768x576 frame:
    # the centre of grid cell (37, 50) (64 cells of 12 px across).
    people = Detections(np.array([[586, 300, 626, 450], [591, 310, 621, 452],
                                  [596, 320, 616, 449]], np.float32), np.ones(3, np.float32))
    for index in range(11):
        result = FrameResult("cam0", index, float(index), 0.0, 3, 3, detections=people,
                             image=frame)
        heatmaps.write(result)
        hub.write(result)
    server = WebServer(make_web_app(_base, WebUI(AccessGuard(None), hub,
                                                 heatmap=renderer.png)))
    yield server.url
    hub.close()
    server.close()


def test_heatmap_renders_in_the_browser_hot_where_people_stood(browser: Any,
                                                               served: str) -> None:
    page = browser.new_page()
    try:
        page.goto(served + "/static/style.css")  # any page of the server: same origin
        # 640 px wide: 768x576 scales by 5/6, the feet land at (505, 375); a corner is cold.
        read = page.evaluate(READ, ["/cameras/cam0/heatmap.png?frame=0",
                                    [[505, 375], [20, 20], [633, 480 + 8]]])
        assert read["width"] == 640 and read["height"] == 480 + LEGEND_HEIGHT
        hot, cold, legend_top = (pixel[:3] for pixel in read["pixels"])
        assert hot[0] > 100 and hot[2] < 60  # red end of the turbo scale (RGB)
        assert cold[2] > cold[0] and cold[0] < 80  # the cold, dark-blue end
        assert legend_top[0] > 100 and legend_top[2] < 60
        shown = page.evaluate(READ, ["/cameras/cam0/snapshot.jpg?overlay=heatmap",
                                     [[505, 375], [20, 20]]])
        assert shown["width"] == 640
        over, frame = (pixel[:3] for pixel in shown["pixels"])
        assert over[0] > over[2] + 40 and frame[0] == frame[2]  # red over the grey frame
    finally:
        page.close()


def test_the_live_page_links_each_camera_to_its_heatmap(browser: Any,
                                                        served: str) -> None:
    page = browser.new_page()
    try:
        page.goto(served + "/")
        link = page.locator("#camera-cam0 a.heatmap-link")
        link.wait_for(state="visible", timeout=10_000)
        assert link.get_attribute("href") == "/cameras/cam0/heatmap.png"
    finally:
        page.close()

