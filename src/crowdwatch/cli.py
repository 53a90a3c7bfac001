"""Command line (typer only): `crowdwatch run`, `check`, `zones`, `eval` and `bench`.

Commands parse options and print; the work happens in app.py and tools/. Heavy modules
(cv2, OpenVINO, torch) are imported inside the commands, so `--help` stays fast.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from crowdwatch import __version__
from crowdwatch.config import AppConfig, load_config, quick_config
from crowdwatch.errors import CrowdwatchError
from crowdwatch.sources.urls import redact

app = typer.Typer(
    help="Count people in zones of camera streams and export the counts to Prometheus.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
log = logging.getLogger("crowdwatch")

ModelOption = Annotated[Optional[str], typer.Option(  # noqa: UP045 (typer needs Optional here)
    "--model", "-m", help="Detector model path or name (overrides the config; default: "
    "$CROWDWATCH_MODEL, else the config's model).")]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one error line (credentials redacted) and return the Exit to raise."""
    typer.echo(f"crowdwatch: error: {redact(message)}", err=True)
    return typer.Exit(code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"crowdwatch {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log source events.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    # One format for every line crowdwatch writes to stderr: "crowdwatch: <level>: message",
    # as fail() writes "crowdwatch: error: ...".
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_LowerLevelFormatter("crowdwatch: %(levelname)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, handlers=[handler])


class _LowerLevelFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        record = logging.makeLogRecord(record.__dict__)
        record.levelname = record.levelname.lower()
        return super().format(record)


def _load(config: Path | None, source: str | None, model: str | None) -> AppConfig:
    if (config is None) == (source is None):
        raise CrowdwatchError("give either --config FILE or --source PATH_OR_URL (not both)")
    if config is not None:
        loaded = load_config(config)
        if model:
            detector = loaded.detector.model_copy(update={"model": model})
            loaded = loaded.model_copy(update={"detector": detector})
        return loaded
    assert source is not None
    return quick_config(int(source) if source.isdigit() and not Path(source).exists() else source,
                        model)


@app.command()
def run(
    config: Annotated[Optional[Path], typer.Option(  # noqa: UP045 (typer needs Optional here)
        "--config", "-c", help="YAML config file.")] = None,
    source: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--source", "-s", help="Quick mode: one file, folder, device index or URL; "
        "the whole frame is one zone.")] = None,
    model: ModelOption = None,
    max_frames: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--max-frames", min=1, help="Stop each camera after N analysed frames.")] = None,
    events: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--events", "-e", help="Write one JSON line per frame to FILE ('-' for stdout).")] = None,
    metrics_port: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--metrics-port", min=0, max=65535, help="Port of /metrics (overrides the config).")
    ] = None,
    no_metrics: Annotated[bool, typer.Option(
        "--no-metrics", help="Do not serve /metrics.")] = False,
    keep_serving: Annotated[bool, typer.Option(
        "--keep-serving", help="Keep /metrics up after file sources end, until Ctrl-C.")] = False,
    realtime: Annotated[bool, typer.Option(
        "--realtime", help="Pace file sources at their own frame rate, like a camera.")] = False,
    save_video: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--save-video", help="Record each camera, annotated, to an H.264 MP4 in folder DIR "
        "(frames the encoder cannot take in time are skipped, never waited for).")] = None,
    web: Annotated[bool, typer.Option(
        "--web", help="Serve the live page (counts and previews) on the metrics port, plus "
        "the zone editor with --config; needs the token in $CROWDWATCH_TOKEN (or the "
        "config's web.token_env) when set.")] = False,
    blur_people: Annotated[bool, typer.Option(
        "--blur-people", help="Blur every detected person in previews, snapshots and "
        "recordings.")] = False,
) -> None:
    """Analyse the configured cameras and serve their counts on /metrics."""
    try:
        _run(config, source, model, max_frames, events, metrics_port, no_metrics, keep_serving,
             realtime, save_video, web, blur_people)
    except CrowdwatchError as error:
        raise fail(str(error)) from None


def _visual_options(config: AppConfig, save_video: Path | None, web: bool,
                    blur_people: bool, editor: bool) -> AppConfig:
    """The config with the command line's --save-video, --web and --blur-people applied."""
    update: dict[str, object] = {}
    recording = config.recording
    if save_video is not None:
        recording = recording.model_copy(update={"enabled": True, "directory": str(save_video)})
    if blur_people:
        recording = recording.model_copy(update={"blur_people": True})
    update["recording"] = recording
    page = config.web
    if web:
        page = page.model_copy(update={
            "enabled": True, "editor": editor or page.editor,
            "preview": page.preview.model_copy(update={"enabled": True})})
    if blur_people:
        page = page.model_copy(update={
            "preview": page.preview.model_copy(update={"blur_people": True})})
    update["web"] = page
    return config.model_copy(update=update)


def _run(config_path: Path | None, source: str | None, model: str | None,
         max_frames: int | None, events_path: str | None, metrics_port: int | None,
         no_metrics: bool, keep_serving: bool, realtime: bool, save_video: Path | None = None,
         web: bool = False, blur_people: bool = False) -> None:
    # Imports here keep `crowdwatch check` and `--help` free of the detector's start-up time.
    from tqdm import tqdm

    from crowdwatch.app import CallbackSink, RunOptions, build_app
    from crowdwatch.outputs.summary import SummarySink

    config = _load(config_path, source, model)
    if realtime:
        cameras = [c.model_copy(update={"realtime": True}) for c in config.cameras]
        config = config.model_copy(update={"cameras": cameras})
    config = _visual_options(config, save_video, web, blur_people, config_path is not None)
    if no_metrics:  # --no-metrics keeps the page (if any) but not the /metrics series
        config = config.model_copy(update={
            "metrics": config.metrics.model_copy(update={"enabled": False})})
    options = RunOptions(max_frames=max_frames, events=events_path, metrics_port=metrics_port,
                         serve=True, config_path=None if config_path is None
                         else str(config_path))
    running = build_app(config, options)
    pipeline = running.pipeline
    if running.url is not None:
        typer.echo(f"crowdwatch: metrics on {running.url}", err=True)
    if running.web_url is not None:
        typer.echo(f"crowdwatch: live page on {running.web_url}", err=True)
    if config.recording.enabled:
        typer.echo(f"crowdwatch: recording to {config.recording.directory}/", err=True)
    files_only = not any(w.source.live for w in pipeline.workers)
    progress = tqdm(total=_expected_total(pipeline.workers, max_frames), unit="frame",
                    disable=None if files_only else True, dynamic_ncols=True, file=sys.stderr)
    pipeline.attach(CallbackSink(lambda _result: progress.update(1)))
    summary = SummarySink()
    if files_only:
        pipeline.attach(summary)

    signalled = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        log.warning("%s received: stopping", signal.Signals(signum).name)
        signalled.set()
        pipeline.stop()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    started = time.perf_counter()
    try:
        pipeline.run()
        elapsed = time.perf_counter() - started
        running.finish_recordings()
        done = sum(pipeline.processed.values())
        progress.close()
        typer.echo(f"crowdwatch: analysed {done} frames in {elapsed:.1f} s "
                   f"({done / max(elapsed, 1e-9):.1f} frames/s)", err=True)
        for line in summary.lines():
            typer.echo(f"crowdwatch: {line}", err=True)
        if keep_serving and running.url is not None and not signalled.is_set():
            typer.echo("crowdwatch: sources ended; still serving /metrics until Ctrl-C", err=True)
            while not signalled.wait(0.5):
                pass
    finally:
        progress.close()
        running.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _expected_total(workers: list, max_frames: int | None) -> int | None:
    """Frames the run will analyse, for the progress bar's ETA; None when not known."""
    total = 0
    for worker in workers:
        count = getattr(worker.source, "expected_frames", None)
        if count is None and max_frames is None:
            return None
        total += min(c for c in (count, max_frames) if c is not None)
    return total


@app.command()
def check(
    config: Annotated[Path, typer.Argument(help="YAML config file.")],
    probe: Annotated[bool, typer.Option(
        "--probe", help="Also read one frame from live cameras (contacts them).")] = False,
) -> None:
    """Validate a config without running it: everything `run` rejects before its first frame.

    Reads the first frame of file sources (and of live ones with --probe) to check the zones
    against the frame size; never contacts a live camera otherwise.
    """
    try:
        loaded = load_config(config)
        warnings = _check_cameras(loaded, probe)
        from crowdwatch.detect import create_detector

        create_detector(loaded.detector)  # found, intact and loadable by its backend
    except CrowdwatchError as error:
        raise fail(str(error)) from None
    for warning in warnings:
        typer.echo(f"crowdwatch: warning: {warning}", err=True)
    zones = sum(len(c.zones) for c in loaded.cameras)
    typer.echo(f"{config}: ok ({len(loaded.cameras)} camera(s), {zones} zone(s))")


def _check_cameras(config: AppConfig, probe: bool) -> list[str]:
    """CrowdwatchError for what would stop `run`; the zone problems a first frame shows."""
    from crowdwatch.analytics.zones import build_zones, check_geometry, zone_frame_problems
    from crowdwatch.sources import open_source, source_kind

    check_geometry(config)
    warnings = []
    for camera in config.cameras:
        kind, _ = source_kind(camera.source)  # missing file, bad URL: no connection made
        if kind in ("device", "stream") and not probe:
            continue
        source = open_source(camera)
        try:
            frame = source.read(camera.read_timeout_s if source.live else 30.0)
        finally:
            source.close()
        if frame is None:
            warnings.append(f"camera {camera.id}: no frame within "
                            f"{camera.read_timeout_s:g} s; zones not checked")
            continue
        build_zones(camera, frame.width, frame.height)
        warnings.extend(zone_frame_problems(camera, frame.width, frame.height))
    return warnings


@app.command()
def zones(
    source: Annotated[str, typer.Option(
        "--source", "-s", help="Video file, device index or stream URL to take a frame from.")],
    config: Annotated[Path, typer.Option(
        "--config", "-c", help="YAML config file to edit (created with one camera if it does "
        "not exist; the previous version is kept as FILE.bak).")] = Path("crowdwatch.yaml"),
    camera: Annotated[Optional[str], typer.Option(  # noqa: UP045 (typer needs Optional here)
        "--camera", help="Camera of the config to edit (default: the one with this source, "
        "else the first).")] = None,
    port: Annotated[int, typer.Option(
        "--port", "-p", min=0, max=65535, help="Port of the editor on 127.0.0.1.")] = 8090,
) -> None:
    """Draw zones and lines on a frame of SOURCE in the browser and save them into the config
    (no counting runs). Needs the token in $CROWDWATCH_TOKEN when that is set."""
    try:
        if not config.exists() and not config.parent.is_dir():
            raise CrowdwatchError(f"folder {config.parent} does not exist; create it or pick "
                                  "another --config path")
        if config.exists():
            load_config(config)  # the editor writes only a file that validates
        from crowdwatch.web.ui import serve_editor

        try:
            server = serve_editor(source, config, camera=camera, port=port)
        except OSError as error:
            raise CrowdwatchError(f"cannot serve the editor on 127.0.0.1:{port} "
                                  f"({error.strerror}); pick another port with --port") from None
    except CrowdwatchError as error:
        raise fail(str(error)) from None
    typer.echo(f"crowdwatch: zone editor on {server.url}/editor (Ctrl-C to stop)", err=True)
    stopped = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stopped.set())
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not stopped.wait(0.5):
            pass
    finally:
        server.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@app.command("eval")
def eval_command(
    video: Annotated[Path, typer.Option("--video", help="Clip with ground truth (file or "
                                        "image folder); replaces the config's source.")],
    gt: Annotated[Path, typer.Option("--gt", help="Ground truth of the clip: MOT gt.txt, CVML "
                                     "XML, CSV (frame,id,x,y,w,h, 0-based frames) or head "
                                     "points (CSV frame,x,y: crowd datasets).")],
    gt_format: Annotated[Optional[str], typer.Option(  # noqa: UP045 (typer needs Optional)
        "--gt-format", help="One of mot, cvml, csv, points; detected when left out.")] = None,
    roi: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--roi", help="Points only: score inside this region, a mask image (white inside) "
        "or a polygon x,y;x,y;x,y in pixels; people outside it are left out on both "
        "sides.")] = None,
    config_path: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--config", "-c", help="YAML config: zones, detector and counting settings "
        "(default: the built-in defaults, whole frame only).")] = None,
    camera: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--camera", help="Camera of the config to use when it has several.")] = None,
    model: ModelOption = None,
    changes: Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
        "--set", help="Change the config's own setting: key=value[,key=value...], e.g. "
        "detector.iou=0.5 (--compare entries build on the result). Repeatable.")] = None,
    name: Annotated[str, typer.Option(
        "--name", help="Row name of the config's own setting.")] = "crowdwatch",
    compare: Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
        "--compare", help="Another setting to run, as NAME:key=value[,key=value...], e.g. "
        "conf35:detector.confidence=0.35 or m9:counting.window=9. Repeatable.")] = None,
    no_baseline: Annotated[bool, typer.Option(
        "--no-baseline", help="Leave out the raw-YOLO baseline row.")] = False,
    start_frame: Annotated[int, typer.Option(
        "--start-frame", min=0, help="Skip the clip's frames before this index.")] = 0,
    max_frames: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--max-frames", min=1, help="Analyse at most N frames.")] = None,
    split: Annotated[Optional[int], typer.Option(  # noqa: UP045
        "--split", min=1, help="Also score frames < N and >= N separately "
        "(e.g. a tuning half and a test half).")] = None,
    report: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--report", help="Write the full results as JSON to FILE.")] = None,
    max_mae: Annotated[Optional[float], typer.Option(  # noqa: UP045
        "--max-mae", min=0, help="Exit 3 if the config's own whole-frame count MAE (over all "
        "scored frames) is above this.")
    ] = None,
    max_zone_mae: Annotated[Optional[float], typer.Option(  # noqa: UP045
        "--max-zone-mae", min=0, help="Exit 3 if any zone's count MAE (config's own "
        "setting) is above this.")] = None,
) -> None:
    """Score counts and detections against ground truth; compare settings side by side."""
    from crowdwatch.config import load_config
    from crowdwatch.tools.evaluate import (
        BASELINE_HELP,
        EXIT_THRESHOLD,
        describe_setting,
        eval_config,
        evaluate,
        is_points_file,
        report_json,
        threshold_failures,
        write_report,
    )
    from crowdwatch.tools.groundtruth import load_ground_truth
    from crowdwatch.tools.scoring import format_table

    def log(message: str) -> None:
        typer.echo(f"crowdwatch: eval: {message}", err=True)

    if gt_format == "points" or (gt_format is None and is_points_file(gt)):
        if compare or max_zone_mae is not None:
            raise fail("head-point ground truth scores one setting over the whole frame: drop "
                       "--compare and --max-zone-mae, and run eval once per setting with --set")
        _eval_points(video, gt, roi, config_path, camera, model, list(changes or ()), name,
                     start_frame, max_frames, split, report, max_mae)
        return
    if roi is not None:
        raise fail("--roi applies to head-point ground truth (--gt-format points) only")
    try:
        truth = load_ground_truth(gt, gt_format)
        loaded = None if config_path is None else load_config(config_path)
        config = eval_config(loaded, video, camera, model)
        evaluation = evaluate(config, truth, compare or (), not no_baseline, start_frame,
                              max_frames, split, log=log, name=name, changes=changes or ())
        failures = threshold_failures(evaluation.report.result(), max_mae, max_zone_mae)
        document = report_json(evaluation, video, gt, config_path, failures)
        if report is not None:
            write_report(report, document)
    except CrowdwatchError as error:
        raise fail(str(error)) from None
    first, last = evaluation.report.frames
    typer.echo(f"{video}: frames {first}-{last} ({evaluation.report.scored} scored"
               + (f", {evaluation.report.unscored} beyond the ground truth not scored"
                  if evaluation.report.unscored else "") + ")")
    for setting in evaluation.settings:
        timed = evaluation.passes[setting.name].sequence
        typer.echo(f"  {describe_setting(setting, timed)}")
    if not no_baseline:
        typer.echo(f"  ({BASELINE_HELP})")
    typer.echo("  precision/recall: boxes matched one-to-one at IoU >= 0.5\n")
    typer.echo(format_table([row.result for row in evaluation.report.rows]))
    if evaluation.flows:
        from crowdwatch.tools.evaluate import FLOW_BASELINE_HELP, format_flow

        typer.echo(f"\nline crossings (peers = {FLOW_BASELINE_HELP}):")
        typer.echo(format_flow(evaluation.flows))
    for failure in failures:
        typer.echo(f"crowdwatch: eval: FAILED: {failure}", err=True)
    if failures:
        raise typer.Exit(EXIT_THRESHOLD)


def _eval_points(video: Path, gt: Path, roi: str | None, config_path: Path | None,
                 camera: str | None, model: str | None, changes: list[str], name: str,
                 start_frame: int, max_frames: int | None, split: int | None,
                 report: Path | None, max_mae: float | None) -> None:
    """`crowdwatch eval` against head points: count errors and point-matched detections."""
    from crowdwatch.config import load_config
    from crowdwatch.tools.evaluate import (
        EXIT_THRESHOLD,
        apply_overrides,
        eval_config,
        evaluate_points,
        format_points_table,
        parse_overrides,
        write_report,
    )

    try:
        loaded = None if config_path is None else load_config(config_path)
        config = eval_config(loaded, video, camera, model)
        for change in changes:
            config = apply_overrides(config, parse_overrides(change, "--set"), "--set")
        evaluation = evaluate_points(config, gt, roi, start_frame, max_frames, split,
                                     name=name)
        whole = evaluation.rows[0]
        failures = ([f"count MAE {whole.mae:.3f} > --max-mae {max_mae}"]
                    if max_mae is not None and whole.mae > max_mae else [])
        if report is not None:
            write_report(report, {"video": str(video), "gt": str(gt), "roi": roi,
                                  "config": None if config_path is None else str(config_path),
                                  "filter": evaluation.filter,
                                  "rows": [r.to_dict() for r in evaluation.rows],
                                  "failures": failures})
    except CrowdwatchError as error:
        raise fail(str(error)) from None
    typer.echo(f"{video}: frames {evaluation.first}-{evaluation.last}, "
               f"{evaluation.seconds:.1f} s")
    typer.echo("  count: people whose head point is in the ROI, through the count filter "
               f"({evaluation.filter})")
    typer.echo("  precision/recall: each head point matched one-to-one to a box whose upper "
               "40% holds it\n")
    typer.echo(format_points_table(evaluation.rows))
    for failure in failures:
        typer.echo(f"crowdwatch: eval: FAILED: {failure}", err=True)
    if failures:
        raise typer.Exit(EXIT_THRESHOLD)


@app.command("bench")
def bench_command(
    clip: Annotated[Optional[Path], typer.Option(  # noqa: UP045 (typer needs Optional here)
        "--clip", help="PETS2009 clip (default: $CROWDWATCH_PETS_DIR/vtest.avi, else "
        "samples/vtest_h264.mp4)")] = None,
    ground_truth: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--ground-truth", help="ground truth for count errors, any format `crowdwatch eval` "
        "reads (default: $CROWDWATCH_PETS_DIR/gt/PETS2009-S2L1.xml)")] = None,
    model: ModelOption = None,
    runs: Annotated[int, typer.Option(min=1, help="runs per setting (medians)")] = 3,
    frames: Annotated[int, typer.Option(min=2, help="frames per run and stream")] = 400,
    streams: Annotated[int, typer.Option(min=1, max=64,
                                         help="streams of the multi scenario")] = 4,
    live_frames: Annotated[int, typer.Option(min=2, help="frames of the live scenario")] = 150,
    scenario: Annotated[Optional[list[str]], typer.Option(  # noqa: UP045
        "--scenario", help="single, multi, live or capacity; repeat for several (default: "
        "single, multi and live)")] = None,
    cameras: Annotated[str, typer.Option(
        "--cameras", help="capacity scenario: live cameras per run, comma-separated")
    ] = "4,8,12,16",
    seconds: Annotated[float, typer.Option(
        min=1, max=3600, help="capacity scenario: seconds measured per run")] = 20.0,
    first_come: Annotated[bool, typer.Option(
        "--first-come", hidden=True, help="capacity scenario: also without fair sharing of "
        "the detector (detector.fair_share false), to show the difference")] = False,
    native_clip: Annotated[bool, typer.Option(
        "--native-clip", hidden=True, help="capacity scenario: serve --clip itself (an H.264 "
        "MP4) instead of a 1280x720 25 frames/s copy")] = False,
    cache_dir: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--cache-dir", help="where the generated clips are kept (default: "
        "$TMPDIR/crowdwatch-bench)")] = None,
    json_path: Annotated[Optional[Path], typer.Option(  # noqa: UP045
        "--json", help="also write the full report as JSON")] = None,
) -> None:
    """Measure frames/s, stage latency, memory and frame age against the ultralytics loop."""
    import json
    from dataclasses import asdict

    from crowdwatch.config import DetectorConfig
    from crowdwatch.detect.models import resolve_model
    from crowdwatch.tools.bench import (
        SCENARIOS,
        BenchOptions,
        default_clip,
        default_truth,
        format_report,
        run_bench,
    )

    try:
        counts = [int(v) for v in cameras.split(",") if v.strip()]
    except ValueError:
        raise fail(f"--cameras {cameras!r}: give whole numbers separated by commas, "
                   "e.g. --cameras 4,8,12") from None
    if not counts or not all(1 <= n <= 64 for n in counts):
        raise fail(f"--cameras {cameras!r}: each count must be 1-64, e.g. --cameras 4,8,12")
    for name in scenario or ():  # before the model is looked for
        if name not in SCENARIOS:
            raise fail(f"unknown scenario {name!r}; valid: {', '.join(SCENARIOS)}")
    try:
        clip = clip or default_clip()
        options = BenchOptions(
            clip=clip, model=str(resolve_model(model or DetectorConfig().model)),
            ground_truth=ground_truth or default_truth(clip), runs=runs, frames=frames,
            streams=streams, live_frames=live_frames,
            scenarios=scenario or ("single", "multi", "live"), cameras=counts, seconds=seconds,
            capacity_native=native_clip)
        if first_come:
            options.capacity_settings = {
                **options.capacity_settings,
                **{f"{name}, first come": {**overrides, "fair_share": False}
                   for name, overrides in options.capacity_settings.items()}}
        if cache_dir is not None:
            options.cache_dir = cache_dir
        started = time.monotonic()
        report = run_bench(options, log=lambda m: typer.echo(f"crowdwatch: bench: {m}",
                                                             err=True))
    except CrowdwatchError as error:
        raise fail(str(error)) from None
    typer.echo(format_report(report))
    typer.echo(f"(bench took {time.monotonic() - started:.0f} s)", err=True)
    if json_path is not None:
        json_path.write_text(json.dumps(asdict(report), indent=1), encoding="utf-8")




def main() -> None:
    """Entry point: usage mistakes are one line and exit 1, like every other user error."""
    try:  # typer >= 0.16 vendors click; older ones use click itself
        from typer._click import exceptions as click_errors
    except ImportError:  # pragma: no cover
        from click import exceptions as click_errors  # type: ignore[no-redef]

    argv = _verbose_first(sys.argv[1:])
    try:
        code = app(args=argv, prog_name="crowdwatch", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as error:  # bare `crowdwatch`: the help
        typer.echo(error.ctx.get_help() if error.ctx else "", err=True)
        code = 0
    except click_errors.UsageError as error:
        command = error.ctx.command_path if error.ctx else "crowdwatch"
        message = " ".join(error.format_message().split())
        typer.echo(f"crowdwatch: error: {message} (see {command} --help)", err=True)
        code = 1
    except typer.Abort:
        code = 130
    code = code if isinstance(code, int) else 0
    if _readers_blocked_in_native_code():
        # A camera reader stuck in a native read (a hung network stream) cannot be
        # interrupted. Normal interpreter shutdown would tear OpenCV down under it and abort
        # the process; everything is flushed and closed by now, so leave without it.
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


def _readers_blocked_in_native_code() -> bool:
    """A source's reader thread is still alive after the run closed every source."""
    return any(t.is_alive() and t.name.startswith("source ") for t in threading.enumerate())


def _verbose_first(args: list[str]) -> list[str]:
    """-v/--verbose anywhere before a lone "--" counts, also after the subcommand."""
    end = args.index("--") if "--" in args else len(args)
    flags = [a for a in args[:end] if a in ("-v", "--verbose")]
    rest = [a for a in args[:end] if a not in ("-v", "--verbose")]
    return flags[:1] + rest + args[end:]


if __name__ == "__main__":
    main()
