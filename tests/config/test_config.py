from __future__ import annotations

from pathlib import Path

import pytest

from crowdwatch.config import AppConfig, load_config, parse_config, quick_config
from crowdwatch.errors import ConfigError

SQUARE = [[0, 0], [10, 0], [10, 10], [0, 10]]


def camera(**zone: object) -> dict:
    return {"cameras": [{"id": "cam", "source": "x.mp4",
                         "zones": [{"name": "z", "polygon": SQUARE, **zone}]}]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "cameras: is required"),
        ({"cameras": []}, "cameras: List should have at least 1 item"),
        (camera(polygon=[[0, 0], [1, 1]]), "cameras[0].zones[0].polygon: needs at least 3 points, got 2"),
        (camera(polygon=[[0, 0], [1, 1], [1, 0], [0, 1]]), "cameras[0].zones[0].polygon: is not a simple polygon"),
        (camera(polygon=[[0, 0], [1, 1], [2, 2]]), "cameras[0].zones[0].polygon: is not a simple polygon"),
        (camera(polygon=[[0, 0], [float("nan"), 1], [2, 0]]), "is not a finite number"),
        (camera(polygon=[[0, 0], [1e9, 1], [2, 0]]), "out of range"),
        (camera(capacity=0), "cameras[0].zones[0].capacity: Input should be greater than or equal to 1"),
        (camera(area_m2=-1), "cameras[0].zones[0].area_m2: Input should be greater than 0"),
        (camera(normalized=True), "normalized coordinates must lie between 0 and 1"),
        (camera(colour="red"), "cameras[0].zones[0].colour: unknown key"),
        (camera(name=" padded"), "cameras[0].zones[0].name: must not start or end with a space"),
        (camera(name='say "hi"'), "cameras[0].zones[0].name: must not contain '\"'"),
        (camera(name="back\\slash"), "cameras[0].zones[0].name: must not contain '\\\\'"),
        (camera(name="tab\there"), "cameras[0].zones[0].name: must not contain '\\t'"),
        (camera(levels={"warning": 0.9, "critical": 0.5}), "critical (0.5) must be >= warning (0.9)"),
        ({**camera(), "detectr": {}}, "detectr: unknown key"),
        ({**camera(), "detector": {"confidence": 1.5}}, "detector.confidence: Input should be less than 1"),
        ({**camera(), "detector": {"imgsz": 650}}, "detector.imgsz: Input should be a multiple of 32"),
        ({**camera(), "metrics": {"port": 70000}}, "metrics.port: Input should be less than or equal to 65535"),
        ({**camera(), "counting": {"window_s": -0.1}}, "counting.window_s: Input should be greater than or equal to 0"),
        ({**camera(), "counting": {"window_s": 61}}, "counting.window_s: Input should be less than or equal to 60"),
        ({**camera(), "counting": {"window": 0}}, "counting.window: Input should be greater than or equal to 1"),
        ({**camera(), "counting": {"window": 3, "window_s": 0.2}},
         "counting: window (frames) and window_s (seconds) are both set; keep one"),
    ],
)
def test_invalid_configs_name_key_path_and_problem(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_duplicate_zone_and_camera_names_are_rejected() -> None:
    data = camera()
    data["cameras"][0]["zones"].append({"name": "z", "polygon": SQUARE})
    with pytest.raises(ConfigError, match=r"cameras\[0\].zones: .*repeated: z"):
        parse_config(data)
    data = camera()
    data["cameras"].append(dict(data["cameras"][0]))
    with pytest.raises(ConfigError, match="camera ids must be unique, repeated: cam"):
        parse_config(data)


@pytest.mark.parametrize(
    ("ground_plane", "message"),
    [
        ({"image_points": SQUARE[:3], "ground_points": SQUARE[:3]}, "needs at least 4 points, got 3"),
        ({"image_points": SQUARE, "ground_points": [*SQUARE, [5, 5]]}, "give one ground point per image point"),
    ],
)
def test_ground_plane_needs_four_matching_pairs(ground_plane: dict, message: str) -> None:
    data = camera()
    data["cameras"][0]["ground_plane"] = ground_plane
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_config(data)


def test_defaults_are_filled_in() -> None:
    config = parse_config(camera(capacity=3))
    assert config.detector.max_det > 300
    assert config.cameras[0].anchor == "bottom_center"
    assert config.cameras[0].zones[0].capacity == 3
    assert config.metrics.port == 9108
    # The count filter's window is a time; a fixed number of frames only when set.
    assert (config.counting.smoothing, config.counting.window_s, config.counting.window) == (
        "persistence", 0.2, None)


@pytest.mark.parametrize(
    ("counting", "window_s", "window"),
    [
        ({"window": 5}, 0.2, 5),  # a fixed window alone is no conflict
        ({"window_s": 0.5}, 0.5, None),
        ({"window_s": 0, "smoothing": "median"}, 0.0, None),
        ({"window_s": 60}, 60.0, None),
        ({"window": None, "window_s": 1}, 1.0, None),  # window: null is unset
    ],
)
def test_one_window_of_frames_or_seconds(counting: dict, window_s: float,
                                         window: int | None) -> None:
    config = parse_config({**camera(), "counting": counting})
    assert (config.counting.window_s, config.counting.window) == (window_s, window)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cameras: [", "YAML syntax error at line"),
        ("- just\n- a list\n", "must be a mapping"),
        ("", "must be a mapping"),
    ],
)
def test_load_config_reports_file_problems(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_quick_config_is_one_whole_frame_zone() -> None:
    config = quick_config("clip.mp4")
    assert isinstance(config, AppConfig)
    (cam,) = config.cameras
    assert cam.source == "clip.mp4"
    assert [z.name for z in cam.zones] == ["all"]
    assert cam.zones[0].normalized


def test_bundled_configs_are_valid() -> None:
    configs = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))
    assert configs, "configs/ holds the ready configs"
    for path in configs:
        assert load_config(path).cameras


def ignoring(*regions: dict) -> dict:
    return {"cameras": [{"id": "cam", "source": "x.mp4", "ignore": list(regions)}]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (ignoring({"polygon": [[0, 0], [1, 1]]}),
         "cameras[0].ignore[0].polygon: needs at least 3 points, got 2"),
        (ignoring({"polygon": SQUARE}, {"polygon": [[0, 0], [1, 1], [1, 0], [0, 1]]}),
         "cameras[0].ignore[1].polygon: is not a simple polygon"),
        (ignoring({"polygon": [[0, 0], [1, 1], [2, 2]]}), "cameras[0].ignore[0].polygon: is not"),
        (ignoring({"polygon": SQUARE, "normalized": True}),
         "cameras[0].ignore[0]: polygon: normalized coordinates must lie between"),
        (ignoring({"polygon": SQUARE, "kind": "mannequin"}), "cameras[0].ignore[0].kind: unknown key"),
        ({**ignoring(), "detector": {"tiling": {"mode": "always"}}}, "detector.tiling.mode: Input should be"),
        ({**ignoring(), "detector": {"tiling": {"zoom": 8}}}, "detector.tiling.zoom: Input should be less"),
    ],
)
def test_invalid_ignore_regions_and_tiling_name_key_path(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(data)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


# --- ${VAR} expansion and paths relative to the config file ----------------------------------

def _write(folder: Path, text: str) -> Path:
    path = folder / "site" / "crowdwatch.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_env_vars_expand_in_string_values_only(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from crowdwatch.config import load_config

    monkeypatch.setenv("CAM_PASSWORD", "p@ss w0rd")
    monkeypatch.setenv("CAM_HOST", "10.0.0.5")
    path = _write(tmp_path, "cameras:\n  - id: gate\n"
                  "    source: rtsp://viewer:${CAM_PASSWORD}@${CAM_HOST}:554/s\n"
                  "    zones: [{name: all, polygon: [[0, 0], [1, 0], [1, 1]], normalized: true}]\n")
    config = load_config(path)
    assert config.cameras[0].source == "rtsp://viewer:p@ss w0rd@10.0.0.5:554/s"


def test_a_missing_env_var_names_the_key_and_the_variable(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from crowdwatch.config import load_config

    monkeypatch.delenv("NOPE_PASSWORD", raising=False)
    path = _write(tmp_path, "cameras:\n  - id: gate\n    source: rtsp://u:${NOPE_PASSWORD}@h/s\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == (
        f"{path}: cameras[0].source: environment variable NOPE_PASSWORD is not set; "
        "export NOPE_PASSWORD=..., or write the value in the config")


@pytest.mark.parametrize(
    ("source", "model", "want_source", "want_model"),
    [
        ("clips/a.mp4", "yolo11n_int8_openvino_model", "{dir}/clips/a.mp4", "yolo11n_int8_openvino_model"),
        ("../clips/a.mp4", "weights/m.onnx", "{dir}/../clips/a.mp4", "{dir}/weights/m.onnx"),
        ("/abs/a.mp4", "/opt/m_openvino_model", "/abs/a.mp4", "/opt/m_openvino_model"),
        ("rtsp://h/s", "m.pt", "rtsp://h/s", "m.pt"),     # URLs and bare model names untouched
        ("rtsp:/broken", "m.pt", "rtsp:/broken", "m.pt"),  # left for the source's own error
        ("0", "m.pt", "0", "m.pt"),                       # a device index
    ],
)
def test_relative_paths_resolve_against_the_config_folder(
        tmp_path: Path, source: str, model: str, want_source: str, want_model: str) -> None:
    from crowdwatch.config import load_config

    path = _write(tmp_path, f"cameras:\n  - id: gate\n    source: '{source}'\n"
                  f"detector: {{model: '{model}'}}\n")
    config = load_config(path)
    folder = str(path.parent)
    assert str(config.cameras[0].source) == want_source.format(dir=folder)
    assert config.detector.model == want_model.format(dir=folder)


@pytest.mark.parametrize("name", ["Hall A", "Bahnhofstraße", "入口", "plaza-2.north:east", "Café (Süd)"])
def test_zone_names_may_be_any_printable_text(name: str) -> None:
    assert parse_config(camera(name=name)).cameras[0].zones[0].name == name


def test_unicode_zone_names_reach_metrics_as_utf8() -> None:
    from prometheus_client import generate_latest

    from crowdwatch.health import HealthState
    from crowdwatch.outputs.metrics import MetricsSink
    from crowdwatch.types import FrameResult, ZoneStats

    config = parse_config({"cameras": [{"id": "gate", "source": "x.mp4", "zones": [
        {"name": "入口", "polygon": SQUARE, "capacity": 3}]}]})
    sink = MetricsSink(config, HealthState(["gate"]))
    sink.write(FrameResult("gate", 0, 0.0, 0.0, 1, 1, zones={"入口": ZoneStats(1, 1)}))
    assert 'crowdwatch_zone_people{camera="gate",zone="入口"} 1.0' in generate_latest(
        sink.registry).decode("utf-8")
