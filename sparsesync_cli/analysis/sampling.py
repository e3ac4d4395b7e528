"""Fast triage (``--sample auto``): which windows to read, in what order, and when to stop.

Pure logic over numbers, no I/O and no model: the caller hands in a function that returns the
class probabilities of a batch of window indices (decoding and running the model, or reading a
simulation), and :func:`sample_windows` decides what to visit next.

Order: coarse to fine over the file (:func:`visit_order`): the first window, the last, the
middle, the quarters, the eighths, ... (a van der Corput sequence on the window indices), so
every prefix of the order is spread evenly over the file.

Stopping rule (docs/guides/fast-triage.md states it in the same words). After each batch the visited windows
are aggregated exactly as a full run aggregates all of them
(:func:`~sparsesync_cli.analysis.aggregate.aggregate`). The verdict is **decided**, and
reading stops, when all of these hold:

1. the verdict's class is the one a full read would pick: every other class trails it by
   ``DECIDE_SE`` (2.5) standard errors of the sample's mean per-window log-likelihood difference
   (the sum the full run compares; finite-population corrected), and the combined confidence is
   at least ``min_confidence`` (the verdict's ``--min-confidence``) or, from
   ``MAX_EVIDENCE_WINDOWS`` windows on, settled below it by ``DECIDE_SE`` standard errors (delta
   method: a full read would report the same low confidence);
2. the agreement is at least ``MIN_AGREEMENT`` (0.7);
3. at least ``min_windows`` (default 6) windows were decoded, and the first and last of them lie
   at least ``MIN_SPAN_SHARE`` (80 %) of the file's window span apart;
4. there is no drift or change evidence among the visited windows: no drift or jump in the
   aggregate; no run of ``DISSENT_RUN`` (3) consecutive visited windows that confidently (own
   confidence >= ``DISSENT_CONFIDENCE``, 0.5) name the same other offset; no line through the
   visited windows (isolated outliers set aside) that moves by ``EVIDENCE_MOVE_CLASSES`` (0.75
   of a class) or more and beats a constant by ``EVIDENCE_BIC`` (6, "strong" evidence);
5. every window that confidently names another offset is cleared: between its nearest visited
   neighbours there is no room for a segment the full run could call a change (3 windows and
   10 % of the file, the trend module's minimum); until then the windows halfway towards those
   neighbours are read next (bisection: a few windows per outlier);
6. the offset is not near a class boundary: the mean of the agreeing windows' own sub-class
   estimates is at least ``DECIDE_SE`` standard errors from the midpoint to the next class
   (otherwise a sample could pick either class where the full run picks one); except a **tie**:
   from ``TIE_MIN_WINDOWS`` (12) windows on, the mean lies within ``TIE_SEC`` (0.01 s) of the
   midpoint, standard errors included; a full read's choice there is decided by its noise, and
   the verdict says so (condition 1's class test and condition 6 are then waived for those two classes).

While not decided, the next batch is the windows condition 5 asks for, then the next windows of
the coarse-to-fine order (each batch a quarter of the windows read so far, at least the model's
batch size). As soon as condition 4 fails, every window is read: the drift and change tests
weigh every window of a file, so only a full read measures the rate and the change time as a
full run does. ``max_windows`` caps the windows read; reaching it before a decision leaves the
verdict **undecided** (never a guess presented as decided).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .aggregate import JUNK_SHARE, MAX_EVIDENCE_WINDOWS, Aggregate, aggregate, window_verdict
from .trend import SEGMENT_MIN_SHARE, SEGMENT_MIN_WINDOWS, line_gain

SAMPLE_MODES = ("all", "auto")
MIN_AGREEMENT = 0.7  # share of visited windows that must name the verdict (or a class next to it)
MIN_SPAN_SHARE = 0.8  # first..last visited window must cover this share of the file's window span
DEFAULT_MIN_WINDOWS = 6
DEFAULT_MIN_CONFIDENCE = 0.8  # fix's default; predict uses it for the stopping rule too
EVIDENCE_MOVE_CLASSES = 0.75  # a line through the visited windows moving this far ...
EVIDENCE_BIC = 6.0  # ... and beating a constant by this much ("positive" evidence) hints at drift
DISSENT_CONFIDENCE = 0.5  # a window this sure of another offset is a dissenter
DISSENT_RUN = 3  # this many agreeing dissenters in a row (of the windows read) is a change
DECIDE_SE = 2.5  # a sample's estimate must clear a threshold by this many standard errors
TIE_SEC = 0.01  # an offset this close to the midpoint between two classes lies on their boundary
TIE_MIN_WINDOWS = 12  # ... and is called so only from at least this many windows
GROWTH = 0.25  # after the first round, each batch adds this share of the windows read so far


# Why reading stopped when every window was asked for (local and Ray runs say the same).
STOPPED_ALL = "read every window (--sample all)"


@dataclass(frozen=True)
class SamplingOptions:
    """How many windows to read: ``mode`` "all" (every window) or "auto" (the stopping rule)."""

    mode: str = "all"
    min_windows: int = DEFAULT_MIN_WINDOWS
    max_windows: int | None = None
    min_confidence: float = DEFAULT_MIN_CONFIDENCE

    def __post_init__(self) -> None:
        if self.mode not in SAMPLE_MODES:
            raise ValueError(f"--sample must be one of {', '.join(SAMPLE_MODES)}, got {self.mode!r}")
        if self.min_windows < 1:
            raise ValueError("--min-windows must be >= 1")
        if self.max_windows is not None and self.max_windows < 1:
            raise ValueError("--max-windows must be >= 1")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError("--min-confidence must be between 0 and 1")


@dataclass(frozen=True)
class Sampled:
    """What :func:`sample_windows` did: windows decoded (with probabilities), skipped, why it stopped."""

    probs: dict[int, tuple[float, ...]]  # window index -> class probabilities (decoded windows)
    skipped: tuple[int, ...]  # windows visited but not decodable (the caller knows why)
    stopped: str  # why reading stopped, in words
    decided: bool  # False: --max-windows was reached before the verdict was decided
    read_all: bool  # every window was read (by choice or because the file needed it)
    order: tuple[int, ...] = field(default=())  # windows in the order they were visited

    @property
    def used(self) -> list[int]:
        """Decoded window indices in file order."""
        return sorted(self.probs)


def visit_order(n: int) -> list[int]:
    """Window indices ``0..n-1`` coarse to fine: first, last, middle, quarters, eighths, ...

    Every index appears once; each prefix is spread over the whole file (van der Corput
    points ``j / 2^d`` of the span, rounded to a window, duplicates dropped).
    """
    if n <= 0:
        return []
    order: list[int] = [0]
    seen = {0}
    if n > 1:
        order.append(n - 1)
        seen.add(n - 1)
    depth = 1
    while len(order) < n and (1 << (depth - 1)) <= n:
        den = 1 << depth
        for j in range(1, den, 2):
            i = math.floor(j * (n - 1) / den + 0.5)
            if i not in seen:
                seen.add(i)
                order.append(i)
        depth += 1
    order += [i for i in range(n) if i not in seen]  # rounding may leave a few: finest level
    return order


@dataclass(frozen=True)
class Judgement:
    """The stopping rule applied to the visited windows."""

    decided: bool
    evidence: str | None  # "drift" or "change" when the file needs a full read
    reason: str  # why not decided yet, or the decision in words
    wanted: tuple[int, ...] = ()  # unread neighbours of dissenting windows, to read next
    agg: Aggregate | None = None


def judge(
    probs: dict[int, Sequence[float]],
    times: Sequence[float],
    grid: Sequence[float],
    options: SamplingOptions,
    *,
    skipped: Sequence[int] = (),
) -> Judgement:
    """Apply the stopping rule (module doc) to decoded windows ``probs`` of a file.

    ``times``: the used-part start of every window of the file (seconds), ``len(times)`` windows.
    """
    n_total = len(times)
    idx = sorted(probs)
    if not idx:
        return Judgement(False, None, "no window decoded yet")
    p = np.array([probs[i] for i in idx], dtype=np.float64)
    t = np.array([times[i] for i in idx], dtype=np.float64)
    agg = aggregate(p, grid, t)
    g = np.asarray(grid, dtype=np.float64)
    step = float(g[1] - g[0])
    tol = min(0.2, step) * (1 + 1e-3)

    if agg.drift_sec_per_min is not None:
        return Judgement(False, "drift", f"drift of {agg.drift_sec_per_min:+.2f} s/min", agg=agg)
    if agg.jump is not None:
        return Judgement(False, "change", f"a change of offset near {agg.jump.at_sec:.0f} s", agg=agg)
    # Dissenters: windows confidently naming an offset away from the verdict, grouped in runs of
    # visited windows (in file order) that agree with each other.
    read = set(idx) | set(skipped)
    groups: list[list[int]] = []
    at = {i: p for p, i in enumerate(idx)}
    for i in idx:
        k, conf = window_verdict(probs[i], grid)
        if conf < DISSENT_CONFIDENCE or abs(g[k] - agg.offset_sec) <= tol:
            continue
        prev = groups[-1] if groups else None
        if prev and at[prev[-1]] == at[i] - 1 and abs(g[np.argmax(probs[prev[-1]])] - g[k]) <= tol:
            prev.append(i)
        else:
            groups.append([i])
    for grp in groups:
        if len(grp) >= DISSENT_RUN:
            why = f"windows {grp[0] + 1}..{grp[-1] + 1} name another offset"
            return Judgement(False, "change", why, agg=agg)
    # A group is cleared when no segment long enough for the full run to call a change
    # (SEGMENT_MIN_WINDOWS and SEGMENT_MIN_SHARE of the windows) fits between its read neighbours;
    # otherwise read halfway towards them (bisection: a few windows per outlier).
    min_segment = max(SEGMENT_MIN_WINDOWS, math.ceil(SEGMENT_MIN_SHARE * n_total))
    wanted: set[int] = set()
    cleared: set[int] = set()
    for grp in groups:
        pos0, pos1 = at[grp[0]], at[grp[-1]]
        left = idx[pos0 - 1] if pos0 > 0 else -1
        right = idx[pos1 + 1] if pos1 + 1 < len(idx) else n_total
        if right - left - 1 < min_segment:
            cleared.update(grp)
            continue
        for j in ((left + grp[0]) // 2, (grp[-1] + right + 1) // 2):
            if 0 <= j < n_total and j not in read:
                wanted.add(j)
        if not wanted & set(range(left + 1, right)):  # nothing left to read in between
            cleared.update(grp)
    if not wanted and agg.trend is not None and len(idx) - len(cleared) >= 3:
        keep = [k for k, i in enumerate(idx) if i not in cleared]
        tk = t[keep]
        yk = np.array(agg.window_offsets_sec)[keep]
        wk = np.array(agg.window_weights)[keep]
        slope = np.polyfit(tk / 60.0, yk, 1, w=np.sqrt(np.maximum(wk, 1e-3)))[0] if np.ptp(tk) > 0 else 0.0
        moves = abs(slope) * np.ptp(tk) / 60.0
        if moves >= EVIDENCE_MOVE_CLASSES * step and (
            line_gain(tk, yk, wk, step, float(g[-1] - g[0])) >= EVIDENCE_BIC
        ):
            return Judgement(False, "drift", f"the visited windows move by {moves:.2f} s", agg=agg)

    span = max(1e-9, times[-1] - times[0]) if n_total > 1 else 1.0
    covered = (t[-1] - t[0]) / span if n_total > 1 else 1.0
    why = []
    if agg.agreement < MIN_AGREEMENT:
        why.append(f"agreement {agg.agreement:.2f} < {MIN_AGREEMENT:g}")
    if len(idx) < min(options.min_windows, n_total - len(skipped)):
        why.append(f"{len(idx)} < {options.min_windows} windows")
    if covered < MIN_SPAN_SHARE and len(read) < n_total:
        why.append(f"the windows span {covered:.0%} of the file")
    k = agg.offset_class
    rest_unread = len(read) < n_total
    # The verdict's class must be the one a full read picks: the full run compares the per-window
    # log-likelihood sums, so each other class must trail by DECIDE_SE standard errors of the
    # sample's mean difference (finite-population corrected: the error shrinks to 0 as the
    # sample becomes the file). A sample that cannot tell which class leads reads on.
    loglik = _loglik(p)
    rivals = [
        j for j in range(g.size)
        if j != k and not _mean_positive(loglik[:, k] - loglik[:, j], n_total)
    ]  # fmt: skip
    boundary: float | None = None  # the midpoint the offset may lie on the other side of
    # Sub-class position: when the windows' own estimates put the offset near the boundary with
    # the neighbouring class, a sample could pick either class; read on until the side is clear.
    y_all, w_all = np.array(agg.window_offsets_sec), np.array(agg.window_weights)
    near = np.abs(y_all - agg.offset_sec) <= tol
    tie = False
    if near.sum() >= 2:
        yw, ww = y_all[near], np.maximum(w_all[near], 1e-3)
        m = float(np.average(yw, weights=ww))
        se = float(np.sqrt(np.average((yw - m) ** 2, weights=ww) / near.sum()))
        mid = agg.offset_sec + math.copysign(step / 2, m - agg.offset_sec)
        if abs(mid - m) < DECIDE_SE * se and rest_unread:
            boundary = mid
        # On the boundary itself a full read's choice is a coin toss its noise decides: reading
        # every window to reproduce it would buy nothing. Called a tie when the sample shows the
        # offset within TIE_SEC of the midpoint (DECIDE_SE standard errors included).
        tie = (
            len(idx) >= TIE_MIN_WINDOWS
            and abs(mid - m) + DECIDE_SE * se <= TIE_SEC
            and all(abs(g[j] - mid) <= step * (1 + 1e-3) / 2 for j in rivals)
        )
    if not tie:
        if rivals and rest_unread:
            why.append(f"the sample cannot yet tell {agg.offset_sec:+.1f} s from {g[rivals[0]]:+.1f} s")
        if boundary is not None:
            other = boundary + (boundary - agg.offset_sec)
            why.append(f"the offset is near the boundary with {other:+.1f} s")
    # The confidence a full read would report: at least --min-confidence, or settled below it (a
    # file whose windows agree but which the model cannot call surely: reading on would only
    # repeat the same low confidence).
    conf_low = agg.confidence < options.min_confidence
    if conf_low and not _settled_below(loglik, g, k, tol, options.min_confidence, n_total):
        why.append(f"confidence {agg.confidence:.2f} < {options.min_confidence:g}")
    if wanted:
        n_dis = sum(len(grp) for grp in groups) - len(cleared)
        why.append(f"{n_dis} window(s) name another offset")
    if why:
        return Judgement(False, None, "; ".join(why), wanted=tuple(sorted(wanted)), agg=agg)
    said = [f"confidence {agg.confidence:.2f}", f"agreement {agg.agreement:.2f}"]
    if conf_low:
        said[0] += f", settled below {options.min_confidence:g}"
    if tie and (rivals or boundary is not None):
        said.append(f"on the boundary of {agg.offset_sec:+.1f} s: a full read could name the next class")
    return Judgement(True, None, ", ".join(said), agg=agg)


def _loglik(p: np.ndarray) -> np.ndarray:
    """Per-window log-likelihoods ``(n, C)`` exactly as the aggregate sums them (junk share mixed in)."""
    p = p / p.sum(axis=1, keepdims=True)
    return np.log((1.0 - JUNK_SHARE) * p + JUNK_SHARE / p.shape[1])


def _mean_se(x: np.ndarray, n_total: int) -> float:
    """Standard error of the mean of ``x`` (a sample of the file's windows) as an estimate of the
    mean over all ``n_total`` windows: zero once every window is read."""
    n = x.shape[0]
    if n < 2:
        return math.inf
    return math.sqrt(float(np.var(x, ddof=1)) / n * max(0.0, 1.0 - n / n_total))


def _mean_positive(x: np.ndarray, n_total: int) -> bool:
    """The file-wide mean of ``x`` is above zero by DECIDE_SE standard errors of the sample's."""
    return float(np.mean(x)) - DECIDE_SE * _mean_se(x, n_total) > 0.0


def _settled_below(loglik: np.ndarray, g: np.ndarray, k: int, tol: float, level: float, n_total: int) -> bool:
    """The confidence a full read reports stays below ``level`` (delta method on the mean
    log-likelihoods the full run combines, scaled as it scales them)."""
    scale = min(n_total, MAX_EVIDENCE_WINDOWS)
    if loglik.shape[0] < scale:  # fewer windows than the full run's evidence: the sample's own
        return False  # confidence would be tempered differently from the one it reports
    z = scale * loglik.mean(axis=0)
    q = np.exp(z - z.max())
    q /= q.sum()
    near = np.abs(g - g[k]) <= tol
    conf = float(q[near].sum())
    grad = scale * q * (near - conf)  # d confidence / d mean log-likelihood of each class
    return conf + DECIDE_SE * _mean_se(loglik @ grad, n_total) < level


def sample_windows(
    times: Sequence[float],
    grid: Sequence[float],
    evaluate: Callable[[list[int]], dict[int, Sequence[float]]],
    options: SamplingOptions,
    *,
    batch_size: int = 1,
) -> Sampled:
    """Visit windows (all, or by the stopping rule) and return what was read and why it stopped.

    ``times``: used-part start of every window (seconds, file order). ``evaluate(indices)``
    returns the probabilities of the windows among ``indices`` that could be decoded; the
    others count as skipped. Batches are multiples of ``batch_size`` where possible.
    """
    n = len(times)
    cap = n if options.max_windows is None else min(n, options.max_windows)
    probs: dict[int, tuple[float, ...]] = {}
    skipped: list[int] = []
    visited: list[int] = []

    def visit(batch: list[int]) -> None:
        batch = sorted(batch)  # file order: the decoder reads forward where it can
        got = evaluate(batch)
        visited.extend(batch)
        for i in batch:
            if i in got:
                probs[i] = tuple(float(x) for x in got[i])
            else:
                skipped.append(i)

    if options.mode == "all" or n <= options.min_windows:
        _visit_all(list(range(n)), cap, batch_size, visit)
        why = STOPPED_ALL if options.mode == "all" else "read every window (a short file)"
        if cap < n:
            return Sampled(
                probs, tuple(skipped), f"undecided: --max-windows {cap} reached", False, False, tuple(visited)
            )
        return Sampled(probs, tuple(skipped), why, True, True, tuple(visited))

    order = visit_order(n)
    pos = 0  # next position in the coarse-to-fine order
    first = min(max(options.min_windows, batch_size), cap)
    pending = order[:first]
    pos = first
    while True:
        visit(pending)
        j = judge(probs, times, grid, options, skipped=skipped)
        done = set(visited)
        if j.decided:
            return Sampled(
                probs, tuple(skipped), f"decided after {len(visited)} of {n} windows ({j.reason})", True,
                len(done) == n, tuple(visited),
            )  # fmt: skip
        if j.evidence is not None:
            rest = [i for i in range(n) if i not in done]
            room = cap - len(visited)
            _visit_all(rest, room, batch_size, visit)
            if room < len(rest):
                return Sampled(
                    probs, tuple(skipped),
                    f"undecided: {j.evidence} ({j.reason}) needs every window, --max-windows {cap} reached",
                    False, False, tuple(visited),
                )  # fmt: skip
            return Sampled(
                probs, tuple(skipped),
                f"read every window: the visited windows show {j.evidence} ({j.reason})",
                True, True, tuple(visited),
            )  # fmt: skip
        if len(done) >= n:
            return Sampled(
                probs, tuple(skipped), f"read every window: not decided earlier ({j.reason})", True, True,
                tuple(visited),
            )  # fmt: skip
        if len(visited) >= cap:
            return Sampled(
                probs, tuple(skipped), f"undecided: --max-windows {cap} reached ({j.reason})", False, False,
                tuple(visited),
            )  # fmt: skip
        size = max(batch_size, 2, math.ceil(GROWTH * len(visited)))
        size = min(size, cap - len(visited))
        pending = [i for i in j.wanted if i not in done][:size]
        while len(pending) < size and pos < n:
            if order[pos] not in done and order[pos] not in pending:
                pending.append(order[pos])
            pos += 1


def _visit_all(indices: list[int], room: int, batch_size: int, visit: Callable[[list[int]], None]) -> None:
    # One call: the caller batches for the model and keeps its decoder running ahead.
    if indices[: max(0, room)]:
        visit(indices[: max(0, room)])
