"""Does the offset change along the file? A line (drift) or a single jump (a cut), robustly.

Input: one offset estimate per window (seconds), its weight (how sure the window is) and its
file time. Three models are fitted to these points: a constant, a line, and two constants with
a jump between them. Each uses the same robust likelihood: a window either follows the model
(Gaussian residual, spread fitted) or is junk (uniform over the class range: silence, a static
shot, a voice-over; real footage has plenty), with the junk share fitted too but capped at
one half, so the model must explain most windows. EM alternates between "which windows follow
the model" and a weighted least-squares fit. The spread is floored at a quarter of a class
(0.05 s): finer than that the model cannot see, and without a floor a model that happens to
fit two stray windows exactly would gain an unbounded likelihood.

The models are compared by BIC (``-2 log L + k log n``; constant, line and jump have 1, 2 and 3
parameters, plus spread and junk share each); a more complex model must win by
``BIC_MARGIN`` (10, "very strong" evidence). **Drift** is reported when there are at least
``DRIFT_MIN_WINDOWS`` (6) windows, the line beats the constant by the margin and is not worse
than the best single jump, it moves by at least one class between the first and the last
window, and at least ``TREND_MIN_INLIERS`` (60 %) of the (certainty-weighted) windows follow
it. A **jump** is reported (and drift is not) when the jump model beats both others by the
margin, changes by at least one class, at least 60 % of the windows follow it, and each side has
at least ``SEGMENT_MIN_WINDOWS`` (3) windows and ``SEGMENT_MIN_SHARE`` (10 %) of them. A step
fits a ramp about 75 % and a ramp fits a step about 75 %, so a goodness of fit alone cannot tell
them apart; the likelihood comparison does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DRIFT_MIN_WINDOWS = 6  # fewer windows cannot tell a line from noise
TREND_MIN_INLIERS = 0.6  # share of windows that must follow a reported line or jump
SEGMENT_MIN_WINDOWS = 3  # each side of a jump needs this many windows ...
SEGMENT_MIN_SHARE = 0.1  # ... and this share of all windows (two stray windows are no edit)
SPREAD_FLOOR_CLASSES = 0.25  # the fitted residual spread is at least this many classes
BIC_MARGIN = 10.0  # "very strong" evidence (Kass & Raftery) before a model wins over a simpler one
MAX_JUNK_SHARE = 0.5  # a model may call at most half of the windows junk
_EM_STEPS = 40
_JUMP_CANDIDATES = 200  # split points tried before refining around the best
_EPS = 1e-12


@dataclass(frozen=True)
class Trend:
    """A robust straight-line fit of the per-window offsets against file time (for plots)."""

    slope_sec_per_min: float  # change of the offset per minute of file time
    intercept_sec: float  # the line's offset at file time 0
    t_first_sec: float  # first and last window time the fit spans
    t_last_sec: float
    inliers: float  # certainty-weighted share of windows that follow the line
    significant: bool  # True when reported as drift

    def offset_at(self, t_sec: float) -> float:
        """The fitted offset at file time ``t_sec``."""
        return self.intercept_sec + self.slope_sec_per_min * t_sec / 60.0


@dataclass(frozen=True)
class Jump:
    """A single change of offset along the file (an edit, a cut, a re-synced segment)."""

    at_sec: float  # midway between the last window before and the first after the change
    before_sec: float  # robust offset level before and after
    after_sec: float
    inliers: float  # certainty-weighted share of windows that follow the two levels


class _Mixture:
    """Gaussian-plus-uniform residual likelihood shared by the three models."""

    def __init__(self, step: float, junk_density: float) -> None:
        self.floor = SPREAD_FLOOR_CLASSES * step
        self.junk_density = junk_density

    def e_step(self, r: np.ndarray, sigma: np.ndarray, junk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(per-window log-likelihood, probability that the window follows the model)."""
        sigma, junk = np.asarray(sigma)[..., None], np.asarray(junk)[..., None]
        gauss = (1.0 - junk) * np.exp(-0.5 * (r / sigma) ** 2) / (np.sqrt(2 * np.pi) * sigma)
        total = gauss + junk * self.junk_density
        return np.log(total), gauss / total

    def m_scale(self, r: np.ndarray, w: np.ndarray, follow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Spread and junk share given who follows the model (weights ``w`` sum to n)."""
        wf = w * follow
        var = (wf * r * r).sum(axis=-1) / np.maximum(wf.sum(axis=-1), _EPS)
        sigma = np.maximum(np.sqrt(var), self.floor)
        junk = np.clip(1.0 - wf.sum(axis=-1) / w.sum(), 1e-3, MAX_JUNK_SHARE)
        return sigma, junk


def _fit_linear(
    x: np.ndarray, y: np.ndarray, w: np.ndarray, mix: _Mixture
) -> tuple[np.ndarray, float, float]:
    """EM fit of ``y ~ x @ coef`` under the mixture; returns (coef, log-likelihood, inlier share)."""
    follow = np.ones_like(y)
    for i in range(_EM_STEPS):
        sw = np.sqrt(w * follow)
        coef, *_ = np.linalg.lstsq(x * sw[:, None], y * sw, rcond=None)
        r = y - x @ coef
        if i == 0:  # start wide so that EM does not lock onto a few windows
            sigma, junk = mix.m_scale(r, w, follow)
        _, follow = mix.e_step(r, sigma, junk)
        sigma, junk = mix.m_scale(r, w, follow)
    loglik, follow = mix.e_step(y - x @ coef, sigma, junk)
    return coef, float((w * loglik).sum()), float((w * follow).sum() / w.sum())


def _fit_jumps(y: np.ndarray, w: np.ndarray, mix: _Mixture, splits: np.ndarray) -> tuple[np.ndarray, ...]:
    """EM two-level fits for many split points at once: (log-likelihoods, before, after, inliers).

    Split ``k`` puts windows ``[0, k)`` before the jump. Vectorised over splits so that a file
    of thousands of windows is still fast.
    """
    before = np.arange(y.size)[None, :] < splits[:, None]  # (K, n)
    follow = np.ones(before.shape)
    for i in range(_EM_STEPS):
        wf = w[None, :] * follow
        mu_b = (wf * y * before).sum(axis=1) / np.maximum((wf * before).sum(axis=1), _EPS)
        mu_a = (wf * y * ~before).sum(axis=1) / np.maximum((wf * ~before).sum(axis=1), _EPS)
        r = y[None, :] - np.where(before, mu_b[:, None], mu_a[:, None])
        if i == 0:
            sigma, junk = mix.m_scale(r, w[None, :], follow)
        _, follow = mix.e_step(r, sigma, junk)
        sigma, junk = mix.m_scale(r, w[None, :], follow)
    r = y[None, :] - np.where(before, mu_b[:, None], mu_a[:, None])
    loglik, follow = mix.e_step(r, sigma, junk)
    inliers = (w[None, :] * follow).sum(axis=1) / w.sum()
    return (w[None, :] * loglik).sum(axis=1), mu_b, mu_a, inliers


def _best_jump(y: np.ndarray, w: np.ndarray, mix: _Mixture) -> tuple[int, float, float, float, float] | None:
    """The best single jump (split, log-likelihood, before, after, inliers): coarse, then refine."""
    lo = max(SEGMENT_MIN_WINDOWS, int(np.ceil(SEGMENT_MIN_SHARE * y.size)))
    hi = y.size - lo
    if hi < lo:
        return None
    splits = np.unique(np.linspace(lo, hi, min(hi - lo + 1, _JUMP_CANDIDATES)).round().astype(int))
    loglik, *_ = _fit_jumps(y, w, mix, splits)
    spacing = int(np.ceil((hi - lo) / max(1, splits.size - 1)))
    centre = int(splits[int(np.argmax(loglik))])
    splits = np.arange(max(lo, centre - spacing), min(hi, centre + spacing) + 1)
    loglik, mu_b, mu_a, inliers = _fit_jumps(y, w, mix, splits)
    i = int(np.argmax(loglik))
    return int(splits[i]), float(loglik[i]), float(mu_b[i]), float(mu_a[i]), float(inliers[i])


def fit_trend(
    t_sec: np.ndarray, offsets_sec: np.ndarray, weights: np.ndarray, step: float, range_sec: float
) -> tuple[Trend, Jump | None]:
    """Fit constant, line and jump to per-window offsets; decide drift or jump (module doc).

    ``step``: class spacing in seconds (0.2 for 21 classes); ``range_sec``: span of the class
    grid (4.0 s), over which a junk window's offset is uniform. Needs at least 3 windows.
    """
    order = np.argsort(t_sec, kind="stable")
    t = np.asarray(t_sec, dtype=np.float64)[order]
    y = np.asarray(offsets_sec, dtype=np.float64)[order]
    w = np.maximum(np.asarray(weights, dtype=np.float64)[order], 1e-3)
    n = t.size
    if n < 3:
        raise ValueError(f"a trend needs at least 3 windows, got {n}")
    w = w * (n / w.sum())  # certainty weights with mean 1, so that BIC's n stays the window count
    mix = _Mixture(step, 1.0 / (range_sec + step))
    ones = np.ones(n)
    t_mid = float(t.mean())
    t_min = (t - t_mid) / 60.0  # minutes, centred: well-conditioned

    _, ll_const, _ = _fit_linear(ones[:, None], y, w, mix)
    (b0, b1), ll_line, in_line = _fit_linear(np.stack([ones, t_min], axis=1), y, w, mix)

    def bic(loglik: float, n_params: int) -> float:
        return -2.0 * loglik + (n_params + 2) * np.log(n)  # + spread and junk share

    bic_const, bic_line = bic(ll_const, 1), bic(ll_line, 2)
    jump = None
    bic_jump = np.inf
    best = _best_jump(y, w, mix)
    if best is not None:
        k, ll_jump, before_sec, after_sec, in_jump = best
        bic_jump = bic(ll_jump, 3)
        if (
            bic_jump + BIC_MARGIN <= min(bic_line, bic_const)
            and in_jump >= TREND_MIN_INLIERS
            and abs(after_sec - before_sec) >= step * (1 - 1e-6)
        ):
            jump = Jump(float((t[k - 1] + t[k]) / 2), before_sec, after_sec, in_jump)

    moves = abs(b1) * (t[-1] - t[0]) / 60.0
    significant = (
        n >= DRIFT_MIN_WINDOWS
        and bic_line + BIC_MARGIN <= bic_const
        and bic_line <= bic_jump
        and moves >= step * (1 - 1e-6)
        and in_line >= TREND_MIN_INLIERS
    )
    trend = Trend(
        slope_sec_per_min=float(b1),
        intercept_sec=float(b0 - b1 * t_mid / 60.0),
        t_first_sec=float(t[0]),
        t_last_sec=float(t[-1]),
        inliers=in_line,
        significant=bool(significant),
    )
    return trend, jump
