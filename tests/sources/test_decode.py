"""Video files through PyAV (sources/decode.py): OpenCV's pixels, frame rate and length on an
undamaged file; after damage, every frame skipped up to the next keyframe, then read on."""

from __future__ import annotations

import hashlib
import random
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from crowdwatch.config import CameraConfig
from crowdwatch.sources import open_source
from crowdwatch.sources.decode import PyAVCapture

KEYFRAME_EVERY = 20
FRAMES = 120


def test_frames_are_the_ones_opencv_decodes(sample_clip: Path) -> None:
    ours, theirs = PyAVCapture(str(sample_clip)), cv2.VideoCapture(str(sample_clip))
    try:
        for prop in (cv2.CAP_PROP_FPS, cv2.CAP_PROP_FRAME_COUNT):
            assert ours.get(prop) == theirs.get(prop)
        frames = 0
        while True:
            (ok, image), (ok_cv, image_cv) = ours.read(), theirs.read()
            assert ok == ok_cv
            if not ok:
                break
            assert image is not None and image_cv is not None
            assert np.array_equal(image, image_cv), f"frame {frames}"  # the same counts
            frames += 1
        assert (frames, ours.lost) == (200, 0)
    finally:
        ours.release()
        theirs.release()


@pytest.fixture(scope="module")
def keyframed_clip(sample_clip: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample's first FRAMES frames at half size, a keyframe every KEYFRAME_EVERY frames
    (the sample's only keyframe is its first)."""
    path = tmp_path_factory.mktemp("clips") / "keyframed.mp4"
    with av.open(str(sample_clip)) as source, av.open(str(path), "w") as target:
        stream = target.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 384, 288, "yuv420p"
        stream.options = {"preset": "ultrafast", "x264-params":
                          f"keyint={KEYFRAME_EVERY}:min-keyint={KEYFRAME_EVERY}:scenecut=0"}
        for n, frame in enumerate(source.decode(video=0)):
            if n == FRAMES:
                break
            small = frame.reformat(width=384, height=288, format="yuv420p")
            small.pts, small.time_base = n, Fraction(1, 10)
            target.mux(stream.encode(small))
        target.mux(stream.encode(None))
    return path


def digests(path: Path) -> tuple[dict[int, str], int]:
    """sha1 of each frame handed over by index, and the frames skipped."""
    found = {}
    with open_source(CameraConfig(id="cam", source=str(path))) as source:
        while not source.finished:
            frame = source.read(5.0)
            if frame is not None:
                found[frame.index] = hashlib.sha1(frame.image.tobytes()).hexdigest()
        return found, source.frames_skipped


def test_after_damage_frames_are_skipped_to_the_next_keyframe(keyframed_clip: Path,
                                                             tmp_path: Path) -> None:
    undamaged, skipped = digests(keyframed_clip)
    assert (len(undamaged), skipped) == (FRAMES, 0)
    data = bytearray(keyframed_clip.read_bytes())
    start, length = len(data) // 2, len(data) // 200
    data[start:start + length] = random.Random(6).randbytes(length)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    found, skipped = digests(damaged)
    # Every frame handed over is the undamaged frame of its index: nothing smeared.
    assert all(undamaged[index] == digest for index, digest in found.items())
    missing = sorted(set(range(FRAMES)) - set(found))
    assert missing and skipped == len(missing)
    # One run of skipped frames, from the damage up to a keyframe (within one keyframe
    # interval and a few frames of reordering), then read on to the end.
    assert missing == list(range(missing[0], missing[-1] + 1))
    assert (missing[-1] + 1) % KEYFRAME_EVERY == 0
    assert len(missing) <= KEYFRAME_EVERY + 4
    assert max(found) == FRAMES - 1


def test_a_file_pyav_cannot_open_goes_to_opencv(tmp_path: Path) -> None:
    from crowdwatch.sources.capture import default_factory

    path = tmp_path / "text.mp4"
    path.write_text("not a video\n")
    capture = default_factory(5.0)(str(path))
    assert not isinstance(capture, PyAVCapture)
    assert not capture.isOpened()
