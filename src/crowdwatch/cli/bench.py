"""`crowdwatch bench`: frames/s, stage latency, memory and frame age."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from crowdwatch.cli.common import ModelOption, app, fail
from crowdwatch.errors import CrowdwatchError


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
        run_bench,
    )
    from crowdwatch.tools.bench_report import format_report

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
