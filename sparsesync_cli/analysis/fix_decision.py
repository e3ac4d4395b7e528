"""Deciding whether a measured offset is safe to apply, for ``avsync fix`` without ``--offset``.

A wrong fix is worse than none: it ships a file that was fine, or doubles an error. Like
ffsubsync, which refuses low-quality syncs, ``fix`` applies a measured offset only when the
measurement is one the user could act on by hand: confident, consistent along the file, and
inside the model's range.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..clock import IN_SYNC_TOLERANCE_SEC
from .results import SyncResult

MIN_AGREEMENT = 0.5  # at least half of the windows must name the offset (or a class next to it)


@dataclass(frozen=True)
class FixDecision:
    """Whether to shift the audio, by how much (> 0: the audio was early, delay it), and why."""

    apply: bool
    offset_sec: float  # at file time 0 when there is drift
    reason: str
    drift_sec_per_min: float = 0.0  # > 0: the audio gets earlier along the file; retimed when applied

    @property
    def action(self) -> str:
        """The change in words: "audio delayed by 0.40 s", or "no shift (in sync)"."""
        drift = f"a drift of {self.drift_sec_per_min:+.3f} s per minute" if self.drift_sec_per_min else ""
        if abs(self.offset_sec) < 1e-9:
            return (
                f"audio retimed for {drift}" if drift else "no shift (already in sync): a plain stream copy"
            )
        way = "delayed" if self.offset_sec > 0 else "advanced"
        return f"audio {way} by {abs(self.offset_sec):.2f} s" + (f", retimed for {drift}" if drift else "")


def plan_fix(offset_sec: float, drift_sec_per_min: float = 0.0) -> FixDecision:
    """A fix the user asked for explicitly (``--offset``, ``--drift``): always applied."""
    given = "offset and drift given by the user" if drift_sec_per_min else "offset given by the user"
    return FixDecision(True, float(offset_sec), given, float(drift_sec_per_min))


def decide_fix(result: SyncResult, *, min_confidence: float = 0.8, allow_drift: bool = False) -> FixDecision:
    """Apply the measured offset only when it is trustworthy; otherwise say why not.

    Refused: an offset at the edge of the range (the true one may be larger), drift (no single
    shift fixes it) unless ``allow_drift``, windows that disagree (a cut or a partly silent file:
    the offset changes or is unknown), and a confidence below ``min_confidence``. An offset
    within ``IN_SYNC_TOLERANCE_SEC`` of zero is applied as no shift.

    With ``allow_drift`` a measured drift is applied as the fitted line (offset at file time 0
    and slope: the audio is retimed) when the measurement is decided, confident, and the line
    stays inside the model's range over the windows it was fitted to; the windows' agreement
    is not asked for, since along a drift they name different offsets by design.
    """
    if not result.ok or result.offset_sec is None:
        return FixDecision(False, 0.0, f"the offset could not be measured ({result.error})")
    offset = round(float(result.offset_sec), 6)  # grids are float32: 0.2 is 0.20000000298
    words = result.offset_words or ""
    if not result.sampling.decided:
        return FixDecision(False, offset, f"the measurement is undecided ({result.sampling.stopped})")
    if result.at_range_edge:
        return FixDecision(
            False, offset, f"{words}: at the edge of the model's range, the true offset may be larger"
        )
    if result.drift_sec_per_min is not None and allow_drift:
        return _drift_decision(result, min_confidence)
    if result.drift_sec_per_min is not None:
        return FixDecision(
            False,
            offset,
            f"the offset drifts ({result.drift_sec_per_min:+.2f} s per minute): one shift cannot fix it "
            "(--allow-drift retimes the audio)",
        )
    if result.agreement is not None and result.agreement < MIN_AGREEMENT:
        return FixDecision(
            False,
            offset,
            f"the windows disagree (agreement {result.agreement:.2f} < {MIN_AGREEMENT}): "
            "the offset may change along the file",
        )
    if result.confidence is None or result.confidence < min_confidence:
        conf = "unknown" if result.confidence is None else f"{result.confidence:.2f}"
        return FixDecision(False, offset, f"confidence {conf} is below --min-confidence {min_confidence:g}")
    if abs(offset) < IN_SYNC_TOLERANCE_SEC:
        return FixDecision(True, 0.0, f"in sync (confidence {result.confidence:.2f})")
    return FixDecision(True, offset, f"measured {words} (confidence {result.confidence:.2f})")


def _drift_decision(result: SyncResult, min_confidence: float) -> FixDecision:
    trend = result.trend
    drift = float(result.drift_sec_per_min or 0.0)
    if trend is None:
        return FixDecision(False, float(result.offset_sec or 0.0), "drift was reported without a fitted line")
    offset = round(trend.intercept_sec, 6)
    reach = max(abs(g) for g in result.grid) if result.grid else 0.0
    ends = (trend.offset_at(trend.t_first_sec), trend.offset_at(trend.t_last_sec))
    if reach and any(abs(e) >= reach for e in ends):
        return FixDecision(
            False,
            offset,
            f"the drifting offset reaches the edge of the model's range ({max(ends, key=abs):+.2f} s)",
        )
    if result.confidence is None or result.confidence < min_confidence:
        conf = "unknown" if result.confidence is None else f"{result.confidence:.2f}"
        return FixDecision(False, offset, f"confidence {conf} is below --min-confidence {min_confidence:g}")
    return FixDecision(
        True,
        offset,
        f"measured drift {drift:+.3f} s per minute, {offset:+.2f} s at the start "
        f"(confidence {result.confidence:.2f})",
        drift,
    )
