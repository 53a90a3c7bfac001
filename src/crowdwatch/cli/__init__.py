"""Command line (typer only): one module per command (`run`, `check`, `zones`, `eval`,
`bench`), the shared pieces in common.py.

Commands parse options and print; the work happens in app.py and tools/. Heavy modules
(cv2, OpenVINO, torch) are imported inside the commands, so `--help` stays fast.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import typer

from crowdwatch.cli.common import app, fail
from crowdwatch.cli.run import _expected_total
from crowdwatch.sources import readers_stuck

__all__ = ["_expected_total", "app", "fail", "main"]

# Importing a command's module registers it on the app; --help lists them in this order.
for _command in ("run", "check", "zones", "evaluate", "bench"):
    importlib.import_module(f"crowdwatch.cli.{_command}")


def main() -> None:
    """Entry point: usage mistakes are one line and exit 1, like every other user error."""
    try:  # typer >= 0.16 vendors click; older ones use click itself
        from typer._click import exceptions as click_errors
    except ImportError:  # pragma: no cover
        from click import exceptions as click_errors  # type: ignore[no-redef]

    from crowdwatch import native_log

    # FFmpeg's and libjpeg's own stderr lines in crowdwatch's format (and damaged frames
    # noticed); before logging is set up, which then writes to the real stderr.
    native_log.install()
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
    if readers_stuck():
        # A camera reader stuck in a native read (a hung network stream) cannot be
        # interrupted. Normal interpreter shutdown would tear OpenCV down under it and abort
        # the process; everything is flushed and closed by now, so leave without it.
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


def _verbose_first(args: list[str]) -> list[str]:
    """-v/--verbose anywhere before a lone "--" counts, also after the subcommand."""
    end = args.index("--") if "--" in args else len(args)
    flags = [a for a in args[:end] if a in ("-v", "--verbose")]
    rest = [a for a in args[:end] if a not in ("-v", "--verbose")]
    return flags[:1] + rest + args[end:]


if __name__ == "__main__":
    main()
