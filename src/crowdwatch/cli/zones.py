"""`crowdwatch zones`: the zone editor on a frame of a source."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from crowdwatch.cli.common import app, fail
from crowdwatch.config import load_config
from crowdwatch.errors import CrowdwatchError


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
