"""Timestamp arithmetic shared by the decoders: exact, in integers, rounded as FFmpeg rounds.

Every timestamp in a container is an integer count of its stream's time base. We convert them to
the 25 fps frame grid and the 16 kHz sample grid with exact rational arithmetic and FFmpeg's
default rounding (``AV_ROUND_NEAR_INF``: to nearest, halves away from zero), so a frame lands on
the same grid index as under ffmpeg's ``fps=25`` filter and no float error accumulates over an
hour-long file.
"""

from __future__ import annotations

from fractions import Fraction

MICROSECOND = Fraction(1, 1_000_000)  # FFmpeg's AV_TIME_BASE, the unit of container start/duration

# AVFMT_TS_DISCONT: formats whose timestamps have no fixed origin (MPEG-TS, MPEG-PS). Their clock
# starts wherever the broadcaster's counter was, so file time 0 is the container's start time.
TS_DISCONT_FLAG = 0x0200


def rescale(value: int, src: Fraction, dst: Fraction) -> int:
    """``value * src / dst`` rounded to nearest with halves away from zero (FFmpeg's default)."""
    num = value * src.numerator * dst.denominator
    den = src.denominator * dst.numerator
    q, r = divmod(abs(num), den)
    if 2 * r >= den:
        q += 1
    return q if num >= 0 else -q


def rescale_floor(value: int, src: Fraction, dst: Fraction) -> int:
    """``value * src / dst`` rounded towards minus infinity."""
    return (value * src.numerator * dst.denominator) // (src.denominator * dst.numerator)


def grid_index(pts: int, time_base: Fraction, origin: int, rate: int) -> int:
    """Index on a ``rate`` Hz grid of the timestamp ``pts`` (file time ``(pts - origin) * time_base``)."""
    return rescale(pts - origin, time_base, Fraction(1, rate))


def origin_in(time_base: Fraction, origin_us: int) -> int:
    """The file-time origin (in microseconds) expressed in ``time_base``, rounded like ffmpeg does."""
    return rescale(origin_us, MICROSECOND, time_base)


def from_seconds(t_sec: float, time_base: Fraction, origin: int = 0) -> int:
    """The timestamp (in ``time_base``, rounded down) of file time ``t_sec``."""
    return rescale_floor(1, Fraction(t_sec), time_base) + origin
