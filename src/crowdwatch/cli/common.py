"""What every command shares: the typer app, one-line errors, the logging format, --model
and the config a command runs (a file or quick mode)."""

from __future__ import annotations

import logging
import sys
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
    if not source.strip():
        raise CrowdwatchError("--source is empty; give a video file, image folder, device "
                              "index or stream URL")
    return quick_config(int(source) if source.isdigit() and not Path(source).exists() else source,
                        model)
