"""`crowdwatch eval` with a scripted detector on a tiny image-folder clip; settings and errors."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from crowdwatch.analytics.smoothing import make_smoother
from crowdwatch.cli import app
from crowdwatch.config import AppConfig, parse_config
from crowdwatch.detect.base import Detector, Done
from crowdwatch.errors import ConfigError, CrowdwatchError
from crowdwatch.tools.evaluate import (
    EXIT_THRESHOLD,
    eval_config,
    evaluate,
    threshold_failures,
    truth_zone_counts,
)
from crowdwatch.tools.groundtruth import GroundTruth, load_ground_truth
from crowdwatch.tools.headpoints import evaluate_points, is_points_file, load_roi, score_points
from crowdwatch.tools.points import load_points
from crowdwatch.tools.scoring import CountErrors, EvalResult
from crowdwatch.tools.settings import (
    BASELINE,
    BASELINE_OVERRIDES,
    apply_overrides,
    build_settings,
    parse_compare,
)
from crowdwatch.types import Detections, FrameResult

FRAMES = 12
WIDTH, HEIGHT = 200, 100
# Person A stands in the left half all along, person B in the right half for frames 0-5.
PERSON_A = [10, 10, 30, 90]
PERSON_B = [150, 10, 170, 90]
GHOST = [120, 10, 140, 90]
# The detector misses A in frame 3 and sees a ghost (right half) in frame 8.
MISSED_A = {3}
GHOST_FRAMES = {8}
TRUTH = [2] * 6 + [1] * 6
RAW = [2, 2, 2, 1, 2, 2, 1, 1, 2, 1, 1, 1]
LEFT_ZONE = {"name": "left", "polygon": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]], "normalized": True}


def scripted(index: int) -> Detections:
    """The detections described above; confidences fall with the box index."""
    boxes = []
    if index not in MISSED_A:
        boxes.append(PERSON_A)
    if index < 6:
        boxes.append(PERSON_B)
    if index in GHOST_FRAMES:
        boxes.append(GHOST)
    xyxy = np.array(boxes, np.float32).reshape(-1, 4)
    return Detections(xyxy, np.linspace(0.9, 0.5, len(xyxy)).astype(np.float32))


class ScriptedDetector(Detector):
    """Detects `scripted` people; each clip frame is filled with its own index."""

    name = "scripted"

    def submit(self, image: np.ndarray) -> Done:
        return Done(scripted(int(image[0, 0, 0])))

    def prepare(self, width: int, height: int) -> None:
        pass


class Factory:
    """A detect factory that counts the detection passes it is asked for."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, config: AppConfig) -> ScriptedDetector:
        self.calls += 1
        return ScriptedDetector()


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    folder = tmp_path / "clip"
    folder.mkdir()
    for i in range(FRAMES):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((HEIGHT, WIDTH, 3), i, np.uint8))
    return folder


def write_truth(path: Path, frames: int = FRAMES) -> Path:
    rows = ["frame,id,x,y,w,h"]
    for i in range(frames):
        for pid, (x1, y1, x2, y2) in ((1, PERSON_A), (2, PERSON_B)):
            if pid == 1 or i < 6:
                rows.append(f"{i},{pid},{x1},{y1},{x2 - x1},{y2 - y1}")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def truth(tmp_path: Path) -> GroundTruth:
    return load_ground_truth(write_truth(tmp_path / "gt.csv"))


def clip_config(clip: Path, smoothing: str = "none", window: int = 1) -> AppConfig:
    config = parse_config({"cameras": [{"id": "c", "source": str(clip), "zones": [LEFT_ZONE]}],
                           "counting": {"smoothing": smoothing, "window": window}})
    return eval_config(config, clip)


def errors(pred: list[int], truth: list[int]) -> tuple[float, float, float]:
    diff = np.array(pred) - np.array(truth)
    return float(np.abs(diff).mean()), float(diff.mean()), float((diff == 0).mean())


# --- scoring ---------------------------------------------------------------------------------


def test_scores_the_pipeline_counts_against_ground_truth(clip: Path, truth: GroundTruth) -> None:
    evaluation = evaluate(clip_config(clip), truth, ["m3:counting.smoothing=median,counting.window=3"],
                          baseline=False, detect_factory=Factory())
    raw = evaluation.report.result("crowdwatch")
    assert (raw.counts.mae, raw.counts.bias, raw.counts.exact) == pytest.approx(errors(RAW, TRUTH))
    # The zone misses A once; the ghost is in the right half.
    assert raw.zones["left"].mae == pytest.approx(1 / FRAMES)
    # 17 of 18 boxes match a person (the ghost does not), 17 of 18 people are found.
    assert raw.detection is not None
    assert (raw.detection.tp, raw.detection.fp, raw.detection.fn) == (17, 1, 1)
    smoothed = evaluation.report.result("m3")
    m3 = [2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1]  # the miss and the ghost vanish; B leaves late
    assert (smoothed.counts.mae, smoothed.counts.bias) == pytest.approx(errors(m3, TRUTH)[:2])
    assert smoothed.zones["left"].mae == 0


def test_settings_with_one_detector_share_one_detection_pass(clip: Path, truth: GroundTruth) -> None:
    factory = Factory()
    compare = ["m3:counting.smoothing=median,counting.window=3", "c5:detector.confidence=0.5"]
    evaluation = evaluate(clip_config(clip), truth, compare, baseline=True, detect_factory=factory)
    replayed = {name: p.replayed for name, p in evaluation.passes.items()}
    assert replayed == {"crowdwatch": False, "m3": True, "c5": False, BASELINE: False}
    assert factory.calls == 3


def test_a_replayed_setting_gets_what_its_own_detection_pass_gets(clip: Path, truth: GroundTruth) -> None:
    shared = evaluate(clip_config(clip), truth, ["m3:counting.smoothing=median,counting.window=3"],
                      baseline=False, detect_factory=Factory())
    alone = evaluate(clip_config(clip, "median", 3), truth, baseline=False, detect_factory=Factory())
    assert shared.passes["m3"].replayed and not alone.passes["crowdwatch"].replayed
    for a, b in zip(shared.passes["m3"].results, alone.passes["crowdwatch"].results, strict=True):
        assert (a.frame_index, a.people, a.people_raw, a.zones) == (b.frame_index, b.people, b.people_raw, b.zones)


@pytest.mark.parametrize(
    ("start", "max_frames", "split", "spans"),
    [
        (0, None, None, [(0, 11)]),
        (0, None, 6, [(0, 11), (0, 5), (6, 11)]),
        (4, 5, None, [(4, 8)]),
        (4, 5, 6, [(4, 8), (4, 5), (6, 8)]),
        # A split outside the analysed frames adds no rows.
        (0, 4, 6, [(0, 3)]),
    ],
)
def test_frame_range_and_split(clip: Path, truth: GroundTruth, start: int, max_frames: int | None,
                               split: int | None, spans: list[tuple[int, int]]) -> None:
    evaluation = evaluate(clip_config(clip), truth, baseline=False, start_frame=start,
                          max_frames=max_frames, split=split, detect_factory=Factory())
    assert [row.span for row in evaluation.report.rows] == spans
    whole = evaluation.report.result()
    first, last = spans[0]
    assert whole.counts.frames == last - first + 1
    assert whole.counts.mae == pytest.approx(errors(RAW[first:last + 1], TRUTH[first:last + 1])[0])


def test_frames_beyond_the_ground_truth_are_not_scored(clip: Path, tmp_path: Path) -> None:
    short = load_ground_truth(write_truth(tmp_path / "short.csv", frames=10))
    report = evaluate(clip_config(clip), short, baseline=False, detect_factory=Factory()).report
    assert (report.frames, report.scored, report.unscored) == ((0, 9), 10, 2)


def test_no_overlap_with_the_ground_truth_is_an_error(clip: Path, tmp_path: Path) -> None:
    short = load_ground_truth(write_truth(tmp_path / "short.csv", frames=4))
    with pytest.raises(CrowdwatchError, match="no analysed frame has ground truth"):
        evaluate(clip_config(clip), short, baseline=False, start_frame=5, detect_factory=Factory())


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name", "overrides"),
    [
        ("raw:counting.smoothing=none", "raw", {"counting.smoothing": "none"}),
        ("conf35:detector.confidence=0.35", "conf35", {"detector.confidence": 0.35}),
        ("m9:counting.smoothing=median, counting.window=9", "m9",
         {"counting.smoothing": "median", "counting.window": 9}),
        ("cpu-1:detector.threads=1", "cpu-1", {"detector.threads": 1}),
    ],
)
def test_parse_compare(text: str, name: str, overrides: dict[str, object]) -> None:
    assert parse_compare(text) == (name, overrides)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("detector.confidence=0.3", "expected NAME:key=value"),
        ("bad name:counting.window=3", "expected NAME:key=value"),
        ("x:counting.window", "'counting.window' is not key=value"),
        ("x:=3", "'=3' is not key=value"),
    ],
)
def test_parse_compare_rejects(text: str, fragment: str) -> None:
    with pytest.raises(CrowdwatchError, match=fragment.replace(".", r"\.")):
        parse_compare(text)


@pytest.mark.parametrize(
    ("overrides", "error", "fragment"),
    [
        ({"detector.conf": 0.3}, CrowdwatchError, "unknown key 'detector.conf' ('conf' is not a key of detector; valid: "),
        ({"counting": 3}, ConfigError, "counting: Input should be a valid dictionary"),
        ({"cameras.0.source": "x"}, CrowdwatchError, "unknown key 'cameras.0.source'"),
        ({"counting.window": 0}, ConfigError, "counting.window: Input should be greater than or equal to 1"),
        ({"counting.smoothing": "kalman"}, ConfigError, "unknown smoothing 'kalman'"),
    ],
)
def test_bad_overrides_are_one_line_errors(overrides: dict[str, object], error: type[Exception], fragment: str) -> None:
    config = parse_config({"cameras": [{"id": "c", "source": "x.mp4"}]})
    with pytest.raises(error) as raised:
        apply_overrides(config, overrides, "--compare x")
    message = str(raised.value)
    assert message.startswith("--compare x: ") and fragment in message and "\n" not in message


@pytest.mark.parametrize(
    ("counting", "overrides", "window_s", "window", "set_keys"),
    [
        # What the config left unset stays unset: smoothing, so an image folder stays raw.
        ({}, {"detector.iou": 0.5}, 0.2, None, set()),
        # A window of the other kind replaces the config's, not a conflict.
        ({"window_s": 0.5}, {"counting.window": 5}, 0.2, 5, {"window"}),
        ({"window": 5}, {"counting.window_s": 0.4}, 0.4, None, {"window_s"}),
        ({"window": 5, "smoothing": "median"}, {"counting.window": 7}, 0.2, 7, {"window", "smoothing"}),
    ],
)
def test_overrides_keep_unset_keys_unset(counting: dict, overrides: dict[str, object],
                                         window_s: float, window: int | None,
                                         set_keys: set[str]) -> None:
    config = parse_config({"cameras": [{"id": "c", "source": "x.mp4"}], "counting": counting})
    changed = apply_overrides(config, overrides, "--set").counting
    assert (changed.window_s, changed.window) == (window_s, window)
    assert changed.model_fields_set == set_keys


def test_overriding_both_windows_is_one_line_error() -> None:
    config = parse_config({"cameras": [{"id": "c", "source": "x.mp4"}]})
    with pytest.raises(ConfigError, match=r"^--set: counting: window \(frames\) and window_s "
                       r"\(seconds\) are both set; keep one"):
        apply_overrides(config, {"counting.window": 3, "counting.window_s": 0.3}, "--set")


def test_baseline_is_raw_yolo_at_ultralytics_defaults() -> None:
    config = parse_config({"cameras": [{"id": "c", "source": "x.mp4"}],
                           "detector": {"confidence": 0.4, "iou": 0.5},
                           "counting": {"smoothing": "median", "window": 9}})
    settings = build_settings(config, [], baseline=True)
    assert [s.name for s in settings] == ["crowdwatch", BASELINE]
    base = settings[1].config
    assert (base.detector.confidence, base.detector.iou, base.detector.imgsz) == (0.25, 0.7, 640)
    assert base.counting.smoothing == "none"
    assert base.detector.model == config.detector.model
    # Every baseline override the detector config knows is applied.
    for key, value in settings[1].overrides.items():
        section, _, name = key.partition(".")
        assert getattr(getattr(base, section), name) == value
    assert set(settings[1].overrides) <= set(BASELINE_OVERRIDES)


def test_set_changes_the_own_row_and_compare_entries_build_on_it(clip: Path, truth: GroundTruth) -> None:
    evaluation = evaluate(clip_config(clip), truth, ["m3:counting.window=3"], baseline=False,
                          detect_factory=Factory(), name="med9",
                          changes=["counting.smoothing=median", "counting.window=9"])
    own, m3 = evaluation.settings
    assert (own.name, own.config.counting.smoothing, own.config.counting.window) == ("med9", "median", 9)
    assert (m3.name, m3.config.counting.smoothing, m3.config.counting.window) == ("m3", "median", 3)
    assert evaluation.report.result().name == "med9"
    assert evaluation.report.result("m3").counts.mae == pytest.approx(1 / FRAMES)


def test_setting_names_must_be_unique() -> None:
    config = parse_config({"cameras": [{"id": "c", "source": "x.mp4"}]})
    with pytest.raises(CrowdwatchError, match="repeated: a"):
        build_settings(config, ["a:counting.window=3", "a:counting.window=5"], baseline=False)


def test_comparing_models_refuses_a_global_model_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROWDWATCH_MODEL", "/models/m")
    config = parse_config({"cameras": [{"id": "c", "source": "x.mp4"}]})
    with pytest.raises(CrowdwatchError, match="CROWDWATCH_MODEL is set"):
        build_settings(config, ["v8:detector.model=yolov8n"], baseline=False)


def test_eval_config_picks_one_camera_and_reads_the_clip(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    clip.touch()
    two = parse_config({"cameras": [{"id": "a", "source": 0, "realtime": True, "loop": True},
                                    {"id": "b", "source": 1}]})
    with pytest.raises(CrowdwatchError, match=r"several \(a, b\); choose one with --camera"):
        eval_config(two, clip)
    with pytest.raises(CrowdwatchError, match="--camera z: no such camera; the config has a, b"):
        eval_config(two, clip, "z")
    camera = eval_config(two, clip, "a").cameras
    assert [(c.id, c.source, c.realtime, c.loop) for c in camera] == [("a", str(clip), False, False)]
    with pytest.raises(CrowdwatchError, match="video not found"):
        eval_config(None, tmp_path / "missing.mp4")


# --- thresholds ------------------------------------------------------------------------------


def _result(mae: float, zones: dict[str, float], bias: float = 0.0,
            zone_bias: dict[str, float] | None = None) -> EvalResult:
    def e(value: float, lean: float) -> CountErrors:
        return CountErrors(mae=value, rmse=value, bias=lean, exact=0.5, frames=10)
    leans = zone_bias or {}
    return EvalResult("crowdwatch", e(mae, bias), None,
                      {z: e(v, leans.get(z, 0.0)) for z, v in zones.items()})


@pytest.mark.parametrize(
    ("max_mae", "max_zone_mae", "expected"),
    [
        (None, None, []),
        (0.30, 0.20, []),
        (0.25, None, ["crowdwatch: whole-frame count MAE 0.300 > threshold 0.250"]),
        (None, 0.15, ["crowdwatch: zone a count MAE 0.200 > threshold 0.150"]),
        (None, {"a": 0.2, "b": 0.05}, ["crowdwatch: zone b count MAE 0.100 > threshold 0.050"]),
        (None, {"c": 1.0}, ["crowdwatch: zone c has a threshold but is not in the config"]),
    ],
)
def test_threshold_failures(max_mae: float | None, max_zone_mae: float | dict[str, float] | None,
                            expected: list[str]) -> None:
    assert threshold_failures(_result(0.3, {"a": 0.2, "b": 0.1}), max_mae, max_zone_mae) == expected


@pytest.mark.parametrize(
    ("max_abs_bias", "max_zone_abs_bias", "expected"),
    [
        (None, None, []),
        # Bounds on |bias|, inclusive: +0.094 against 0.094 passes, against 0.083 fails.
        (0.094, {"a": 0.5, "b": 0.2}, []),
        (0.083, None, ["crowdwatch: whole-frame count bias +0.094 beyond ±0.083"]),
        # A negative lean is bounded the same way.
        (None, {"a": 0.49}, ["crowdwatch: zone a count bias -0.500 beyond ±0.490"]),
        (None, 0.15, ["crowdwatch: zone a count bias -0.500 beyond ±0.150",
                      "crowdwatch: zone b count bias +0.200 beyond ±0.150"]),
        (None, {"c": 1.0}, ["crowdwatch: zone c has a threshold but is not in the config"]),
    ],
)
def test_bias_threshold_failures(max_abs_bias: float | None,
                                 max_zone_abs_bias: float | dict[str, float] | None,
                                 expected: list[str]) -> None:
    result = _result(0.3, {"a": 0.6, "b": 0.3}, bias=0.094, zone_bias={"a": -0.5, "b": 0.2})
    assert threshold_failures(result, None, None, max_abs_bias, max_zone_abs_bias) == expected


# --- persistence smoothing (the strategy added for counting) ---------------------------------


@pytest.mark.parametrize(
    ("window", "stream", "expected"),
    [
        # One- and two-frame misses and ghosts never move the count.
        (3, [3, 3, 2, 3, 2, 2, 3, 4, 4, 3], [3, 3, 3, 3, 3, 3, 3, 3, 3, 3]),
        # A change that lasts comes through after `window` frames, to the nearest value seen.
        (3, [3, 3, 5, 6, 5, 5], [3, 3, 3, 3, 5, 5]),
        (2, [4, 2, 1, 1], [4, 4, 2, 1]),
        # Window 1 follows every change.
        (1, [1, 4, 2], [1, 4, 2]),
    ],
)
def test_persistence_smoothing(window: int, stream: list[int], expected: list[int]) -> None:
    smoother = make_smoother("persistence", window)
    assert [int(smoother.update(np.array([c]))[0]) for c in stream] == expected


def test_persistence_smoothing_works_per_element_and_restarts_on_new_shape() -> None:
    smoother = make_smoother("persistence", 2)
    out = [smoother.update(np.array(c)).tolist() for c in ([1, 5], [2, 5], [2, 4], [2, 5])]
    assert out == [[1, 5], [1, 5], [2, 5], [2, 5]]
    assert smoother.update(np.array([7, 7, 7])).tolist() == [7, 7, 7]


# --- command line ----------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    monkeypatch.setattr("crowdwatch.tools.replay.real_detect", Factory())
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["eval", *map(str, args)])


def _error_lines(result: object) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("crowdwatch: error:")]  # type: ignore[attr-defined]


def test_cli_prints_the_table_and_writes_the_report(cli: Callable[..., object], clip: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"cameras": [{"id": "c", "source": "x", "zones": [LEFT_ZONE]}],
                                  "counting": {"smoothing": "none"}}))
    report = tmp_path / "r.json"
    result = cli("--video", clip, "--gt", write_truth(tmp_path / "gt.csv"), "--config", config,
                 "--compare", "m3:counting.smoothing=median,counting.window=3", "--split", 6,
                 "--report", report)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("setting"))
    names = [re.split(r"\s{2,}", line.strip())[0] for line in lines[header + 1:]]
    assert names == ["crowdwatch", "zone left", "crowdwatch [0-5]", "zone left", "crowdwatch [6-11]",
                     "zone left"] + [n.replace("crowdwatch", "m3") for n in names[:6]] + \
                    [n.replace("crowdwatch", BASELINE) for n in names[:6]]
    document = json.loads(report.read_text())
    assert [s["name"] for s in document["settings"]] == ["crowdwatch", "m3", BASELINE]
    assert document["frames"] == {"first": 0, "last": 11, "scored": 12, "unscored": 0}
    first = document["results"][0]
    assert (first["setting"], first["frames"], first["whole"]) == ("crowdwatch", [0, 11], True)
    assert first["counts"]["mae"] == pytest.approx(errors(RAW, TRUTH)[0])
    assert document["failures"] == []


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--max-mae", "0.1"], EXIT_THRESHOLD, "FAILED: crowdwatch: whole-frame count MAE 0.167 > threshold 0.100"),
        (["--max-zone-mae", "0.05"], EXIT_THRESHOLD, "FAILED: crowdwatch: zone left count MAE 0.083 > threshold 0.050"),
        (["--max-mae", "0.2", "--max-zone-mae", "0.1"], 0, None),
    ],
)
def test_cli_thresholds_set_the_exit_code(cli: Callable[..., object], clip: Path, tmp_path: Path,
                                          args: list[str], code: int, message: str | None) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"cameras": [{"id": "c", "source": "x", "zones": [LEFT_ZONE]}],
                                  "counting": {"smoothing": "none"}}))
    result = cli("--video", clip, "--gt", write_truth(tmp_path / "gt.csv"), "--config", config,
                 "--no-baseline", *args)
    assert result.exit_code == code, result.stderr
    failed = [line for line in result.stderr.splitlines() if "FAILED" in line]
    assert failed == ([] if message is None else [f"crowdwatch: eval: {message}"])


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--video", "{tmp}/none.mp4", "--gt", "{gt}"], "none.mp4: video not found"),
        (["--video", "{clip}", "--gt", "{tmp}/none.csv"], "none.csv: file not found"),
        (["--video", "{clip}", "--gt", "{gt}", "--gt-format", "xml"], "unknown format 'xml'"),
        (["--video", "{clip}", "--gt", "{gt}", "--compare", "x:detector.conf=1"], "unknown key 'detector.conf'"),
        (["--video", "{clip}", "--gt", "{gt}", "--compare", "x:detector.iou=3"], "--compare x: detector.iou"),
        (["--video", "{clip}", "--gt", "{gt}", "--config", "{tmp}/none.yaml"], "config file not found"),
        (["--video", "{clip}", "--gt", "{gt}", "--set", "counting.windw=3"], "--set: unknown key 'counting.windw'"),
        (["--video", "{clip}", "--gt", "{gt}", "--set", "counting.window"], "'counting.window' is not key=value"),
        (["--video", "{clip}", "--gt", "{gt}", "--name", "a b"], "--name 'a b': use letters"),
    ],
)
def test_cli_user_mistakes_are_one_line(cli: Callable[..., object], clip: Path, tmp_path: Path,
                                        args: list[str], fragment: str) -> None:
    gt = write_truth(tmp_path / "gt.csv")
    result = cli(*(a.format(tmp=tmp_path, gt=gt, clip=clip) for a in args))
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = _error_lines(result)
    assert len(lines) == 1 and fragment in lines[0], result.stderr


# --- head-point ground truth -------------------------------------------------------------------
# Heads 5 px below each box top (boxes are 80 px tall: inside their upper 40 %).
HEAD_A, HEAD_B = (20.0, 15.0), (160.0, 15.0)
LEFT_HALF = "0,0;100,0;100,100;0,100"


def write_points(path: Path) -> Path:
    rows = ["frame,x,y"]
    for i in range(FRAMES):
        rows.append(f"{i},{HEAD_A[0]},{HEAD_A[1]}")
        if i < 6:
            rows.append(f"{i},{HEAD_B[0]},{HEAD_B[1]}")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize(
    ("roi", "split", "expected"),
    [
        # Whole frame: counts RAW against TRUTH (off by one in frames 3 and 8); the ghost
        # (frame 8) is the one unmatched box, A in frame 3 the one unmatched point; 18 each.
        (None, None, [("crowdwatch", 12, 2 / 12, 0.0, 17 / 18, 17 / 18)]),
        # Left half: only A on both sides; missed once (frame 3), no false box.
        (LEFT_HALF, None, [("crowdwatch", 12, 1 / 12, -1 / 12, 1.0, 11 / 12)]),
        # Split at 6: frames 0-5 hold the miss (A, frame 3), frames 6-11 the ghost (frame 8).
        (None, 6, [("crowdwatch", 12, 2 / 12, 0.0, 17 / 18, 17 / 18),
                   ("crowdwatch <6", 6, 1 / 6, -1 / 6, 1.0, 11 / 12),
                   ("crowdwatch >=6", 6, 1 / 6, 1 / 6, 6 / 7, 1.0)]),
    ],
)
def test_points_ground_truth_scores_counts_and_matches_in_the_roi(
        clip: Path, tmp_path: Path, roi: str | None, split: int | None,
        expected: list[tuple]) -> None:
    points = write_points(tmp_path / "points.csv")
    evaluation = evaluate_points(clip_config(clip), points, roi, split=split,
                                 detect_factory=Factory())
    got = [(r.name, r.frames, r.mae, r.bias, r.precision, r.recall) for r in evaluation.rows]
    assert [g[:2] for g in got] == [e[:2] for e in expected]
    assert np.allclose([g[2:] for g in got], [e[2:] for e in expected])


def test_points_count_goes_through_the_configured_filter(clip: Path, tmp_path: Path) -> None:
    # persistence 3 on RAW [2,2,2,1,2,2,1,1,2,1,1,1] holds 2 through the miss (3); B's
    # leaving (frame 6) is seen twice, then the ghost (8) breaks the run, so the count
    # turns 1 only at frame 11: frames 6-10 say 2 instead of 1.
    points = write_points(tmp_path / "points.csv")
    evaluation = evaluate_points(clip_config(clip, "persistence", 3), points,
                                 detect_factory=Factory())
    assert evaluation.rows[0].mae == pytest.approx(5 / 12)
    assert evaluation.rows[0].bias == pytest.approx(5 / 12)


@pytest.mark.parametrize(
    ("counting", "described", "mae"),
    [
        # An image folder has no frame times (the Mall frames): the defaults do not filter it,
        # as the pipeline does not: counts RAW (off by one in frames 3 and 8).
        ({}, "none", 2 / 12),
        ({"window": 3}, "none", 2 / 12),  # the smoothing is not set: a folder stays raw
        # A smoothing set with a window in seconds gets 1 frame: the folder's frame times
        # (FOLDER_FPS) are made up, 1 s would otherwise be 11 frames.
        ({"smoothing": "persistence"}, "persistence 1 frame (no frame times: set counting.window to filter)", 2 / 12),
        ({"smoothing": "persistence", "window_s": 1.0}, "persistence 1 frame (no frame times: set counting.window to filter)", 2 / 12),
        # A fixed window filters it: frames 6-10 say 2 instead of 1 (see the test above).
        ({"smoothing": "persistence", "window": 3}, "persistence 3 frames", 5 / 12),
    ],
)
def test_points_on_an_image_folder_filter_as_the_pipeline_does(
        clip: Path, tmp_path: Path, counting: dict, described: str, mae: float) -> None:
    config = parse_config({"cameras": [{"id": "c", "source": str(clip)}], "counting": counting})
    evaluation = evaluate_points(eval_config(config, clip), write_points(tmp_path / "points.csv"),
                                 detect_factory=Factory())
    assert evaluation.filter == described
    assert evaluation.rows[0].mae == pytest.approx(mae)


@pytest.mark.parametrize(
    ("fps", "mae"),
    [
        (10.0, 5 / 12),  # 0.2 s = 3 frames: the persistence 3 result above
        (2.0, 2 / 12),  # 0.2 s = 1 frame: the raw counts
    ],
)
def test_points_of_a_timed_clip_filter_over_a_time(tmp_path: Path, fps: float, mae: float) -> None:
    results = [FrameResult("c", i, i / fps, 0.0, 0, 0, detections=scripted(i))
               for i in range(FRAMES)]
    truth = load_points(write_points(tmp_path / "points.csv"))
    counting = parse_config({"cameras": [{"id": "c", "source": "c.mp4"}]}).counting
    rows = score_points(results, truth, None, counting, timed=True)
    assert rows[0].mae == pytest.approx(mae)


@pytest.mark.parametrize(
    ("header", "points"),
    [("frame,x,y", True), ("frame, x, y", True), ("frame,id,x,y,w,h", False), ("1,1,1", False)],
)
def test_points_files_are_told_by_their_header(tmp_path: Path, header: str, points: bool) -> None:
    path = tmp_path / "gt.csv"
    path.write_text(header + "\n0,1,2\n")
    assert is_points_file(path) is points


def test_roi_from_a_mask_image_and_from_a_polygon(tmp_path: Path) -> None:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    mask[:, :100] = 255
    cv2.imwrite(str(tmp_path / "roi.png"), mask)
    from_image = load_roi(str(tmp_path / "roi.png"), WIDTH, HEIGHT)
    from_polygon = load_roi(LEFT_HALF, WIDTH, HEIGHT)
    assert from_image.shape == from_polygon.shape == (HEIGHT, WIDTH)
    assert from_image[:, :100].all() and not from_image[:, 100:].any()
    assert (from_image == from_polygon).all()


@pytest.mark.parametrize(
    ("roi", "fragment"),
    [("0,0;1,1", "neither a mask image nor a polygon"), ("a,b;c,d;e,f", "neither a mask"),
     ("{small}", "mask is 20x10, the frames are 200x100")],
)
def test_bad_rois_are_one_line_errors(tmp_path: Path, roi: str, fragment: str) -> None:
    cv2.imwrite(str(tmp_path / "small.png"), np.zeros((10, 20), np.uint8))
    with pytest.raises(CrowdwatchError, match=re.escape(fragment)):
        load_roi(roi.format(small=tmp_path / "small.png"), WIDTH, HEIGHT)


def test_eval_cli_detects_points_and_prints_their_scores(cli, clip: Path, tmp_path: Path) -> None:
    points = write_points(tmp_path / "points.csv")
    result = cli("--video", clip, "--gt", points, "--roi", LEFT_HALF, "--set",
                 "counting.smoothing=none", "--max-mae", "0.05")
    assert result.exit_code == EXIT_THRESHOLD, result.output
    row = [line.split() for line in result.stdout.splitlines() if line.startswith("crowdwatch")]
    assert row == [["crowdwatch", "12", "0.083", "0.289", "-0.083", "1.000", "0.917"]]
    assert "through the count filter (none)" in result.stdout
    assert "count MAE 0.083 > --max-mae 0.05" in result.stderr


def test_eval_cli_rejects_an_roi_for_box_ground_truth(cli, clip: Path, tmp_path: Path) -> None:
    result = cli("--video", clip, "--gt", write_truth(tmp_path / "gt.csv"), "--roi", LEFT_HALF)
    assert result.exit_code == 1
    assert _error_lines(result) == [
        "crowdwatch: error: --roi applies to head-point ground truth (--gt-format points) only"]


@pytest.mark.parametrize("extra", [["--compare", "b:counting.window=5"], ["--max-zone-mae", "1"]])
def test_eval_cli_points_reject_what_they_cannot_score(cli, clip: Path, tmp_path: Path,
                                                       extra: list[str]) -> None:
    result = cli("--video", clip, "--gt", write_points(tmp_path / "points.csv"), *extra)
    assert result.exit_code == 1
    assert _error_lines(result) == [
        "crowdwatch: error: head-point ground truth scores one setting over the whole frame: "
        "drop --compare and --max-zone-mae, and run eval once per setting with --set"]


# --- zone ground truth: independent of the zone stage ----------------------------------------

# 200x100 image. Zone "left": pixels x 0-100 (normalized half); zone "band": y 40-60 in pixels.
# Boxes (xyxy):             feet (bottom centre)   centre
#   A [10, 10, 30, 50]      (20, 50): left, band   (20, 30): left
#   B [150, 20, 170, 100]   (160, 100): -          (160, 60): band (edge)
#   C [90, 0, 110, 40]      (100, 40): left (edge), band (edge)
TRUTH_BOXES = np.array([[10, 10, 30, 50], [150, 20, 170, 100], [90, 0, 110, 40]], np.float32)


@pytest.mark.parametrize("anchor", ["bottom_center", "center"])
def test_zone_truth_counts_annotated_feet_whatever_the_pipeline_anchor(anchor: str) -> None:
    camera = parse_config({"cameras": [{"id": "c", "source": "x.mp4", "anchor": anchor, "zones": [
        {"name": "left", "polygon": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]], "normalized": True},
        {"name": "band", "polygon": [[0, 40], [200, 40], [200, 60], [0, 60]]},
    ]}]}).cameras[0]
    truth = GroundTruth(frames={0: TRUTH_BOXES, 2: TRUTH_BOXES[1:2]}, num_frames=3)
    counts = truth_zone_counts(camera, truth, np.array([0, 1, 2]), 200, 100)
    # The truth is where the feet are, so a pipeline moved to centre anchors is judged on it.
    assert counts["left"].tolist() == [2, 0, 0]
    assert counts["band"].tolist() == [2, 0, 0]


def test_a_frame_counted_from_density_is_scored_by_its_map_inside_the_roi() -> None:
    from crowdwatch.detect.densitymap import DensityMap
    from crowdwatch.detect.yolo import Letterbox

    # 640x480 at a 480x640 input: 60x80 cells of 8x8 pixels, 0.01 people each.
    density = DensityMap(np.full((60, 80), 0.01, np.float32), Letterbox.fit((480, 640),
                                                                            (480, 640)))
    mask = np.zeros((480, 640), bool)
    mask[:240, :320] = True  # a quarter: 1200 cells, 12 people
    truth = {0: np.array([[10.0, 10.0]] * 10)}
    counting = parse_config({"cameras": [{"id": "c", "source": "c/"}],
                             "counting": {"smoothing": "none"}}).counting
    result = FrameResult("c", 0, None, 0.0, 12, 12, method="density", density=density)
    rows = score_points([result], truth, mask, counting, timed=False)
    assert rows[0].mae == pytest.approx(2.0)  # |12 - 10|
    boxes = FrameResult("c", 0, None, 0.0, 0, 0, density=density)  # boxes: none found
    assert score_points([boxes], truth, mask, counting, timed=False)[0].mae == pytest.approx(10)


def _uniform_map(frame_hw: tuple[int, int]) -> object:
    """0.01 people in each of a 480x640 input's 60x80 cells, the frame letterboxed in."""
    from crowdwatch.detect.densitymap import DensityMap
    from crowdwatch.detect.yolo import Letterbox

    return DensityMap(np.full((60, 80), 0.01, np.float32), Letterbox.fit(frame_hw, (480, 640)))


def test_frames_of_two_sizes_counted_from_density_each_count_their_own_frame() -> None:
    # ShanghaiTech's folders mix image sizes. Both frames fill the 4:3 input: 48 people each;
    # integrating the larger one over the first frame's rectangle would count a quarter (12).
    counting = parse_config({"cameras": [{"id": "c", "source": "c/"}],
                             "counting": {"smoothing": "none"}}).counting
    results = [FrameResult("c", i, None, 0.0, 0, 0, method="density", density=_uniform_map(hw))
               for i, hw in enumerate([(480, 640), (960, 1280)])]
    truth = {0: np.full((48, 2), 5.0), 1: np.full((48, 2), 5.0)}
    assert score_points(results, truth, None, counting, timed=False)[0].mae == pytest.approx(0.0)


def test_a_density_frame_of_another_size_than_the_roi_is_a_clear_error() -> None:
    counting = parse_config({"cameras": [{"id": "c", "source": "c/"}],
                             "counting": {"smoothing": "none"}}).counting
    result = FrameResult("c", 0, None, 0.0, 0, 0, method="density",
                         density=_uniform_map((960, 1280)))
    with pytest.raises(CrowdwatchError, match=r"--roi is 640x480 but frame 0 is 1280x960"):
        score_points([result], {0: np.zeros((0, 2))}, np.ones((480, 640), bool), counting,
                     timed=False)


def test_an_roi_over_a_folder_of_mixed_frame_sizes_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(FRAMES):
        size = (HEIGHT, WIDTH) if i < 6 else (2 * HEIGHT, 2 * WIDTH)
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((*size, 3), i, np.uint8))
    points = write_points(tmp_path / "points.csv")
    with pytest.raises(CrowdwatchError, match=rf"--roi is {WIDTH}x{HEIGHT} but frame 6 is "
                                              rf"{2 * WIDTH}x{2 * HEIGHT}"):
        evaluate_points(clip_config(folder), points, LEFT_HALF, detect_factory=Factory())
    # Without a region of interest the same folder is scored.
    assert evaluate_points(clip_config(folder), points, detect_factory=Factory()).rows
