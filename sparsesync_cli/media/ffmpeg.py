"""The one place avsync runs an ffmpeg binary (remuxing needs the command line's muxers).

Which binary: ``$AVSYNC_FFMPEG`` if set, else the static build the ``imageio-ffmpeg`` package
bundles (a dependency, so always there; a known, recent FFmpeg the tests run against), else
``ffmpeg`` on PATH. The bundled build comes first because distribution builds can be old: the
remux needs the ``noise`` bitstream filter's ``drop`` expression (FFmpeg >= 5), and FFmpeg 5.1
still misplaces a shifted Opus track in WebM by its 6.5 ms pre-skip and rounds MP4 edit lists to
milliseconds. Decoding never needs a binary (it uses PyAV's FFmpeg).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Sequence

from ..errors import MediaError

ABORT_POLL_SEC = 0.1  # how often a run that may be aborted looks whether it is
FFMPEG_ENV = "AVSYNC_FFMPEG"  # path of the ffmpeg binary to use, overriding the search
# ffmpeg's closing lines that only say THAT it failed; the line before them says why.
_GENERIC = re.compile(
    r"^(Conversion failed!|Exiting normally.*|Error opening output files?\b.*|Error initializing.*|"
    r"Could not write header.*|Error while opening encoder.*|Terminating thread.*|Nothing was written.*|"
    r"Task finished with error code.*|Error writing trailer.*|.*Unknown error occurred\.?|"
    r"Error sending frames to consumers.*|Error while filtering.*)$",
    re.IGNORECASE,
)
_SAYS_MOST = re.compile(r"^(Could not write header|Error (opening|initializing|while opening encoder)).*")
_PREFIX = re.compile(r"^\[[^\]]* @ 0x[0-9a-f]+\]\s*")  # "[mp4 @ 0x55d0c0ffee00] "


def find_ffmpeg() -> str:
    """The ffmpeg binary to run; MediaError saying how to get one if there is none."""
    override = os.environ.get(FFMPEG_ENV)
    if override:
        if shutil.which(override) is None:
            raise MediaError(f"{FFMPEG_ENV} points to {override!r}, which is not an executable")
        return override
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError, OSError) as exc:
        found = shutil.which("ffmpeg")
        if found:
            return found
        raise MediaError(
            "no ffmpeg binary found: `pip install imageio-ffmpeg` (bundles one), or install ffmpeg "
            f"(e.g. `apt install ffmpeg`, `brew install ffmpeg`), or set {FFMPEG_ENV} to its path ({exc})"
        ) from exc


# FFmpeg's error codes as its status lines print them ("error code: -1094995529"): a number no
# user can act on, replaced by what it means (libavutil/error.h tags, negated errno values).
_CODE = re.compile(r"\s*(?:with )?error code:?\s*(-?\d+)(?:\s*\([^)]*\))?")
_TAGS = {
    b"INDA": "invalid data found in the input",
    b"EOF ": "the input ends early",
    b"BSF ": "no such bitstream filter",
    b"DEC ": "no decoder for a stream",
    b"ENC ": "no encoder for a stream",
    b"MUX ": "no muxer for the output",
    b"PAWE": "a feature FFmpeg does not support",
    b"BUG!": "an internal FFmpeg error",
}


def describe_code(code: int) -> str:
    """What an FFmpeg error code means, in words."""
    tag = (-code).to_bytes(4, "little", signed=False) if -(2**32) < code < 0 else b""
    if tag in _TAGS:
        return _TAGS[tag]
    if -200 < code < 0:
        return os.strerror(-code).lower()
    return "an FFmpeg error"


def _readable(line: str) -> str:
    m = _CODE.search(line)
    if not m:
        return line
    return f"{line[: m.start()].rstrip(' :')}: {describe_code(int(m.group(1)))}".lstrip(": ")


def last_meaningful_line(stderr: str) -> str:
    """The line of ffmpeg's error output that says why it failed, error codes put in words."""
    lines = [_PREFIX.sub("", line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line]
    for line in reversed(lines):
        if not _GENERIC.match(line):
            return _readable(line)
    # Only status lines: the one about the output's header or codec says the most.
    header = [line for line in lines if _SAYS_MOST.match(line)]
    return _readable((header or lines)[-1 if not header else 0]) if lines else "no error message"


def run_ffmpeg(
    args: Sequence[str], path_for_errors: str | os.PathLike, *, abort: threading.Event | None = None
) -> list[str]:
    """Run ``ffmpeg <args>`` quietly; a failure becomes a MediaError naming the file and why.

    ``abort``: when it is set (by another thread: e.g. the input turned out damaged), ffmpeg is
    stopped and MediaError raised. Returns the full command that ran (for logs and results).
    """
    cmd = [find_ffmpeg(), "-hide_banner", "-nostdin", "-loglevel", "error", *args]
    try:
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace"
        )
    except OSError as exc:
        raise MediaError(f"cannot run {cmd[0]} ({exc})", path_for_errors) from exc
    with proc:
        while True:
            try:
                _, stderr = proc.communicate(timeout=ABORT_POLL_SEC if abort is not None else None)
                break
            except subprocess.TimeoutExpired:
                if abort is not None and abort.is_set():
                    proc.kill()
                    proc.communicate()
                    raise MediaError("ffmpeg was stopped", path_for_errors) from None
    if proc.returncode != 0:
        raise MediaError(f"ffmpeg failed: {last_meaningful_line(stderr)}", path_for_errors)
    return cmd
