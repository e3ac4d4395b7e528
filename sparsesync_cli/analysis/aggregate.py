"""Per-window class probabilities -> one offset per file, its confidence, and drift.

Separate from windowing on purpose (demucs keeps its weighted sum apart from its splitter): this
module sees only numbers: probabilities ``(W, C)`` over a class grid of offsets in seconds and
the file time of each window.

The rules, in the words of docs/guides/check-a-file.md ("What the numbers mean"):

- **Offset**: the class with the highest combined posterior. Each window's probabilities are
  treated as a likelihood for one file-wide offset and multiplied (log-probabilities summed).
  Two guards keep that product honest: (1) each window is mixed with 10 % uniform
  (``JUNK_SHARE``: "a window may be junk": silence, a static shot, a voice-over), so one
  confidently wrong window costs at most ``log(0.1 / C)`` instead of vetoing the true class;
  (2) the sum is tempered to at most ``MAX_EVIDENCE_WINDOWS`` (8) windows' worth of evidence,
  because windows of one file are not independent (same scene, same model bias), and an
  untempered product over 700 windows of an hour-long file would claim certainty no model has.
- **Confidence**: the combined posterior mass within ``TOLERANCE_SEC`` (0.2 s, one class of the
  21-class models; the class itself for the 3-class model) of the offset.
- **Agreement**: the share of windows whose own best class is within the same tolerance.
- **Drift / jump**: per-window offsets (sub-class centroids, :func:`_window_offsets`) are
  fitted robustly against time with a constant, a line and a single jump; see
  :mod:`sparsesync_cli.analysis.trend` for the tests that decide.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .. import clock
from .trend import Jump, Trend, fit_trend

JUNK_SHARE = 0.1  # prior share of windows that carry no information (mixed in as uniform)
MAX_EVIDENCE_WINDOWS = 8  # the product is tempered to at most this many windows of evidence
TOLERANCE_SEC = 0.2  # confidence/agreement count classes this close to the offset (+- 1 class)
_EPS = 1e-9


@dataclass(frozen=True)
class Aggregate:
    """One file's verdict. ``offset_sec``/``offset_class`` index ``grid``."""

    offset_sec: float
    offset_class: int
    confidence: float  # posterior mass within TOLERANCE_SEC of offset_sec
    agreement: float  # share of windows whose best class is within TOLERANCE_SEC
    drift_sec_per_min: float | None  # None unless a significant drift was found
    trend: Trend | None  # the line fit (present from 3 windows on, drift or not)
    jump: Jump | None  # a single change of offset that fits better than a line
    at_range_edge: bool  # offset is the first or last class: the true one may be further out
    n_windows: int
    posterior: tuple[float, ...]  # combined per-class posterior, sums to 1
    window_offsets_sec: tuple[float, ...]  # each window's sub-class offset estimate (plotting)
    window_weights: tuple[float, ...]  # each window's probability mass near its best class

    def to_dict(self) -> dict:
        return asdict(self)


def aggregate(probs: np.ndarray, grid: Sequence[float], window_starts_sec: Sequence[float]) -> Aggregate:
    """Combine per-window probabilities ``(W, C)`` on ``grid`` (seconds) into one file verdict."""
    p = np.asarray(probs, dtype=np.float64)
    g = np.asarray(grid, dtype=np.float64)
    t = np.asarray(window_starts_sec, dtype=np.float64)
    _check(p, g, t)
    n_win, n_cls = p.shape
    step = float(g[1] - g[0])
    tol = _tolerance(g)
    p = p / p.sum(axis=1, keepdims=True)

    mixed = (1.0 - JUNK_SHARE) * p + JUNK_SHARE / n_cls
    temper = min(1.0, MAX_EVIDENCE_WINDOWS / n_win)
    log_post = temper * np.log(mixed).sum(axis=0)
    post = np.exp(log_post - log_post.max())
    post /= post.sum()

    # Exact ties (no information at all, e.g. every window uniform) go to the class nearest
    # 0 s: most footage is in sync, and "at least 2.00 s late" from no evidence would be absurd.
    tied = np.flatnonzero(post >= post.max() * (1 - 1e-9))
    k = int(tied[np.argmin(np.abs(g[tied]))])
    offset = float(g[k])
    near = np.abs(g - offset) <= tol
    confidence = float(post[near].sum())
    best = p.argmax(axis=1)
    agreement = float(np.mean(np.abs(g[best] - offset) <= tol))

    y, w = _window_offsets(p, g)
    trend, jump = fit_trend(t, y, w, step, float(g[-1] - g[0])) if n_win >= 3 else (None, None)
    drift = trend.slope_sec_per_min if trend is not None and trend.significant else None
    return Aggregate(
        offset_sec=offset,
        offset_class=k,
        confidence=min(1.0, confidence),
        agreement=agreement,
        drift_sec_per_min=drift,
        trend=trend,
        jump=jump,
        at_range_edge=k in (0, n_cls - 1),
        n_windows=n_win,
        posterior=tuple(float(x) for x in post),
        window_offsets_sec=tuple(float(x) for x in y),
        window_weights=tuple(float(x) for x in w),
    )


def window_verdict(probs: Sequence[float], grid: Sequence[float]) -> tuple[int, float]:
    """One window on its own: (best class, probability mass within ``TOLERANCE_SEC`` of it).

    The same tolerance as the file's confidence, so the two numbers mean the same thing.
    """
    p = np.asarray(probs, dtype=np.float64)
    g = np.asarray(grid, dtype=np.float64)
    k = int(np.argmax(p))
    return k, float(p[np.abs(g - g[k]) <= _tolerance(g)].sum())


def _tolerance(g: np.ndarray) -> float:
    # Relative slack: grids made in float32 (the reference's) are 0.2 s apart only to ~1e-8.
    return min(TOLERANCE_SEC, float(g[1] - g[0])) * (1 + 1e-3)


def _check(p: np.ndarray, g: np.ndarray, t: np.ndarray) -> None:
    if p.ndim != 2 or p.shape[0] < 1 or p.shape[1] < 2:
        raise ValueError(f"probs must be (windows, classes) with >= 1 window and >= 2 classes, got {p.shape}")
    if g.shape != (p.shape[1],):
        raise ValueError(f"grid has {g.size} values for {p.shape[1]} classes")
    if t.shape != (p.shape[0],):
        raise ValueError(f"{t.size} window times for {p.shape[0]} windows")
    steps = np.diff(g)
    if not (steps > 0).all() or not np.allclose(steps, steps[0], rtol=1e-4, atol=1e-6):
        raise ValueError(f"grid must be increasing and evenly spaced, got {g.tolist()}")
    if not (np.isfinite(p).all() and np.isfinite(t).all()):
        raise ValueError("probs and window times must be finite")
    sums = p.sum(axis=1)
    if (p < 0).any() or not np.allclose(sums, 1.0, atol=1e-3):
        raise ValueError("probs must be probabilities (softmax of the logits), each row summing to 1")


def _window_offsets(p: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each window's offset as the centroid of its best class and its two neighbours.

    Not the full expectation: when a window is unsure, mass spread over the whole grid pulls the
    expectation toward the grid's centre (0 s), which would fake a trend wherever the model's
    certainty changes along the file (music, then speech). The local centroid keeps sub-class
    resolution (a true 0.3 s sits between the 0.2 and 0.4 classes) without that pull. The weight
    is the mass in that neighbourhood: a window that is sure of nothing counts little.
    """
    n_cls = p.shape[1]
    best = p.argmax(axis=1)
    idx = np.clip(best[:, None] + np.array([-1, 0, 1])[None, :], 0, n_cls - 1)
    # Deduplicate at the edges (clipped neighbours repeat the best class).
    mask = np.ones_like(idx, dtype=bool)
    mask[:, 0] = idx[:, 0] != idx[:, 1]
    mask[:, 2] = idx[:, 2] != idx[:, 1]
    mass = np.take_along_axis(p, idx, axis=1) * mask
    weight = mass.sum(axis=1)
    centroid = (mass * g[idx]).sum(axis=1) / np.maximum(weight, _EPS)
    return centroid, weight


def _clock_text(t_sec: float) -> str:
    """File time as m:ss.s, or h:mm:ss.s from an hour on."""
    m, s = divmod(max(0.0, t_sec), 60.0)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:04.1f}" if h else f"{m}:{s:04.1f}"


def describe(agg: Aggregate) -> str:
    """The verdict in words, e.g. ``"audio 0.40 s early"`` or a drift/jump sentence."""
    if agg.trend is not None and agg.drift_sec_per_min is not None:
        tr = agg.trend
        first = clock.describe_offset(tr.offset_at(tr.t_first_sec))
        last = clock.describe_offset(tr.offset_at(tr.t_last_sec))
        return (
            f"drifting {agg.drift_sec_per_min:+.2f} s/min: {first} at {_clock_text(tr.t_first_sec)}, "
            f"{last} at {_clock_text(tr.t_last_sec)}"
        )
    words = clock.describe_offset(agg.offset_sec, at_least=agg.at_range_edge)
    if agg.jump is not None:
        j = agg.jump
        words += (
            f" (changes at {_clock_text(j.at_sec)}: {clock.describe_offset(j.before_sec)} before, "
            f"{clock.describe_offset(j.after_sec)} after)"
        )
    return words
