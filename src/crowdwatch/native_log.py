"""What native libraries print on stderr (FFmpeg, libjpeg, OpenCV), in crowdwatch's format.

FFmpeg and libjpeg write straight to file descriptor 2, bypassing Python: raw lines such as
"[h264 @ 0x55d0...] error while decoding MB 35 13" would sit between crowdwatch's own
lines. install() points Python's sys.stderr at a copy of the real stderr and fd 2 at a pipe;
a thread reads the pipe and writes each line as `crowdwatch: warning: ffmpeg: ...`, the first
few of each kind, then only a count, summarised at exit.

Lines that say a frame was damaged (concealed decode errors) are counted in decode_errors():
a file read through OpenCV (one PyAV cannot open; PyAV says it per frame, sources/decode.py)
compares it before and after each read and skips a frame that did not decode whole, instead
of counting people in a smeared picture.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading
from collections import Counter

# "[h264 @ 0x55d08d085dc0] error while decoding MB 35 13, bytestream -7"
_FFMPEG = re.compile(r"^\[([\w.-]+) @ 0x[0-9a-fA-F]+\] (.*)$")
_OPENCV = re.compile(r"^\[ ?(WARN|ERROR|INFO|DEBUG)(?::\d+@[\d.]+)?\] ?(.*)$")
_LIBJPEG = ("Corrupt JPEG data", "Premature end of JPEG file", "Invalid JPEG file",
            "Not a JPEG file", "libpng ")
# Messages of a decoder that concealed damage: the frame is not the picture that was sent.
_DAMAGE = re.compile(r"error while decoding|concealing|corrupt|invalid nal|missing picture|"
                     r"co located|top block unavailable|left block unavailable|"
                     r"premature end|illegal|decode_slice", re.IGNORECASE)
SHOWN_PER_KIND = 3
# Numbers differ in every repeat of one message: "MB 35 13" and "MB 2 7" are one kind.
_DIGITS = re.compile(r"\d+")


class NativeStderr:
    """Reads fd 2 through a pipe; see the module docstring."""

    def __init__(self) -> None:
        self._real = os.dup(2)
        self.out = os.fdopen(os.dup(self._real), "w", buffering=1, encoding="utf-8",
                             errors="replace")
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self._pipe = os.fdopen(read_end, "rb", buffering=0)
        self._buffer = b""
        self._lock = threading.Lock()
        self._errors = 0
        self._seen: Counter[str] = Counter()
        self._thread = threading.Thread(target=self._loop, name="native stderr", daemon=True)
        self._thread.start()

    def decode_errors(self) -> int:
        """Damage messages so far, including any written before this call returned."""
        self.settle()
        return self._errors

    def settle(self) -> None:
        """Process what is in the pipe now (a native call that returned has written it)."""
        import select

        with self._lock:
            while select.select([self._pipe], [], [], 0)[0]:
                chunk = os.read(self._pipe.fileno(), 65536)
                if not chunk:
                    break
                self._take(chunk)

    def _loop(self) -> None:
        import select

        while True:
            try:
                ready = select.select([self._pipe], [], [], 0.2)[0]
            except (OSError, ValueError):
                return
            if ready:
                with self._lock:
                    # settle() may have read it meanwhile: never block holding the lock.
                    if not select.select([self._pipe], [], [], 0)[0]:
                        continue
                    try:
                        chunk = os.read(self._pipe.fileno(), 65536)
                    except OSError:
                        return
                    if not chunk:
                        return
                    self._take(chunk)

    def _take(self, chunk: bytes) -> None:
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            self._line(raw.decode("utf-8", "replace").rstrip("\r"))

    def _line(self, line: str) -> None:
        if not line.strip():
            return
        match = _FFMPEG.match(line)
        opencv = _OPENCV.match(line)
        if match:
            source, message = f"ffmpeg ({match.group(1)})", match.group(2)
        elif opencv:
            source, message = "opencv", opencv.group(2)
        elif line.startswith(_LIBJPEG):
            source, message = "libjpeg" if "JPEG" in line else "libpng", line
        else:
            source, message = "native", line
        if _DAMAGE.search(message):
            self._errors += 1
        kind = f"{source}: {_DIGITS.sub('N', message)}"
        self._seen[kind] += 1
        if self._seen[kind] <= SHOWN_PER_KIND:
            more = " (further ones counted, summarised at exit)" \
                if self._seen[kind] == SHOWN_PER_KIND else ""
            self.out.write(f"crowdwatch: warning: {source}: {message}{more}\n")

    def summary(self) -> list[str]:
        """One line per kind of message shown more often than SHOWN_PER_KIND times."""
        self.settle()
        return [f"{kind}: {count} times" for kind, count in sorted(self._seen.items())
                if count > SHOWN_PER_KIND]

    def close(self) -> None:
        """Print the summary and give fd 2 back."""
        lines = self.summary()
        for line in lines:
            self.out.write(f"crowdwatch: warning: {line}\n")
        self.out.flush()
        os.dup2(self._real, 2)


_installed: NativeStderr | None = None


def install() -> NativeStderr | None:
    """Route fd 2 through NativeStderr (once per process); Python's writes keep the real
    stderr. None where fd 2 cannot be replaced."""
    global _installed
    if _installed is None:
        try:
            sys.stderr.flush()
            _installed = NativeStderr()
        except OSError:
            return None
        sys.stderr = _installed.out
        atexit.register(_installed.close)
    return _installed


def decode_errors() -> int | None:
    """Damage messages seen so far; None when native stderr is not routed (tests, library)."""
    return None if _installed is None else _installed.decode_errors()
