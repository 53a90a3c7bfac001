"""Writing the config file for the zone editor: atomic, links never followed, comments kept.

A save writes a temporary file beside the config and renames it over (atomic), after
writing the previous content to FILE.bak the same way: a link planted at FILE.bak is
replaced, not followed. A config that is a symbolic link or read-only is not written.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark
from ruamel.yaml.tokens import CommentToken


class ConfigFileError(Exception):
    """The config file must not or cannot be written; the message names the fix."""


def _last_comment_slot(node: Any) -> tuple[dict[Any, Any], Any, int] | None:
    """Where ruamel keeps the comment after a node's last element: (ca.items, key, slot)."""
    if not isinstance(node, CommentedMap | CommentedSeq) or not node:
        return None
    key = list(node.keys())[-1] if isinstance(node, CommentedMap) else len(node) - 1
    value = node[key]
    if isinstance(value, CommentedMap | CommentedSeq) and value and not value.fa.flow_style():
        return _last_comment_slot(value)
    return node.ca.items, key, 2 if isinstance(node, CommentedMap) else 0


def delete_keeping_next_comment(seq: CommentedSeq, index: int) -> None:
    """del seq[index], keeping the comment lines above the next item: ruamel stores them
    on the deleted item's last line, and they would go with it."""
    carried = None
    slot = _last_comment_slot(seq[index])
    if slot is not None and index + 1 < len(seq):
        items, key, position = slot
        entry = items.get(key)
        token = entry[position] if entry and len(entry) > position else None
        if token is not None:
            own_line, _, rest = token.value.partition("\n")
            if rest.strip():
                carried = [line for line in rest.splitlines() if line.strip()]
                token.value = own_line + "\n"
    del seq[index]
    if carried:
        column = len(carried[0]) - len(carried[0].lstrip())
        entry = seq.ca.items.setdefault(index, [None, None, None, None])
        entry[1] = [CommentToken(line.strip() + "\n", CommentMark(column), None)
                    for line in carried] + (entry[1] or [])


def check_writable(path: Path) -> None:
    """ConfigFileError with the fix when the editor must not or cannot write `path`.

    A config that is a symbolic link is refused: writing through it would let whoever
    placed the link choose which file a save replaces; edit the target with --config."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(info.st_mode):
        raise ConfigFileError(f"{path} is a symbolic link; the editor writes only a regular "
                              f"file: start it with --config {os.path.realpath(path)}")
    if not info.st_mode & stat.S_IWUSR:
        # Root may replace a read-only file; the mode says its owner does not want that.
        raise ConfigFileError(f"{path} is read-only (mode {stat.S_IMODE(info.st_mode):04o}); "
                              "make it writable (chmod u+w) to save from the editor")


def write_with_backup(path: Path, text: str, backup: Path) -> None:
    """Write `text` to `path` and the previous content to `backup`, each atomically (a new
    file renamed over): a planted link at either name is replaced, never followed."""
    check_writable(path)
    try:
        if path.exists():
            _replace_with(backup, path.read_bytes(), path)
        _replace_with(path, text.encode("utf-8"), path if path.exists() else None)
    except OSError as error:
        raise ConfigFileError(f"cannot write {error.filename or path} "
                              f"({error.strerror or error}); the config folder must be "
                              "writable to save from the editor") from None


def _replace_with(target: Path, data: bytes, mode_of: Path | None) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode_of is not None:
            shutil.copymode(mode_of, tmp)
        # Atomic: readers see the old file or the new one, never a half-written one.
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
