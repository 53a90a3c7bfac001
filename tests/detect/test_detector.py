from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crowdwatch.detect.base import Detector, detect, detect_all
from crowdwatch.detect.models import resolve_model
from crowdwatch.errors import ModelError


@pytest.fixture
def model_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    env_dir, cwd = tmp_path / "env", tmp_path / "cwd"
    (cwd / "models").mkdir(parents=True)
    env_dir.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CROWDWATCH_MODEL", raising=False)
    monkeypatch.setenv("CROWDWATCH_MODEL_DIR", str(env_dir))
    return env_dir, cwd / "models"


def openvino_folder(parent: Path, name: str = "m_openvino_model") -> Path:
    folder = parent / name
    folder.mkdir(parents=True)
    (folder / "m.xml").write_text("<net/>")
    return folder


def test_name_is_found_in_the_env_dir_before_models(model_dirs: tuple[Path, Path]) -> None:
    env_dir, models = model_dirs
    in_models = openvino_folder(models)
    assert resolve_model("m_openvino_model") == in_models
    in_env = openvino_folder(env_dir)
    assert resolve_model("m_openvino_model") == in_env


def test_user_cache_is_searched_last(model_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    cached = openvino_folder(tmp_path / "home" / ".cache" / "crowdwatch" / "models")
    assert resolve_model("m_openvino_model") == cached


def test_crowdwatch_model_overrides_the_config(model_dirs: tuple[Path, Path], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    weights = tmp_path / "w.onnx"
    weights.write_bytes(b"onnx")
    monkeypatch.setenv("CROWDWATCH_MODEL", str(weights))
    assert resolve_model("anything_else") == weights


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("yolo11n.pt", "'yolo11n.pt' not found in"),
        ("some/dir/yolo11n.pt", "check the path"),
    ],
)
def test_missing_model_error_says_where_to_get_it(model_dirs: tuple[Path, Path], name: str,
                                                  message: str) -> None:
    with pytest.raises(ModelError) as error:
        resolve_model(name)
    assert message in str(error.value)
    assert "models/README.md" in str(error.value)


def test_folder_without_openvino_xml_is_rejected(model_dirs: tuple[Path, Path]) -> None:
    (model_dirs[1] / "empty_openvino_model").mkdir()
    with pytest.raises(ModelError, match=r"holds no OpenVINO \.xml"):
        resolve_model("empty_openvino_model")


def test_real_model_finds_the_people_in_bus_jpg(model_path: Path) -> None:
    import cv2
    from ultralytics.utils import ASSETS

    from crowdwatch.config import DetectorConfig
    from crowdwatch.detect import create_detector

    detector = create_detector(DetectorConfig(model=str(model_path)))
    detections = detect(detector, cv2.imread(str(ASSETS / "bus.jpg")))
    # bus.jpg shows four people (and a bus, which must not be counted).
    assert len(detections) == 4
    assert detections.xyxy.dtype == np.float32
    assert np.all(detections.confidence >= 0.3)


# --- letterbox, input shapes, decoding (no model needed) --------------------------------------

LETTERBOX_CASES = [
    ((576, 768), (640, 640)),
    ((576, 768), (480, 640)),
    ((720, 1280), (384, 640)),
    ((1080, 1920), (640, 640)),
    ((1080, 810), (640, 640)),
    ((1280, 720), (640, 384)),
    ((333, 501), (320, 320)),
    ((100, 120), (640, 640)),  # upscaled
]


@pytest.mark.parametrize(("frame_hw", "input_hw"), LETTERBOX_CASES)
def test_letterbox_draws_exactly_what_ultralytics_draws(frame_hw: tuple[int, int],
                                                        input_hw: tuple[int, int]) -> None:
    from ultralytics.data.augment import LetterBox

    from crowdwatch.detect.yolo import Letterbox

    image = np.random.default_rng(0).integers(0, 256, (*frame_hw, 3), np.uint8)
    expected = LetterBox(input_hw, auto=False)(image=image)
    target = np.zeros((*input_hw, 3), np.uint8)
    Letterbox.fit(frame_hw, input_hw).fill(image, target, padded=False)
    np.testing.assert_array_equal(target, expected)


@pytest.mark.parametrize(("frame_hw", "input_hw"), LETTERBOX_CASES)
def test_boxes_map_back_like_ultralytics_scale_boxes(frame_hw: tuple[int, int],
                                                     input_hw: tuple[int, int]) -> None:
    from ultralytics.utils.ops import scale_boxes

    from crowdwatch.detect.yolo import Letterbox

    boxes = np.array([[0, 0, 10, 10], [5.5, 20, 300, 310], [-4, -4, 900, 900]], np.float32)
    expected = scale_boxes(input_hw, boxes.copy(), frame_hw)
    got = Letterbox.fit(frame_hw, input_hw).to_frame(boxes)
    np.testing.assert_allclose(got, expected, atol=1e-3)
    assert got.dtype == np.float32


@pytest.mark.parametrize(
    ("frame_hw", "imgsz", "mode", "expected"),
    [
        ((576, 768), 640, "square", (640, 640)),
        ((576, 768), 640, "stream", (480, 640)),
        ((720, 1280), 640, "stream", (384, 640)),
        ((1080, 1920), 640, "stream", (384, 640)),
        ((1280, 720), 640, "stream", (640, 384)),
        ((432, 768), 320, "stream", (192, 320)),
        ((500, 500), 640, "stream", (640, 640)),
    ],
)
def test_input_shape_follows_the_stream_aspect(frame_hw: tuple[int, int], imgsz: int, mode: str,
                                               expected: tuple[int, int]) -> None:
    from crowdwatch.detect.yolo import input_shape_for

    assert input_shape_for(frame_hw, imgsz, mode) == expected


def yolo_output(rows: list[tuple[float, float, float, float, int, float]],
                classes: int = 80) -> np.ndarray:
    """A (4 + classes, N) YOLO output: one column per (cx, cy, w, h, class, score) row."""
    out = np.zeros((4 + classes, len(rows)), np.float32)
    for i, (cx, cy, w, h, cls, score) in enumerate(rows):
        out[:4, i] = cx, cy, w, h
        out[4 + cls, i] = score
    return out


@pytest.mark.parametrize(
    ("rows", "extra", "max_det", "expected"),
    [
        # One person: centre/size to corners.
        ([(50, 50, 20, 40, 0, 0.9)], None, 10, [(40, 30, 60, 70, 0.9)]),
        # Below the confidence threshold.
        ([(50, 50, 20, 40, 0, 0.2)], None, 10, []),
        # A bus is not a person.
        ([(50, 50, 20, 40, 5, 0.9)], None, 10, []),
        # Person score above threshold, but the box's best class is another: dropped, as in
        # ultralytics (best class only, then the class filter).
        ([(50, 50, 20, 40, 0, 0.5)], (0, 2, 0.7), 10, []),
        # Two overlapping people: NMS keeps the more confident one.
        ([(50, 50, 20, 40, 0, 0.8), (51, 50, 20, 40, 0, 0.9)], None, 10, [(41, 30, 61, 70, 0.9)]),
        # Two apart: both kept, most confident first; max_det cuts after NMS.
        ([(50, 50, 20, 40, 0, 0.8), (150, 50, 20, 40, 0, 0.9)], None, 10,
         [(140, 30, 160, 70, 0.9), (40, 30, 60, 70, 0.8)]),
        ([(50, 50, 20, 40, 0, 0.8), (150, 50, 20, 40, 0, 0.9)], None, 1, [(140, 30, 160, 70, 0.9)]),
    ],
)
def test_decode_people_follows_ultralytics_rules(rows: list, extra: tuple | None, max_det: int,
                                                 expected: list) -> None:
    from crowdwatch.detect.yolo import decode_people

    output = yolo_output(rows)
    if extra is not None:
        column, cls, score = extra
        output[4 + cls, column] = score
    xyxy, scores = decode_people(output, confidence=0.3, iou=0.6, max_det=max_det)
    want = np.array(expected, np.float32).reshape(-1, 5)
    np.testing.assert_allclose(xyxy, want[:, :4])
    np.testing.assert_allclose(scores, want[:, 4])
    assert xyxy.dtype == np.float32 and scores.dtype == np.float32


@pytest.mark.parametrize(
    ("backend", "is_dir", "expected"),
    [
        ("auto", True, "openvino"),
        ("auto", False, "ultralytics"),
        ("ultralytics", True, "ultralytics"),
        ("openvino", True, "openvino"),
    ],
)
def test_auto_backend_picks_openvino_for_openvino_folders(tmp_path: Path, backend: str,
                                                          is_dir: bool, expected: str) -> None:
    from crowdwatch.config import DetectorConfig
    from crowdwatch.detect.backends import choose_backend

    path = openvino_folder(tmp_path) if is_dir else tmp_path / "m.pt"
    assert choose_backend(DetectorConfig(backend=backend), path) == expected


# --- the real model: OpenVINO backend against the ultralytics reference -----------------------


def real_frames(sample_clip: Path) -> list[np.ndarray]:
    """bus.jpg and every 40th frame of the bundled PETS clip."""
    import cv2
    from ultralytics.utils import ASSETS

    frames = [cv2.imread(str(ASSETS / "bus.jpg"))]
    capture = cv2.VideoCapture(str(sample_clip))
    index = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        if index % 40 == 0:
            frames.append(image)
        index += 1
    capture.release()
    return frames


@pytest.fixture(scope="module")
def detectors(model_path: Path) -> dict[str, object]:
    from crowdwatch.config import DetectorConfig
    from crowdwatch.detect import create_detector

    def make(**settings: str) -> Detector:
        return create_detector(DetectorConfig(model=str(model_path), **settings))

    return {"ultralytics": make(backend="ultralytics", input_shape="square"),
            "openvino_square": make(backend="openvino", input_shape="square"),
            "openvino_stream": make(backend="openvino", input_shape="stream")}


def matched_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of each box in a with its best match in b (both sides have the same count)."""
    from crowdwatch.tools.scoring import box_iou

    return box_iou(a, b).max(axis=1) if len(a) else np.ones(0)


def test_openvino_backend_matches_ultralytics_at_the_same_input(detectors: dict,
                                                                sample_clip: Path) -> None:
    reference, fast = detectors["ultralytics"], detectors["openvino_square"]
    assert fast.name == "openvino"
    for image in real_frames(sample_clip):
        expected, got = detect(reference, image), detect(fast, image)
        assert len(got) == len(expected)
        assert np.all(matched_iou(expected.xyxy, got.xyxy) > 0.9)
        np.testing.assert_allclose(np.sort(got.confidence), np.sort(expected.confidence),
                                   atol=0.02)


def test_stream_shaped_input_finds_the_same_people(detectors: dict, sample_clip: Path) -> None:
    # A different input size changes the boxes a little, not who is found.
    square, stream = detectors["openvino_square"], detectors["openvino_stream"]
    for image in real_frames(sample_clip):
        a, b = detect(square, image), detect(stream, image)
        assert abs(len(a) - len(b)) <= 1
        if len(a) == len(b):
            assert np.median(matched_iou(a.xyxy, b.xyxy)) > 0.8


def test_submit_from_many_threads_gives_each_its_own_result(detectors: dict,
                                                            sample_clip: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    detector = detectors["openvino_stream"]
    frames = real_frames(sample_clip)
    expected = [detect(detector, f) for f in frames]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda f: detector.submit(f).result(), frames * 3))
    for i, detections in enumerate(got):
        np.testing.assert_array_equal(detections.xyxy, expected[i % len(frames)].xyxy)
    batch = detect_all(detector, frames)
    assert [len(d) for d in batch] == [len(d) for d in expected]


def test_fixed_shape_model_is_reshaped_to_the_stream(model_path: Path) -> None:
    import openvino as ov

    from crowdwatch.detect.openvino import reshape_yolo_ir

    model = ov.Core().read_model(next(model_path.glob("*.xml")))
    reshape_yolo_ir(model, (384, 640))
    # 48x80 + 24x40 + 12x20 anchors.
    assert list(model.outputs[0].get_shape())[2] == 48 * 80 + 24 * 40 + 12 * 20
