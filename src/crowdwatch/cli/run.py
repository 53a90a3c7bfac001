"""`crowdwatch run`: the command line's additions to the config, a progress bar and the
summary; app.run_app runs it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from crowdwatch.cli.common import ModelOption, _load, app, fail
from crowdwatch.config import AppConfig
from crowdwatch.errors import CrowdwatchError


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

    from crowdwatch.app import CallbackSink, RunOptions, RunReport, build_app, run_app
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
    from crowdwatch.detect.integrity import loaded_model

    if (model_used := loaded_model()) is not None:
        typer.echo(f"crowdwatch: model {model_used.path} (sha256 {model_used.short})", err=True)
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

    def finished(report: RunReport) -> None:
        progress.close()
        typer.echo(f"crowdwatch: analysed {report.frames} frames in {report.seconds:.1f} s "
                   f"({report.frames / max(report.seconds, 1e-9):.1f} frames/s)", err=True)
        for line in summary.lines():
            typer.echo(f"crowdwatch: {line}", err=True)

    try:
        run_app(running, keep_serving, finished,
                say=lambda message: typer.echo(f"crowdwatch: {message}", err=True))
    finally:
        progress.close()
    lost = running.losses()
    if lost:  # counting went on; the run still did not deliver everything it was asked to
        raise CrowdwatchError("outputs lost data: " + "; ".join(lost))


def _expected_total(workers: list, max_frames: int | None) -> int | None:
    """Frames the run will analyse, for the progress bar's ETA; None when not known."""
    total = 0
    for worker in workers:
        count = worker.source.expected_frames
        if count is None and max_frames is None:
            return None
        total += min(c for c in (count, max_frames) if c is not None)
    return total
