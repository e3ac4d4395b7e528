"""Small helpers shared by the sync map and the HTML report: escaping, colours, time labels."""

from __future__ import annotations

import html
import math
import re
from typing import Any, TypeGuard

# viridis (matplotlib's default, by van der Walt and Smith): perceptually uniform, readable with
# the common colour-vision deficiencies and in greyscale. Ten evenly spaced stops from 0 to 1,
# interpolated linearly in between.
VIRIDIS = (
    "#440154",
    "#482878",
    "#3e4a89",
    "#31688e",
    "#26828e",
    "#1f9e89",
    "#35b779",
    "#6dcd59",
    "#b4de2c",
    "#fde725",
)

# Characters XML 1.0 forbids (most C0 controls) and lone surrogates (undecodable bytes in a file
# name, as os.fsdecode leaves them) cannot appear in an SVG or be encoded as UTF-8.
_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
# Nice spacings for time ticks, in seconds.
_TIME_STEPS_SEC = (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)


def finite(x: Any) -> TypeGuard[float]:
    """True for a real, finite number (not None, not a bool, not NaN or infinite)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def esc(text: object) -> str:
    """``text`` made safe for HTML and XML text and attribute values (quotes included)."""
    return html.escape(_BAD_XML.sub("\ufffd", str(text)), quote=True)


def palette_colour(v: float) -> str:
    """The viridis colour of ``v`` in [0, 1] (clamped) as ``#rrggbb``."""
    v = min(max(v, 0.0), 1.0) * (len(VIRIDIS) - 1)
    i = min(int(v), len(VIRIDIS) - 2)
    f = v - i
    a, b = VIRIDIS[i], VIRIDIS[i + 1]
    rgb = [round(int(a[k : k + 2], 16) * (1 - f) + int(b[k : k + 2], 16) * f) for k in (1, 3, 5)]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def nice_time_step(span_sec: float, max_ticks: int = 8) -> float:
    """The smallest nice tick spacing that puts at most ``max_ticks`` ticks on ``span_sec``."""
    for step in _TIME_STEPS_SEC:
        if span_sec / step <= max_ticks:
            return float(step)
    return float(_TIME_STEPS_SEC[-1] * (1 + int(span_sec / _TIME_STEPS_SEC[-1] / max_ticks)))


def fmt_time(t_sec: float, clock: bool) -> str:
    """``t_sec`` as a tick label: ``"12.5"`` (seconds), or ``"2:05"`` / ``"1:02:05"`` when ``clock``."""
    if not clock:
        return f"{t_sec:g}"
    s = round(t_sec)
    h, m, s = s // 3600, s // 60 % 60, s % 60
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def fmt_signed(v: float, digits: int = 2) -> str:
    """``+0.40`` / ``−1.20`` (a true minus sign) / ``0.00``."""
    if round(v, digits) == 0:
        return f"{0:.{digits}f}"
    return f"{v:+.{digits}f}".replace("-", "\u2212")


def middle_ellipsis(text: str, max_chars: int) -> str:
    """``text`` shortened in the middle with an ellipsis to at most ``max_chars`` characters."""
    if len(text) <= max_chars:
        return text
    keep = max(max_chars - 1, 2)
    return text[: (keep + 1) // 2] + "\u2026" + text[len(text) - keep // 2 :]
