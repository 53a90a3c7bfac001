"""A cut-off image is skipped and counted as skipped, never counted as a frame with 0 people."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from crowdwatch.config import CameraConfig
from crowdwatch.sources import open_source


def _frames(sample_clip: Path, count: int) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(sample_clip))
    images = [capture.read()[1] for _ in range(count)]
    capture.release()
    return images


@pytest.mark.parametrize(("suffix", "keep"), [(".jpg", 5000), (".png", 5000), (".jpeg", -2)])
def test_a_truncated_image_is_skipped_with_a_warning(
        sample_clip: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str], suffix: str, keep: int) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for index, image in enumerate(_frames(sample_clip, 3)):
        cv2.imwrite(str(folder / f"{index:03d}{suffix}"), image)
    cut = folder / f"001{suffix}"
    cut.write_bytes(cut.read_bytes()[:keep])
    with caplog.at_level(logging.WARNING, logger="crowdwatch.sources"), \
            open_source(CameraConfig(id="cam", source=str(folder))) as source:
        frames = []
        while not source.finished:
            frame = source.read(5.0)
            if frame is not None:
                frames.append(frame)
        assert [f.index for f in frames] == [0, 2]  # the cut one keeps its number, unused
        assert source.frames_skipped == 1
    assert any("skipped (not counted): truncated" in r.getMessage()
               and str(cut) in r.getMessage() for r in caplog.records)
    assert "Premature end" not in capfd.readouterr().err  # the decoder never saw it
