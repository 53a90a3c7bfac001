"""Command line: `crowdwatch run`, `crowdwatch check`."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from crowdwatch import __version__
from crowdwatch.bench import bench_command
from crowdwatch.config import AppConfig, load_config, quick_config
from crowdwatch.errors import CrowdwatchError
from crowdwatch.evaluate import eval_command
from crowdwatch.sources import redact

app = typer.Typer(
    help="Count people in zones of camera streams and export the counts to Prometheus.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
log = logging.getLogger("crowdwatch")


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
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="crowdwatch: %(levelname)s: %(message)s")


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
    model: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "--model", "-m", help="Detector model path or name (overrides the config).")] = None,
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
) -> None:
    """Analyse the configured cameras and serve their counts on /metrics."""
    try:
        _run(config, source, model, max_frames, events, metrics_port, no_metrics, keep_serving,
             realtime)
    except CrowdwatchError as error:
        raise fail(str(error)) from None


def _run(config_path: Path | None, source: str | None, model: str | None,
         max_frames: int | None, events_path: str | None, metrics_port: int | None,
         no_metrics: bool, keep_serving: bool, realtime: bool) -> None:
    # Imports here keep `crowdwatch check` and `--help` free of torch's start-up time.
    from tqdm import tqdm

    from crowdwatch.detector import PersonDetector
    from crowdwatch.events import EventWriter
    from crowdwatch.metrics import MetricsExporter
    from crowdwatch.pipeline import Outputs, Pipeline, detector_function

    config = _load(config_path, source, model)
    if realtime:
        cameras = [c.model_copy(update={"realtime": True}) for c in config.cameras]
        config = config.model_copy(update={"cameras": cameras})
    detector = PersonDetector(config.detector)
    outputs = Outputs()
    # Sources open first, so a wrong path fails before anything is served or written.
    pipeline = Pipeline(config, detector_function(detector), outputs, max_frames)
    try:
        if events_path is not None:
            outputs.events = EventWriter(events_path)
        if not no_metrics and config.metrics.enabled:
            outputs.metrics = MetricsExporter(config)
            host = config.metrics.host
            port = config.metrics.port if metrics_port is None else metrics_port
            try:
                bound = outputs.metrics.start(host, port)
            except OSError as error:
                raise CrowdwatchError(
                    f"cannot serve metrics on {host}:{port} ({error.strerror}); "
                    "pick another port with --metrics-port"
                ) from None
            typer.echo(f"crowdwatch: metrics on http://{host}:{bound}/metrics", err=True)
    except BaseException:
        pipeline.close()
        if outputs.events is not None:
            outputs.events.close()
        raise
    files_only = not any(w.source.live for w in pipeline.workers)
    total = max_frames * len(config.cameras) if max_frames else None
    progress = tqdm(total=total, unit="frame", disable=None if files_only else True,
                    dynamic_ncols=True, file=sys.stderr)
    outputs.on_frame = lambda _result: progress.update(1)

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
        done = sum(pipeline.processed.values())
        progress.close()
        typer.echo(f"crowdwatch: analysed {done} frames in {elapsed:.1f} s "
                   f"({done / max(elapsed, 1e-9):.1f} frames/s)", err=True)
        if keep_serving and outputs.metrics is not None and not signalled.is_set():
            typer.echo("crowdwatch: sources ended; still serving /metrics until Ctrl-C", err=True)
            while not signalled.wait(0.5):
                pass
    finally:
        progress.close()
        if outputs.events is not None:
            outputs.events.close()
        if outputs.metrics is not None:
            outputs.metrics.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@app.command()
def check(config: Annotated[Path, typer.Argument(help="YAML config file.")]) -> None:
    """Validate a config file without running it."""
    from crowdwatch.detector import resolve_model
    from crowdwatch.zones import build_zones

    try:
        loaded = load_config(config)
        for camera in loaded.cameras:
            if not any(z.normalized for z in camera.zones):
                build_zones(camera, 1, 1)  # pixel zones: checks their ground areas now
    except CrowdwatchError as error:
        raise fail(str(error)) from None
    zones = sum(len(c.zones) for c in loaded.cameras)
    typer.echo(f"{config}: ok ({len(loaded.cameras)} camera(s), {zones} zone(s))")
    try:
        resolve_model(loaded.detector.model)
    except CrowdwatchError as error:
        typer.echo(f"crowdwatch: warning: {error}", err=True)


app.command("bench")(bench_command)
app.command("eval")(eval_command)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
