"""`crowdwatch eval`: score counts (and line crossings) against ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from crowdwatch.cli.common import ModelOption, app, fail
from crowdwatch.errors import CrowdwatchError


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
    density: Annotated[bool, typer.Option(
        "--density", help="Points only: also score the density counter (the detector's "
        "density head): count MAE, RMSE and GAME(2) inside the ROI.")] = False,
) -> None:
    """Score counts and detections against ground truth; compare settings side by side."""
    from crowdwatch.config import load_config
    from crowdwatch.tools.evaluate import (
        EXIT_THRESHOLD,
        describe_setting,
        eval_config,
        evaluate,
        report_json,
        threshold_failures,
        write_report,
    )
    from crowdwatch.tools.groundtruth import load_ground_truth
    from crowdwatch.tools.headpoints import is_points_file
    from crowdwatch.tools.scoring import format_table
    from crowdwatch.tools.settings import BASELINE, BASELINE_HELP

    def log(message: str) -> None:
        typer.echo(f"crowdwatch: eval: {message}", err=True)

    if gt_format == "points" or (gt_format is None and is_points_file(gt)):
        if compare or max_zone_mae is not None:
            raise fail("head-point ground truth scores one setting over the whole frame: drop "
                       "--compare and --max-zone-mae, and run eval once per setting with --set")
        _eval_points(video, gt, roi, config_path, camera, model, list(changes or ()), name,
                     start_frame, max_frames, split, report, max_mae, density)
        return
    if roi is not None:
        raise fail("--roi applies to head-point ground truth (--gt-format points) only")
    if density:
        raise fail("--density applies to head-point ground truth (--gt-format points) only")
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
    if any(setting.name == BASELINE for setting in evaluation.settings):
        typer.echo(f"  ({BASELINE_HELP})")
    typer.echo("  precision/recall: boxes matched one-to-one at IoU >= 0.5\n")
    typer.echo(format_table([row.result for row in evaluation.report.rows]))
    if evaluation.flows:
        from crowdwatch.tools.flowscore import FLOW_BASELINE_HELP, format_flow

        typer.echo(f"\nline crossings (peers = {FLOW_BASELINE_HELP}):")
        typer.echo(format_flow(evaluation.flows))
    for failure in failures:
        typer.echo(f"crowdwatch: eval: FAILED: {failure}", err=True)
    if failures:
        raise typer.Exit(EXIT_THRESHOLD)


def _eval_points(video: Path, gt: Path, roi: str | None, config_path: Path | None,
                 camera: str | None, model: str | None, changes: list[str], name: str,
                 start_frame: int, max_frames: int | None, split: int | None,
                 report: Path | None, max_mae: float | None, density: bool = False) -> None:
    """`crowdwatch eval` against head points: count errors and point-matched detections
    (and, with density, the density counter's count errors and GAME(2))."""
    from crowdwatch.config import load_config
    from crowdwatch.tools.evaluate import EXIT_THRESHOLD, eval_config, write_report
    from crowdwatch.tools.headpoints import evaluate_points, format_points_table
    from crowdwatch.tools.settings import apply_overrides, parse_overrides

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
        density_row = None
        if density:
            from crowdwatch.tools.densityeval import evaluate_density

            density_row = evaluate_density(config, gt, roi, start_frame, max_frames)
        if report is not None:
            write_report(report, {"video": str(video), "gt": str(gt), "roi": roi,
                                  "config": None if config_path is None else str(config_path),
                                  "filter": evaluation.filter,
                                  "rows": [r.to_dict() for r in evaluation.rows],
                                  "density": None if density_row is None
                                  else density_row.to_dict(),
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
    if density_row is not None:
        typer.echo(f"\ndensity counter ({density_row.frames} frames, "
                   f"{density_row.seconds:.1f} s, no count filter): MAE {density_row.mae:.3f} "
                   f"RMSE {density_row.rmse:.3f} bias {density_row.bias:+.3f} "
                   f"GAME(2) {density_row.game2:.3f}")
    for failure in failures:
        typer.echo(f"crowdwatch: eval: FAILED: {failure}", err=True)
    if failures:
        raise typer.Exit(EXIT_THRESHOLD)
