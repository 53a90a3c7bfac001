"""`crowdwatch check`: everything `run` would reject before its first frame."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crowdwatch.cli.common import app, fail
from crowdwatch.config import AppConfig, load_config
from crowdwatch.errors import CrowdwatchError


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
        from crowdwatch.density.serve import counting_detector

        # Found, intact and loadable by its backend, with the density head where asked.
        counting_detector(loaded)
    except CrowdwatchError as error:
        raise fail(str(error)) from None
    for warning in warnings:
        typer.echo(f"crowdwatch: warning: {warning}", err=True)
    zones = sum(len(c.zones) for c in loaded.cameras)
    typer.echo(f"{config}: ok ({len(loaded.cameras)} camera(s), {zones} zone(s))")


def _check_cameras(config: AppConfig, probe: bool) -> list[str]:
    """CrowdwatchError for what would stop `run`; the zone problems a first frame shows."""
    from crowdwatch.analytics.lines import build_lines
    from crowdwatch.analytics.scene import check_lines_in_frame
    from crowdwatch.analytics.zones import (
        build_zones,
        check_geometry,
        check_zones_in_frame,
        zone_frame_problems,
    )
    from crowdwatch.sources import open_source, source_kind
    from crowdwatch.web.access import check_web_config

    check_geometry(config)
    check_web_config(config.web)  # what run refuses when the page starts
    warnings = []
    for index, camera in enumerate(config.cameras):
        kind, _ = source_kind(camera.source)  # missing file, bad URL: no connection made
        if kind in ("device", "stream") and not probe:
            continue
        source = open_source(camera)
        try:
            frame = source.read(camera.read_timeout_s if source.live else 30.0)
            why = source.why
        finally:
            source.close()
        if frame is None:
            # --probe asked for a frame: none is a failure, as run would never count.
            raise CrowdwatchError(f"camera {camera.id}: no frame within "
                                  f"{camera.read_timeout_s:g} s" + (f" ({why})" if why else ""))
        where = f"cameras[{index}]"
        build_zones(camera, frame.width, frame.height)
        check_zones_in_frame(camera, where, frame.width, frame.height)
        check_lines_in_frame(build_lines(camera.lines, frame.width, frame.height), where,
                             frame.width, frame.height)
        warnings.extend(zone_frame_problems(camera, frame.width, frame.height))
    return warnings
